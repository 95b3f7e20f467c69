"""Regression detection: bootstrap comparisons of samples, Poisson rates and summary figures."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from capplan.models.regression import (VERDICTS, _boot, compare_rates, compare_samples,
                                       compare_summaries, min_samples)


def latencies(n: int, seed: int, scale: float = 1.0) -> np.ndarray:
    """Log-normal request latencies in seconds (median 100 ms, p99 about 400 ms)."""
    return np.random.default_rng(seed).lognormal(np.log(0.1), 0.6, n) * scale


# ------------------------------------------------------------------------------------ samples


def test_injected_regression_is_worse_in_every_statistic():
    base, cur = latencies(4000, 1), latencies(4000, 2, scale=1.3)
    r = compare_samples(base, cur)
    assert r.verdict == "worse"
    for stat in ("p50", "p95", "p99", "mean"):
        c = r[stat]
        assert c.verdict == "worse", c.reason
        assert c.ratio_lo < 1.3 < c.ratio_hi or abs(c.ratio - 1.3) < 0.1
        assert c.ratio_lo > 1.05 and c.diff_lo > 0
    assert r["p95"].reason.startswith("p95 ") and r["p95"].reason.endswith(": worse")
    assert "p95" in r.reason and len(r.worse) == 4
    json.dumps(r.to_dict(), allow_nan=False)


def test_improvement_is_better():
    r = compare_samples(latencies(4000, 1), latencies(4000, 2, scale=0.7))
    assert r.verdict == "better" and {c.verdict for c in r.comparisons} == {"better"}


def test_identical_distributions_show_no_detectable_change():
    r = compare_samples(latencies(3000, 100), latencies(3000, 101))
    assert r.verdict == "no detectable change"
    assert r.reason == "no detectable change in p50, p95, p99, mean (n=3,000 vs 3,000)"
    assert all(c.ratio_lo < 1 < c.ratio_hi for c in r.comparisons)
    # false alarms over many pairs stay near the Bonferroni-adjusted 5 % family level
    # (four unadjusted 95 % intervals gave about 11 % here)
    verdicts = [compare_samples(latencies(n, 2 * s), latencies(n, 2 * s + 1), seed=s,
                                n_boot=1000).verdict
                for s in range(40) for n in (400, 3000)]
    assert verdicts.count("no detectable change") >= 76, verdicts


def test_intervals_are_bonferroni_adjusted_over_the_statistics():
    r = compare_samples(latencies(1000, 1), latencies(1000, 2))
    assert r.conf == 0.95 and {c.conf for c in r.comparisons} == {1 - 0.05 / 4}
    assert "98.75% CI" in r["p50"].reason
    one = compare_samples(latencies(1000, 1), latencies(1000, 2), stats=("p50",))
    assert one["p50"].conf == 0.95
    raw = compare_samples(latencies(1000, 1), latencies(1000, 2), adjust=False)
    assert raw["p95"].ratio_hi - raw["p95"].ratio_lo < r["p95"].ratio_hi - r["p95"].ratio_lo


def test_small_but_certain_change_is_below_the_practical_effect():
    base = latencies(200_000, 7)
    r = compare_samples(base, base * 1.02, stats=("p50", "mean"))
    c = r["p50"]
    assert c.ratio_lo > 1.0 and c.verdict == "no detectable change"
    assert "below the 5% minimum practical effect" in c.reason
    assert compare_samples(base, base * 1.02, stats=("p50",), min_effect=0.01).verdict == "worse"


def test_tiny_samples_are_insufficient_data_with_the_minimum_stated():
    r = compare_samples(latencies(20, 1), latencies(25, 2, scale=3.0))
    assert r.verdict == "insufficient data"
    assert all(c.verdict == "insufficient data" for c in r.comparisons)
    assert "need at least 368 a side" in r["p99"].reason
    assert "have 20 and 25" in r["p99"].reason and r["p99"].min_n == 368
    assert r["p50"].min_n == 30 and r["mean"].min_n == 30
    json.dumps(r.to_dict(), allow_nan=False)
    # enough for the median, not for p99: judged where possible, refused where not
    r = compare_samples(latencies(200, 1), latencies(200, 2, scale=1.5))
    assert r["p50"].verdict == "worse" and r["p99"].verdict == "insufficient data"
    assert r.verdict == "worse"


def test_min_samples_per_statistic():
    assert (min_samples("p50"), min_samples("p95"), min_samples("p99"), min_samples("mean")) == \
        (30, 72, 368, 30)
    with pytest.raises(ValueError, match="unknown statistic"):
        min_samples("median")


def test_order_statistic_bootstrap_matches_brute_force_resampling():
    x = np.sort(latencies(300, 4))
    rng = np.random.default_rng(0)
    fast = _boot(x, "p95", 10_000, rng)
    idx = rng.integers(0, x.size, size=(10_000, x.size))
    slow = np.quantile(x[idx], 0.95, axis=1, method="inverted_cdf")
    qs = [0.025, 0.25, 0.5, 0.75, 0.975]
    assert np.quantile(fast, qs) == pytest.approx(np.quantile(slow, qs), rel=0.02)


def test_results_are_reproducible_and_inputs_checked():
    a, b = latencies(500, 1), latencies(500, 2, scale=1.1)
    assert compare_samples(a, b, seed=3).to_dict() == compare_samples(a, b, seed=3).to_dict()
    with np.errstate(all="ignore"):
        with_nan = np.append(a, np.nan)
    assert compare_samples(with_nan, b, seed=3)["p50"].n_baseline == 500
    with pytest.raises(ValueError, match="infinities"):
        compare_samples(np.append(a, np.inf), b)
    with pytest.raises(ValueError, match="n_boot"):
        compare_samples(a, b, n_boot=10)
    with pytest.raises(KeyError, match="no statistic 'p90'"):
        compare_samples(a, b)["p90"]


# -------------------------------------------------------------------------------------- rates


def test_rate_ratio_interval_is_the_exact_conditional_one():
    c = compare_rates(60_000, 60, 55_000, 60)
    ci = stats.binomtest(55_000, 115_000).proportion_ci(confidence_level=0.95, method="exact")
    assert c.ratio_lo == pytest.approx(ci.low / (1 - ci.low), rel=1e-9)
    assert c.ratio_hi == pytest.approx(ci.high / (1 - ci.high), rel=1e-9)
    assert c.ratio == pytest.approx(55 / 60) and c.verdict == "worse"     # throughput fell 8%
    assert c.baseline == 1000 and "1,000 req/s" in c.reason


def test_rates_with_different_durations_and_small_counts():
    same = compare_rates(600, 60, 1190, 120)
    assert same.ratio == pytest.approx(1190 / 1200) and same.verdict == "no detectable change"
    assert compare_rates(1000, 10, 2000, 10).verdict == "better"
    errors = compare_rates(100, 3600, 200, 3600, higher_is_worse=True, unit="per_second",
                           name="error rate")
    assert errors.verdict == "worse"
    few = compare_rates(5, 60, 590, 60)
    assert few.verdict == "insufficient data" and "need at least 10" in few.reason
    with pytest.raises(ValueError, match="positive duration"):
        compare_rates(10, 0, 10, 60)


# ---------------------------------------------------------------------------- summary figures


def wilson_figure(k: int, n: int, **extra) -> dict:
    lo, hi = proportion_confint(k, n, method="wilson")
    return {"value": k / n, "interval": [lo, hi], "n": n, "unit": "ratio", **extra}


def test_summary_difference_of_wilson_figures_is_newcombes_interval():
    # Newcombe (1998), Stat Med 17:873, example (a): 56/70 - 48/80, method 10: 0.0524 to 0.3339
    c = compare_summaries(wilson_figure(48, 80), wilson_figure(56, 70),
                          name="hit ratio", higher_is_worse=False)
    assert c.diff == pytest.approx(0.2)
    assert c.diff_lo == pytest.approx(0.0524, abs=5e-5)
    assert c.diff_hi == pytest.approx(0.3339, abs=5e-5)
    assert c.verdict == "better" and "+20.0 pp" in c.reason


def test_summary_small_sample_target_is_no_detectable_change():
    before = wilson_figure(27, 34, name="Redis hit ratio", target={"direction": "min"})
    after = wilson_figure(30, 34, target={"direction": "min"})
    c = compare_summaries(before, after)
    assert c.higher_is_worse is False and c.verdict == "no detectable change"
    assert c.name == "Redis hit ratio"


def test_summary_latency_regression_and_direction_inference():
    before = {"name": "API p95", "value": 0.200, "interval": [0.190, 0.212], "n": 5000,
              "unit": "seconds"}
    after = {"value": 0.260, "interval": [0.247, 0.274], "n": 5000, "unit": "seconds"}
    c = compare_summaries(before, after)
    assert c.verdict == "worse" and c.ratio == pytest.approx(1.3)
    assert c.ratio_lo > 1.05 and c.reason.startswith("API p95 200 ms → 260 ms (+30.0%")
    assert compare_summaries(after, before).verdict == "better"
    size_a = {"name": "db size", "value": 1.0e9, "unit": "bytes"}
    size_b = {"value": 1.2e9, "unit": "bytes"}
    grown = compare_summaries(size_a, size_b)
    assert grown.verdict == "increased" and "taken as exact" in grown.reason
    assert compare_summaries(size_a, {"value": 1.01e9, "unit": "bytes"}).verdict == \
        "no detectable change"
    json.dumps(grown.to_dict(), allow_nan=False)


def test_summary_missing_data_and_mismatches():
    ok = {"value": 0.2, "interval": [0.19, 0.21], "n": 100, "unit": "seconds"}
    assert compare_summaries({"value": None, "unit": "seconds"}, ok).verdict == \
        "insufficient data"
    assert compare_summaries({**ok, "n": 0}, ok).verdict == "insufficient data"
    with pytest.raises(ValueError, match="units differ"):
        compare_summaries(ok, {**ok, "unit": "ratio"})
    with pytest.raises(ValueError, match="confidence levels differ"):
        compare_summaries(ok, {**ok, "conf": 0.8})
    assert set(VERDICTS) >= {"worse", "better", "no detectable change", "insufficient data"}


def test_summary_accepts_finding_dicts():
    from capplan.analysis.findings import Finding

    before = Finding(id="api_p95", section="baseline", label="API p95 latency", value=0.2,
                     unit="seconds", interval=(0.19, 0.21), n=4000, status="meets").to_dict()
    after = Finding(id="api_p95", section="baseline", label="API p95 latency", value=0.26,
                    unit="seconds", interval=(0.25, 0.27), n=4000, status="misses").to_dict()
    c = compare_summaries(before, after)
    assert c.name == "API p95 latency" and c.verdict == "worse"
    hit = dict(Finding(id="hit", section="baseline", label="hit", value=0.9, unit="ratio",
                       interval=(0.89, 0.91), n=9000, extra={"target": {"direction": "min"}}
                       ).to_dict())
    assert compare_summaries(hit, {**hit, "value": 0.8, "interval": [0.79, 0.81]}).verdict == \
        "worse"
