"""The default metrics store: one SQLite file (WAL), safe for several writer processes.

* One row per sample (``sample_rows``, a ``WITHOUT ROWID`` table clustered by
  ``(series_id, ts)``), an hourly rollup (``rollup_1h``) and two views that any SQLite client
  can query: ``samples (ts, source, metric, labels, value, kind, unit, ts_ns)`` and ``series``
  (see ``docs/store.md``).  Timestamps are int64 ns since the Unix epoch (UTC); the view also
  shows them as ISO 8601 text.  SQLite stores a NaN value as NULL; the store reads it back as
  NaN.
* Why SQLite rows and not DuckDB (measured, see ``docs/store.md``): both ingest near a million
  samples/s and append a scrape in well under 5 ms, DuckDB reads 10 M samples ~7x faster, but a
  DuckDB file can be open in only one process at a time (a second one fails with "Could not
  set lock on file"), so a collector and a report could not share the store.

* WAL journal, ``synchronous=NORMAL``: a killed writer (even ``kill -9``) leaves the file
  readable and consistent; the unfinished append is simply absent.  A power loss may lose the
  last committed appends, never consistency.
* Writers take the write lock with ``BEGIN IMMEDIATE`` and wait for it (busy timeout plus
  retries, ``busy_timeout_s`` in total), so concurrent appends from several processes queue up
  instead of failing.
* Schema version in ``PRAGMA user_version``; ``PRAGMA application_id`` marks the file as a
  capplan store.  Older stores are migrated on open; a store from a newer capplan is refused.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from capplan.errors import StoreError
from capplan.store._common import Store
from capplan.store._rollup import READ_DTYPE, ROLLUP_DTYPE, rollup

__all__ = ["SQLiteStore", "SCHEMA_VERSION", "APPLICATION_ID"]

#: ``PRAGMA application_id`` of a capplan store ("CAPP").
APPLICATION_ID = 0x43415050

#: version -> (description, steps) applied in one transaction to go from version-1; a step is
#: an SQL statement or a function of the connection (for data conversions).
MIGRATIONS: dict[int, tuple[str, list[str | Callable[[sqlite3.Connection], None]]]] = {
    1: ("series and sample blocks", [
        "CREATE TABLE series (id INTEGER PRIMARY KEY, source TEXT NOT NULL, metric TEXT NOT NULL,"
        " labels TEXT NOT NULL, kind TEXT NOT NULL, unit TEXT NOT NULL,"
        " UNIQUE (source, metric, labels))",
        "CREATE TABLE blocks (series_id INTEGER NOT NULL REFERENCES series(id),"
        " t0 INTEGER NOT NULL, t1 INTEGER NOT NULL, n INTEGER NOT NULL,"
        " ts BLOB NOT NULL, val BLOB NOT NULL, PRIMARY KEY (series_id, t0))",
    ]),
    2: ("time-range index and meta table", [
        "CREATE INDEX blocks_series_t1 ON blocks (series_id, t1)",
        "CREATE INDEX series_metric ON series (metric)",
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
        "INSERT INTO meta (key, value) VALUES ('block_format', 'ts:int64-ns-le val:float64-le')",
    ]),
    3: ("one row per sample, hourly rollup, samples and series views (blocks converted)", [
        "ALTER TABLE series RENAME TO series_key",
        "CREATE TABLE sample_rows (series_id INTEGER NOT NULL REFERENCES series_key(id),"
        " ts INTEGER NOT NULL, value REAL, PRIMARY KEY (series_id, ts)) WITHOUT ROWID",
        "CREATE TABLE rollup_1h (series_id INTEGER NOT NULL REFERENCES series_key(id),"
        " bucket INTEGER NOT NULL, cnt INTEGER NOT NULL, nfin INTEGER NOT NULL, sum REAL NOT NULL,"
        " first_ts INTEGER NOT NULL, last_ts INTEGER NOT NULL, last_value REAL,"
        " PRIMARY KEY (series_id, bucket)) WITHOUT ROWID",
        lambda conn: _blocks_to_rows(conn),
        "DROP INDEX blocks_series_t1",
        "DROP TABLE blocks",
        "DELETE FROM meta WHERE key = 'block_format'",
        "INSERT INTO meta (key, value) VALUES ('layout', 'sample_rows ts:int64-ns value:real')",
        "CREATE VIEW samples AS SELECT strftime('%Y-%m-%dT%H:%M:%fZ', d.ts / 1e9, 'unixepoch')"
        " AS ts, k.source, k.metric, k.labels, d.value, k.kind, k.unit, d.ts AS ts_ns"
        " FROM sample_rows d JOIN series_key k ON k.id = d.series_id",
        "CREATE VIEW series AS SELECT k.id AS series_id, k.source, k.metric, k.labels, k.kind,"
        " k.unit, coalesce(r.n, 0) AS n, r.first_ns, r.last_ns FROM series_key k LEFT JOIN"
        " (SELECT series_id, sum(cnt) AS n, min(first_ts) AS first_ns, max(last_ts) AS last_ns"
        "  FROM rollup_1h GROUP BY series_id) r ON r.series_id = k.id",
    ]),
}
SCHEMA_VERSION = max(MIGRATIONS)

_SQLITE_MAGIC = b"SQLite format 3\x00"
_SAMPLE = np.dtype([("ts", "i8"), ("value", "f8")])
_FULL = (-(2**63), 2**63 - 1)
_IDS_PER_QUERY = 500


def _blocks_to_rows(conn: sqlite3.Connection) -> None:
    """Schema 3: decode the blocks of a schema-2 store (int64 ns / float64, little-endian BLOBs)
    into sample rows and their rollup, one series at a time."""
    sids = [r[0] for r in conn.execute("SELECT DISTINCT series_id FROM blocks ORDER BY series_id")]
    for s in sids:
        blocks = conn.execute("SELECT ts, val FROM blocks WHERE series_id = ? ORDER BY t0",
                              (s,)).fetchall()
        ts = np.concatenate([np.frombuffer(b[0], dtype="<i8") for b in blocks]).astype(np.int64)
        val = np.concatenate([np.frombuffer(b[1], dtype="<f8") for b in blocks]).astype(np.float64)
        sid = np.full(len(ts), s, dtype=np.int64)
        conn.executemany("INSERT INTO sample_rows (series_id, ts, value) VALUES (?, ?, ?)",
                         zip(sid.tolist(), ts.tolist(), val.tolist()))
        _insert_rollup(conn, rollup(sid, ts, val), merge=False)


_ROLLUP_INSERT = ("INSERT INTO rollup_1h (series_id, bucket, cnt, nfin, sum, first_ts, last_ts,"
                  " last_value) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
_ROLLUP_MERGE = _ROLLUP_INSERT + (
    " ON CONFLICT (series_id, bucket) DO UPDATE SET cnt = cnt + excluded.cnt,"
    " nfin = nfin + excluded.nfin, sum = sum + excluded.sum,"
    " first_ts = min(first_ts, excluded.first_ts), last_ts = max(last_ts, excluded.last_ts),"
    " last_value = CASE WHEN excluded.last_ts >= last_ts THEN excluded.last_value"
    " ELSE last_value END")


def _insert_rollup(conn: sqlite3.Connection, rows: np.ndarray, *, merge: bool) -> None:
    conn.executemany(_ROLLUP_MERGE if merge else _ROLLUP_INSERT,
                     zip(*(rows[f].tolist() for f in ROLLUP_DTYPE.names)))


def _hint_for(exc: BaseException, path: Path) -> str:
    text = str(exc).lower()
    if "full" in text:
        return f"free space on the filesystem holding {path.parent} (or store elsewhere)"
    if "readonly" in text or "read-only" in text or "unable to open" in text:
        return f"make {path.parent} and {path.name} writable, or open a store at a writable path"
    if "locked" in text or "busy" in text:
        return ("another process held the write lock too long; retry, or raise busy_timeout_s "
                "in open_store(..., busy_timeout_s=...)")
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return f"{path} is damaged or not a capplan store: restore it from a backup or move it away"
    return "check the path, its permissions and free space"


class SQLiteStore(Store):
    """A store in one SQLite file; open it with :func:`capplan.store.open_store`.

    Raises :class:`~capplan.errors.StoreError` (naming the path, with a hint) when the file
    cannot be created, is not a capplan store, comes from a newer capplan, or cannot be written.
    """

    def __init__(self, path: str | os.PathLike, *, busy_timeout_s: float = 60.0):
        self.path = Path(path).expanduser().absolute()
        self.target = str(self.path)
        self._busy_timeout_s = float(busy_timeout_s)
        self._conn: sqlite3.Connection | None = None
        self._version = 0
        #: (source, metric, labels) -> (id, kind, unit) of series known to exist (never deleted)
        self._known: dict[tuple[str, str, str], tuple[int, str, str]] = {}
        self._open()

    def __repr__(self) -> str:
        return f"SQLiteStore({self.target!r})"

    # ---- opening and migrating ----------------------------------------------------------
    def _fail(self, what: str, exc: BaseException | None = None) -> StoreError:
        detail = f": {exc}" if exc is not None else ""
        return StoreError(f"{self.path}: {what}{detail}",
                          hint=_hint_for(exc, self.path) if exc is not None else None)

    def _open(self) -> None:
        if self.path.is_dir():
            raise StoreError(f"{self.path}: is a directory, not a store file",
                             hint="pass a file path such as data/metrics.sqlite")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"{self.path}: cannot create the directory {self.path.parent}: {exc}",
                             hint="choose a path in a writable directory") from exc
        if self.path.exists() and self.path.stat().st_size > 0:
            try:
                with open(self.path, "rb") as fh:
                    head = fh.read(len(_SQLITE_MAGIC))
            except OSError as exc:
                raise self._fail("cannot read the store file", exc) from exc
            if head != _SQLITE_MAGIC:
                raise StoreError(f"{self.path}: not a capplan store (not an SQLite database)",
                                 hint="point open_store at a capplan store file or a new path; "
                                      "move the file away if it is damaged")
        try:
            self._conn = sqlite3.connect(str(self.path), timeout=self._busy_timeout_s,
                                         isolation_level=None, check_same_thread=False)
            app_id = self._conn.execute("PRAGMA application_id").fetchone()[0]
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            n_tables = self._conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        except sqlite3.Error as exc:
            self.close()
            raise self._fail("cannot open the store", exc) from exc
        if app_id != APPLICATION_ID and (n_tables or version):
            self.close()
            raise StoreError(f"{self.path}: not a capplan store (an SQLite database of another "
                             "application)",
                             hint="point open_store at a capplan store file or a new path")
        if version > SCHEMA_VERSION:
            self.close()
            raise StoreError(f"{self.path}: written by a newer capplan (store schema {version}, "
                             f"this capplan reads up to {SCHEMA_VERSION})",
                             hint="upgrade capplan (pip install -U capplan) to read this store")
        try:
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._conn.execute("PRAGMA cache_size = -65536")
            self._conn.execute("PRAGMA foreign_keys = ON")
            if version < SCHEMA_VERSION:
                self._migrate()
            self._retry(lambda: self._conn.execute("PRAGMA journal_mode = WAL"))
            self._version = self._conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.Error as exc:
            self.close()
            raise self._fail("cannot initialise or migrate the store", exc) from exc

    def _retry(self, op):
        """Run ``op`` until it stops failing with 'database is locked' or the timeout passes."""
        deadline = time.monotonic() + self._busy_timeout_s
        delay = 0.005
        while True:
            try:
                return op()
            except sqlite3.OperationalError as exc:
                text = str(exc).lower()
                if ("locked" not in text and "busy" not in text) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 0.25)

    def _migrate(self) -> None:
        conn = self._conn
        self._retry(lambda: conn.execute("BEGIN IMMEDIATE"))
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]  # re-read under the lock
            for v in range(version + 1, SCHEMA_VERSION + 1):
                for step in MIGRATIONS[v][1]:
                    step(conn) if callable(step) else conn.execute(step)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    # ---- Store hooks --------------------------------------------------------------------
    @property
    def schema_version(self) -> int:
        return self._version

    def close(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(sqlite3.Error):  # closing a broken handle has nothing to report
                self._conn.close()
            self._conn = None

    def _c(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self.path}: the store is closed",
                             hint="open it again with capplan.store.open_store()")
        return self._conn

    @contextlib.contextmanager
    def _write_txn(self) -> Iterator[None]:
        conn = self._c()
        try:
            self._retry(lambda: conn.execute("BEGIN IMMEDIATE"))
        except sqlite3.Error as exc:
            raise self._fail("cannot start a write transaction", exc) from exc
        try:
            yield
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self._known.clear()  # series "created" by the rolled-back transaction do not exist
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise self._fail("cannot write to the store", exc) from exc
        except BaseException:
            self._known.clear()
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    @contextlib.contextmanager
    def _read_txn(self) -> Iterator[None]:
        conn = self._c()
        try:
            conn.execute("BEGIN")
            yield
        except sqlite3.Error as exc:
            raise self._fail("cannot read the store", exc) from exc
        finally:
            if conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):  # a read-only txn has nothing to keep
                    conn.execute("COMMIT")

    def _ensure_series(self, keys):
        conn = self._c()
        todo = [k for k in keys if k[:3] not in self._known]
        if todo:
            conn.executemany("INSERT OR IGNORE INTO series_key (source, metric, labels, kind, "
                             "unit) VALUES (?, ?, ?, ?, ?)", todo)
            for k in todo:
                row = conn.execute("SELECT id, kind, unit FROM series_key WHERE source = ? AND "
                                   "metric = ? AND labels = ?", k[:3]).fetchone()
                self._known[k[:3]] = (int(row[0]), row[1], row[2])
        return [self._known[k[:3]] for k in keys]  # BEGIN IMMEDIATE holds the file's write lock

    def _tails(self, ids):
        conn = self._c()
        out = {}
        for s in ids:
            row = conn.execute("SELECT last_ts FROM rollup_1h WHERE series_id = ? "
                               "ORDER BY bucket DESC LIMIT 1", (s,)).fetchone()
            if row is not None:
                out[s] = int(row[0])
        return out

    def _write_samples(self, sid, ts, val, *, replace):
        verb = "INSERT OR REPLACE" if replace else "INSERT"
        self._c().executemany(f"{verb} INTO sample_rows (series_id, ts, value) VALUES (?, ?, ?)",
                              zip(sid.tolist(), ts.tolist(), val.tolist()))

    def _read_samples(self, ids, lo, hi):
        conn = self._c()
        lo = _FULL[0] if lo is None else lo
        hi = _FULL[1] if hi is None else hi
        for s in sorted(ids):
            # NULL is how SQLite stores NaN; 'nan' text becomes NaN in the float field
            arr = np.fromiter(conn.execute(
                "SELECT ts, ifnull(value, 'nan') FROM sample_rows WHERE series_id = ? AND ts >= ? "
                "AND ts < ?", (s, lo, hi)), dtype=_SAMPLE)
            if len(arr):
                yield np.full(len(arr), s, dtype=np.int64), arr["ts"], arr["value"]

    def _rollup_merge(self, rows):
        _insert_rollup(self._c(), rows, merge=True)

    def _rollup_replace(self, spans, rows):
        conn = self._c()
        conn.executemany("DELETE FROM rollup_1h WHERE series_id = ? AND bucket >= ? AND bucket <= ?",
                         spans)
        _insert_rollup(conn, rows, merge=False)

    def _read_rollup(self, ids, lo, hi):
        conn = self._c()
        lo = _FULL[0] if lo is None else lo
        hi = _FULL[1] if hi is None else hi
        parts = []
        for i in range(0, len(ids), _IDS_PER_QUERY):
            chunk = sorted(ids)[i:i + _IDS_PER_QUERY]
            parts.append(np.fromiter(conn.execute(
                "SELECT series_id, bucket, nfin, sum, ifnull(last_value, 'nan') FROM rollup_1h"
                f" WHERE series_id IN ({','.join('?' * len(chunk))}) AND bucket >= ? AND bucket < ?"
                " ORDER BY series_id, bucket", (*chunk, lo, hi)), dtype=READ_DTYPE))
        return np.concatenate(parts) if parts else np.empty(0, dtype=READ_DTYPE)

    def _series_rows(self):
        return [tuple(r) for r in self._c().execute(
            "SELECT id, source, metric, labels, kind, unit FROM series_key")]

    def _series_stats(self):
        return {int(r[0]): (int(r[1]), r[2], r[3]) for r in self._c().execute(
            "SELECT series_id, sum(cnt), min(first_ts), max(last_ts) FROM rollup_1h "
            "GROUP BY series_id")}
