"""capplan.models.runway (via growth.time_to_limit): crossing dates and honesty rules."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from capplan.errors import ConfigError, InsufficientData
from capplan.models.growth import Runway, fit_forecast, time_to_limit

KEYS = ["crossing", "crossing_lo", "crossing_hi", "p_cross_within_horizon", "model", "warnings"]


def hourly(values, name="used_memory_bytes") -> pd.Series:
    idx = pd.date_range("2024-01-01", periods=len(values), freq="1h", tz="UTC")
    return pd.Series(np.asarray(values, float), index=idx, name=name)


def growing(n=24 * 21, slope=0.1, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 50 + slope * t + 2 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 0.5, n)


@pytest.mark.parametrize("seed", [0, 1])
def test_crossing_date_within_interval(seed):
    n = 24 * 21
    y = hourly(growing(n, seed=seed))
    fc = fit_forecast(y, horizon=24 * 10, bounds=(0, None))
    limit = 50 + 0.1 * (n + 24 * 4)             # the trend reaches it 4 days after the end
    rw = time_to_limit(fc, limit)
    assert isinstance(rw, Runway) and rw.status == "crosses"
    t = np.arange(n, n + 24 * 10)
    first = t[np.argmax(50 + 0.1 * t + 2 * np.sin(2 * np.pi * t / 24) >= limit)]
    true = y.index[0] + pd.Timedelta(hours=int(first))   # first crossing of the noiseless series
    assert abs((rw.crossing - true) / pd.Timedelta("1h")) <= 24
    assert rw.crossing_lo <= true
    assert rw.crossing_hi is None or rw.crossing_hi >= true
    assert rw.crossing_lo <= rw.crossing
    assert rw.p_cross_within_horizon > 0.9


@pytest.mark.parametrize("slope", [0.0, -0.05])
def test_flat_or_falling_never_reports_a_crossing(slope):
    y = hourly(growing(slope=slope, seed=3))
    fc = fit_forecast(y, horizon=24 * 30)
    rw = time_to_limit(fc, float(y.max()) + 3)
    assert rw.crossing is None and rw.crossing_lo is None and rw.crossing_hi is None
    assert rw.status == "not within horizon"
    assert any("after the horizon" in w for w in rw.warnings)
    assert 0 <= rw.p_cross_within_horizon <= 1


def test_not_within_horizon():
    fc = fit_forecast(hourly(growing(seed=4)), horizon=24)
    rw = time_to_limit(fc, 10_000)
    assert rw.crossing is None and rw.status == "not within horizon"
    assert rw.p_cross_within_horizon == 0


def test_already_over_limit():
    y = hourly(growing(seed=5))
    rw = time_to_limit(fit_forecast(y, horizon=24), 60)
    assert rw.status == "already over limit" and rw.p_cross_within_horizon == 1
    assert rw.crossing is not None and rw.crossing <= y.index[-1]


def test_limit_from_another_metric_uses_its_latest_value():
    y = hourly(growing(seed=6))
    fc = fit_forecast(y, horizon=24 * 10)
    maxmemory = hourly([500.0] * 100 + [110.0] * 50, name="maxmemory")
    rw = time_to_limit(fc, maxmemory)
    assert rw.limit == 110.0
    assert any("latest value of maxmemory" in w for w in rw.warnings)
    assert rw.status == "crosses"


def test_bad_limits():
    fc = fit_forecast(hourly(growing(seed=7)), horizon=24)
    with pytest.raises(ConfigError):
        time_to_limit(fc, "lots")
    with pytest.raises(ConfigError):
        time_to_limit(fc, float("nan"))
    with pytest.raises(InsufficientData):
        time_to_limit(fc, pd.Series([np.nan], index=pd.DatetimeIndex(["2024-01-01"], tz="UTC")))


def test_insufficient_data_result():
    rw = time_to_limit(InsufficientData("series 'x': too little history", needed=24, have=3), 1.0)
    assert rw.status == "insufficient data" and rw.crossing is None
    assert "too little history" in rw.warnings[0]


def test_ratio_with_bounds():
    rng = np.random.default_rng(8)
    v = np.clip(0.5 + 0.001 * np.arange(24 * 14) + rng.normal(0, 0.01, 24 * 14), 0, 1)
    fc = fit_forecast(hourly(v, name="hit_ratio"), horizon=24 * 7, bounds=(0, 1))
    rw = time_to_limit(fc, 0.95)
    assert rw.status == "crosses"
    assert fc.frame.to_numpy().max() <= 1


def test_to_dict_is_the_cli_contract():
    rw = time_to_limit(fit_forecast(hourly(growing(seed=9)), horizon=24 * 10), 120)
    d = rw.to_dict()
    assert list(d) == KEYS
    assert d["crossing"] is None or isinstance(d["crossing"], str)


def test_extreme_quantile_paths_are_the_95_band():
    fc = fit_forecast(hourly(growing(seed=10)), horizon=48)
    assert np.allclose(fc.quantile_path(0.975), fc.frame["hi95"].to_numpy())
    assert np.allclose(fc.quantile_path(0.025), fc.frame["lo95"].to_numpy())
    paths = fc.sample_paths(4000, seed=2)
    # joint paths: close to the band (nominal 2.5 % above it at every step), not identical
    share_above = (paths > fc.frame["hi95"].to_numpy()[None, :] + 1e-9).mean()
    assert 0.01 <= share_above <= 0.10, share_above
