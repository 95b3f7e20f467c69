"""capplan.models.growth: forecasts on synthetic series with known structure."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from capplan.errors import ConfigError, DataContractError, InsufficientData
from capplan.models.growth import MIN_HISTORY, Forecast, fit_forecast, fit_many

COLS = ["mean", "lo80", "hi80", "lo95", "hi95"]


def hourly(values, start="2024-01-01", name="metric") -> pd.Series:
    idx = pd.date_range(start, periods=len(values), freq="1h", tz="UTC")
    return pd.Series(np.asarray(values, float), index=idx, name=name)


def seasonal_trend(n=24 * 28, slope=0.05, amp=10.0, noise=1.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 100 + slope * t + amp * np.sin(2 * np.pi * t / 24) + rng.normal(0, noise, n)


def truth(n0, h, slope=0.05, amp=10.0):
    t = np.arange(n0, n0 + h)
    return 100 + slope * t + amp * np.sin(2 * np.pi * t / 24)


def test_recovers_trend_and_daily_season():
    y = hourly(seasonal_trend())
    fc = fit_forecast(y, horizon=48)
    assert isinstance(fc, Forecast)
    assert list(fc.frame.columns) == COLS
    assert len(fc.frame) == 48
    assert fc.frame.index[0] == y.index[-1] + pd.Timedelta("1h")
    true = truth(len(y), 48)
    err = np.abs(fc.frame["mean"].to_numpy() - true)
    assert err.mean() < 1.5, err.mean()
    assert "season=day" in fc.model or "season=week" in fc.model
    assert fc.season in ("day", "week")
    inside = (true >= fc.frame["lo95"]) & (true <= fc.frame["hi95"])
    assert inside.mean() >= 0.9
    assert fc.trend_up and fc.trend_per_step == pytest.approx(0.05, rel=0.2)


def test_bands_are_nested():
    fc = fit_forecast(hourly(seasonal_trend(seed=3)), horizon=72)
    f = fc.frame
    assert (f["lo95"] <= f["lo80"] + 1e-9).all() and (f["lo80"] <= f["mean"] + 1e-9).all()
    assert (f["mean"] <= f["hi80"] + 1e-9).all() and (f["hi80"] <= f["hi95"] + 1e-9).all()


def test_backtest_reports_realised_coverage():
    fc = fit_forecast(hourly(seasonal_trend(seed=5)), horizon=24)
    bt = fc.backtest
    assert bt.folds >= 5
    assert 0.6 <= bt.coverage80 <= 1 and 0.8 <= bt.coverage95 <= 1
    assert bt.coverage95 >= bt.coverage80
    assert 0 < bt.mase < 2


def test_adapts_to_level_step_and_reports_it():
    rng = np.random.default_rng(1)
    v = 100 + rng.normal(0, 2, 24 * 20)
    v[-30:] += 50                         # a deploy 30 hours before the end
    y = hourly(v)
    fc = fit_forecast(y, horizon=24)
    assert fc.frame["mean"].to_numpy() == pytest.approx(150, abs=4)
    step_at = y.index[-30]
    assert any(c.kind == "level" and abs((c.timestamp - step_at) / pd.Timedelta("1h")) <= 2
               for c in fc.changes), fc.changes
    assert any("level shift" in w for w in fc.warnings)


def test_robust_to_spikes_at_the_end():
    rng = np.random.default_rng(2)
    v = 50 + rng.normal(0, 1, 24 * 14)
    v[-1] = 500
    v[-5] = 400
    fc = fit_forecast(hourly(v), horizon=12)
    assert fc.frame["mean"].to_numpy() == pytest.approx(50, abs=3)


def test_ratio_bounds_respected():
    rng = np.random.default_rng(4)
    v = np.clip(0.97 + 0.0002 * np.arange(24 * 14) + rng.normal(0, 0.02, 24 * 14), 0, 1)
    fc = fit_forecast(hourly(v), horizon=24 * 7, bounds=(0, 1))
    assert fc.frame.to_numpy().max() <= 1 and fc.frame.to_numpy().min() >= 0
    paths = fc.sample_paths(200, seed=1)
    assert paths.shape == (200, 24 * 7)
    assert paths.max() <= 1 and paths.min() >= 0


def test_irregular_sampling_and_gaps():
    rng = np.random.default_rng(6)
    secs = np.sort(rng.uniform(0, 14 * 86400, 3000))
    secs = secs[(secs < 5 * 86400) | (secs > 7 * 86400)]          # a two-day gap
    idx = pd.Timestamp("2024-02-01", tz="UTC") + pd.to_timedelta(secs, unit="s")
    y = pd.Series(20 + 5 * np.sin(2 * np.pi * secs / 86400) + rng.normal(0, 0.5, secs.size),
                  index=idx)
    fc = fit_forecast(y, horizon=24)
    assert fc.history.index.freq == pd.Timedelta("1h") or \
        (np.diff(fc.history.index.asi8) == 3600 * 10**9).all()
    assert fc.history.isna().sum() >= 40
    assert any("missing" in w for w in fc.warnings)
    assert np.isfinite(fc.frame.to_numpy()).all()
    assert np.abs(fc.frame["mean"].to_numpy() - 20).max() < 8


def test_naive_timestamps_taken_as_utc_with_warning():
    y = hourly(seasonal_trend(n=24 * 5))
    y.index = y.index.tz_localize(None)
    fc = fit_forecast(y, horizon=6)
    assert str(fc.frame.index.tz) == "UTC"
    assert any("UTC" in w for w in fc.warnings)


def test_insufficient_data_is_typed():
    with pytest.raises(InsufficientData) as ei:
        fit_forecast(hourly(np.arange(MIN_HISTORY - 1)), horizon=5)
    assert ei.value.needed == MIN_HISTORY and ei.value.have == MIN_HISTORY - 1
    with pytest.raises(InsufficientData):
        fit_forecast(hourly([np.nan] * 100), horizon=5)


def test_minimum_history_is_enough():
    fc = fit_forecast(hourly(np.linspace(1, 2, MIN_HISTORY)), horizon=5)
    assert len(fc.frame) == 5


@pytest.mark.parametrize("kw", [{"horizon": 0}, {"horizon": 2.5}, {"horizon": 5, "grain": "soon"},
                                {"horizon": 5, "bounds": (1, 0)}])
def test_bad_arguments_are_config_errors(kw):
    with pytest.raises(ConfigError):
        fit_forecast(hourly(seasonal_trend(n=100)), **kw)


def test_not_a_time_series_is_a_contract_error():
    with pytest.raises(DataContractError):
        fit_forecast(pd.Series(np.arange(100.0)), horizon=5)


def test_to_dict_is_the_cli_contract():
    fc = fit_forecast(hourly(seasonal_trend(n=24 * 10)), horizon=24)
    d = fc.to_dict()
    assert list(d) == ["model", "grain", "forecast", "backtest", "changes", "warnings"]
    assert set(d["backtest"]) == {"mase", "coverage80", "coverage95", "folds"}
    assert len(d["forecast"]) == 24
    assert list(d["forecast"][0]) == ["timestamp", *COLS]
    json.dumps(d, allow_nan=False)


def test_daily_grain():
    rng = np.random.default_rng(8)
    idx = pd.date_range("2023-01-01", periods=200, freq="1D", tz="UTC")
    y = pd.Series(1000 + 3 * np.arange(200) + rng.normal(0, 5, 200), index=idx)
    fc = fit_forecast(y, horizon=30, grain="1D")
    assert fc.frame.index[1] - fc.frame.index[0] == pd.Timedelta("1D")
    assert fc.frame["mean"].iloc[-1] == pytest.approx(1000 + 3 * 229, rel=0.03)


def test_fit_many_processes_and_map_fn():
    series = {"a": hourly(seasonal_trend(n=24 * 7, seed=1)),
              "b": hourly(seasonal_trend(n=24 * 7, seed=2)),
              "short": hourly([1.0, 2.0, 3.0])}
    out = fit_many(series, processes=2, horizon=12)
    assert list(out) == ["a", "b", "short"]
    assert isinstance(out["a"], Forecast) and isinstance(out["b"], Forecast)
    assert isinstance(out["short"], InsufficientData)
    calls = []

    def my_map(func, items):
        calls.append(len(items))
        return [func(it) for it in items]

    out2 = fit_many(series, map_fn=my_map, horizon=12)
    assert calls == [3]
    assert np.allclose(out2["a"].frame["mean"], out["a"].frame["mean"])
