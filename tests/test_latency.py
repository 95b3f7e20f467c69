"""analysis.latency: quantiles and SLO fractions from stored bucket counters (with a restart)."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from capplan.analysis import latency
from capplan.core.frame import make_frame
from capplan.store import open_store

LE = ["0.05", "0.1", "0.25", "0.5", "+Inf"]


def _frame(seed: int = 3):
    """Two instances scraped every 15 s for 2 h; latencies lognormal; instance b restarts."""
    rng = np.random.default_rng(seed)
    t0 = pd.Timestamp("2026-05-01T00:00Z")
    bounds = np.array([0.05, 0.1, 0.25, 0.5, np.inf])
    rows, truth = [], []
    for inst in ("a", "b"):
        cum = np.zeros(len(bounds))
        for k in range(480):
            lat = rng.lognormal(np.log(0.08), 0.6, size=rng.poisson(20))
            truth.extend(lat.tolist() if k > 0 else [])
            cum = cum + (lat[:, None] <= bounds[None, :]).sum(axis=0)
            if inst == "b" and k == 240:                  # restart: counters from zero again
                cum = (lat[:, None] <= bounds[None, :]).sum(axis=0).astype(float)
            for le, c in zip(LE, cum):
                rows.append({"timestamp": t0 + pd.Timedelta(seconds=15 * k), "source":
                             f"metrics:{inst}", "metric": "api_latency_seconds_bucket",
                             "labels": {"le": le, "instance": inst}, "value": float(c),
                             "kind": "counter", "unit": "count"})
    return make_frame(rows), np.asarray(truth)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    frame, truth = _frame()
    with open_store(str(tmp_path_factory.mktemp("lat") / "m.sqlite")) as st:
        st.append(frame)
        yield st, truth


def test_window_quantile_within_its_bucket_of_the_truth(store):
    st, truth = store
    q = latency.window_quantile(st, "api_latency_seconds_bucket", 0.95)
    assert q.n == len(truth)                          # the restart lost no observation
    assert q.lower < np.quantile(truth, 0.95) <= q.upper
    assert abs(q.value - np.quantile(truth, 0.95)) <= q.width


def test_slo_fraction_exact_on_a_bound_and_bounded_otherwise(store):
    st, truth = store
    ex = latency.slo_fraction(st, "api_latency_seconds_bucket", 0.1)
    assert ex.exact and ex.value == pytest.approx(np.mean(truth <= 0.1), abs=1e-12)
    ap = latency.slo_fraction(st, "api_latency_seconds_bucket", 0.3)
    assert not ap.exact and ap.lower <= np.mean(truth <= 0.3) <= ap.upper


def test_quantile_series_per_grain_and_per_source(store):
    st, _truth = store
    s = latency.quantile_series(st, "api_latency_seconds_bucket", 0.5, grain="30min")
    assert len(s) == 4 and s["n"].sum() > 0 and (s["lower"] <= s["value"]).all()
    one = latency.window_quantile(st, "api_latency_seconds_bucket", 0.5, source="metrics:a")
    assert 0 < one.n < latency.window_quantile(st, "api_latency_seconds_bucket", 0.5).n
    assert not math.isnan(one.value)
