"""Drive a real load generator over a list of concurrency levels: the data a USL fit needs.

``run_sweep("pgbench", [1, 2, 4, 8], duration_s=3, target={"dbname": "capplan_sweep"})`` runs
pgbench once per level (``-c N -j min(jobs, N) -T duration``) and returns one load point per
level (see :mod:`capplan.loadtest.points`); ``run_sweep("redis-benchmark", ...)`` does the same
with ``redis-benchmark -c N -n requests --csv`` (one point per level and test).

Safety rules:

* **Loopback only.**  A target whose host is not a loopback address (``127.0.0.0/8``, ``::1``,
  ``localhost``, a name resolving only to loopback) or a Unix socket is refused with
  :class:`~capplan.errors.ConfigError` unless ``allow_remote=True``: a sweep is a load test,
  and pointing it at production by accident must take an explicit decision.
* **Bounded.**  pgbench runs ``-T ceil(duration_s)`` seconds per level (killed after 30 s more);
  redis-benchmark cannot run for a fixed time, so ``-n requests`` bounds the work and the
  process is killed after ``duration_s + 10`` s (then :class:`SourceUnavailable` says to lower
  ``requests``).
* **No secrets on command lines** (they show in ``ps``).  The child inherits the environment,
  so ``PGPASSWORD``, ``PGPASSFILE`` / ``~/.pgpass`` and ``PGSSLMODE`` work; a password inside a
  ``postgresql://`` URL is moved to the child's ``PGPASSWORD``.  redis-benchmark only takes a
  password on its command line (``-a``), so a Redis target with a password is refused.
* **Dedicated database.**  pgbench needs its tables: :func:`prepare_pgbench` creates the target
  database if missing (default ``capplan_sweep``) and runs ``pgbench -i -s SCALE`` in it unless
  it already holds a data set of that scale; :func:`drop_pgbench_database` removes it (only
  databases named ``capplan_*``; ``capplan sweep`` does so after the sweep when it created the
  database, or with ``--drop-db``).  Sweeps run with ``-n`` (no vacuum per level; the
  initialisation vacuumed).
* redis-benchmark writes its keys (``key:__rand_int__``, ``counter:__rand_int__``, ``mylist``)
  into database ``db`` (default **9**, not 0, so that application keys are left alone).
"""

from __future__ import annotations

import ipaddress
import math
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from urllib.parse import unquote, urlsplit

import pandas as pd

from capplan.errors import ConfigError, SourceUnavailable
from capplan.loadtest.pgbench import parse_pgbench_summary
from capplan.loadtest.points import empty_points, make_points
from capplan.loadtest.redisbench import parse_redisbench_csv

__all__ = ["run_sweep", "prepare_pgbench", "drop_pgbench_database", "pgbench_database_exists",
           "is_loopback",
           "DEFAULT_PGBENCH_DB", "DEFAULT_REDIS_DB"]

DEFAULT_PGBENCH_DB = "capplan_sweep"
DEFAULT_REDIS_DB = 9
PGBENCH_SCRIPTS = ("select-only", "tpcb-like", "simple-update")
_TOOLS = ("pgbench", "redis-benchmark")


def is_loopback(host: str | None) -> bool:
    """True for a loopback address, ``localhost``, a Unix socket path (``/...``), or a name
    whose every resolved address is loopback.  Unresolvable names are not loopback."""
    if not host or host.startswith("/"):
        return True
    h = host.strip("[]")
    try:
        return ipaddress.ip_address(h).is_loopback
    except ValueError:
        pass
    if h.lower() == "localhost":
        return True
    try:
        infos = socket.getaddrinfo(h, None)
    except OSError:
        return False
    addrs = {ipaddress.ip_address(i[4][0].split("%")[0]) for i in infos}
    return bool(addrs) and all(a.is_loopback for a in addrs)


def _pg_target(target: Mapping[str, object]) -> tuple[dict, dict]:
    """(connection fields host/port/dbname/user, extra child env) from a pgbench target."""
    if "password" in target:
        raise ConfigError("a password in the sweep target would end up on a command line",
                          key="target.password",
                          hint="set PGPASSWORD or use ~/.pgpass; the child process inherits it")
    t = {"host": "127.0.0.1", "port": 5432, "dbname": DEFAULT_PGBENCH_DB,
         "user": os.environ.get("PGUSER", "postgres")}
    env: dict[str, str] = {}
    if target.get("url"):
        u = urlsplit(str(target["url"]))
        if u.scheme not in ("postgresql", "postgres"):
            raise ConfigError(f"not a PostgreSQL URL: {u.scheme}://...", key="target.url",
                              hint="use postgresql://user@host:port/dbname")
        if u.hostname:
            t["host"] = u.hostname
        if u.port:
            t["port"] = u.port
        if u.path.strip("/"):
            t["dbname"] = unquote(u.path.strip("/"))
        if u.username:
            t["user"] = unquote(u.username)
        if u.password:
            env["PGPASSWORD"] = unquote(u.password)
    for k in ("host", "port", "dbname", "user"):
        if target.get(k) not in (None, ""):
            t[k] = target[k]
    return t, env


def _redis_target(target: Mapping[str, object]) -> dict:
    t = {"host": "127.0.0.1", "port": 6379, "db": DEFAULT_REDIS_DB}
    password = target.get("password")
    if target.get("url"):
        u = urlsplit(str(target["url"]))
        if u.scheme not in ("redis", "unix"):
            raise ConfigError(f"not a Redis URL: {u.scheme}://...", key="target.url",
                              hint="use redis://host:port/db (rediss:// is not supported by "
                                   "redis-benchmark here)")
        if u.hostname:
            t["host"] = u.hostname
        if u.port:
            t["port"] = u.port
        if u.path.strip("/").isdigit():
            t["db"] = int(u.path.strip("/"))
        password = password or u.password
    if password:
        raise ConfigError("redis-benchmark takes a password only on its command line (-a), "
                          "where every user of the machine can read it", key="target",
                          hint="sweep a password-less loopback Redis (a private redis-server "
                               "on a free port is best)")
    for k in ("host", "port", "db", "socket"):
        if target.get(k) not in (None, ""):
            t[k] = target[k]
    return t


def _check_levels(levels: Sequence[int], duration_s: float) -> list[int]:
    try:
        out = [int(x) for x in levels]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"levels must be whole numbers, got {levels!r}", key="levels") from exc
    if not out or any(x < 1 for x in out) or any(float(x) != float(y) for x, y in
                                                  zip(out, levels)):
        raise ConfigError(f"levels must be a non-empty list of positive integers, got {levels!r}",
                          key="levels", hint="e.g. 1,2,4,8,12,16,24,32")
    if not (isinstance(duration_s, (int, float)) and math.isfinite(duration_s)
            and duration_s > 0):
        raise ConfigError(f"duration_s must be a positive number of seconds, got {duration_s!r}",
                          key="duration_s")
    return out


def _guard(host: str, allow_remote: bool, tool: str) -> None:
    if not allow_remote and not is_loopback(str(host)):
        raise ConfigError(f"refusing to run {tool} against non-loopback host {host!r}",
                          key="target.host",
                          hint="sweeps are load tests: point them at 127.0.0.1, or pass "
                               "allow_remote=True (--allow-remote) if you really mean it")


def _exe(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise SourceUnavailable(f"{name} not found on PATH", source=name,
                                hint="install it (pgbench: postgresql-client; redis-benchmark: "
                                     "redis-tools)")
    return path


def _run(cmd: list[str], *, env: dict, timeout: float, what: str) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout,
                              check=False)
    except subprocess.TimeoutExpired as exc:
        raise SourceUnavailable(f"{what} did not finish within {timeout:g} s and was killed",
                                source=cmd[0], hint="lower requests / duration or the level")\
            from exc
    except OSError as exc:
        raise SourceUnavailable(f"cannot start {what}: {exc}", source=cmd[0]) from exc
    if proc.returncode != 0:
        tail = " | ".join((proc.stderr or proc.stdout or "").strip().splitlines()[-3:])
        raise SourceUnavailable(f"{what} failed (exit {proc.returncode}): {tail}",
                                source=cmd[0], hint="run the command by hand to see why; for "
                                "pgbench, did prepare_pgbench() initialise the database?")
    return proc


def prepare_pgbench(target: Mapping[str, object] | None = None, scale: int = 2, *,
                    allow_remote: bool = False, maintenance_db: str = "postgres") -> str:
    """Make ``target``'s database ready for pgbench; return its name.

    Creates the database (default :data:`DEFAULT_PGBENCH_DB`) when it does not exist, connecting
    to ``maintenance_db``; then runs ``pgbench -i -s scale -q`` unless ``pgbench_branches`` already
    holds ``scale`` rows.  The role needs CREATEDB for the first step.  Raises ConfigError
    (non-loopback without ``allow_remote``, bad scale) and SourceUnavailable (server or pgbench).
    """
    import psycopg
    from psycopg import sql

    t, extra_env = _pg_target(target or {})
    _guard(str(t["host"]), allow_remote, "pgbench -i")
    if not isinstance(scale, int) or scale < 1:
        raise ConfigError(f"scale must be a positive integer, got {scale!r}", key="scale")
    env = {**os.environ, **extra_env}
    conn_kw = {"host": str(t["host"]), "port": int(t["port"]), "user": str(t["user"]),
               "connect_timeout": 5, **({"password": extra_env["PGPASSWORD"]}
                                        if "PGPASSWORD" in extra_env else {})}
    where = f"postgresql://{t['user']}@{t['host']}:{t['port']}"
    try:
        with psycopg.connect(dbname=maintenance_db, autocommit=True, **conn_kw) as conn:
            exists = conn.execute("select 1 from pg_database where datname = %s",
                                  (t["dbname"],)).fetchone()
            if not exists:
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(t["dbname"])))
        with psycopg.connect(dbname=str(t["dbname"]), **conn_kw) as conn:
            row = conn.execute("select count(*) from pg_class where relname = "
                               "'pgbench_branches' and relkind in ('r', 'p')").fetchone()
            ready = False
            if row and row[0]:
                ready = conn.execute("select count(*) from pgbench_branches").fetchone()[0] == scale
    except psycopg.Error as exc:
        raise SourceUnavailable(f"cannot prepare database {t['dbname']!r}: {exc}", source=where,
                                hint="is PostgreSQL running, and may this role CREATEDB?") from exc
    if not ready:
        _run([_exe("pgbench"), "-h", str(t["host"]), "-p", str(t["port"]), "-U", str(t["user"]),
              "-i", "-s", str(scale), "-q", str(t["dbname"])],
             env=env, timeout=600, what=f"pgbench -i -s {scale}")
    return str(t["dbname"])


def pgbench_database_exists(target: Mapping[str, object] | None = None, *,
                            allow_remote: bool = False, maintenance_db: str = "postgres") -> bool:
    """Whether ``target``'s database exists already (``capplan sweep`` drops only what it
    created).  Raises ConfigError (non-loopback) and SourceUnavailable (server)."""
    import psycopg

    t, extra_env = _pg_target(target or {})
    _guard(str(t["host"]), allow_remote, "pgbench")
    try:
        with psycopg.connect(dbname=maintenance_db, autocommit=True, host=str(t["host"]),
                             port=int(t["port"]), user=str(t["user"]), connect_timeout=5,
                             **({"password": extra_env["PGPASSWORD"]}
                                if "PGPASSWORD" in extra_env else {})) as conn:
            return conn.execute("select 1 from pg_database where datname = %s",
                                (t["dbname"],)).fetchone() is not None
    except psycopg.Error as exc:
        raise SourceUnavailable(f"cannot reach PostgreSQL to look for {t['dbname']!r}: {exc}",
                                source=f"{t['host']}:{t['port']}",
                                hint="is PostgreSQL running on that host and port?") from exc


def drop_pgbench_database(target: Mapping[str, object] | None = None, *,
                          allow_remote: bool = False, maintenance_db: str = "postgres") -> None:
    """Drop the sweep database created by :func:`prepare_pgbench` (names ``capplan_*`` only)."""
    import psycopg
    from psycopg import sql

    t, extra_env = _pg_target(target or {})
    _guard(str(t["host"]), allow_remote, "drop database")
    if not str(t["dbname"]).startswith("capplan_"):
        raise ConfigError(f"refusing to drop {t['dbname']!r}: only capplan_* sweep databases "
                          "are dropped by capplan", key="target.dbname")
    try:
        with psycopg.connect(dbname=maintenance_db, autocommit=True, host=str(t["host"]),
                             port=int(t["port"]), user=str(t["user"]), connect_timeout=5,
                             **({"password": extra_env["PGPASSWORD"]}
                                if "PGPASSWORD" in extra_env else {})) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(
                sql.Identifier(t["dbname"])))
    except psycopg.Error as exc:
        raise SourceUnavailable(f"cannot drop database {t['dbname']!r}: {exc}",
                                source=f"{t['host']}:{t['port']}") from exc


def _now() -> datetime:
    return datetime.now(timezone.utc)


def run_sweep(tool: str, levels: Sequence[int], *, duration_s: float,
              target: Mapping[str, object] | None = None, allow_remote: bool = False,
              progress: bool = False, run_id: str | None = None, jobs: int = 2,
              script: str = "select-only", requests: int = 10_000,
              tests: Sequence[str] = ("get", "set")) -> pd.DataFrame:
    """Run ``tool`` once per concurrency level and return the load points (one run id).

    ``tool``: ``"pgbench"`` (``target`` keys host, port, dbname, user or url; ``script`` one of
    ``select-only``, ``tpcb-like``, ``simple-update``; ``jobs`` threads, capped at the level;
    the database must be prepared, see :func:`prepare_pgbench`) or ``"redis-benchmark"``
    (``target`` keys host, port, db (default 9), socket or url; ``requests`` per test and level;
    ``tests`` such as ``("get", "set")``).  ``progress`` shows a tqdm bar on stderr.
    Raises ConfigError (unknown tool, bad levels, non-loopback target without
    ``allow_remote``) and SourceUnavailable (tool missing, failed or killed at its time bound).
    """
    if tool not in _TOOLS:
        raise ConfigError(f"unknown sweep tool {tool!r}", key="tool", hint=f"use one of {_TOOLS}")
    lv = _check_levels(levels, duration_s)
    rid = run_id or f"sweep-{tool}-{_now():%Y%m%dT%H%M%SZ}"
    if tool == "pgbench":
        if script not in PGBENCH_SCRIPTS:
            raise ConfigError(f"unknown pgbench builtin script {script!r}", key="script",
                              hint=f"use one of {PGBENCH_SCRIPTS}")
        t, extra_env = _pg_target(target or {})
        _guard(str(t["host"]), allow_remote, tool)
        exe = _exe("pgbench")
        env = {**os.environ, "PGAPPNAME": "capplan-sweep", **extra_env}
        secs = max(1, math.ceil(duration_s))
    else:
        t = _redis_target(target or {})
        _guard(str(t.get("socket") or t["host"]), allow_remote, tool)
        exe = _exe("redis-benchmark")
        env = dict(os.environ)
        if not isinstance(requests, int) or requests < 1:
            raise ConfigError(f"requests must be a positive integer, got {requests!r}",
                              key="requests")
    from tqdm.auto import tqdm

    frames = []
    for n in tqdm(lv, desc=f"{tool} sweep", unit="level", disable=not progress, file=sys.stderr):
        started = _now()
        if tool == "pgbench":
            cmd = [exe, "-h", str(t["host"]), "-p", str(t["port"]), "-U", str(t["user"]), "-n",
                   "-b", script, "-c", str(n), "-j", str(max(1, min(int(jobs), n))),
                   "-T", str(secs), str(t["dbname"])]
            proc = _run(cmd, env=env, timeout=secs + 30, what=f"pgbench -c {n}")
            pts = parse_pgbench_summary(proc.stdout, path=f"pgbench -c {n} (stdout)",
                                        run_id=rid, started_at=started)
        else:
            where = ["-s", str(t["socket"])] if t.get("socket") else \
                ["-h", str(t["host"]), "-p", str(t["port"])]
            cmd = [exe, *where, "--dbnum", str(t["db"]), "-c", str(n), "-n", str(requests),
                   "-t", ",".join(tests), "--csv"]
            proc = _run(cmd, env=env, timeout=float(duration_s) + 10,
                        what=f"redis-benchmark -c {n}")
            pts = parse_redisbench_csv(proc.stdout, path=f"redis-benchmark -c {n} (stdout)",
                                       run_id=rid, concurrency=n, requests=requests,
                                       started_at=started)
        frames.append(pts)
    return make_points(pd.concat(frames, ignore_index=True)) if frames else empty_points()
