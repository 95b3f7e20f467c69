"""The team metrics store: one PostgreSQL schema, same API and layout as the SQLite store.

* Tables ``series`` and ``blocks`` (see :mod:`capplan.store._common`) in their own schema
  (default ``capplan``), blobs stored uncompressed out of line (``STORAGE EXTERNAL``) so that
  writing and reading them costs no compression.
* Blocks are written with one binary ``COPY`` per append (psycopg 3 ``cursor.copy``).
* Concurrent writers lock the series they touch (``SELECT ... FOR UPDATE``, in id order), so
  two appends to the same series serialise and neither loses samples.
* Versioned migrations, recorded in ``<schema>.schema_migrations``; applied on open under an
  advisory lock so that two processes opening a new store at once do not race.

The DSN is never put in a message or a repr: only host, port, database and schema are shown.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from capplan.errors import ConfigError, StoreError
from capplan.store._common import BLOCK_SIZE, Store

__all__ = ["PostgresStore", "SCHEMA_VERSION"]

#: version -> (description, statements with ``{s}`` for the schema identifier)
MIGRATIONS: dict[int, tuple[str, list[str]]] = {
    1: ("series and sample blocks", [
        "CREATE TABLE {s}.series (id bigserial PRIMARY KEY, source text NOT NULL,"
        " metric text NOT NULL, labels text NOT NULL, kind text NOT NULL, unit text NOT NULL,"
        " UNIQUE (source, metric, labels))",
        "CREATE TABLE {s}.blocks (series_id bigint NOT NULL REFERENCES {s}.series (id),"
        " t0 bigint NOT NULL, t1 bigint NOT NULL, n integer NOT NULL,"
        " ts bytea NOT NULL, val bytea NOT NULL, PRIMARY KEY (series_id, t0))",
        "ALTER TABLE {s}.blocks ALTER COLUMN ts SET STORAGE EXTERNAL,"
        " ALTER COLUMN val SET STORAGE EXTERNAL",
    ]),
    2: ("time-range index", [
        "CREATE INDEX blocks_series_t1 ON {s}.blocks (series_id, t1)",
        "CREATE INDEX series_metric ON {s}.series (metric)",
    ]),
}
SCHEMA_VERSION = max(MIGRATIONS)

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


class PostgresStore(Store):
    """A store in a PostgreSQL schema; open it with ``open_store("env:VAR", schema=...)``.

    Raises :class:`~capplan.errors.ConfigError` for an unusable schema name or DSN and
    :class:`~capplan.errors.StoreError` when the server cannot be reached, the schema is not a
    capplan store, comes from a newer capplan, or a read or write fails.
    """

    def __init__(self, dsn: str, *, schema: str = "capplan", label: str = "postgres",
                 connect_timeout_s: int = 10):
        if not _SCHEMA_RE.match(schema or ""):
            raise ConfigError(f"schema name {schema!r} is not a plain lower-case identifier",
                              key="schema", hint="use letters, digits and _, e.g. 'capplan'")
        try:
            info = conninfo_to_dict(dsn)
        except psycopg.ProgrammingError:
            # not chained: the parser's message quotes the DSN, password included
            raise ConfigError(f"{label}: the DSN cannot be parsed", key="store",
                              hint="use libpq form 'host=... dbname=... user=...' or a "
                                   "postgresql:// URL") from None
        self._secret = info.get("password")
        where = f"{info.get('host') or 'localhost'}:{info.get('port') or 5432}" \
                f"/{info.get('dbname') or '(default db)'}"
        self.schema = schema
        self.target = f"{label} ({where}, schema {schema})"
        self._s = sql.Identifier(schema)
        self._pending: list[tuple] = []
        self._conn: psycopg.Connection | None = None
        self._version = 0
        try:
            self._conn = psycopg.connect(dsn, autocommit=True, connect_timeout=connect_timeout_s,
                                         application_name="capplan-store")
        except psycopg.Error as exc:
            raise StoreError(f"{self.target}: cannot connect: {_scrub(str(exc).strip(), self._secret)}",
                             hint=f"check that the server is up and that {label} holds a working "
                                  "DSN (host, port, dbname, user, password)") from exc
        try:
            self._migrate()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"PostgresStore({self.target!r})"

    def _fail(self, what: str, exc: psycopg.Error) -> StoreError:
        text = _scrub(str(exc).strip(), self._secret)
        if isinstance(exc, psycopg.errors.InsufficientPrivilege):
            hint = (f"grant the store's role CREATE on the database (new store) or USAGE and "
                    f"SELECT/INSERT/DELETE on schema {self.schema}")
        elif isinstance(exc, psycopg.OperationalError):
            hint = "the connection failed: check the server and reopen the store"
        else:
            hint = "check the server log; the transaction was rolled back, nothing was written"
        return StoreError(f"{self.target}: {what}: {text}", hint=hint)

    def _sql(self, text: str) -> sql.Composed:
        return sql.SQL(text).format(s=self._s)

    # ---- migrations ---------------------------------------------------------------------
    def _migrate(self) -> None:
        conn = self._conn
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                             (f"capplan.store.{self.schema}",))
                exists = conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                                      (f"{self.schema}.schema_migrations",)).fetchone()[0]
                if not exists:
                    others = conn.execute(
                        "SELECT count(*) FROM pg_tables WHERE schemaname = %s",
                        (self.schema,)).fetchone()[0]
                    if others:
                        raise StoreError(
                            f"{self.target}: schema {self.schema} holds {others} table(s) but is "
                            "not a capplan store (no schema_migrations table)",
                            hint="choose another schema: open_store('env:VAR', schema='capplan')")
                    conn.execute(self._sql("CREATE SCHEMA IF NOT EXISTS {s}"))
                    conn.execute(self._sql(
                        "CREATE TABLE {s}.schema_migrations (version integer PRIMARY KEY,"
                        " description text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())"))
                version = conn.execute(self._sql(
                    "SELECT coalesce(max(version), 0) FROM {s}.schema_migrations")).fetchone()[0]
                if version > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.target}: written by a newer capplan (store schema {version}, "
                        f"this capplan reads up to {SCHEMA_VERSION})",
                        hint="upgrade capplan (pip install -U capplan) to use this store")
                for v in range(version + 1, SCHEMA_VERSION + 1):
                    desc, stmts = MIGRATIONS[v]
                    for stmt in stmts:
                        conn.execute(self._sql(stmt))
                    conn.execute(self._sql("INSERT INTO {s}.schema_migrations (version, description)"
                                           " VALUES (%s, %s)"), (v, desc))
                self._version = max(version, SCHEMA_VERSION)
        except psycopg.Error as exc:
            raise self._fail("cannot create or migrate the store", exc) from exc

    # ---- Store hooks --------------------------------------------------------------------
    @property
    def schema_version(self) -> int:
        return self._version

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(psycopg.Error):  # closing a dead connection: nothing to do
                self._conn.close()
            self._conn = None

    def _c(self) -> psycopg.Connection:
        if self._conn is None:
            raise StoreError(f"{self.target}: the store is closed",
                             hint="open it again with capplan.store.open_store()")
        return self._conn

    @contextlib.contextmanager
    def _write_txn(self) -> Iterator[None]:
        conn = self._c()
        self._pending = []
        try:
            with conn.transaction():
                yield
                if self._pending:
                    with conn.cursor() as cur, cur.copy(self._sql(
                            "COPY {s}.blocks (series_id, t0, t1, n, ts, val) FROM STDIN "
                            "(FORMAT BINARY)")) as copy:
                        copy.set_types(["int8", "int8", "int8", "int4", "bytea", "bytea"])
                        for row in self._pending:
                            copy.write_row(row)
        except psycopg.Error as exc:
            raise self._fail("cannot write to the store", exc) from exc
        finally:
            self._pending = []

    @contextlib.contextmanager
    def _read_txn(self) -> Iterator[None]:
        conn = self._c()
        try:
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                yield
        except psycopg.Error as exc:
            raise self._fail("cannot read the store", exc) from exc

    def _ensure_series(self, keys):
        conn = self._c()
        cols = [list(c) for c in zip(*keys)]
        conn.execute(self._sql(
            "INSERT INTO {s}.series (source, metric, labels, kind, unit) SELECT * FROM "
            "unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[]) "
            "ON CONFLICT (source, metric, labels) DO NOTHING"), cols)
        rows = conn.execute(self._sql(
            "SELECT s.id, s.source, s.metric, s.labels, s.kind, s.unit FROM {s}.series s JOIN "
            "unnest(%s::text[], %s::text[], %s::text[]) AS k(source, metric, labels) "
            "USING (source, metric, labels) ORDER BY s.id FOR UPDATE OF s"), cols[:3]).fetchall()
        by_key = {(r[1], r[2], r[3]): (int(r[0]), r[4], r[5]) for r in rows}
        return [by_key[k[:3]] for k in keys]

    def _affected_blocks(self, spans):
        # one round trip for all series: the overlapping blocks, plus the tail block before
        # lo when it is not full (and does not overlap, else it is already in the first part)
        sids, los, his = (list(c) for c in zip(*spans))
        rows = self._c().execute(self._sql(
            "WITH r AS (SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::bigint[])"
            " AS r(sid, lo, hi)) "
            "SELECT b.series_id, b.t0, b.ts, b.val FROM r JOIN {s}.blocks b"
            " ON b.series_id = r.sid AND b.t1 >= r.lo AND b.t0 <= r.hi "
            "UNION ALL "
            "SELECT b.series_id, b.t0, b.ts, b.val FROM r CROSS JOIN LATERAL"
            " (SELECT p.t0, p.n FROM {s}.blocks p WHERE p.series_id = r.sid AND p.t0 <= r.lo"
            "  ORDER BY p.t0 DESC LIMIT 1) AS p"
            " JOIN {s}.blocks b ON b.series_id = r.sid AND b.t0 = p.t0"
            " WHERE p.n < %s AND NOT (b.t1 >= r.lo AND b.t0 <= r.hi)"),
            (sids, los, his, BLOCK_SIZE), binary=True).fetchall()
        out: dict[int, list[tuple[int, bytes, bytes]]] = {}
        for sid, t0, ts, val in rows:
            out.setdefault(int(sid), []).append((int(t0), bytes(ts), bytes(val)))
        return out

    def _replace_blocks(self, deletes, inserts):
        if deletes:
            sids, t0s = (list(c) for c in zip(*deletes))
            self._c().execute(self._sql(
                "DELETE FROM {s}.blocks b USING unnest(%s::bigint[], %s::bigint[]) AS d(sid, t0)"
                " WHERE b.series_id = d.sid AND b.t0 = d.t0"), (sids, t0s))
        self._pending.extend(inserts)

    def _series_rows(self):
        return [tuple(r) for r in self._c().execute(self._sql(
            "SELECT id, source, metric, labels, kind, unit FROM {s}.series")).fetchall()]

    def _read_blocks(self, ids, lo, hi) -> Iterable[tuple[int, bytes, bytes]]:
        with self._c().cursor(binary=True) as cur:
            cur.execute(self._sql(
                "SELECT series_id, ts, val FROM {s}.blocks WHERE series_id = ANY(%s::bigint[]) "
                "AND t1 >= %s AND t0 < %s ORDER BY series_id, t0"), (list(ids), lo, hi))
            for sid, ts, val in cur:
                yield int(sid), ts, val

    def _series_stats(self):
        return {int(r[0]): (int(r[1]), r[2], r[3]) for r in self._c().execute(self._sql(
            "SELECT series_id, sum(n)::bigint, min(t0), max(t1) FROM {s}.blocks "
            "GROUP BY series_id")).fetchall()}
