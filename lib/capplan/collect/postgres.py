"""PostgreSQL collector (psycopg 3): pg_stat_database, client backends by state, connection
limits, database sizes, per-table and per-index statistics and the top statements of
pg_stat_statements, as contract frames.

Params section (``source: postgres``)::

    - source: postgres
      name: app                # frame source becomes "postgres:app"
      dsn_env: null            # a variable holding a conninfo/URI; default: libpq's own PGHOST,
                               # PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSERVICE, ~/.pgpass
      profile: null            # or a profile of the git-ignored credentials.yaml
      databases: null          # table/index stats from these databases (one connection each);
                               # null = the connected database only; "all" = every database
                               # that allows connections and that the role may CONNECT to
      tables_limit: 200        # at most this many tables per database (largest first) and
                               # the indexes of those tables
      statements_top: 20       # top statements by total execution time; 0 disables
      sizes_every_s: 60        # pg_database_size() walks every file of every database (tens
                               # of ms on a busy host): read sizes at most this often; 0 = always
      timeout_s: 2             # connect timeout (libpq: whole seconds, at least 2, for the
                               # whole connection set-up) and the session's statement_timeout;
                               # lock_timeout is half of it; a round trip still unanswered
                               # 1 s after it (a server trickling its reply) is cut off

The session is read-only (``default_transaction_read_only``) with ``statement_timeout`` and
``lock_timeout`` set, so a monitoring read never waits on a lock.  Everything works under a role
that has only ``pg_monitor`` (plus CONNECT on the listed databases); without it, other users'
sessions count under state "unknown" and database sizes the role may not read are NaN.

Metrics (kind, unit; labels):

* ``pg_numbackends{datname}`` gauge connections; ``pg_xact_commit_total``,
  ``pg_xact_rollback_total`` counter transactions; ``pg_blks_hit_total``, ``pg_blks_read_total``
  counter blocks; ``pg_deadlocks_total`` counter count; ``pg_temp_bytes_total`` counter bytes;
  ``pg_database_size_bytes`` gauge bytes (only at samples where sizes were read, see
  ``sizes_every_s``); ``pg_stats_reset_time_seconds`` gauge
  timestamp_seconds (NaN until the first reset) -- all ``{datname}``, the datid 0 row excluded.
* ``pg_client_backends{state}`` gauge connections: ``backend_type = 'client backend'`` only, every
  state emitted (0 included) plus "unknown" for states hidden from an unprivileged role.
* ``pg_max_connections``, ``pg_superuser_reserved_connections``, ``pg_usable_connections``
  (max - superuser_reserved - reserved_connections on PG16+) gauge connections.
* ``pg_table_live_tuples``, ``pg_table_dead_tuples`` gauge tuples (estimates);
  ``pg_table_seq_scan_total``, ``pg_table_idx_scan_total`` counter operations (idx omitted for a
  table without an index: the view has NULL and a counter may not be NaN) --
  ``{datname,schema,table}``.
* ``pg_index_scan_total{datname,schema,table,index}`` counter operations.
* ``pg_statement_calls_total{queryid}`` counter operations, ``pg_statement_exec_seconds_total``
  counter seconds (summed over users and databases; times converted from ms), and
  ``pg_stat_statements_available`` gauge boolean (0 with a note when the extension is absent).

Every number is cast ``::float8`` in SQL and ``float()`` in Python: no ``Decimal`` reaches a frame.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import time

from capplan.collect import register
from capplan.collect._common import Row, Watchdog, build_frame, check_keys, positive_float
from capplan.core.credentials import dsn_passwords, known_secrets, resolve_pg_conninfo, scrub
from capplan.errors import ConfigError, SourceUnavailable

__all__ = ["PostgresCollector", "BACKEND_STATES"]

log = logging.getLogger(__name__)

#: pg_stat_activity.state values (postgres_exporter's list) plus "unknown" (NULL to this role).
BACKEND_STATES = ("active", "idle", "idle in transaction", "idle in transaction (aborted)",
                  "fastpath function call", "disabled", "unknown")
#: A round trip is cut this long after statement_timeout would have ended it server-side.
CUT_GRACE_S = 1.0


class _ReadCut(Exception):
    """A round trip cut by the client-side watchdog (raised as SourceUnavailable)."""


def _cut_socket(conn) -> None:
    """Shut down ``conn``'s socket under libpq while another thread waits on it: that wait ends
    with an error and the connection is broken.  Nothing is freed (no PQfinish from a second
    thread), so this is safe mid-query."""
    fd = conn.pgconn.socket
    s = socket.socket(fileno=os.dup(fd))
    try:
        s.shutdown(socket.SHUT_RDWR)
    finally:
        s.close()
_KEYS = {"source", "name", "dsn_env", "profile", "credentials_file", "databases", "tables_limit",
         "statements_top", "sizes_every_s", "timeout_s", "connection"}

_Q_SETTINGS = """
select current_setting('max_connections')::float8,
       current_setting('superuser_reserved_connections')::float8,
       coalesce(current_setting('reserved_connections', true), '0')::float8,
       current_setting('server_version_num')::int,
       current_database()"""
_Q_DATABASE = """
select d.datname, d.numbackends::float8, d.xact_commit::float8, d.xact_rollback::float8,
       d.blks_hit::float8, d.blks_read::float8, d.deadlocks::float8, d.temp_bytes::float8,
       extract(epoch from d.stats_reset)::float8,
       case when not %s then 'NaN'::float8
            when has_database_privilege(d.datid, 'CONNECT')
                 or pg_has_role('pg_read_all_stats', 'USAGE')
            then pg_database_size(d.datid)::float8 end
from pg_stat_database d
where d.datid <> 0 and d.datname is not null"""
_Q_ACTIVITY = """
select s.state, count(a.pid)::float8
from unnest(%s::text[]) as s(state)
left join pg_stat_activity a
  on a.backend_type = 'client backend' and coalesce(a.state, 'unknown') = s.state
group by s.state"""
_Q_TOP_TABLES = """
select relid from pg_stat_user_tables order by n_live_tup + n_dead_tup desc, relid limit %s"""
_Q_TABLES = f"""
select schemaname::text, relname::text, n_live_tup::float8, n_dead_tup::float8,
       seq_scan::float8, idx_scan::float8
from pg_stat_user_tables where relid in ({_Q_TOP_TABLES})"""
_Q_INDEXES = f"""
select schemaname::text, relname::text, indexrelname::text, idx_scan::float8
from pg_stat_user_indexes where relid in ({_Q_TOP_TABLES})"""
_Q_STATEMENTS_COLUMNS = """
select n.nspname::text, a.attname::text
from pg_extension e
join pg_namespace n on n.oid = e.extnamespace
join pg_class c on c.relnamespace = n.oid and c.relname = 'pg_stat_statements'
join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
where e.extname = 'pg_stat_statements'"""
_Q_ALL_DATABASES = """
select datname::text from pg_database
where datallowconn and not datistemplate and has_database_privilege(oid, 'CONNECT')
order by datname"""


class PostgresCollector:
    """Samples one PostgreSQL server; see the module docstring for params and metrics.

    Connections are opened on the first :meth:`snapshot` (the main one may be injected as
    ``connection``, an autocommit psycopg connection).  A failure to connect or read on the main
    connection raises :class:`SourceUnavailable` naming host, port, database and user, never the
    password; a failing per-database connection only adds a note and skips that database.
    """

    def __init__(self, name: str = "postgres", **params):
        check_keys(params, _KEYS, where=f"sources[{name}]")
        if params.get("source", "postgres") != "postgres":
            raise ConfigError(f"source must be 'postgres', got {params['source']!r}", key="source")
        self.name = str(name)
        self.source = f"postgres:{self.name}"
        self._where = f"sources[{self.name}]"
        self._dsn_args = {k: params.get(k) for k in ("dsn_env", "profile", "credentials_file")}
        self.timeout_s = positive_float(params.get("timeout_s", 2.0), key=f"{self._where}.timeout_s")
        dbs = params.get("databases")
        if not (dbs is None or dbs == "all" or (isinstance(dbs, list)
                                                 and all(isinstance(d, str) for d in dbs))):
            raise ConfigError(f"must be null, 'all' or a list of names, got {dbs!r}",
                              key=f"{self._where}.databases")
        self.databases = dbs
        self.tables_limit = _non_negative_int(params.get("tables_limit", 200),
                                              f"{self._where}.tables_limit")
        self.statements_top = _non_negative_int(params.get("statements_top", 20),
                                                f"{self._where}.statements_top")
        every = params.get("sizes_every_s", 60)
        self.sizes_every_s = 0.0 if every in (0, None) else \
            positive_float(every, key=f"{self._where}.sizes_every_s")
        self._sizes_at: float | None = None   # monotonic time of the last size read
        self._conn = params.get("connection")
        self._own_conn = self._conn is None
        self._db_conns: dict[str, object] = {}
        self._conninfo: str | None = None
        self._secrets: list[str] = []
        self._where_safe = "postgres"
        self._stmt_sql: str | None = None   # resolved once per connection
        self._stmt_checked = False
        self.notes: list[str] = []

    def __repr__(self) -> str:
        return f"PostgresCollector(name={self.name!r}, at={self._where_safe!r})"

    # -- connections ---------------------------------------------------------------------------
    def _describe(self, conninfo: str, dbname: str | None = None) -> str:
        from psycopg.conninfo import conninfo_to_dict

        import psycopg
        try:
            d = conninfo_to_dict(conninfo) if conninfo else {}
        except psycopg.ProgrammingError:
            d = {}
        env = os.environ
        if d.get("service") or env.get("PGSERVICE"):
            return f"service={d.get('service') or env.get('PGSERVICE')}"
        host = d.get("host") or env.get("PGHOST") or "localhost"
        port = d.get("port") or env.get("PGPORT") or "5432"
        user = d.get("user") or env.get("PGUSER") or "(os user)"
        db = dbname or d.get("dbname") or env.get("PGDATABASE") or user
        return f"host={host} port={port} dbname={db} user={user}"

    def _open(self, dbname: str | None = None):
        import psycopg

        if self._conninfo is None:
            self._conninfo = resolve_pg_conninfo(**self._dsn_args)
            # every form of every password in play, also from a DSN libpq refuses to parse (its
            # error quotes the bad token, often the password itself)
            self._secrets = sorted(known_secrets(extra=dsn_passwords(self._conninfo)))
            self._where_safe = self._describe(self._conninfo)
        where = self._describe(self._conninfo, dbname)
        extra = {"dbname": dbname} if dbname else {}
        ms = int(self.timeout_s * 1000)
        try:
            conn = psycopg.connect(self._conninfo, autocommit=True,
                                   connect_timeout=max(2, math.ceil(self.timeout_s)),
                                   application_name=f"capplan-{self.name}", **extra)
        except psycopg.Error as exc:
            raise self._fail(exc, f"connecting to {where}") from None
        try:
            with self._bounded(conn, f"setting up the session at {where}"):
                conn.execute(f"set statement_timeout = {ms}; set lock_timeout = "
                             f"{max(1, ms // 2)}; set default_transaction_read_only = on")
        except psycopg.Error as exc:
            conn.close()
            raise self._fail(exc, f"connecting to {where}") from None
        except SourceUnavailable:
            conn.close()
            raise
        return conn

    @contextlib.contextmanager
    def _bounded(self, conn, doing: str):
        """One round trip on ``conn``, cut :data:`CUT_GRACE_S` after ``timeout_s``: libpq waits
        on its socket without a deadline, so a server trickling its reply would hold it."""
        dog = Watchdog(self.timeout_s + CUT_GRACE_S, lambda: _cut_socket(conn))
        try:
            with dog:
                yield
        except Exception:  # noqa: BLE001 - a cut read fails in libpq's own words
            if dog.fired:
                raise SourceUnavailable(
                    f"{doing}: no complete answer within timeout_s={self.timeout_s:g}s "
                    "(+1 s; slow or trickling server)", source=self.source,
                    hint="check the server's load and network, or raise timeout_s") from None
            raise

    def _fail(self, exc: BaseException, doing: str) -> SourceUnavailable:
        import psycopg

        text = scrub(f"{doing} failed: {type(exc).__name__}: {str(exc).strip()}", self._secrets)
        low = str(exc).lower()
        if "password" in low or "authentication" in low:
            hint = ("check the password (PGPASSWORD, ~/.pgpass, or the variable named by "
                    "dsn_env) and pg_hba.conf")
        elif "timeout" in low or "timed out" in low or isinstance(exc, psycopg.errors.QueryCanceled):
            hint = (f"no answer within timeout_s={self.timeout_s:g}s; check host, port and "
                    "firewall, or raise timeout_s")
        elif isinstance(exc, psycopg.errors.InsufficientPrivilege):
            hint = "GRANT pg_monitor TO <role>; and GRANT CONNECT ON DATABASE <db> TO <role>"
        else:
            hint = "check that PostgreSQL is running and reachable with these settings"
        return SourceUnavailable(text, source=self.source, hint=hint)

    def _main(self):
        if self._conn is None or self._conn.closed:
            self._conn = self._open()
            self._own_conn = True
            self._stmt_checked = False
        return self._conn

    # -- reading -------------------------------------------------------------------------------
    def snapshot(self):
        """Read the server once; returns a contract frame.  Raises :class:`SourceUnavailable`."""
        import psycopg

        conn = self._main()
        rows: list[Row] = []
        t0 = time.time()
        try:
            now = time.monotonic()
            sizes = self._sizes_at is None or now - self._sizes_at >= self.sizes_every_s
            with self._bounded(conn, f"reading statistics from {self._where_safe}"), \
                    conn.pipeline(), conn.cursor() as c1, conn.cursor() as c2, \
                    conn.cursor() as c3:   # one round trip for the three cluster-wide reads
                c1.execute(_Q_SETTINGS)
                c2.execute(_Q_DATABASE, (sizes,))
                c3.execute(_Q_ACTIVITY, (list(BACKEND_STATES),))
                maxc, reserved_su, reserved, _version, current_db = c1.fetchone()
                dbrows = c2.fetchall()
                activity = c3.fetchall()
            if sizes:
                self._sizes_at = now
            with self._bounded(conn, f"reading statements from {self._where_safe}"), \
                    conn.cursor() as cur:
                stmts = self._statements(cur)
            t1 = time.time()
            self._database_rows(dbrows, rows, sizes)
            rows.append(("pg_max_connections", None, maxc, "gauge", "connections"))
            rows.append(("pg_superuser_reserved_connections", None, reserved_su, "gauge",
                         "connections"))
            rows.append(("pg_usable_connections", None, maxc - reserved_su - reserved, "gauge",
                         "connections"))
            for state, n in activity:
                rows.append(("pg_client_backends", {"state": state}, n, "gauge", "connections"))
            if self.tables_limit:
                self._table_rows(conn, current_db, rows)
            if stmts is not None:
                for queryid, calls, secs in stmts:
                    rows.append(("pg_statement_calls_total", {"queryid": queryid}, calls,
                                 "counter", "operations"))
                    rows.append(("pg_statement_exec_seconds_total", {"queryid": queryid}, secs,
                                 "counter", "seconds"))
            if self.statements_top:
                rows.append(("pg_stat_statements_available", None, 0.0 if stmts is None else 1.0,
                             "gauge", "boolean"))
        except psycopg.Error as exc:
            if conn.closed or conn.broken:
                self._drop_main()
            raise self._fail(exc, f"reading statistics from {self._where_safe}") from None
        except SourceUnavailable:
            self._drop_main()   # cut by the watchdog: the connection is broken
            raise
        return build_frame((t0 + t1) / 2, self.source, rows)

    @staticmethod
    def _database_rows(dbrows, rows: list[Row], sizes: bool) -> None:
        for (datname, numbackends, commit, rollback, hit, read, deadlocks, temp_bytes,
             reset_epoch, size) in dbrows:
            lab = {"datname": datname}
            rows += [
                ("pg_numbackends", lab, numbackends, "gauge", "connections"),
                ("pg_xact_commit_total", lab, commit, "counter", "transactions"),
                ("pg_xact_rollback_total", lab, rollback, "counter", "transactions"),
                ("pg_blks_hit_total", lab, hit, "counter", "blocks"),
                ("pg_blks_read_total", lab, read, "counter", "blocks"),
                ("pg_deadlocks_total", lab, deadlocks, "counter", "count"),
                ("pg_temp_bytes_total", lab, temp_bytes, "counter", "bytes"),
                ("pg_stats_reset_time_seconds", lab, reset_epoch, "gauge", "timestamp_seconds"),
            ]
            if sizes:
                rows.append(("pg_database_size_bytes", lab, size, "gauge", "bytes"))

    def _table_dbs(self, conn, current_db: str) -> list[str]:
        if self.databases is None:
            return [current_db]
        if self.databases == "all":
            return [r[0] for r in conn.execute(_Q_ALL_DATABASES).fetchall()]
        return list(self.databases)

    def _table_rows(self, conn, current_db: str, rows: list[Row]) -> None:
        import psycopg

        for db in self._table_dbs(conn, current_db):
            try:
                dconn = conn if db == current_db else self._db_conn(db)
                with self._bounded(dconn, f"reading table statistics of '{db}'"), \
                        dconn.pipeline(), dconn.cursor() as c1, dconn.cursor() as c2:
                    c1.execute(_Q_TABLES, (self.tables_limit,))
                    c2.execute(_Q_INDEXES, (self.tables_limit,))
                    tables, indexes = c1.fetchall(), c2.fetchall()
            except (psycopg.Error, SourceUnavailable) as exc:
                if db == current_db:   # the main connection: the snapshot fails
                    raise
                self._drop_db(db)
                self._note(f"table statistics of database '{db}' skipped: "
                           f"{scrub(exc, self._secrets).splitlines()[0]}")
                continue
            for schema, table, live, dead, seq, idx in tables:
                lab = {"datname": db, "schema": schema, "table": table}
                rows += [
                    ("pg_table_live_tuples", lab, live, "gauge", "tuples"),
                    ("pg_table_dead_tuples", lab, dead, "gauge", "tuples"),
                    ("pg_table_seq_scan_total", lab, seq, "counter", "operations"),
                ]
                if idx is not None:   # NULL for a table without an index: no counter to emit
                    rows.append(("pg_table_idx_scan_total", lab, idx, "counter", "operations"))
            for schema, table, index, scans in indexes:
                rows.append(("pg_index_scan_total",
                             {"datname": db, "schema": schema, "table": table, "index": index},
                             scans, "counter", "operations"))

    def _db_conn(self, db: str):
        conn = self._db_conns.get(db)
        if conn is None or conn.closed:
            conn = self._db_conns[db] = self._open(db)
        return conn

    def _statements(self, cur):
        """Top statements as [(queryid, calls, seconds)], or None when unavailable (noted)."""
        import psycopg

        if not self.statements_top:
            return None
        if not self._stmt_checked:
            self._stmt_checked = True
            cols = cur.execute(_Q_STATEMENTS_COLUMNS).fetchall()
            names = {c for _, c in cols}
            time_col = "total_exec_time" if "total_exec_time" in names else \
                "total_time" if "total_time" in names else None
            if not cols or time_col is None:
                self._stmt_sql = None
                self._note("pg_stat_statements is not installed in this database: no statement "
                           "statistics (add shared_preload_libraries = 'pg_stat_statements', "
                           "restart, then CREATE EXTENSION pg_stat_statements)")
            else:
                schema = cols[0][0].replace('"', '""')
                # PG13+ total_exec_time (also PG17+); before 13 total_time; both milliseconds
                self._stmt_sql = (
                    f'select queryid::text, sum(calls)::float8, sum({time_col})::float8 / 1000 '
                    f'from "{schema}".pg_stat_statements where queryid is not null '
                    f'group by queryid order by 3 desc limit {int(self.statements_top)}')
        if self._stmt_sql is None:
            return None
        try:
            return cur.execute(self._stmt_sql).fetchall()
        except psycopg.errors.ObjectNotInPrerequisiteState as exc:
            self._stmt_sql = None
            self._note(f"pg_stat_statements exists but is not loaded ({str(exc).strip()}): add "
                       "shared_preload_libraries = 'pg_stat_statements' and restart PostgreSQL")
            return None

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
            log.warning("%s: %s", self.source, scrub(text, self._secrets))

    def _drop_main(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and self._own_conn:
            conn.close()

    def _drop_db(self, db: str) -> None:
        conn = self._db_conns.pop(db, None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        """Close the connections this collector opened (an injected one is left open)."""
        for db in list(self._db_conns):
            self._drop_db(db)
        self._drop_main()


def _non_negative_int(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"must be a whole number >= 0, got {value!r}", key=key)
    return value


register("postgres", PostgresCollector)
