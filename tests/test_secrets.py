"""A live `capplan run` with password-protected servers leaves the passwords in no output file."""
import sys
from pathlib import Path

import psycopg

from capplan.runner.run import run_report

sys.path.insert(0, str(Path(__file__).resolve().parent / "fixtures" / "collect"))
from servers import PrivateCluster, PrivateRedis  # noqa: E402


def test_live_run_with_password_protected_role_writes_the_password_nowhere(tmp_path, monkeypatch):
    pg_secret, redis_secret = "Pg-Hunter2-Secret-7731", "Redis-Hunter2-Secret-5519"
    cluster = PrivateCluster(preload="")
    redis_srv = PrivateRedis(password=redis_secret)
    try:
        with psycopg.connect(cluster.dsn(), autocommit=True) as conn:
            conn.execute(f"CREATE ROLE capmon LOGIN PASSWORD '{pg_secret}'")
            conn.execute("GRANT pg_monitor TO capmon")
        for k, v in {"PGHOST": "127.0.0.1", "PGPORT": str(cluster.port), "PGUSER": "capmon",
                     "PGPASSWORD": pg_secret, "PGDATABASE": "postgres",
                     "REDIS_URL": redis_srv.url}.items():
            monkeypatch.setenv(k, v)
        assert redis_secret in redis_srv.url
        params = tmp_path / "live.yaml"
        params.write_text(
            "mode: live\ncollect_duration_s: 3\ncollect_interval_s: 1\n"
            "sources:\n  - {source: redis, name: cache}\n  - {source: postgres, name: app}\n"
            "capacity: []\nloadtest_file: ''\n"
            "targets:\n  - {name: PostgreSQL buffer cache hit ratio, metric: pg_cache_hit_ratio, min: 0.9}\n")
        res = run_report(params, outputs=tmp_path / "outputs", cell_timeout_s=120)
    finally:
        redis_srv.stop()
        cluster.stop()
    assert res.status in ("ok", "degraded"), res.notebooks
    files = [p for p in (tmp_path / "outputs").rglob("*") if p.is_file()]
    assert any(p.name == "metrics.sqlite" for p in files) and any(p.suffix == ".ipynb" for p in files)
    for p in files:
        data = p.read_bytes()
        assert pg_secret.encode() not in data, p
        assert redis_secret.encode() not in data, p
