"""Issue 12, second round: the calibrated crossing probability (capplan.models.runway_prob)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from capplan.models import runway_prob as rp
from capplan.models.growth import fit_forecast, time_to_limit
from capplan.models.runway import CROSSES, status_for


def hourly(values) -> pd.Series:
    idx = pd.date_range("2024-01-01", periods=len(values), freq="1h", tz="UTC")
    return pd.Series(np.asarray(values, float), index=idx, name="m")


def test_analog_share_counts_windows_that_reach_the_limit():
    x = np.zeros(100)
    x[[10, 60]] = 5.0
    a, t = rp.analog_share(x, 5.0, 10, 1000)
    # windows start at 0..90; those starting at 1..10 and 51..60 contain a hit
    assert a == 20 / 91
    assert t[0] == np.inf and t[1] == 9 and t[10] == 0
    # a limit nobody reached, and a history shorter than the horizon
    assert rp.analog_share(x, 6.0, 10, 1000)[0] == 0.0
    assert rp.analog_share(x[:8], 0.0, 10, 1000)[0] == 1.0


def test_calibration_keeps_certain_cases_and_lifts_what_the_history_says():
    # out of reach even for 4x widened paths and never seen: P 0
    assert rp.calibrated(0.0, 0.0, 0.0) == 0.0
    # the paths rule it out, but a third of the past windows reached it: not 0
    assert rp.calibrated(0.0, 0.6, 0.35) > 0.15
    # every path crosses: ~1; a share >= TRUST is never lowered
    assert rp.calibrated(1.0, 1.0, 0.0) >= 0.99
    assert rp.calibrated(0.93, 0.9, 0.0) >= 0.93
    # mid-range path shares are shrunk (dev: 0.5-0.9 crossed ~1/3 of the time) unless the trend
    # is cleaner than any calibration case
    assert rp.calibrated(0.7, 0.9, 0.0) < 0.6
    assert rp.calibrated(0.7, 0.9, 0.0, clean_trend=True) == 0.7
    # monotone in each reading
    grid = np.linspace(0, 1, 21)
    for f in (lambda v: rp.calibrated(v, 0.5, 0.2), lambda v: rp.calibrated(0.3, v, 0.2),
              lambda v: rp.calibrated(0.3, 0.5, v)):
        assert np.all(np.diff([f(v) for v in grid]) >= 0)


def test_reported_p_is_the_stack_of_the_readings():
    """Bursts every three days, larger before the last two weeks: the analog sees the earlier
    bursts; the reported P is the calibrated stack of the three readings, status from it."""
    rng = np.random.default_rng(4)
    n = 24 * 35
    v = 100 + rng.normal(0, 3, n)
    for d in range(0, 35, 3):
        v[d * 24 + 12] += rng.uniform(60, 100) * (2.0 if d < 21 else 1.0)
    fc = fit_forecast(hourly(v), horizon=168)
    rw = time_to_limit(fc, 1.15 * v[-336:].max())
    assert rw.p_analog > 0.1                    # past weeks did reach it
    assert rw.p_cross_within_horizon == rp.calibrated(rw.p_paths, rw.p_wide, rw.p_analog)
    assert rw.status == status_for(rw.p_cross_within_horizon)
    assert rw.p_paths == np.mean((fc.runway_paths >= rw.limit).any(axis=1))


def test_dates_follow_the_calibrated_p():
    """Crossing quantile q is the paths' conditional first-passage quantile q / P: the median
    exists exactly when P >= 0.5 and moves later as P falls toward 0.5."""
    rng = np.random.default_rng(2)
    t = np.arange(24 * 21)
    v = 50 + 0.05 * t + 2 * np.sin(2 * np.pi * t / 24) + rng.normal(0, 1.5, t.size)
    fc = fit_forecast(hourly(v), horizon=24 * 7)
    for limit in np.linspace(v[-48:].max(), v[-48:].max() + 15, 7):
        rw = time_to_limit(fc, float(limit))
        if rw.status != CROSSES:
            assert rw.crossing is None and rw.p_cross_within_horizon < 0.5
            continue
        hit = fc.runway_paths >= limit
        ft = np.sort(np.where(hit.any(axis=1), hit.argmax(axis=1), np.inf))
        ft = ft[np.isfinite(ft)]
        k = ft[max(0, int(np.ceil(0.5 / rw.p_cross_within_horizon * ft.size)) - 1)]
        assert rw.crossing == fc.frame.index[int(k)]


def test_fit_coef_fits_the_reported_probability_and_keeps_it_monotone():
    """fit_coef minimises the Brier score of P as reported (TRUST rule applied), and keeps
    c1..c3 >= 0 even when the cases pull a coefficient negative."""
    rng = np.random.default_rng(7)
    n = 600
    pw = rng.uniform(0, 1, n)
    pa = rng.uniform(0, 1, n)
    pp = np.clip(pw - rng.uniform(0, 0.3, n), 0, 1)
    true = rp.calibrated(pp, pw, pa, coef=(-1.0, 0.0, 1.5, 1.0), digits=None)
    hit = rng.uniform(size=n) < true
    b = rp.fit_coef(pp, pw, pa, hit)
    assert b.shape == (4,) and np.all(b[1:] >= 0)
    got = rp.calibrated(pp, pw, pa, coef=b, digits=None)
    assert np.mean((got - hit) ** 2) <= np.mean((true - hit) ** 2) + 1e-9   # in-sample optimum
    assert np.mean(np.abs(got - true)) < 0.05
    # hits that fall as the path share rises would want c1 < 0: it stays at its bound
    hit2 = rng.uniform(size=n) < np.clip(0.6 - 0.5 * pp, 0, 1)
    assert rp.fit_coef(pp, pw, pa, hit2)[1] == 0.0
