import math

import numpy as np
import pandas as pd
import pytest

from capplan.core.frame import make_frame
from capplan.core.rates import (counter_increase, counter_rate, rate_frame, ratio_from_counters,
                           resets_from_start_time, wilson_interval)

T0 = pd.Timestamp("2026-01-01T00:00:00Z")


def _s(values, step_s=10):
    idx = pd.date_range(T0, periods=len(values), freq=f"{step_s}s")
    return pd.Series(values, index=idx, dtype="float64")


def test_increase_treats_a_decrease_as_reset_prometheus_style():
    inc = counter_increase(_s([100, 150, 20, 50]))
    assert inc.tolist() == [50, 20, 30]
    assert (inc >= 0).all()


def test_explicit_reset_timestamps_apply_when_values_cannot_show_it():
    s = _s([100, 150, 400, 450])  # restarted before sample 2 and climbed past 150 again
    inc = counter_increase(s, resets=[s.index[2]])
    assert inc.tolist() == [50, 400, 50]


def test_rate_is_per_second_and_ignores_nans():
    r = counter_rate(_s([0, 100, float("nan"), 300], step_s=10))
    assert r.tolist() == [10.0, 10.0]


def test_wilson_matches_statsmodels():
    from statsmodels.stats.proportion import proportion_confint

    lo, hi = wilson_interval(27, 34)
    elo, ehi = proportion_confint(27, 34, alpha=0.05, method="wilson")
    assert lo == pytest.approx(elo, rel=1e-9) and hi == pytest.approx(ehi, rel=1e-9)
    assert lo == pytest.approx(0.632, abs=1e-3) and hi == pytest.approx(0.896, abs=1e-3)
    assert all(math.isnan(x) for x in wilson_interval(0, 0))


def test_ratio_sums_deltas_not_ratios_and_survives_a_reset():
    hits = _s([0, 90, 180, 5, 15])     # reset before sample 3
    misses = _s([0, 10, 20, 5, 5])
    est = ratio_from_counters(hits, misses)
    # increases: hits 90, 90, 5, 10 = 195 ; misses 10, 10, 5, 0 = 25
    assert est.successes == 195 and est.n == 220
    assert est.value == pytest.approx(195 / 220)
    assert est.lo95 < est.value < est.hi95
    assert est.resets == 1


def test_no_traffic_is_no_data_not_zero_or_one():
    est = ratio_from_counters(_s([5, 5, 5]), _s([7, 7, 7]))
    assert est.n == 0 and math.isnan(est.value) and not est.has_data
    per = ratio_from_counters(_s([0, 10, 10, 10]), _s([0, 0, 0, 0]), grain="20s")
    assert per["ratio"].isna().any()


def test_rate_frame_derives_per_second_gauges_from_counters():
    idx = pd.date_range(T0, periods=13, freq="5min")
    recs = [{"timestamp": t, "source": "api", "metric": "http_requests_total", "labels": {},
             "value": float(i * 600), "kind": "counter", "unit": "requests"} for i, t in enumerate(idx)]
    recs.append({"timestamp": T0, "source": "api", "metric": "x", "labels": {}, "value": 1.0,
                 "kind": "gauge", "unit": "count"})
    out = rate_frame(make_frame(recs), grain="1h")
    assert set(out["metric"]) == {"http_requests_per_second"}
    assert np.allclose(out["value"], 2.0)


def test_resets_from_start_time():
    st = _s([1000, 1000, 1000.4, 5000, 5000])
    assert list(resets_from_start_time(st)) == [st.index[3]]
