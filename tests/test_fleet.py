"""capplan.runner.fleet: per-service reports and a ranked fleet summary, fanned out on Dask."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from capplan.errors import ConfigError
from capplan.runner.fleet import dask_client, discovery_query, load_fleet, map_tasks, run_fleet
from capplan.report.fleet_document import rank_risks

ROOT = Path(__file__).resolve().parents[1]
FLEET_DEMO = ROOT / "params" / "fleets" / "fleet-demo.yaml"


@pytest.fixture(scope="module")
def fleet_cli_run(tmp_path_factory):
    """``capplan fleet params/fleets/fleet-demo.yaml`` on a two-worker LocalCluster (3 services,
    30 days each)."""
    out = tmp_path_factory.mktemp("fleet-out")
    res = subprocess.run([sys.executable, "-m", "capplan", "fleet", str(FLEET_DEMO), "--outputs",
                          str(out), "--workers", "2", "--no-progress"],
                         capture_output=True, text=True, timeout=300)
    return res, out


def test_fleet_cli_writes_one_report_per_service_and_a_summary(fleet_cli_run):
    res, out = fleet_cli_run
    assert res.returncode == 0, res.stderr
    latest = out / "fleet-demo" / "latest"
    assert latest.is_symlink() and Path(res.stdout.strip()) == latest.resolve() / "fleet.html"
    fleet = json.loads((latest / "fleet.json").read_text())
    assert fleet["status"] == "ok" and fleet["scheduler"] == "LocalCluster(2 workers)"
    names = [s["name"] for s in fleet["services"]]
    assert names == ["checkout-api", "search-api", "orders-api"]
    for name in names:
        folder = latest / "services" / name
        summary = json.loads((folder / "summary.json").read_text())
        assert summary["synthetic"] is True and summary["sections"]["runway"]
        assert (folder / "report.html").stat().st_size > 10_000
        assert not list(folder.rglob("metrics.sqlite*"))     # the store stays on the worker
    md = (latest / "fleet.md").read_text()
    assert "SYNTHETIC DEMO DATA" in md and "Top risks" in md
    assert (latest / "fleet.html").read_text().startswith("<!DOCTYPE html>")
    # nothing half-written is left visible
    assert not [p for p in (out / "fleet-demo").iterdir() if p.name.endswith(".partial")]


def test_fleet_ranking_puts_the_scaled_cache_first(fleet_cli_run):
    """search-api's cache is 25 % bigger: its Redis memory crosses 256 MiB within the horizon."""
    _res, out = fleet_cli_run
    fleet = json.loads((out / "fleet-demo" / "latest" / "fleet.json").read_text())
    top = fleet["risks"][0]
    assert (top["service"], top["label"], top["status"]) == \
        ("search-api (demo)", "Redis memory", "crosses")
    # every risk traces to the service's own summary.json
    summ = json.loads((out / "fleet-demo" / "latest" / "services" / "search-api" /
                       "summary.json").read_text())
    f = {x["id"]: x for x in summ["sections"]["runway"]}[top["finding"]]
    assert top["crossing"] == f["extra"]["crossing"]
    assert top["p_cross"] == f["extra"]["p_cross_within_horizon"]
    tiers = [r["tier"] for r in fleet["risks"]]
    assert tiers == sorted(tiers)
    assert [r["rank"] for r in fleet["risks"]] == list(range(1, len(fleet["risks"]) + 1))


@pytest.mark.filterwarnings("ignore:Port .* is already in use")
def test_same_code_path_on_an_existing_scheduler(tmp_path):
    """A scheduler address (here a two-worker LocalCluster we own) runs the same tasks; one
    broken service is reported, the other still gets its report (status degraded, exit 3)."""
    from dask.distributed import LocalCluster

    params = tmp_path / "mini.yaml"
    params.write_text(yaml.safe_dump({
        "defaults": {"mode": "demo", "demo_days": 14, "lookback_days": 14, "horizon_days": 30,
                     "baseline_days": 3, "current_days": 3, "loadtest_file": "",
                     "targets": [{"name": "Redis hit ratio", "metric": "redis_keyspace_hit_ratio",
                                  "min": 0.9}],
                     "capacity": [{"name": "Redis memory", "metric": "redis_used_memory_bytes",
                                   "limit": 100 * 2 ** 20}]},
        "services": [{"service": "good", "seed": 3},
                     {"service": "broken", "seed": 4, "demo_scale": {"no_such_metric": 2.0}}]}))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster:
        res = run_fleet(params, outputs=tmp_path / "out", scheduler=cluster.scheduler_address)
        with dask_client(cluster.scheduler_address) as client:   # a task error, reported per item
            assert map_tasks(client, int, ["1", "x", "3"],
                             on_error=lambda item, exc: type(exc).__name__) == [1, "ValueError", 3]
            with pytest.raises(ValueError):
                map_tasks(client, int, ["x"])
    assert res.status == "degraded" and res.exit_code == 3
    by = {s["name"]: s for s in res.services}
    assert by["good"]["status"] == "ok" and by["good"]["report"]
    assert by["broken"]["status"] == "failed" and "no_such_metric" in by["broken"]["error"]
    fleet = json.loads((res.run_dir / "fleet.json").read_text())
    assert fleet["scheduler"] == cluster.scheduler_address
    # the demo cache (~150 MiB and more) against a 100 MiB limit: over the limit, ranked first
    assert (fleet["risks"][0]["service"], fleet["risks"][0]["label"], fleet["risks"][0]["status"]) \
        == ("good", "Redis memory", "already over limit")
    assert "Failed services" in (res.run_dir / "fleet.md").read_text()
    assert (tmp_path / "out" / "mini" / "latest").resolve() == res.run_dir


def _res(service, runway=(), targets=()):
    return {"service": service, "name": service, "summary": {"sections": {
        "runway": [{"id": f"runway.{i}", "label": lab, "status": st, "detail": None,
                    "display": {}, "extra": {"crossing": cr, "p_cross_within_horizon": p}}
                   for i, (lab, st, cr, p) in enumerate(runway)],
        "targets": [{"id": f"target.{i}", "label": lab, "status": st, "detail": "d", "display": {},
                     "extra": {"critical": crit}} for i, (lab, st, crit) in enumerate(targets)]}}}


def test_rank_risks_order():
    results = [
        _res("a", runway=[("mem", "crosses", "2027-03-01T00:00:00+00:00", 0.6),
                          ("disk", "not within horizon", None, 0.3),
                          ("cpu", "not within horizon", None, 0.0)],
             targets=[("hit", "meets", False)]),
        _res("b", runway=[("mem", "crosses", "2027-01-01T00:00:00+00:00", 0.9),
                          ("conn", "already over limit", None, 1.0)],
             targets=[("lat", "at risk", False), ("err", "misses", True), ("p99", "misses", False)]),
        _res("c", runway=[("x", "insufficient data", None, None)]),
    ]
    got = [(r["service"], r["label"]) for r in rank_risks(results)]
    assert got == [("b", "err"), ("b", "conn"), ("b", "p99"),        # over limit / missed, critical first
                   ("b", "mem"), ("a", "mem"),                         # crossings, earliest first
                   ("b", "lat"),                                       # at risk
                   ("a", "disk"),                                      # may cross (P > 0)
                   ("c", "x")]                                         # unknown


@pytest.mark.parametrize("body, key", [
    ("servics: []\n", "servics"),
    ("services: [{service: a, lookbak_days: 3}]\n", "services[0].lookbak_days"),
    ("services: [{service: a, horizon_days: soon}]\n", "services[0].horizon_days"),
    ("services: [{service: a}, {service: A}]\n", "services[1].name"),
    ("services: [{service: a, store: 'postgresql://u:pw@h/db'}]\n", "services[0].store"),
    ("services: [{service: a, demo_scale: {redis_used_memory_bytes: -1}}]\n",
     "services[0].demo_scale.redis_used_memory_bytes"),
    ("workers: 0\nservices: [{service: a}]\n", "workers"),
    ("{}\n", "services"),
])
def test_load_fleet_rejects_bad_params(tmp_path, body, key):
    p = tmp_path / "f.yaml"
    p.write_text(body)
    with pytest.raises(ConfigError) as ei:
        load_fleet(p)
    assert ei.value.key == key and ei.value.path == str(p)


def test_load_fleet_merges_notebook_defaults_fleet_defaults_and_entry():
    spec = load_fleet(FLEET_DEMO, workers=3)
    assert spec.workers == 3 and spec.scheduler == "" and spec.top == 10
    s = {x["name"]: x for x in spec.services}["search-api"]
    assert s["seed"] == 11 and s["demo_days"] == 30 and s["demo_scale"] == {"redis_used_memory_bytes": 1.25}
    assert s["collect_interval_s"] == 5.0          # a notebook default nobody overrode


@pytest.mark.parametrize("path", sorted((ROOT / "params" / "fleets").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_every_fleet_params_file_loads(path):
    assert load_fleet(path).services


def test_discovery_query():
    assert discovery_query('job="redis"', "instance") == 'count by (instance) ({job="redis"})'
    with pytest.raises(ConfigError):
        discovery_query('job="redis"', "in-stance")


def test_cli_fleet_bad_params_exit_2(tmp_path):
    p = tmp_path / "f.yaml"
    p.write_text("services: [{service: a, horizon: 3}]\n")
    res = subprocess.run([sys.executable, "-m", "capplan", "fleet", str(p), "--outputs",
                          str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert "horizon" in res.stderr and "Traceback" not in res.stderr


def test_discovery_on_a_real_prometheus(redis_url, pg_dsn, monkeypatch):
    """One service per value of the label: Prometheus scraping redis_exporter and
    postgres_exporter (jobs redis, postgres) gives two services in mode prometheus."""
    from capplan.runner.fleet import discover_services
    from promstack import PromStack, StackError

    st = PromStack(redis_url, pg_dsn, scrape_interval_s=1.0)
    try:
        st.start()
    except StackError as exc:
        pytest.fail(f"cannot start Prometheus + exporters: {exc}", pytrace=False)
    try:
        monkeypatch.setenv("CAPPLAN_FLEET_TEST_PROM", st.prometheus_url)
        found = discover_services({
            "prometheus": {"url_env": "CAPPLAN_FLEET_TEST_PROM", "selector": 'job=~"redis|postgres"',
                           "by": "job", "days": 7, "step": "5m"},
            "defaults": {"horizon_days": 30, "capacity": []}})
    finally:
        st.stop()
    assert [s["name"] for s in found] == ["postgres", "redis"]
    for s in found:
        assert s["mode"] == "prometheus" and s["horizon_days"] == 30
        assert s["prometheus"] == {"url_env": "CAPPLAN_FLEET_TEST_PROM", "days": 7, "step": "5m",
                                   "selector": f'job=~"redis|postgres",job="{s["name"]}"'}


# --- many series in bounded memory (capplan.runner.fleet_series) ----------------------------------

def _load_series(keys):
    """Hourly series with a clear upward trend; key 'short' has too little history."""
    import numpy as np
    import pandas as pd

    out = {}
    for k in keys:
        n = 10 if k == "short" else 24 * 21
        rng = np.random.default_rng(abs(hash(k)) % 2 ** 32 if k == "short" else int(k))
        t = np.arange(n)
        y = 100 + 0.05 * int(k if k != "short" else 0) * t + 5 * np.sin(2 * np.pi * t / 24) \
            + rng.normal(0, 1, n)
        idx = pd.date_range("2026-01-01", periods=n, freq="h", tz="UTC")
        out[k] = (pd.Series(y, index=idx), 140.0)
    return out


@pytest.fixture(scope="module")
def thread_client():
    import dask
    from dask.distributed import Client, LocalCluster

    with dask.config.set({"distributed.worker.profile.enabled": False}), \
            LocalCluster(n_workers=1, threads_per_worker=2, processes=False,
                         dashboard_address=None) as cluster, Client(cluster) as client:
        yield client


def test_stream_map_keeps_at_most_in_flight_tasks(thread_client):
    from capplan.runner.fleet_series import stream_map

    consumed, seen = [], []

    def items():
        for i in range(20):
            consumed.append(i)
            yield i

    def on_result(item, res):
        assert res == item * item
        seen.append(item)
        assert len(consumed) - (len(seen) - 1) <= 3     # never more than 3 submitted, undone

    assert stream_map(thread_client, lambda x: x * x, items(), in_flight=3,
                      on_result=on_result) == 20
    assert sorted(seen) == list(range(20))


def test_fit_series_fleet_streams_rows_and_a_bounded_summary(thread_client, tmp_path):
    import csv

    from capplan.models.growth import fit_forecast, time_to_limit
    from capplan.runner.fleet_series import fit_series_fleet

    keys = ["0", "3", "6", "short", "9", "12"]
    res = fit_series_fleet(thread_client, _load_series, keys, out_dir=tmp_path, chunk=2,
                           in_flight=2, horizon=72, top=2)
    rows = {r["key"]: r for r in csv.DictReader(open(tmp_path / "series.csv"))}
    assert sorted(rows) == sorted(keys) and res["series"] == 6
    assert rows["short"]["status"] == "refused" and "history" in rows["short"]["error"].lower()
    assert sum(res["counts"].values()) == 6 and res["counts"]["refused"] == 1
    # the rows are the per-series model's own numbers
    y, limit = _load_series(["9"])["9"]
    fc = fit_forecast(y, horizon=72, grain="1h", bounds=(0, None))
    rw = time_to_limit(fc, limit)
    assert float(rows["9"]["mean_end"]) == pytest.approx(fc.frame["mean"].iloc[-1], rel=1e-12)
    assert rows["9"]["runway"] == rw.status
    # top: only crossings / over limit, the most urgent first, at most `top`
    assert 0 < len(res["top"]) <= 2
    assert all(r["runway"] in ("crosses", "already over limit") for r in res["top"])
    order = [(r["runway"] != "already over limit", r["crossing"] or "") for r in res["top"]]
    assert order == sorted(order)
    assert json.loads((tmp_path / "series-summary.json").read_text())["series"] == 6
    assert res["worker_peak_rss_mb"] > 0 and res["client_peak_rss_mb"] > 0
    assert res["worker_profiler_on"] == 0 and res["nthreads"] == 2
    (w,) = res["workers"].values()                 # one worker process, all 3 chunks
    assert w["chunks"] == 3 and 0 < w["cpu_s"] <= res["worker_cpu_s"] + 1e-6
    assert w["rss_first_mb"] > 0 and w["rss_max_mb"] >= w["rss_last_mb"]
    assert 0 < res["busy_share"] <= 1.0


@pytest.mark.filterwarnings("ignore:Port .* is already in use")
def test_fit_series_fleet_warns_when_workers_run_the_profiler(tmp_path):
    """Dask's statistical profiler grows worker memory with the work done: say so."""
    import dask
    from dask.distributed import Client, LocalCluster

    from capplan.runner.fleet_series import fit_series_fleet, profiling_workers

    with dask.config.set({"distributed.worker.profile.enabled": True}), \
            LocalCluster(n_workers=1, threads_per_worker=1, processes=False,
                         dashboard_address=None) as cluster, Client(cluster) as client:
        assert profiling_workers(client) == list(client.nthreads())
        with pytest.warns(RuntimeWarning, match="PROFILE__ENABLED=False"):
            res = fit_series_fleet(client, _load_series, ["3"], out_dir=tmp_path, horizon=24)
    assert res["worker_profiler_on"] == 1 and res["series"] == 1


def _fit_and_count(keys, load):
    """fit_chunk, then the worker's live Python objects and resident MiB (after a full gc)."""
    import gc

    from capplan.runner.fleet_series import fit_chunk, rss_mb

    fit_chunk(keys, load=load, horizon=24)
    gc.collect()
    return len(gc.get_objects()), rss_mb()


def test_worker_memory_does_not_grow_with_the_number_of_chunks(monkeypatch):
    """A LocalCluster worker from dask_client after chunk 15 and after chunk 45: the same live
    objects (within 300) and resident size (within 4 MiB).  Measured +155 to +182 objects (120 of
    them dead weakrefs in two pandas copy-on-write reference lists, which pandas prunes once they
    pass 500), +0.1 MiB; with Dask's profiler on (the default outside dask_client) +599 to +2,289
    objects, and this fails.  Dask's own bounded logs (stimuli, transitions: ``low-level-log-length`` entries) are made short so
    they are full before chunk 15; the profiler keeps that many 1-s cycles, longer than this."""
    # (the worker processes are spawned with this sys.path, so this module imports there)
    from capplan.runner.fleet import LOCAL_CLUSTER_CONFIG

    monkeypatch.setitem(LOCAL_CLUSTER_CONFIG, "distributed.admin.low-level-log-length", 40)
    with dask_client("", workers=1) as client:
        client.run(lambda: __import__("capplan.models.growth"))
        # no MALLOC_TRIM_THRESHOLD_ from the nanny: with it a series cost twice the CPU
        assert set(client.run(os.environ.get, "MALLOC_TRIM_THRESHOLD_").values()) == {None}

        def run(a, b):
            for c in range(a, b):
                keys = [str(3 * c % 50), str((3 * c + 1) % 50)]
                out = client.submit(_fit_and_count, keys, _load_series, pure=False).result()
            return out

        n15, rss15 = run(0, 15)
        n45, rss45 = run(15, 45)
    assert n45 - n15 <= 300, (n15, n45)
    assert rss45 - rss15 <= 4.0, (rss15, rss45)
