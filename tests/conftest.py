"""Shared fixtures: the real PostgreSQL and Redis the suite talks to.

Where they are comes from the environment, as users of these tools expect:

* PostgreSQL: ``CAPPLAN_TEST_PG_DSN`` if set, else the libpq variables (PGHOST, PGPORT, PGUSER,
  PGPASSWORD, PGDATABASE), defaulting to ``host=127.0.0.1 port=5432 dbname=test user=postgres``.
* Redis: ``CAPPLAN_TEST_REDIS_URL``, else ``REDIS_URL``, else ``redis://127.0.0.1:6379/0``.

When a server is not reachable the tests that need it FAIL with a message saying what to start
(never a silent skip: CI must not pass without the servers).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
# reference data the tests need, in the repository (tests/shared/README.md); CAPPLAN_SHARED
# points at a full copy of the developers' shared folder instead
SHARED = Path(os.environ.get("CAPPLAN_SHARED") or Path(__file__).resolve().parent / "shared")


def _pg_dsn() -> str:
    if os.environ.get("CAPPLAN_TEST_PG_DSN"):
        return os.environ["CAPPLAN_TEST_PG_DSN"]
    parts = {
        "host": os.environ.get("PGHOST", "127.0.0.1"),
        "port": os.environ.get("PGPORT", "5432"),
        "dbname": os.environ.get("PGDATABASE", "test"),
        "user": os.environ.get("PGUSER", "postgres"),
    }
    return " ".join(f"{k}={v}" for k, v in parts.items())


def _redis_url() -> str:
    return os.environ.get("CAPPLAN_TEST_REDIS_URL") or os.environ.get("REDIS_URL") \
        or "redis://127.0.0.1:6379/0"


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    """A libpq DSN for a reachable PostgreSQL (superuser or owner rights on its database)."""
    import psycopg

    dsn = _pg_dsn()
    try:
        with psycopg.connect(dsn, connect_timeout=3) as conn:
            conn.execute("select 1")
    except psycopg.Error as exc:
        pytest.fail(
            f"PostgreSQL not reachable at '{dsn}': {exc}\n"
            "Start it (pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) "
            "or point CAPPLAN_TEST_PG_DSN / PGHOST, PGPORT, PGUSER, PGDATABASE at a server.",
            pytrace=False,
        )
    return dsn


@pytest.fixture(scope="session")
def redis_url() -> str:
    """A URL for a reachable Redis."""
    import redis

    url = _redis_url()
    try:
        redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        pytest.fail(
            f"Redis not reachable at '{url}': {exc}\n"
            "Start it (redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save '') "
            "or point CAPPLAN_TEST_REDIS_URL / REDIS_URL at a server.",
            pytrace=False,
        )
    return url


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """The reference data folder: tests/shared (CAPPLAN_SHARED overrides); fails if absent."""
    if not SHARED.is_dir():
        pytest.fail(f"reference data not found at {SHARED}; restore tests/shared from git or "
                    "set CAPPLAN_SHARED", pytrace=False)
    return SHARED


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def python_exe() -> str:
    return sys.executable


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory):
    """One real papermill run of params/demo.yaml into a temporary outputs folder."""
    from capplan.runner.run import run_report

    out = tmp_path_factory.mktemp("outputs")
    res = run_report(ROOT / "params" / "demo.yaml", outputs=out, cell_timeout_s=300)
    if res.status == "failed":
        pytest.fail(f"demo run failed: {res.notebooks}", pytrace=False)
    return res
