"""The bounded sweep: the loopback guard, credentials, and one short real sweep per tool."""

from __future__ import annotations

import json
import uuid
from urllib.parse import urlsplit

import psycopg
import pytest

from capplan.cli import main
from capplan.errors import ConfigError
from capplan.loadtest.sweep import (drop_pgbench_database, is_loopback, prepare_pgbench,
                                    run_sweep)


@pytest.mark.parametrize("host,ok", [("127.0.0.1", True), ("127.8.9.10", True), ("::1", True),
                                     ("localhost", True), ("/var/run/postgresql", True),
                                     ("10.0.0.5", False), ("192.168.1.20", False),
                                     ("2001:db8::1", False), ("db.example.invalid", False)])
def test_is_loopback(host, ok):
    assert is_loopback(host) is ok


@pytest.mark.parametrize("tool,target", [
    ("pgbench", {"host": "10.0.0.5"}),
    ("pgbench", {"url": "postgresql://app@192.168.1.20:5432/app"}),
    ("redis-benchmark", {"host": "10.0.0.5"}),
    ("redis-benchmark", {"url": "redis://10.0.0.5:6379/0"}),
])
def test_remote_target_refused(tool, target):
    with pytest.raises(ConfigError, match="non-loopback"):
        run_sweep(tool, [1], duration_s=1, target=target)


def test_secrets_never_on_the_command_line():
    with pytest.raises(ConfigError, match="PGPASSWORD"):
        run_sweep("pgbench", [1], duration_s=1, target={"password": "s3cret"})
    with pytest.raises(ConfigError, match="-a"):
        run_sweep("redis-benchmark", [1], duration_s=1, target={"url": "redis://:pw@127.0.0.1/9"})


@pytest.mark.parametrize("levels,duration", [([], 1), ([0, 2], 1), ([1.5], 1), ([1], 0)])
def test_bad_levels_or_duration(levels, duration):
    with pytest.raises(ConfigError):
        run_sweep("pgbench", levels, duration_s=duration, target={})


def test_drop_only_capplan_databases():
    with pytest.raises(ConfigError, match="capplan_"):
        drop_pgbench_database({"dbname": "test"})


def _pg_target(pg_dsn: str) -> dict:
    parts = dict(kv.split("=", 1) for kv in pg_dsn.split() if "=" in kv)
    return {"host": parts.get("host", "127.0.0.1"), "port": int(parts.get("port", 5432)),
            "user": parts.get("user", "postgres")}


@pytest.mark.slow
def test_real_pgbench_sweep(pg_dsn, tmp_path, capsys):
    target = {**_pg_target(pg_dsn), "dbname": f"capplan_lt_{uuid.uuid4().hex[:10]}"}
    store = tmp_path / "m.sqlite"
    try:
        assert prepare_pgbench(target, scale=1) == target["dbname"]
        prepare_pgbench(target, scale=1)        # second call: already initialised, no-op
        pts = run_sweep("pgbench", [1, 2, 4], duration_s=1, target=target, run_id="t")
        rc = main(["sweep", "--tool", "pgbench", "--levels", "3", "--duration", "1",
                   "--scale", "1", "--host", target["host"], "--port", str(target["port"]),
                   "--user", target["user"], "--dbname", target["dbname"], "--store",
                   str(store), "--run-id", "cli", "--no-progress"])
    finally:
        drop_pgbench_database(target)
    assert rc == 0
    out = capsys.readouterr().out
    assert "throughput_per_s" in out and f"appended 5 rows to {store}" in out
    assert list(pts["concurrency"]) == [1, 2, 4]
    assert (pts["throughput_per_s"] > 0).all() and (pts["requests"] > 0).all()
    assert (pts["duration_s"] == 1).all() and set(pts["run_id"]) == {"t"}
    assert pts["started_at"].is_monotonic_increasing
    with psycopg.connect(pg_dsn) as conn:
        gone = conn.execute("select count(*) from pg_database where datname = %s",
                            (target["dbname"],)).fetchone()[0]
    assert gone == 0


@pytest.mark.slow
def test_real_redis_sweep_via_cli(redis_url, tmp_path, capsys):
    u = urlsplit(redis_url)
    store = tmp_path / "m.sqlite"
    rc = main(["sweep", "--tool", "redis-benchmark", "--levels", "1,2,8", "--requests", "2000",
               "--tests", "get", "--duration", "10", "--host", u.hostname or "127.0.0.1",
               "--port", str(u.port or 6379), "--db", "9", "--store", str(store), "--json",
               "--no-progress"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    pts = out["points"]
    assert [p["concurrency"] for p in pts] == [1, 2, 8]
    assert all(p["scenario"] == "GET" and p["throughput_per_s"] > 0 for p in pts)
    assert all(p["latency_p99_s"] >= p["latency_p50_s"] for p in pts)
    assert out["rows_written"] == 3 * 8
    from capplan.loadtest import frame_to_points
    from capplan.store import open_store
    with open_store(store) as s:
        back = frame_to_points(s.query(source="loadtest:redis-benchmark"))
    assert list(back["concurrency"]) == [1, 2, 8]


def test_cli_refuses_remote_with_exit_2(capsys):
    rc = main(["sweep", "--tool", "pgbench", "--levels", "1,2", "--host", "10.0.0.5",
               "--no-prepare"])
    assert rc == 2
    assert "non-loopback" in capsys.readouterr().err


def test_cli_bad_levels_exit_2(capsys):
    rc = main(["sweep", "--tool", "redis-benchmark", "--levels", "1,two"])
    assert rc == 2 and "--levels" in capsys.readouterr().err
