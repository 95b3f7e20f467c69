"""Worker pools: params checks, the analysis on the demo's simulated queue, and the workers-needed
figure against an independent M/M/c (Erlang C written out here, not capplan.models.queueing)."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from capplan.analysis.workers import analyse_worker_pool, littles_law_check, parse_worker_pools
from capplan.collect.demo import DEMO_WORKER_POOL, JOBS_FAST_S, JOBS_WORKERS, generate_demo_jobs
from capplan.errors import ConfigError
from capplan.store import open_store


def erlang_c(c: int, a: float) -> float:
    """P(wait) for M/M/c with offered load a = lambda*S (textbook sum form)."""
    rho = a / c
    top = a ** c / math.factorial(c) / (1 - rho)
    return top / (sum(a ** k / math.factorial(k) for k in range(c)) + top)


def p_wait_quantile(lam: float, s: float, c: int, p: float) -> float:
    a = lam * s
    if a >= c:
        return math.inf
    pw = erlang_c(c, a)
    return 0.0 if p <= 1 - pw else math.log(pw / (1 - p)) * s / (c - a)


def independent_workers(lam: float, s: float, target: float, p: float) -> int:
    c = 1
    while p_wait_quantile(lam, s, c, p) > target:
        c += 1
    return c


@pytest.fixture(scope="module")
def demo_findings(tmp_path_factory):
    path = tmp_path_factory.mktemp("workers") / "m.sqlite"
    with open_store(str(path)) as st:
        st.append(generate_demo_jobs(days=90))
        spec = parse_worker_pools([{**DEMO_WORKER_POOL}])[0]
        end = pd.Timestamp(st.series()["last"].max())
        fs = analyse_worker_pool(st, spec, end=end, horizon_days=30, lookback_days=60)
        alt = analyse_worker_pool(st, parse_worker_pools([{
            **{k: v for k, v in DEMO_WORKER_POOL.items() if k != "enqueued_metric"},
            "completed_metric": "jobs_completed_total"}])[0], end=end, horizon_days=30,
            lookback_days=60)
    return {f.id.rsplit(".", 1)[-1]: f for f in fs}, {f.id.rsplit(".", 1)[-1]: f for f in alt}


def test_workers_needed_matches_independent_mmc(demo_findings):
    fs, _ = demo_findings
    lam, s = fs["arrivals"].value, fs["service_time"].value
    assert s == pytest.approx(JOBS_FAST_S, rel=0.05)          # the simulated mean job time
    for key, mult in (("workers_needed_peak", 1.0), ("workers_needed_growth", 10.0)):
        want = independent_workers(lam * mult, s, 30.0, 0.95)
        assert fs[key].value == want, (key, lam, s)
    assert fs["workers_needed_growth"].value > 5 * JOBS_WORKERS
    wait = fs["wait"]
    assert wait.value == pytest.approx(p_wait_quantile(lam, s, JOBS_WORKERS, 0.95), rel=1e-9)
    assert "M/M/c" in wait.detail and "exponential" in wait.detail
    assert fs["utilisation"].value == pytest.approx(lam * s / JOBS_WORKERS)


def test_littles_law_holds_on_a_simulated_mmc_queue(demo_findings):
    fs, _ = demo_findings
    ll = fs["littles_law"]
    assert ll.status == "meets" and ll.extra["consistent"]
    obs, pred = ll.extra["observed_queue_mean"], ll.extra["predicted_queue_mean"]
    assert obs == pytest.approx(pred, rel=0.35)
    assert "Little" in ll.label


def test_littles_law_flags_a_queue_the_model_does_not_explain():
    idx = pd.date_range("2026-01-01", periods=48, freq="1h", tz="UTC")
    arrivals = pd.Series(0.1, index=idx)
    queue = pd.Series(8.0, index=idx)       # far more than M/M/5 predicts at rho = 0.5
    out = littles_law_check(arrivals, queue, 25.0, 5)
    assert not out["consistent"] and out["observed_wait_mean_s"] == pytest.approx(80.0)


def test_completed_plus_queue_change_gives_the_same_arrivals(demo_findings):
    fs, alt = demo_findings
    assert alt["arrivals"].value == pytest.approx(fs["arrivals"].value, rel=0.1)
    assert "change of job_queue_depth" in alt["arrivals"].detail


def test_runway_on_the_arrival_rate(demo_findings):
    fs, _ = demo_findings
    rw = fs["runway"]
    assert rw.status in ("crosses", "at risk", "not within horizon")
    assert rw.extra["limit"] > fs["arrivals"].value         # today's peak meets the target
    assert "jobs/min" in rw.detail


@pytest.mark.parametrize("entry, key", [
    ({"name": "x", "queue_metric": "q", "wait_target_s": 1, "service_time_metric": "d",
      "workers": 2}, "exactly one of enqueued_metric"),
    ({"name": "x", "queue_metric": "q", "wait_target_s": 1, "enqueued_metric": "e_total",
      "workers": 2}, "service_time_metric"),
    ({"name": "x", "queue_metric": "q", "wait_target_s": 1, "enqueued_metric": "e",
      "service_time_metric": "d", "workers": 2}, "_total"),
    ({"name": "x", "queue_metric": "q", "wait_target_s": 1, "enqueued_metric": "e_total",
      "service_time_metric": "d", "workers": 0}, "workers"),
    ({"name": "x", "queue_metric": "q", "wait_target_s": 1, "enqueued_metric": "e_total",
      "service_time_metric": "d", "workers": 2, "wait_percentile": 95}, "wait_percentile"),
    ({"name": "x", "queue_metric": "q", "wait_target_s": 1, "enqueued_metric": "e_total",
      "service_time_metric": "d", "workers": 2, "wokers": 3}, "unknown key"),
])
def test_bad_entries_are_refused(entry, key):
    with pytest.raises(ConfigError, match=key):
        parse_worker_pools([entry], path="params/x.yaml")


def test_missing_data_is_a_finding_not_a_crash(tmp_path):
    with open_store(str(tmp_path / "m.sqlite")) as st:
        st.append(generate_demo_jobs(days=2))
        spec = parse_worker_pools([{**DEMO_WORKER_POOL, "queue_metric": "nope"}])[0]
        fs = analyse_worker_pool(st, spec, end=pd.Timestamp(st.series()["last"].max()))
    assert [f.status for f in fs] == ["insufficient data"] and "nope" in fs[0].detail


def test_demo_report_has_the_worker_pool_section(demo_run):
    import json

    summary = json.loads((demo_run.run_dir / "summary.json").read_text())
    fs = {f["id"].rsplit(".", 1)[-1]: f for f in summary["sections"]["workers"]}
    lam, s = fs["arrivals"]["value"], fs["service_time"]["value"]
    target = fs["workers_needed_growth"]["extra"]["wait_target_s"]
    for key, mult in (("workers_needed_peak", 1.0), ("workers_needed_growth", 10.0)):
        assert fs[key]["value"] == independent_workers(lam * mult, s, target, 0.95)
    md = (demo_run.run_dir / "report.md").read_text()
    assert "### Job worker pools" in md and "workers needed at 10x today's peak" in md
    assert "Little's law" in md and "arrival-rate runway" in md
