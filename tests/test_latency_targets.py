"""Latency targets and SLOs from histogram bucket counters (issue 14 item 2), through the same
target evaluation as every other target (time blocks, statuses), on a real SQLite store filled
with bucket counters whose true quantiles are known by construction."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from capplan.analysis.summary import evaluate_targets
from capplan.analysis.targets import parse_targets
from capplan.core.frame import make_frame
from capplan.errors import ConfigError
from capplan.store import open_store

METRIC = "http_request_duration_seconds"
BOUNDS = np.array([0.05, 0.1, 0.25, 0.5, 1.0, np.inf])
LE = ["0.05", "0.1", "0.25", "0.5", "1", "+Inf"]


def _store(path, per_minute, hours=24, source="metrics:api"):
    """Bucket counters scraped every minute for ``hours``; each minute observes the latencies
    ``per_minute`` (deterministic, so every true quantile and fraction is known)."""
    t0 = pd.Timestamp("2026-11-30T00:00Z")
    lat = np.asarray(per_minute, float)
    step = (lat[:, None] <= BOUNDS[None, :]).sum(axis=0).astype(float)
    rows = []
    for k in range(hours * 60 + 1):
        cum = step * k
        for le, c in zip(LE, cum):
            rows.append({"timestamp": t0 + pd.Timedelta(minutes=k), "source": source,
                         "metric": f"{METRIC}_bucket", "labels": {"le": le}, "value": float(c),
                         "kind": "counter", "unit": "count"})
    st = open_store(str(path))
    st.append(make_frame(rows))
    return st


def _eval(st, entries):
    ser = st.series()
    start, end = pd.Timestamp(ser["first"].min()), pd.Timestamp(ser["last"].max())
    return {f.label: f for f in evaluate_targets(st, parse_targets(entries, path="params"),
                                                 start=start, end=end, baseline_days=7,
                                                 current_days=7)}


FAST = np.linspace(0.004, 0.2, 50)          # true p95 = 0.1902 s, all <= 0.2 s


@pytest.fixture(scope="module")
def fast(tmp_path_factory):
    st = _store(tmp_path_factory.mktemp("lat_fast") / "m.sqlite", FAST)
    yield st
    st.close()


def test_p95_target_from_buckets_meets_on_a_bucket_bound(fast):
    f = _eval(fast, [{"name": "API p95 latency", "metric": METRIC, "statistic": "p95",
                      "max": 0.25}])["API p95 latency"]
    true_p95 = float(np.quantile(FAST, 0.95))
    # PromQL's interpolation inside the bucket (0.1, 0.25]: 60% of the minute is <= 0.1 s
    frac_01 = float((FAST <= 0.1).mean())
    assert f.value == pytest.approx(0.1 + 0.15 * (0.95 - frac_01) / (1 - frac_01))
    lo, hi = f.interval
    assert lo <= true_p95 <= hi and (lo, hi) == (0.1, 0.25)   # widened to the bucket bounds
    assert f.status == "meets"
    ev = f.extra["evidence"]
    assert ev["blocks"] == 24 and ev["block"] == "hour"
    assert ev["requests"] == 50 * 24 * 60
    assert "bucket (0.1, 0.25]" in f.detail and "precision 0.15" in f.detail


def test_p95_target_inside_the_bucket_cannot_be_decided(fast):
    f = _eval(fast, [{"name": "p95 under 200 ms", "metric": METRIC, "statistic": "p95",
                      "max": 0.2}])["p95 under 200 ms"]
    assert f.status == "insufficient evidence"        # 0.2 s lies inside the (0.1, 0.25] bucket
    assert f.interval == (0.1, 0.25) and "bucket (0.1, 0.25]" in f.detail


def test_p95_above_the_top_bucket_is_a_miss_with_a_lower_limit(tmp_path):
    st = _store(tmp_path / "slow.sqlite", np.linspace(0.6, 2.0, 50))
    f = _eval(st, [{"name": "slow p95", "metric": METRIC, "statistic": "p95",
                    "max": 0.5}])["slow p95"]
    assert f.status == "misses"
    assert f.interval is None or f.interval[1] is None
    assert "above the highest finite bucket bound" in f.detail
    assert f.extra["evidence"]["histogram"]["open_ended"] is True


def test_latency_slo_is_exact_on_a_bucket_bound(tmp_path):
    # 49 fast requests and one at 0.4 s per minute: exactly 98% under 0.25 s
    st = _store(tmp_path / "slo.sqlite", np.r_[np.linspace(0.01, 0.2, 49), 0.4])
    fs = _eval(st, [
        {"name": "99% under 250 ms", "slo": "latency", "metric": METRIC, "threshold": 0.25,
         "objective": 0.99, "window": "1d"},
        {"name": "97% under 300 ms", "slo": "latency", "metric": METRIC, "threshold": 0.3,
         "objective": 0.97, "window": "1d"}])
    exact = fs["99% under 250 ms"]
    assert exact.value == pytest.approx(0.98, abs=1e-12)
    assert exact.extra["evidence"]["exact"] is True
    assert exact.status == "misses"
    assert "exact: 0.25 is a bucket bound" in exact.detail
    approx = fs["97% under 300 ms"]
    assert approx.extra["evidence"]["exact"] is False
    assert "not exact: 0.3 is not a bucket bound" in approx.detail
    # the true 98% lies between the fractions at le=0.25 and le=0.5 (98% .. 100%)
    assert approx.extra["histogram"]["lower"] == pytest.approx(0.98)
    assert approx.extra["histogram"]["upper"] == pytest.approx(1.0)
    assert approx.status == "meets"


def test_histogram_slo_needs_a_threshold():
    with pytest.raises(ConfigError, match="threshold"):
        parse_targets([{"name": "x", "slo": "latency", "metric": METRIC, "objective": 0.99}],
                      path="p.yaml")
