"""Prometheus mode with default params on a Prometheus that holds only seconds of history (issue
13, Windows): the default 30-day window's auto step (5 min) leaves a counter one point, so its
increases vanish and a ratio target says "no traffic".  The auto step must re-read the span the
data cover at the step it needs.  A real Prometheus (tests/promstack.py, 1 s scrapes) scrapes a
prometheus_client service under a bounded load."""
from __future__ import annotations

import threading
import time

import numpy as np
import pandas as pd
import pytest

from apiservice import ApiService, run_load, uniform_delays
from promstack import PromStack, StackError

from capplan.analysis.summary import evaluate_targets
from capplan.analysis.targets import parse_targets
from capplan.collect import promql
from capplan.store import open_store

QUERIES = [
    {"name": "http_requests_total", "kind": "counter", "unit": "requests",
     "promql": 'sum(http_requests_total{job="api"})'},
    {"name": "http_requests_failed_total", "kind": "counter", "unit": "requests",
     "promql": '0 * sum(http_requests_total{job="api"})'},      # no failures, same span
]
TARGET = [{"name": "API success ratio", "metric": "http_success_ratio", "min": 0.99}]


@pytest.fixture(scope="module")
def stack():
    svc = ApiService().start()
    truth: dict = {}
    # load from before Prometheus starts until after it is read: every point sees traffic
    loader = threading.Thread(target=lambda: truth.update(t=run_load(
        svc.url, seconds=16.0, workers=2, delays=uniform_delays(0.005, 0.02, seed=3))),
        daemon=True)
    loader.start()
    st = PromStack("", "", scrape_interval_s=1.0, exporters=False,
                   extra_targets={"api": f"127.0.0.1:{svc.port}"})
    try:
        st.start()
    except StackError as exc:
        svc.stop()
        pytest.fail(f"cannot start Prometheus: {exc}", pytrace=False)
    try:
        time.sleep(8.0)
        yield {"url": st.prometheus_url, "svc": svc, "truth": truth, "loader": loader}
    finally:
        loader.join(30)
        st.stop()
        svc.stop()


def _targets(tmp_path, frame):
    with open_store(str(tmp_path / "p.sqlite")) as db:
        db.append(frame)
        ser = db.series()
        start, end = pd.Timestamp(ser["first"].min()), pd.Timestamp(ser["last"].max())
        (f,) = evaluate_targets(db, parse_targets(TARGET, path="params"), start=start, end=end,
                                baseline_days=7, current_days=7)
    return f


def test_default_params_on_a_fresh_prometheus_see_the_traffic(stack, tmp_path, monkeypatch):
    monkeypatch.setenv("CAPPLAN_TEST_PROM", stack["url"])
    # days: 30 and step: auto as by default; min_step at the scrape interval (the default 15 s
    # would need 30 s of history in this test before a second point exists)
    cfg = {"url_env": "CAPPLAN_TEST_PROM", "metrics": [], "queries": QUERIES, "min_step": "1s"}
    frame, info = promql.history(cfg)
    assert info["step_refined"] is not None and info["step_refined"]["step_s"] == 300.0
    assert info["step_s"] == 1.0 and "re-read" in info["warnings"][0]
    tot = frame[frame["metric"] == "http_requests_total"].sort_values("timestamp")
    assert len(tot) >= 2
    seen = float(tot["value"].iloc[-1] - tot["value"].iloc[0])
    f = _targets(tmp_path, frame)
    assert "no events" not in (f.detail or "") and "no traffic" not in (f.detail or "")
    assert f.extra["evidence"]["requests"] == pytest.approx(seen)
    # the generator's truth between the first and last point (1 s scrapes: ±1 s at each end)
    stack["loader"].join(30)
    done = np.asarray(stack["truth"]["t"].done_at)
    t_first, t_last = (pd.Timestamp(x).timestamp() for x in (tot["timestamp"].iloc[0],
                                                            tot["timestamp"].iloc[-1]))
    rate = len(done) / (done.max() - done.min())
    want = float(((done > t_first) & (done <= t_last)).sum())
    print(f"\nfresh-prometheus figures: seen={seen:.0f} truth={want:.0f} rate={rate:.1f}/s "
          f"step={info['step_s']:g}s points={len(tot)}")
    assert seen > 0 and abs(seen - want) <= 2.5 * rate, (seen, want, rate)

    # the same window at the old coarse step: one point, the increases vanish
    coarse, info_c = promql.history({**cfg, "step": 300})
    assert info_c["step_refined"] is None
    c_tot = coarse[coarse["metric"] == "http_requests_total"]
    assert len(c_tot) <= 1
    (tmp_path / "coarse").mkdir()
    fc = _targets(tmp_path / "coarse", coarse)
    assert "0 requests" in fc.detail and "no events in the window" in fc.detail
