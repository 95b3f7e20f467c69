"""The packaged demo sweep: a real pgbench sweep with provenance."""

from __future__ import annotations

from capplan.core.frame import validate_frame
from capplan.loadtest import demo_pgbench_sweep, demo_pgbench_sweep_info, points_to_frame


def test_demo_sweep_is_a_usable_load_point_table():
    pts = demo_pgbench_sweep()
    assert pts["concurrency"].nunique() >= 8
    assert len(pts) == 30 and set(pts["tool"]) == {"pgbench"}
    assert (pts["throughput_per_s"] > 0).all() and (pts["requests"] > 0).all()
    assert pts["started_at"].notna().all()
    validate_frame(points_to_frame(pts))


def test_demo_sweep_provenance():
    info = demo_pgbench_sweep_info()
    assert info["run_id"] == demo_pgbench_sweep()["run_id"].iloc[0]
    assert info["pgbench_version"].startswith("pgbench (PostgreSQL) 15")
    assert "capplan sweep --tool pgbench" in info["command"]
    for key in ("machine", "recorded_start_utc", "server_settings"):
        assert info[key]
