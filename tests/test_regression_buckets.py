"""Block-bootstrap regression detection over time buckets (capplan.models.regression_buckets)."""

from __future__ import annotations

import numpy as np
import pytest

from capplan.models.regression import compare_samples
from capplan.models.regression_buckets import (MIN_BUCKETS, block_length, bucketize,
                                               compare_bucket_means, compare_buckets,
                                               compare_run_values, pool_runs)


def _run(rng, seconds=60, rps=400, level_sd=0.25, scale=1.0, phi=0.5):
    """Requests whose latency level wanders from second to second (AR(1) on the log level):
    the autocorrelation real load tests have."""
    n = seconds * rps
    t = np.sort(rng.uniform(0, seconds, n))
    lvl = np.zeros(seconds)
    for i in range(1, seconds):
        lvl[i] = phi * lvl[i - 1] + rng.normal(0, level_sd)
    lat = 0.002 * scale * np.exp(lvl[np.minimum(t.astype(int), seconds - 1)]) \
        * rng.lognormal(0, 0.3, n)
    return t, lat


def test_bucketize_keeps_empty_seconds_and_drops_the_partial_last_bucket():
    t = np.array([0.0, 0.2, 0.5, 2.1, 2.2, 3.05])
    tb = bucketize(t, np.full(6, 0.01), [0, 0, 1, 0, 0, 0], width_s=1.0)
    assert tb.k == 3 and tb.requests.tolist() == [3, 0, 2]   # 3.05 s is past the last full one
    assert tb.errors.tolist() == [1, 0, 0] and tb.latencies.size == 5
    with pytest.raises(ValueError):
        bucketize(t, width_s=0)


def test_block_length_grows_like_the_cube_root():
    assert [block_length(k) for k in (1, 8, 27, 30, 1000)] == [1, 2, 3, 4, 10]


def test_autocorrelated_runs_fool_the_iid_bootstrap_but_not_the_block_bootstrap():
    """Same configuration, 20 pairs: request-by-request resampling flags most of them, the
    block bootstrap over seconds (almost) none."""
    rng = np.random.default_rng(5)
    iid = blocks = 0
    for k in range(20):
        (tb_, lb), (tc_, lc) = _run(rng), _run(rng)
        iid += compare_samples(lb, lc, stats=("p50", "mean"), seed=k).verdict != \
            "no detectable change"
        res = compare_buckets(bucketize(tb_, lb, width_s=1.0), bucketize(tc_, lc, width_s=1.0),
                              metrics=("latency_p50", "latency_mean"), seed=k, n_boot=400)
        blocks += res.verdict != "no detectable change"
    assert iid >= 10, iid
    assert blocks <= 3, blocks          # measured: 14 vs 2 of 20 (phi 0.5), 17 vs 4 (phi 0.8)


def test_a_real_shift_is_detected_with_the_right_sign():
    rng = np.random.default_rng(8)
    (t1, l1), (t2, l2) = _run(rng, level_sd=0.05), _run(rng, level_sd=0.05, scale=1.5)
    res = compare_buckets(bucketize(t1, l1, width_s=1.0), bucketize(t2, l2, width_s=1.0),
                          n_boot=400)
    assert res["latency_p95"].verdict == "worse" and res["latency_p95"].ratio_lo > 1.2
    assert res["throughput"].verdict == "no detectable change"
    assert res["error_rate"].verdict == "insufficient data"     # no failure flags given
    assert "no per-request failure counts" in res["error_rate"].reason


def test_too_few_buckets_and_samples_are_insufficient():
    rng = np.random.default_rng(1)
    t, lat = _run(rng, seconds=MIN_BUCKETS - 2)
    tb = bucketize(t, lat, width_s=1.0)
    res = compare_buckets(tb, tb, n_boot=200)
    assert {c.verdict for c in res.comparisons} == {"insufficient data"}
    t, lat = _run(rng, seconds=20, rps=10)       # 200 latencies: p99 needs 368
    tb = bucketize(t, lat, np.zeros(t.size), width_s=1.0)
    res = compare_buckets(tb, tb, n_boot=200)
    assert res["latency_p99"].verdict == "insufficient data"
    assert res["latency_p50"].verdict == "no detectable change"


def test_pooled_runs_resample_runs_first():
    rng = np.random.default_rng(2)
    runs_b = [bucketize(*_run(rng, seconds=20), width_s=1.0) for _ in range(3)]
    pooled = pool_runs(runs_b)
    assert pooled.n_runs == 3 and pooled.k == sum(r.k for r in runs_b) and pooled.latencies.size == \
        sum(r.latencies.size for r in runs_b)
    res = compare_buckets(pooled, pool_runs([bucketize(*_run(rng, seconds=20), width_s=1.0)
                                             for _ in range(3)]),
                          metrics=("latency_mean",), n_boot=400)
    assert "3/3 runs" in res.comparisons[0].method and "Welch t" in res.comparisons[0].method


def test_per_run_values_and_bucket_means():
    one = compare_run_values([1.0], [2.0], unit="seconds", higher_is_worse=True)
    assert one.verdict == "insufficient data" and "2 runs a side" in one.reason
    worse = compare_run_values([1.0, 1.05, 0.97], [2.0, 2.1, 1.9], unit="seconds",
                               higher_is_worse=True)
    assert worse.verdict == "worse" and worse.ratio_lo > 1.5
    rng = np.random.default_rng(4)
    same = compare_bucket_means(rng.normal(5, 0.5, 60), rng.normal(5, 0.5, 60),
                                unit="bytes", higher_is_worse=True)
    up = compare_bucket_means(rng.normal(5, 0.5, 60), rng.normal(7, 0.5, 60), unit="bytes",
                              higher_is_worse=None)
    assert same.verdict == "no detectable change" and up.verdict == "increased"
