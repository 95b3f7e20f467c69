"""The team metrics store: one PostgreSQL schema that SQL and Grafana read directly.

* One row per sample in ``<schema>.sample_rows (series_id, ts timestamptz, value float8)``,
  declaratively partitioned by month (``sample_rows_pYYYYMM``, created on demand), primary key
  ``(series_id, ts)`` and a BRIN index on ``ts``; series in ``series_key``; an hourly rollup in
  ``rollup_1h``.  Stable views for readers: ``samples (ts, source, metric, labels jsonb, value,
  kind, unit)``, ``series`` and ``samples_1h`` (see ``docs/store.md``).  Timestamps are kept to
  the microsecond (PostgreSQL's resolution); finer parts are floored.
* A small append (a scrape: at most ``_FAST`` samples) of series this connection has seen is
  one round trip: a pipeline of two prepared statements with binary array parameters (lock the
  series; then, if every sample is after its series' stored tail, insert the samples and merge
  their rollup) ending in one Sync, so it is one implicit transaction.  Otherwise (a new
  series, a sample at or before a tail) it wrote nothing and the general path below runs.
* Larger samples go in with one binary ``COPY`` per append, encoded by numpy; an append that
  is not strictly after a series' stored tail goes through a temporary table and ``INSERT ...
  ON CONFLICT DO UPDATE`` (a repeated sample replaces).
* Concurrent writers lock the series they touch (``SELECT ... FOR UPDATE``, in id order), so
  two appends to the same series serialise and neither loses samples.  Each append is one
  transaction: a writer killed mid-``COPY`` or a backend terminated mid-transaction leaves
  nothing of that append.
* Versioned migrations, recorded in ``<schema>.schema_migrations``; applied on open under an
  advisory lock so that two processes opening a new store at once do not race.  Schema 2
  (samples in ``bytea`` blocks) is converted to rows by migration 3.

The DSN is never put in a message or a repr: only host, port, database and schema are shown.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Callable, Iterator

import numpy as np
import psycopg
from psycopg import pq, sql
from psycopg.adapt import Dumper
from psycopg.conninfo import conninfo_to_dict

from capplan.errors import ConfigError, StoreError
from capplan.store import _pgcopy
from capplan.store._common import Batch, Store
from capplan.store._rollup import READ_DTYPE, rollup

__all__ = ["PostgresStore", "SCHEMA_VERSION"]

_SAMPLE_TYPES = ["int8", "timestamptz", "float8"]  # series_id, ts, value
#: appends of at most this many samples try the one-round-trip path (see the module docstring)
_FAST = 2000
#: appends of at most this many samples that take the general path send INSERTs in pipeline
#: mode; larger ones use binary COPY (which pipeline mode cannot carry)
_SMALL = 2000
_ROLLUP_COLS = "series_id, bucket, cnt, nfin, sum, first_ts, last_ts, last_value"
#: the rollup columns as binary arrays (see _rollup_params)
_ROLLUP_ARRAYS = "unnest(%b, %b, %b, %b, %b, %b, %b, %b)"
#: rollup rows of samples newer than everything stored merge into the tail hour
_ROLLUP_MERGE = (
    " ON CONFLICT (series_id, bucket) DO UPDATE SET cnt = r.cnt + excluded.cnt,"
    " nfin = r.nfin + excluded.nfin, sum = r.sum + excluded.sum,"
    " first_ts = least(r.first_ts, excluded.first_ts),"
    " last_ts = greatest(r.last_ts, excluded.last_ts),"
    " last_value = CASE WHEN excluded.last_ts >= r.last_ts THEN excluded.last_value"
    " ELSE r.last_value END")
#: the one-round-trip append: lock the series (in id order, as the general path does), then
#: in a second statement (whose snapshot sees what earlier holders of the locks committed)
#: write samples and rollup only if every series' first new sample is after its stored tail
_FAST_LOCK = "SELECT id FROM {s}.series_key WHERE id = ANY(%b) ORDER BY id FOR UPDATE"
_FAST_WRITE = (
    "WITH b (id, first_ts) AS (SELECT * FROM unnest(%b, %b)),"
    " ok AS (SELECT NOT EXISTS (SELECT FROM b CROSS JOIN LATERAL (SELECT r.last_ts"
    " FROM {s}.rollup_1h r WHERE r.series_id = b.id ORDER BY r.bucket DESC LIMIT 1) t"
    " WHERE t.last_ts >= b.first_ts) AS ok),"
    " samples AS (INSERT INTO {s}.sample_rows (series_id, ts, value)"
    " SELECT * FROM unnest(%b, %b, %b) WHERE (SELECT ok FROM ok)),"
    " roll AS (INSERT INTO {s}.rollup_1h AS r (" + _ROLLUP_COLS + ") SELECT * FROM "
    + _ROLLUP_ARRAYS + " WHERE (SELECT ok FROM ok)" + _ROLLUP_MERGE + ")"
    " SELECT ok FROM ok")
_UTC0 = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _blocks_to_rows(store: "PostgresStore", conn: psycopg.Connection) -> None:
    """Schema 3: decode the ``bytea`` blocks of a schema-2 store (little-endian int64 ns and
    float64) into sample rows and their rollup, one series at a time."""
    sids = [r[0] for r in conn.execute(store._sql(
        "SELECT DISTINCT series_id FROM {s}.blocks ORDER BY series_id")).fetchall()]
    for s in sids:
        blocks = conn.execute(store._sql("SELECT ts, val FROM {s}.blocks WHERE series_id = %s "
                                         "ORDER BY t0"), (s,), binary=True).fetchall()
        ts = np.concatenate([np.frombuffer(b[0], dtype="<i8") for b in blocks]).astype(np.int64)
        val = np.concatenate([np.frombuffer(b[1], dtype="<f8") for b in blocks]).astype(np.float64)
        ts = (ts // 1000) * 1000
        keep = np.ones(len(ts), dtype=bool)  # two ns samples in one µs: the later one wins
        keep[:-1] = ts[1:] != ts[:-1]
        ts, val = ts[keep], val[keep]
        sid = np.full(len(ts), s, dtype=np.int64)
        store._ensure_partitions(conn, int(ts[0]), int(ts[-1]))
        store._copy_in(conn, "sample_rows", sid, ts, val)
        store._insert_rollup(conn, rollup(sid, ts, val), merge=False)


#: version -> (description, steps with ``{s}`` for the schema identifier); a step is an SQL
#: statement or a function ``(store, connection)`` for data conversions.
MIGRATIONS: dict[int, tuple[str, list[str | Callable]]] = {
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
    3: ("one row per sample (monthly partitions, BRIN on ts), hourly rollup, views; blocks "
        "converted", [
        "ALTER TABLE {s}.series RENAME TO series_key",
        # parsed once per series, not once per sample row that a view returns
        "ALTER TABLE {s}.series_key ADD COLUMN labels_json jsonb"
        " GENERATED ALWAYS AS (labels::jsonb) STORED",
        "CREATE TABLE {s}.sample_rows (series_id bigint NOT NULL, ts timestamptz NOT NULL,"
        " value float8 NOT NULL, PRIMARY KEY (series_id, ts)) PARTITION BY RANGE (ts)",
        "CREATE INDEX sample_rows_ts_brin ON {s}.sample_rows USING brin (ts)",
        "CREATE TABLE {s}.rollup_1h (series_id bigint NOT NULL REFERENCES {s}.series_key (id),"
        " bucket timestamptz NOT NULL, cnt bigint NOT NULL, nfin bigint NOT NULL,"
        " sum float8 NOT NULL, first_ts timestamptz NOT NULL, last_ts timestamptz NOT NULL,"
        " last_value float8 NOT NULL, PRIMARY KEY (series_id, bucket))",
        _blocks_to_rows,
        "DROP TABLE {s}.blocks",
        "CREATE VIEW {s}.samples AS SELECT d.ts, k.source, k.metric, k.labels_json AS labels,"
        " d.value, k.kind, k.unit FROM {s}.sample_rows d JOIN {s}.series_key k"
        " ON k.id = d.series_id",
        "CREATE VIEW {s}.series AS SELECT k.id AS series_id, k.source, k.metric,"
        " k.labels_json AS labels, k.kind, k.unit, coalesce(r.n, 0) AS n, r.first_ts,"
        " r.last_ts FROM {s}.series_key k LEFT JOIN (SELECT series_id, sum(cnt)::bigint AS n,"
        " min(first_ts) AS first_ts, max(last_ts) AS last_ts FROM {s}.rollup_1h"
        " GROUP BY series_id) r ON r.series_id = k.id",
        "CREATE VIEW {s}.samples_1h AS SELECT r.bucket AS ts, k.source, k.metric,"
        " k.labels_json AS labels, CASE WHEN k.kind = 'counter' THEN r.last_value"
        " WHEN r.nfin > 0 THEN r.sum / r.nfin ELSE 'NaN'::float8 END AS value, k.kind, k.unit,"
        " r.cnt AS n FROM {s}.rollup_1h r JOIN {s}.series_key k ON k.id = r.series_id",
    ]),
}
SCHEMA_VERSION = max(MIGRATIONS)

_SCHEMA_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class _Array:
    """A numpy column sent as one binary array parameter (no Python object per element)."""
    __slots__ = ("data",)
    kind = ""

    def __init__(self, values: np.ndarray):
        self.data = _pgcopy.encode_array(self.kind, values)


class _Int8s(_Array):
    kind = "int8"


class _Float8s(_Array):
    kind = "float8"


class _Times(_Array):
    """int64 ns since 1970 as ``timestamptz[]`` (floored to the µs)."""
    kind = "timestamptz"

    def __init__(self, ns: np.ndarray):
        super().__init__(_pgcopy.ns_to_pg_us(np.asarray(ns, dtype=np.int64)))


def _register_arrays(conn: psycopg.Connection) -> None:
    for cls in (_Int8s, _Float8s, _Times):
        dumper = type(f"{cls.__name__}Dumper", (Dumper,), {
            "format": pq.Format.BINARY, "oid": psycopg.postgres.types[cls.kind].array_oid,
            "dump": lambda self, obj: obj.data})
        conn.adapters.register_dumper(cls, dumper)


def _rollup_params(rows: np.ndarray) -> tuple[_Array, ...]:
    return (_Int8s(rows["sid"]), _Times(rows["bucket"]), _Int8s(rows["cnt"]),
            _Int8s(rows["nfin"]), _Float8s(rows["sum"]), _Times(rows["first"]),
            _Times(rows["last"]), _Float8s(rows["lastval"]))


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def _month(ns: int) -> tuple[int, int]:
    d = _UTC0 + dt.timedelta(microseconds=ns // 1000)
    return d.year, d.month


def _months(lo_ns: int, hi_ns: int) -> list[tuple[int, int]]:
    (y, m), last = _month(lo_ns), _month(hi_ns)
    out = []
    while (y, m) <= last:
        out.append((y, m))
        y, m = (y + 1, 1) if m == 12 else (y, m + 1)
    return out


def _pg_time(ns: int) -> dt.datetime:
    """A ns bound as a datetime, rounded up to the µs (stored values are whole µs)."""
    return _UTC0 + dt.timedelta(microseconds=-((-ns) // 1000))


class PostgresStore(Store):
    """A store in a PostgreSQL schema; open it with ``open_store("env:VAR", schema=...)``.

    Raises :class:`~capplan.errors.ConfigError` for an unusable schema name or DSN and
    :class:`~capplan.errors.StoreError` when the server cannot be reached, the schema is not a
    capplan store, comes from a newer capplan, or a read or write fails.
    """

    _resolution_ns = 1000

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
        self._conn: psycopg.Connection | None = None
        self._version = 0
        self._partitions: set[tuple[int, int]] = set()
        self._known: dict[tuple[str, str, str], tuple[int, str, str]] = {}
        self._tail_cache: dict[int, int] = {}
        self._pending_parts: list[tuple[int, int]] = []
        self._small = False
        try:
            self._conn = psycopg.connect(dsn, autocommit=True, connect_timeout=connect_timeout_s,
                                         application_name="capplan-store")
        except psycopg.Error as exc:
            raise StoreError(f"{self.target}: cannot connect: {_scrub(str(exc).strip(), self._secret)}",
                             hint=f"check that the server is up and that {label} holds a working "
                                  "DSN (host, port, dbname, user, password)") from exc
        _register_arrays(self._conn)
        # rendered once: psycopg keys its prepared statements on the query text
        self._fast_sql = tuple(self._sql(q).as_bytes(self._conn) for q in (_FAST_LOCK, _FAST_WRITE))
        try:
            self._migrate()
            self._load_partitions()
        except BaseException:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"PostgresStore({self.target!r})"

    def _fail(self, what: str, exc: psycopg.Error) -> StoreError:
        text = _scrub(str(exc).strip(), self._secret)
        if isinstance(exc, psycopg.errors.InsufficientPrivilege):
            hint = (f"grant the store's role CREATE on the database (new store) or USAGE and "
                    f"SELECT/INSERT/UPDATE/DELETE on schema {self.schema}")
        elif isinstance(exc, psycopg.OperationalError):
            hint = ("the connection failed (nothing of the unfinished append was kept): check "
                    "the server and reopen the store")
        else:
            hint = "check the server log; the transaction was rolled back, nothing was written"
        return StoreError(f"{self.target}: {what}: {text}", hint=hint)

    def _sql(self, text: str, **parts) -> sql.Composed:
        return sql.SQL(text).format(s=self._s, **parts)

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
                    desc, steps = MIGRATIONS[v]
                    for step in steps:
                        step(self, conn) if callable(step) else conn.execute(self._sql(step))
                    conn.execute(self._sql("INSERT INTO {s}.schema_migrations (version, description)"
                                           " VALUES (%s, %s)"), (v, desc))
                self._version = max(version, SCHEMA_VERSION)
        except psycopg.Error as exc:
            self._partitions.clear()
            raise self._fail("cannot create or migrate the store", exc) from exc

    # ---- partitions ---------------------------------------------------------------------
    def _load_partitions(self) -> None:
        rows = self._conn.execute(
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
            "WHERE i.inhparent = to_regclass(%s)", (f"{self.schema}.sample_rows",)).fetchall()
        for (name,) in rows:
            m = re.fullmatch(r"sample_rows_p(\d{4})(\d{2})", name)
            if m:
                self._partitions.add((int(m[1]), int(m[2])))

    def _ensure_partitions(self, conn: psycopg.Connection, lo_ns: int, hi_ns: int) -> None:
        """Create the monthly partitions holding ``[lo_ns, hi_ns]`` that are missing (in the
        caller's transaction; serialised between processes by an advisory lock)."""
        missing = [ym for ym in _months(lo_ns, hi_ns) if ym not in self._partitions]
        if not missing:
            return
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))",
                     (f"capplan.store.{self.schema}.partitions",))
        for y, m in missing:
            nxt = (y + 1, 1) if m == 12 else (y, m + 1)
            conn.execute(self._sql(
                "CREATE TABLE IF NOT EXISTS {s}.{p} PARTITION OF {s}.sample_rows"
                " FOR VALUES FROM ({a}) TO ({b})", p=sql.Identifier(f"sample_rows_p{y:04d}{m:02d}"),
                a=sql.Literal(f"{y:04d}-{m:02d}-01 00:00:00+00"),
                b=sql.Literal(f"{nxt[0]:04d}-{nxt[1]:02d}-01 00:00:00+00")))
        self._pending_parts = missing

    def _prepare_write(self, lo: int, hi: int) -> None:
        # partitions are created in their own short transaction, so that an append never holds
        # the parent table's lock while it copies (an empty partition left behind is harmless)
        if all(ym in self._partitions for ym in _months(lo, hi)):
            return
        conn = self._c()
        try:
            with conn.transaction():
                self._pending_parts = []
                self._ensure_partitions(conn, lo, hi)
            self._partitions.update(self._pending_parts)
        except psycopg.Error as exc:
            raise self._fail("cannot create the monthly partitions of sample_rows", exc) from exc

    # ---- binary COPY helpers ------------------------------------------------------------
    def _copy_in(self, conn, table: str, sid, ts, val, *, temp: bool = False) -> None:
        data = _pgcopy.encode(_SAMPLE_TYPES, [sid, _pgcopy.ns_to_pg_us(ts), val])
        target = sql.Identifier(table) if temp else self._sql("{s}.{t}", t=sql.Identifier(table))
        with conn.cursor() as cur, cur.copy(sql.SQL(
                "COPY {} (series_id, ts, value) FROM STDIN (FORMAT BINARY)").format(target)) as copy:
            copy.write(data)

    def _copy_out(self, query: sql.Composable, types: list[str]) -> list[np.ndarray]:
        parts = []
        with self._c().cursor() as cur, cur.copy(sql.SQL(
                "COPY ({}) TO STDOUT (FORMAT BINARY)").format(query)) as copy:
            for chunk in copy:
                parts.append(chunk)
        return _pgcopy.decode(types, b"".join(parts))

    def _insert_rollup(self, conn, rows: np.ndarray, *, merge: bool) -> None:
        if not len(rows):
            return
        conn.execute(self._sql(
            "INSERT INTO {s}.rollup_1h AS r (" + _ROLLUP_COLS + ") SELECT * FROM "
            + _ROLLUP_ARRAYS + (_ROLLUP_MERGE if merge else "")), _rollup_params(rows))

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

    def append(self, frame) -> int:
        """See :meth:`Store.append`; a scrape-sized append is one round trip (module docstring)."""
        batch = self._batch(frame)
        if batch is None:
            return 0
        if len(batch.ts) <= _FAST and self._fast_append(batch):
            return int(len(batch.ts))
        self._small = len(batch.ts) <= _SMALL
        try:
            return self._append_batch(batch)
        finally:
            self._small = False

    def _fast_append(self, batch: Batch) -> bool:
        """Write ``batch`` in one round trip if all its series are known to this connection with
        the same kind/unit and all its samples come after their series' stored tails.  Returns
        False, having written nothing, when that does not hold."""
        keys, bounds, ts, val = batch
        known = [self._known.get(k[:3]) for k in keys]
        if any(s is None or (s[1], s[2]) != (k[3], k[4]) for s, k in zip(known, keys)):
            return False  # a new series or a kind/unit clash: the general path creates or refuses
        conn = self._c()
        if conn.info.transaction_status != pq.TransactionStatus.IDLE:
            return False  # inside a transaction the Sync would not commit: the general path
        self._prepare_write(int(ts.min()), int(ts.max()))
        ids = np.array([s[0] for s in known], dtype=np.int64)
        sid = np.repeat(ids, np.diff(bounds))
        try:
            # no Sync before the pipeline ends: both statements form one implicit transaction,
            # committed at the Sync, or rolled back whole if either fails
            with conn.pipeline():
                conn.execute(self._fast_sql[0], (_Int8s(ids),), prepare=True)
                cur = conn.execute(self._fast_sql[1], (
                    _Int8s(ids), _Times(ts[bounds[:-1]]), _Int8s(sid), _Times(ts), _Float8s(val),
                    *_rollup_params(rollup(sid, ts, val))), prepare=True)
            return bool(cur.fetchone()[0])
        except psycopg.Error as exc:
            self._known.clear()
            raise self._fail("cannot write to the store", exc) from exc

    @contextlib.contextmanager
    def _write_txn(self) -> Iterator[None]:
        conn = self._c()
        try:
            with conn.pipeline() if self._small else contextlib.nullcontext(), conn.transaction():
                yield
        except psycopg.Error as exc:
            self._known.clear()  # a rolled-back txn may have "created" series that do not exist
            raise self._fail("cannot write to the store", exc) from exc

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
        todo = [k for k in keys if k[:3] not in self._known]
        if todo:
            cols = [list(c) for c in zip(*todo)]
            conn.execute(self._sql(
                "INSERT INTO {s}.series_key (source, metric, labels, kind, unit) SELECT * FROM "
                "unnest(%s::text[], %s::text[], %s::text[], %s::text[], %s::text[]) "
                "ON CONFLICT (source, metric, labels) DO NOTHING"), cols)
            rows = conn.execute(self._sql(
                "SELECT s.id, s.source, s.metric, s.labels, s.kind, s.unit FROM {s}.series_key s "
                "JOIN unnest(%s::text[], %s::text[], %s::text[]) AS k(source, metric, labels) "
                "USING (source, metric, labels)"), cols[:3]).fetchall()
            for r in rows:
                self._known[(r[1], r[2], r[3])] = (int(r[0]), r[4], r[5])
        out = [self._known[k[:3]] for k in keys]
        # lock the series (in id order: no deadlock between writers), then read their tails in
        # a second statement: its snapshot is taken after the locks are held, so it sees what
        # a writer that held them before us committed (a join in the locking statement would not)
        ids = [o[0] for o in out]
        conn.execute(self._sql("SELECT id FROM {s}.series_key WHERE id = ANY(%s::bigint[])"
                               " ORDER BY id FOR UPDATE"), (ids,))
        rows = conn.execute(self._sql(
            "SELECT k.id, (extract(epoch FROM t.last_ts) * 1000000)::bigint"
            " FROM unnest(%s::bigint[]) AS k(id) CROSS JOIN LATERAL (SELECT last_ts FROM"
            " {s}.rollup_1h r WHERE r.series_id = k.id ORDER BY bucket DESC LIMIT 1) t"), (ids,)
        ).fetchall()
        self._tail_cache = {int(r[0]): int(r[1]) * 1000 for r in rows}
        return out

    def _tails(self, ids):
        return {i: self._tail_cache[i] for i in ids if i in self._tail_cache}

    def _write_samples(self, sid, ts, val, *, replace):
        conn = self._c()
        conflict = (" ON CONFLICT (series_id, ts) DO UPDATE SET value = excluded.value"
                    if replace else "")
        if self._small:
            conn.execute(self._sql(
                "INSERT INTO {s}.sample_rows (series_id, ts, value) SELECT * FROM"
                " unnest(%b, %b, %b)" + conflict), (_Int8s(sid), _Times(ts), _Float8s(val)))
        elif not replace:
            self._copy_in(conn, "sample_rows", sid, ts, val)
        else:
            conn.execute("CREATE TEMP TABLE capplan_incoming (series_id bigint, ts timestamptz, "
                         "value float8) ON COMMIT DROP")
            self._copy_in(conn, "capplan_incoming", sid, ts, val, temp=True)
            conn.execute(self._sql(
                "INSERT INTO {s}.sample_rows (series_id, ts, value) SELECT series_id, ts, value "
                "FROM capplan_incoming" + conflict))

    def _where(self, col: str, ids, lo, hi) -> sql.Composable:
        conds = [sql.SQL("series_id = ANY({}::bigint[])").format(sql.Literal(list(ids)))]
        if lo is not None:
            conds.append(sql.SQL("{} >= {}").format(sql.Identifier(col), sql.Literal(_pg_time(lo))))
        if hi is not None:
            conds.append(sql.SQL("{} < {}").format(sql.Identifier(col), sql.Literal(_pg_time(hi))))
        return sql.SQL(" AND ").join(conds)

    def _fetch_arrays(self, query: sql.Composable, types: list[str]) -> Iterator[tuple]:
        """Rows of ``series_id, array_send(array_agg(col)), ...``, decoded: a few rows per
        series, so millions of samples cross as a few large bytea values instead of one
        message each."""
        with self._c().cursor(binary=True) as cur:
            cur.execute(query)
            for row in cur:
                yield int(row[0]), [_pgcopy.decode_array(b, t) for b, t in zip(row[1:], types)]

    def _read_samples(self, ids, lo, hi):
        for sid, (us, val) in self._fetch_arrays(self._sql(
                "SELECT series_id, array_send(array_agg(ts)), array_send(array_agg(value))"
                " FROM {s}.sample_rows WHERE {w} GROUP BY series_id, tableoid",
                w=self._where("ts", ids, lo, hi)), ["timestamptz", "float8"]):
            yield np.full(len(us), sid, dtype=np.int64), _pgcopy.pg_us_to_ns(us), val

    def _rollup_merge(self, rows):
        self._insert_rollup(self._c(), rows, merge=True)

    def _rollup_replace(self, spans, rows):
        if spans:
            sids, los, his = (list(c) for c in zip(*spans))
            self._c().execute(self._sql(
                "DELETE FROM {s}.rollup_1h r USING unnest(%s::bigint[], %s::timestamptz[],"
                " %s::timestamptz[]) AS d(sid, lo, hi) WHERE r.series_id = d.sid"
                " AND r.bucket BETWEEN d.lo AND d.hi"),
                (sids, [_pg_time(v) for v in los], [_pg_time(v) for v in his]))
        self._insert_rollup(self._c(), rows, merge=False)

    def _read_rollup(self, ids, lo, hi):
        cols = ("bucket", "nfin", "sum", "last_value")
        types = ["timestamptz", "int8", "float8", "float8"]
        aggs = ", ".join(f"array_send(array_agg({c} ORDER BY bucket))" for c in cols)
        parts = []
        for sid, (bucket, nfin, total, last) in self._fetch_arrays(self._sql(
                "SELECT series_id, " + aggs + " FROM {s}.rollup_1h WHERE {w} GROUP BY series_id",
                w=self._where("bucket", ids, lo, hi)), types):
            out = np.empty(len(bucket), dtype=READ_DTYPE)
            out["sid"], out["bucket"], out["nfin"] = sid, _pgcopy.pg_us_to_ns(bucket), nfin
            out["sum"], out["lastval"] = total, last
            parts.append(out)
        if not parts:
            return np.empty(0, dtype=READ_DTYPE)
        parts.sort(key=lambda p: int(p["sid"][0]))
        return np.concatenate(parts)

    def _series_rows(self):
        return [tuple(r) for r in self._c().execute(self._sql(
            "SELECT id, source, metric, labels, kind, unit FROM {s}.series_key")).fetchall()]

    def _series_stats(self):
        return {int(r[0]): (int(r[1]), int(r[2]) * 1000, int(r[3]) * 1000)
                for r in self._c().execute(self._sql(
                    "SELECT series_id, sum(cnt)::bigint,"
                    " (extract(epoch FROM min(first_ts)) * 1000000)::bigint,"
                    " (extract(epoch FROM max(last_ts)) * 1000000)::bigint"
                    " FROM {s}.rollup_1h GROUP BY series_id")).fetchall()}
