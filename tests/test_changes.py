"""capplan.models.changes / growth.detect_changes: level and trend shifts with dates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from capplan.errors import InsufficientData
from capplan.models.growth import detect_changes


def hourly(values) -> pd.Series:
    idx = pd.date_range("2024-01-01", periods=len(values), freq="1h", tz="UTC")
    return pd.Series(np.asarray(values, float), index=idx)


def base(n, seed, amp=5.0, noise=1.0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return 40 + amp * np.sin(2 * np.pi * t / 24) + rng.normal(0, noise, n)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_level_step_date_recovered(seed):
    v = base(24 * 21, seed)
    k = 24 * 12 + 7
    v[k:] += 6
    y = hourly(v)
    ch = detect_changes(y)
    assert len(ch) == 1, ch
    assert ch[0].kind == "level"
    assert abs(ch[0].index - k) <= 2
    assert ch[0].timestamp == y.index[ch[0].index]
    assert ch[0].size == pytest.approx(6, abs=1)


def test_trend_change_recovered():
    v = base(24 * 30, 3)
    k = 24 * 15
    v[k:] += 0.2 * np.arange(24 * 30 - k)      # growth starts on day 15
    ch = detect_changes(hourly(v))
    trend = [c for c in ch if c.kind == "trend"]
    assert trend, ch
    assert abs(trend[0].index - k) <= 24
    assert trend[0].size == pytest.approx(0.2, rel=0.3)


@pytest.mark.parametrize("seed", [10, 11, 12, 13])
def test_no_change_in_stationary_seasonal_series(seed):
    assert detect_changes(hourly(base(24 * 21, seed))) == ()


def test_spikes_are_not_changes():
    v = base(24 * 14, 20)
    v[[50, 51, 200, 300]] += 60
    assert detect_changes(hourly(v)) == ()


def test_steady_linear_growth_is_not_a_change():
    v = base(24 * 21, 21) + 0.1 * np.arange(24 * 21)
    assert detect_changes(hourly(v)) == ()


def test_too_short():
    with pytest.raises(InsufficientData):
        detect_changes(hourly(np.ones(5)))
