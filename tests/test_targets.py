"""Targets and SLOs: params validation, Wilson and order-statistic intervals, statuses, budgets."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportion_confint

from capplan.errors import ConfigError
from capplan.models.percentiles import percentile_interval, percentile_min_samples
from capplan.analysis.slo import evaluate_slo, evaluate_slo_target
from capplan.analysis.targets import (STATUSES, Target, evaluate_proportion, evaluate_samples,
                             evaluate_value, parse_targets, sort_findings)

PARAMS = "params/demo.yaml"

HIT = {"name": "Redis hit ratio", "metric": "redis_keyspace_hit_ratio", "min": 0.80,
       "warn": 0.85, "crit": 0.75}
P95 = {"name": "API p95 latency", "metric": "http_request_duration_seconds", "statistic": "p95",
       "max": 0.25, "warn": 0.20}
AVAIL = {"name": "Availability", "slo": "availability", "objective": 0.999, "window": "30d",
         "good_metric": "http_requests_ok_total", "total_metric": "http_requests_total"}
ERRORS = {"name": "Error rate", "slo": "error_rate", "objective": 0.01, "window": "7d",
          "bad_metric": "http_requests_failed_total", "total_metric": "http_requests_total"}


@pytest.fixture()
def targets():
    return {t.name: t for t in parse_targets([HIT, P95, AVAIL, ERRORS], path=PARAMS)}


# ------------------------------------------------------------------------------------- params


def test_parse_infers_direction_unit_and_statistic(targets):
    hit, p95 = targets["Redis hit ratio"], targets["API p95 latency"]
    assert (hit.direction, hit.bound, hit.unit, hit.statistic) == ("min", 0.8, "ratio", "ratio")
    assert (p95.direction, p95.bound, p95.unit, p95.quantile) == ("max", 0.25, "seconds", 0.95)
    avail, err = targets["Availability"], targets["Error rate"]
    assert avail.is_slo and avail.window == pd.Timedelta(days=30) and avail.direction == "min"
    assert err.direction == "max" and err.window == pd.Timedelta(days=7)
    json.dumps([t.to_dict() for t in targets.values()], allow_nan=False)


@pytest.mark.parametrize("entry, key, words", [
    ({**HIT, "mn": 0.8}, "targets[0].mn", ["unknown key 'mn'", "did you mean 'min'",
                                           "allowed keys", "Redis hit ratio"]),
    ({"name": "x", "metric": "a_ratio", "min": 0.8, "max": 0.9}, "targets[0].max",
     ["exactly one of 'min' or 'max'"]),
    ({"name": "x", "metric": "a_ratio"}, "targets[0].min", ["exactly one"]),
    ({**HIT, "warn": 0.7}, "targets[0].warn", ["warn 0.7 must be at or above the min 0.8"]),
    ({**HIT, "crit": 0.9}, "targets[0].crit", ["crit 0.9 must be at or below"]),
    ({**P95, "warn": 0.3}, "targets[0].warn", ["at or below the max 0.25"]),
    ({**P95, "statistic": "median"}, "targets[0].statistic", ["unknown statistic 'median'"]),
    ({**HIT, "min": "80%"}, "targets[0].min", ["must be a finite number"]),
    ({**HIT, "min": True}, "targets[0].min", ["must be a finite number"]),
    ({**HIT, "min": 80}, "targets[0].min", ["a ratio target must lie in [0, 1]"]),
    ({**HIT, "unit": "furlongs"}, "targets[0].unit", ["unknown unit"]),
    ({**HIT, "metric": "Redis-Hits"}, "targets[0].metric", ["not snake_case"]),
    ({**AVAIL, "window": "a month"}, "targets[0].window", ["cannot read window"]),
    ({**AVAIL, "objective": 99.9}, "targets[0].objective", ["strictly between 0 and 1"]),
    ({**AVAIL, "slo": "uptime"}, "targets[0].slo", ["unknown SLO kind"]),
    ({k: v for k, v in AVAIL.items() if k != "total_metric"}, "targets[0].total_metric",
     ["total_metric and exactly one of good_metric, bad_metric"]),
    ({**AVAIL, "bad_metric": "x_total"}, "targets[0].good_metric", ["exactly one of"]),
    ({**AVAIL, "warn": 0.99}, "targets[0].warn", ["at or above the min 0.999"]),
    ({"metric": "a_ratio", "min": 0.5}, "targets[0].name", ["'name' is required"]),
])
def test_parse_errors_name_file_entry_and_key(entry, key, words):
    with pytest.raises(ConfigError) as info:
        parse_targets([entry], path=PARAMS)
    text = str(info.value)
    assert info.value.path == PARAMS and info.value.key == key
    assert text.startswith(f"{PARAMS}: key '{key}'")
    for w in words:
        assert w in text


def test_parse_rejects_duplicates_and_non_lists():
    with pytest.raises(ConfigError, match=r"targets\[1\].*duplicate target name 'Redis hit ratio'"):
        parse_targets([HIT, HIT], path=PARAMS)
    with pytest.raises(ConfigError, match="must be a list"):
        parse_targets({"x": 1}, path=PARAMS)
    with pytest.raises(ConfigError, match=r"targets\[0\] must be a mapping"):
        parse_targets(["x"], path=PARAMS)
    assert parse_targets(None, path=PARAMS) == ()


# ------------------------------------------------------------------------------- proportions


@pytest.mark.parametrize("k, n, lo, hi", [
    # Newcombe (1998), Stat Med 17:857, Table I, method 3 (Wilson score, no correction)
    (81, 263, 0.2553, 0.3662), (15, 148, 0.0624, 0.1605), (0, 20, 0.0000, 0.1611),
    (1, 29, 0.0061, 0.1718),
    (27, 34, 0.6320, 0.8965),
])
def test_wilson_interval_matches_published_and_statsmodels(k, n, lo, hi):
    t = Target(name="t", direction="min", bound=0.5, unit="ratio", statistic="ratio")
    s = evaluate_proportion(k, n, t)
    assert s.lo == pytest.approx(lo, abs=5e-5) and s.hi == pytest.approx(hi, abs=5e-5)
    ref = proportion_confint(k, n, alpha=0.05, method="wilson")
    assert (s.lo, s.hi) == pytest.approx(ref, abs=1e-12)


def test_27_of_34_is_insufficient_evidence_and_34000_is_definite(targets):
    hit = targets["Redis hit ratio"]
    small = evaluate_proportion(27, 34, hit)
    assert small.status == "insufficient evidence"
    assert small.reason == ("27/34 = 79.4% (95% CI 63.2–89.7%): interval straddles the 80% "
                            "minimum")
    big = evaluate_proportion(27_000, 34_000, hit)
    assert big.value == pytest.approx(small.value)
    assert big.status == "misses" and not big.critical
    assert big.hi < 0.80 and big.reason.endswith("interval below the 80% minimum")
    d = small.to_dict()
    assert d["interval"] == [pytest.approx(0.63202, abs=1e-5), pytest.approx(0.89650, abs=1e-5)]
    assert (d["n"], d["successes"], d["status"], d["unit"]) == (34, 27, small.status, "ratio")
    assert d["thresholds"] == {"target": 0.8, "warn": 0.85, "crit": 0.75}
    json.dumps(d, allow_nan=False)


@pytest.mark.parametrize("k, n, status, critical", [
    (3300, 3400, "meets", False),          # 97.1% (96.4–97.6%)
    (2900, 3400, "at risk", False),        # 85.3% (84.1–86.4%): reaches the 85% warning
    (2000, 3400, "misses", True),          # 58.8%: past the 75% critical threshold
    (2650, 3400, "misses", False),         # 77.9% (76.5–79.3%): below 80%, not below 75%
    (0, 0, "insufficient evidence", False),
])
def test_proportion_statuses(targets, k, n, status, critical):
    s = evaluate_proportion(k, n, targets["Redis hit ratio"])
    assert (s.status, s.critical) == (status, critical)


def test_no_traffic_is_no_data_not_zero(targets):
    s = evaluate_proportion(0, 0, targets["Redis hit ratio"])
    assert s.value is None and s.lo is None and "no traffic" in s.reason
    json.dumps(s.to_dict(), allow_nan=False)


def test_impossible_counts_are_refused(targets):
    with pytest.raises(ValueError, match="exceed n"):
        evaluate_proportion(35, 34, targets["Redis hit ratio"])
    with pytest.raises(ValueError, match="non-negative"):
        evaluate_proportion(-1, 34, targets["Redis hit ratio"])


# ----------------------------------------------------------------------- values and percentiles


def test_evaluate_value_on_a_max_target(targets):
    p95 = targets["API p95 latency"]
    assert evaluate_value(0.18, 0.17, 0.19, 900, p95).status == "meets"
    assert evaluate_value(0.22, 0.21, 0.23, 900, p95).status == "at risk"
    assert evaluate_value(0.24, 0.22, 0.27, 900, p95).status == "insufficient evidence"
    s = evaluate_value(0.30, 0.28, 0.32, 900, p95)
    assert s.status == "misses" and "interval above the 250 ms maximum" in s.reason
    assert evaluate_value(0.30, float("nan"), None, 3, p95).status == "insufficient evidence"
    with pytest.raises(ValueError, match="reversed"):
        evaluate_value(0.3, 0.4, 0.2, 10, p95)


@pytest.mark.parametrize("q, expected", [(0.5, 6), (0.95, 72), (0.99, 368), (0.05, 72)])
def test_percentile_min_samples_is_the_least_n_with_both_ends(q, expected):
    a = 0.025

    def both_ends(n):
        return stats.binom.ppf(a, n, q) >= 1 and stats.binom.ppf(1 - a, n, q) + 1 <= n

    assert percentile_min_samples(q) == expected
    assert both_ends(expected) and not both_ends(expected - 1)


def test_p99_from_50_samples_is_insufficient_evidence(targets):
    x = np.random.default_rng(3).lognormal(-2, 0.5, 50)
    assert not percentile_interval(x, 0.99).sufficient
    t = Target(name="p99", direction="max", bound=1.0, statistic="p99", unit="seconds")
    s = evaluate_samples(x, t)
    assert s.status == "insufficient evidence"
    assert "too few samples for p99 (have 50, need at least 368)" in s.reason


def test_percentile_interval_is_order_statistics_with_coverage():
    x = np.arange(1.0, 101.0)                 # x(i) = i
    pi = percentile_interval(x, 0.5)
    # ranks from Binomial(100, 0.5): ppf(0.025) = 40, ppf(0.975) + 1 = 61
    assert (pi.estimate, pi.lo, pi.hi, pi.n) == (50.0, 40.0, 61.0, 100)
    # coverage over many samples of an exponential (true p95 = ln 20) is at least 95%
    rng = np.random.default_rng(11)
    hits = 0
    for _ in range(2000):
        p = percentile_interval(rng.exponential(size=150), 0.95)
        hits += p.lo <= math.log(20) <= p.hi
    assert 0.95 <= hits / 2000 <= 0.985


def test_evaluate_samples_percentile_mean_and_readings(targets):
    rng = np.random.default_rng(5)
    fast = rng.lognormal(np.log(0.1), 0.4, 2000)       # p95 ~ 0.19 s
    s = evaluate_samples(fast, targets["API p95 latency"])
    assert s.status in ("meets", "at risk") and s.method == "order statistics"
    assert s.lo <= s.value <= s.hi and s.n == 2000
    slow = fast * 2
    assert evaluate_samples(slow, targets["API p95 latency"]).status == "misses"
    mean_t = Target(name="m", direction="max", bound=0.2, statistic="mean", unit="seconds")
    m = evaluate_samples(fast, mean_t)
    assert m.status == "meets" and m.method == "t"
    last_t = Target(name="mem", direction="max", bound=100.0, statistic="last", unit="bytes")
    r = evaluate_samples([10.0, 200.0, 50.0], last_t)
    assert (r.value, r.lo, r.hi, r.status) == (50.0, 50.0, 50.0, "meets")
    assert evaluate_samples([], last_t).status == "insufficient evidence"


# ----------------------------------------------------------------------------------------- SLOs


def test_slo_budget_arithmetic_on_round_numbers():
    # 99.9% over 30 d, 10 d elapsed, 1,000,000 events of which 500 bad
    s = evaluate_slo(999_500, 1_000_000, 0.999, pd.Timedelta(days=30), pd.Timedelta(days=10))
    assert s.burn_rate == pytest.approx(0.5)              # 0.05% errors / 0.1% allowed
    assert s.budget_events == pytest.approx(3000)         # 0.1% of 3,000,000 projected
    assert s.consumed_events == 500 and s.remaining_events == pytest.approx(2500)
    assert s.consumed_fraction == pytest.approx(1 / 6)
    assert s.remaining_fraction == pytest.approx(5 / 6)
    assert s.time_to_exhaustion == pd.Timedelta(days=50)  # (5/6) * 30 d / 0.5
    assert s.exhaustion_at is None                        # beyond the window: budget lasts
    assert s.status == "meets"
    lo, hi = proportion_confint(999_500, 1_000_000, method="wilson")
    assert (s.lo, s.hi) == pytest.approx((lo, hi), abs=1e-12)
    assert (s.burn_rate_lo, s.burn_rate_hi) == pytest.approx(((1 - hi) / 0.001,
                                                              (1 - lo) / 0.001))
    d = s.to_dict()
    assert d["error_budget"]["consumed_fraction"] == pytest.approx(1 / 6)
    json.dumps(d, allow_nan=False)


def test_slo_burning_twice_the_budget_runs_out_inside_the_window():
    as_of = pd.Timestamp("2026-11-10T00:00:00Z")
    s = evaluate_slo(998_000, 1_000_000, 0.999, pd.Timedelta(days=30), pd.Timedelta(days=10),
                     as_of=as_of)
    assert s.burn_rate == pytest.approx(2.0) and s.consumed_fraction == pytest.approx(2 / 3)
    assert s.time_to_exhaustion == pd.Timedelta(days=5)    # (1/3) * 30 d / 2
    assert s.exhaustion_at == pd.Timestamp("2026-11-15T00:00:00Z")
    assert s.status == "misses" and "budget runs out in 5.0 d" in s.reason


def test_burn_rate_one_uses_exactly_the_budget_over_the_window():
    s = evaluate_slo(999_000, 1_000_000, 0.999, pd.Timedelta(days=30), pd.Timedelta(days=30),
                     as_of=pd.Timestamp("2026-11-30T00:00:00Z"))
    assert s.burn_rate == pytest.approx(1.0) and s.consumed_fraction == pytest.approx(1.0)
    assert s.exhausted and s.time_to_exhaustion == pd.Timedelta(0)
    assert s.reason.endswith("100% of the error budget used; the error budget is exhausted")
    # 1,000,000 events cannot tell 99.9% from 99.9%: the interval straddles the objective
    assert s.status == "insufficient evidence"


def test_error_rate_slo_from_target_reports_error_rate(targets):
    s = evaluate_slo_target(targets["Error rate"], 99_950, 100_000, pd.Timedelta(days=7))
    d = s.to_dict()
    assert d["statistic"] == "error_rate" and d["value"] == pytest.approx(0.0005)
    assert d["target"] == {"direction": "max", "value": 0.01}
    assert d["burn_rate"] == pytest.approx(0.05) and d["status"] == "meets"
    assert d["interval"][0] < 0.0005 < d["interval"][1]
    assert s.reason.startswith("50/100,000 errors = 0.05%")
    assert s.value == pytest.approx(0.0005) and s.availability == pytest.approx(0.9995)
    assert s.interval == (pytest.approx(1 - s.hi), pytest.approx(1 - s.lo))


def test_slo_small_counts_and_bad_arguments(targets):
    few = evaluate_slo_target(targets["Availability"], 999, 1000, pd.Timedelta(days=1))
    assert few.status == "insufficient evidence"
    none = evaluate_slo(0, 0, 0.999, pd.Timedelta(days=30), pd.Timedelta(days=1))
    assert none.status == "insufficient evidence" and none.burn_rate is None
    json.dumps(none.to_dict(), allow_nan=False)
    with pytest.raises(ValueError, match="last window only"):
        evaluate_slo(10, 10, 0.999, pd.Timedelta(days=30), pd.Timedelta(days=31))
    with pytest.raises(ValueError, match="not an SLO"):
        evaluate_slo_target(targets["Redis hit ratio"], 1, 1, pd.Timedelta(days=1))


# -------------------------------------------------------------------------------------- order


def test_findings_sort_most_severe_first(targets):
    hit = targets["Redis hit ratio"]
    found = [evaluate_proportion(3300, 3400, hit), evaluate_proportion(27, 34, hit),
             evaluate_proportion(2650, 3400, hit), evaluate_proportion(2900, 3400, hit),
             evaluate_proportion(2000, 3400, hit)]
    ordered = sort_findings(found)
    assert [f.status for f in ordered] == ["misses", "misses", "at risk",
                                           "insufficient evidence", "meets"]
    assert ordered[0].critical and not ordered[1].critical
    assert STATUSES == ("misses", "stale", "at risk", "insufficient evidence", "meets")
    assert [d["status"] for d in sort_findings([f.to_dict() for f in found])] == \
        [f.status for f in ordered]


def test_the_docstring_params_example_parses():
    import yaml

    import capplan.analysis.targets

    doc = capplan.analysis.targets.__doc__
    block = doc[doc.index("    targets:"):doc.index("\n\n", doc.index("    targets:"))]
    raw = yaml.safe_load(block)["targets"]
    parsed = parse_targets(raw, path="docstring")
    assert [t.name for t in parsed] == ["Redis hit ratio", "API p95 latency", "Availability",
                                        "Error rate"]
    assert [t.direction for t in parsed] == ["min", "max", "min", "max"]
