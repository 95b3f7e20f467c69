"""The metrics store: contract frames in, contract frames out.

Two backends with one API: a single SQLite file (the default, for one analyst or one runner
host) and a PostgreSQL schema (the team store, one row per sample that SQL and Grafana read
through the ``samples`` and ``series`` views; see docs/store.md)::

    from capplan.store import open_store
    with open_store("data/metrics.sqlite") as store:        # or open_store("env:CAPPLAN_PG_DSN")
        store.append(frame)                                 # idempotent: repeats replace
        mem = store.query("redis_used_memory_bytes", labels={"instance": "cache"},
                          start="2026-11-01", end="2026-11-08", grain="1h")

See :mod:`capplan.store._common` for the layout and the append semantics.  Nothing connects
or reads the environment until :func:`open_store` is called.
"""

from __future__ import annotations

import os
import re

from capplan.errors import ConfigError
from capplan.store._common import Store, downsample

__all__ = ["open_store", "downsample", "Store"]

_CONNINFO = re.compile(r"^\s*(host|hostaddr|port|dbname|user|password|service|sslmode)\s*=",
                       re.IGNORECASE)


def open_store(target: str | os.PathLike, *, schema: str = "capplan",
               busy_timeout_s: float = 60.0) -> Store:
    """Open (creating or migrating as needed) the store at ``target``.

    * a filesystem path -> :class:`~capplan.store.sqlite.SQLiteStore` (file and parent
      directories are created); ``busy_timeout_s`` is how long a writer waits for another
      process holding the write lock.
    * ``"env:VARNAME"`` -> :class:`~capplan.store.postgres.PostgresStore` with the libpq DSN
      read from environment variable ``VARNAME``, tables in ``schema`` (created if missing).
    * a ``postgresql://`` (or ``postgres://``) URL -> the same, with that URL as the DSN; keep
      the password out of it (libpq reads ``PGPASSWORD`` or ``~/.pgpass``), or use ``env:``.

    Raises :class:`~capplan.errors.ConfigError` when the variable is unset or the target is
    empty, :class:`~capplan.errors.StoreError` when the store cannot be opened or migrated.
    The DSN (and its password) never appears in a message or a repr.
    """
    if isinstance(target, str) and target.startswith("env:"):
        var = target[4:]
        if not var:
            raise ConfigError("'env:' needs a variable name", key="store",
                              hint="write env:CAPPLAN_PG_DSN and export CAPPLAN_PG_DSN='host=... dbname=...'")
        dsn = os.environ.get(var)
        if not dsn:
            raise ConfigError(f"environment variable {var} is not set (it should hold the "
                              "PostgreSQL DSN of the metrics store)", key="store",
                              hint=f"export {var}='host=... dbname=... user=...' or use a file path")
        from capplan.store.postgres import PostgresStore

        return PostgresStore(dsn, schema=schema, label=f"env:{var}")
    if isinstance(target, str) and target.startswith(("postgresql://", "postgres://")):
        from capplan.store.postgres import PostgresStore

        return PostgresStore(target, schema=schema, label="postgresql URL")
    if target is None or (isinstance(target, str) and not target.strip()):
        raise ConfigError("no store given", key="store",
                          hint="pass a file path such as data/metrics.sqlite or env:VARNAME")
    if isinstance(target, str) and _CONNINFO.match(target):
        # a libpq key=value DSN is never a file name: a SQLite file named after it (holding its
        # password, perhaps) is what a naive fallback would create
        raise ConfigError("the store looks like a PostgreSQL DSN (key=value ...), not a file path",
                          key="store", hint="put the DSN in an environment variable and give "
                                            "env:VARNAME, or pass a postgresql:// URL")
    from capplan.store.sqlite import SQLiteStore

    return SQLiteStore(target, busy_timeout_s=busy_timeout_s)
