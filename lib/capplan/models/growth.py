"""Growth forecasts that say honestly when a resource runs out (issue 5 items 1, 2, 3, 5; issue 12).

Public API::

    fc = fit_forecast(y, horizon=168, grain="1h", bounds=(0, None))   # -> Forecast
    rw = time_to_limit(fc, limit=8e9)                                 # -> Runway
    ch = detect_changes(y, grain="1h")                                # -> tuple[Change, ...]
    out = fit_many({"key": y, ...}, processes=2, horizon=168)         # -> {key: Forecast | error}

Input.  ``y`` is a float Series on a DatetimeIndex (UTC; a naive index is taken as UTC with a
warning), any and irregular sampling, NaN = missing.  It is resampled to the analysis ``grain`` by
the mean of the samples in each bin (empty bins are gaps).  Leading and trailing gaps are dropped; inner gaps are
linearly interpolated for fitting (never scored in the backtest) and reported in ``warnings``.

Minimum history (``MIN_HISTORY``).  At least 24 observed bins of the grain, spanning at least 24
bins; fewer raises :class:`capplan.errors.InsufficientData` (the CLI maps it to exit code 2).
Daily seasonality is only considered with >= 4 days of history, weekly with >= 2 weeks; a trend is
only estimated from >= 3 blocks (days at hourly grain) after the last detected change, and is only
called *significantly upward* (the condition for a reported crossing) with >= 4 blocks and an OLS
t statistic >= 2.5 on the block medians.

Model family (lean numpy: a 2,000-point hourly series fits in ~12-15 ms of CPU, its runway in
~4 ms more; every component is computed at all backtest origins at once,
:mod:`capplan.models.growth_windows`).  Each candidate is
``forecast(t+h) = level + trend(h) + season(t+h)`` in a transformed space:

* season: none, daily, or weekly profile.  Daily: the per-phase median, over the last 14 days of
  cycles, of the series minus its centred moving average (classical decomposition made robust
  to spikes and steps; cf. STL, Cleveland et al. 1990).  Weekly (daily and weekly together): the
  daily profile plus the weekly departure from it over the last <= 6 weeks, shrunk toward the
  daily profile when the weeks are few or noisy (see Intervals below for the reference).
* level: on the deseasonalised series after a running median of 3 (Tukey 1977: single spikes do
  not move the level), either simple exponential smoothing with alpha in {0.05, 0.15, 0.4} or the
  median of the last block (a day).  High alpha / the last-day median adapt to a new level after
  a deploy within hours.
* trend: none, damped (phi = 0.99 per step, Gardner & McKenzie 1985) or linear; the slope is the
  Theil-Sen estimate on block medians of the trend window, which starts after the last detected
  level or trend change (item 2: "fit on the history after the last shift") and covers at most
  60 blocks.  The smoothed level is shifted forward by the smoother's lag times the slope.
* transform: none; log (strictly positive series: multiplicative growth); logit when both bounds
  are given (a saturating form: ratios stay inside [lo, hi]).  Forecasts are also clipped to
  ``bounds``.

Selection (rolling-origin backtest, Tashman 2000).  Origins evenly spaced between the minimum
fit length and ``n - hb``, each forecasting ``hb = min(horizon, available/2)`` steps; 20 folds (up
to 40 for short horizons, so that >= ~240 errors calibrate the intervals).  Stage 1 scores every
season x level (no trend, no transform) by backtest MAE; stage 2 adds the trend and transform
variants of the best.  The final forecast is the mean of the 3 best candidates (forecast
combination hedges the model choice, Bates & Granger 1969); ``model`` names them.
``backtest.mase`` is the combination's backtest MAE scaled by the in-sample MAE of the seasonal
naive (daily period, else lag 1; Hyndman & Koehler 2006).

Intervals (empirical / split-conformal, Vovk et al. 2005; issue 12 item 2).  The errors that
calibrate are *cross-fitted*: the folds are split into two halves in time and each half's errors
come from the 3-best combination selected on the other half, so the errors that chose the model do
not also judge its uncertainty.  They give an error scale ``s(h)``: the MAE by horizon, smoothed,
made non-decreasing by isotonic regression (a running max of a noisy curve is biased upward) and
extrapolated beyond ``hb`` as ``s(hb) (h/hb)**p``, p in [0, 1] (level uncertainty keeps growing
with the horizon).  The normalised errors ``e / s(h)`` give the 2.5/10/90/97.5 % quantiles: the
pooled split-conformal quantile, widened to the most extreme of the per-fold quantiles (server
metrics are not stationary; the next window tends to look like the worst past window rather than
the average one).  So ``lo95 = mean + q2.5 * s(h)`` etc., possibly asymmetric.  (A locally
adaptive score, errors divided by the noise level before each origin, is available as
``growth_core.LOCAL_SCALE`` but off: on the dev series it inflated the bands after one volatile
day and made both the coverage and the runway probabilities worse.)
``backtest.coverage80/95`` are out-of-sample coverages of that same rule: each fold is scored
with a scale and quantiles calibrated only on folds whose windows do not overlap it, so the number
predicts the coverage of the final forecast (on the dev set: mean reported 0.87 vs realized 0.91
at 95 %; ``bench/forecast_accuracy.py``); a warning is added when the 95 % one is below 85 %.
Weekly seasonality (item 3) is considered from two weeks of history: the daily profile plus the
weekly departure from it, shrunk toward the daily profile by an empirical-Bayes factor
(:func:`growth_windows.weekly_profile`).
Sample paths and the runway probability: :mod:`capplan.models.forecast` (joint paths: level
random walk + residual block bootstrap + ensemble members), :mod:`capplan.models.runway_prob`
(the reported P: the paths' share calibrated on real series with the historical analog) and
:mod:`capplan.models.runway`.

Trend changes (item 2): :func:`detect_changes` (method in :mod:`capplan.models.changes`) runs on
the series deseasonalised by its longest available profile; the same changes are attached to
every Forecast, and the level (after a level shift) and trend window start after the last one.
"""

from __future__ import annotations

import concurrent.futures as cf
import functools
from typing import Callable

import numpy as np
import pandas as pd

from capplan.errors import CapplanError, ConfigError, DataContractError, InsufficientData
from capplan.models import growth_core as core
from capplan.models.changes import Change, find_changes
from capplan.models.forecast import COLS, Backtest, Forecast
from capplan.models.runway import Runway, time_to_limit

__all__ = ["MIN_HISTORY", "Backtest", "Change", "Forecast", "Runway", "fit_forecast",
           "time_to_limit", "detect_changes", "fit_many"]

MIN_HISTORY = 24          # observed bins of the grain
TREND_T_MIN = 2.5


# --- input preparation --------------------------------------------------------------------------

def _grain_step(grain: str) -> pd.Timedelta:
    try:
        step = pd.Timedelta(pd.tseries.frequencies.to_offset(grain))
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"grain {grain!r} is not a fixed time interval", key="grain",
                          hint="use a pandas interval like '5min', '1h' or '1D'") from exc
    if step <= pd.Timedelta(0):
        raise ConfigError(f"grain {grain!r} must be positive", key="grain")
    return step


def _resample(y: pd.Series, grain: str) -> tuple[pd.Series, list[str], pd.Timedelta]:
    """Validate and resample to the grain; returns (history, warnings, step)."""
    warns: list[str] = []
    name = getattr(y, "name", None) or "series"
    if not isinstance(y, pd.Series) or not isinstance(y.index, pd.DatetimeIndex):
        raise DataContractError([{"column": "timestamp",
                                  "reason": "expected a pandas Series on a DatetimeIndex"}],
                                where=str(name))
    step = _grain_step(grain)
    s = pd.to_numeric(y, errors="coerce").astype(float)
    if s.index.tz is None:
        s = s.tz_localize("UTC")
        warns.append("timestamps had no time zone: taken as UTC")
    else:
        s = s.tz_convert("UTC")
    if np.isinf(s.to_numpy()).any():
        s = s.replace([np.inf, -np.inf], np.nan)
    if not s.index.is_monotonic_increasing:
        s = s.sort_index()
    hist = _on_grain(s, step)
    if hist is None:
        hist = s.resample(step).mean()
    ok = ~np.isnan(hist.to_numpy(float))
    if ok.any():
        first, last = np.flatnonzero(ok)[[0, -1]]
        hist = hist.iloc[first:last + 1]
    else:
        hist = hist.iloc[:0]
    hist.index.name = "timestamp"
    hist.name = "value"
    return hist, warns, step


def _on_grain(s: pd.Series, step: pd.Timedelta) -> pd.Series | None:
    """``s.resample(step).mean()`` for a series already on the grain (one sample at the start of
    every bin, bins from midnight as resample's default origin): the same series without the
    resampling machinery (most fleet series are collected at the grain).  None otherwise."""
    day = pd.Timedelta("1D")
    idx = s.index
    if len(idx) < 2 or step > day or day % step or (idx[0] - idx[0].normalize()) % step:
        return None
    ns = idx.asi8
    unit = pd.Timedelta(1, unit=idx.unit)
    if not (np.diff(ns) == step // unit).all():
        return None
    return pd.Series(s.to_numpy(), index=pd.DatetimeIndex(idx, freq=step), name=s.name)


def _periods(step: pd.Timedelta, n: int) -> dict[int, str]:
    out = {}
    for name, span in (("day", pd.Timedelta("1D")), ("week", pd.Timedelta("7D"))):
        m = span / step
        # daily from 4 days, weekly (shrunk toward the daily profile) from 2 weeks
        need = 4 if name == "day" else 2
        if abs(m - round(m)) < 1e-9 and round(m) >= 2 and n >= need * round(m):
            out[int(round(m))] = name
    return out


def _block(step: pd.Timedelta, n: int) -> int:
    day = pd.Timedelta("1D") / step
    if day >= 2 and abs(day - round(day)) < 1e-9 and n >= 6 * round(day):
        return int(round(day))
    return int(max(2, n // 12))


def _deseasonalised(values: np.ndarray, periods: dict[int, str],
                    profiles: dict | None = None) -> np.ndarray:
    """``profiles``: :func:`growth_core.profiles_at` ending at the last step, if computed."""
    zf = core.fill_gaps(values)
    m = max(periods, default=0)
    m_day = next((k for k, nm in periods.items() if nm == "day"), 0)
    if m:
        if profiles is not None and profiles.get(m) is not None:
            S = profiles[m][-1]
        else:
            S = (core.weekly_profile(zf, zf.size, m, core.KMAX["week"], m_day)
                 if periods[m] == "week" and m_day else
                 core.season_profile(zf, zf.size, m, core.KMAX[periods[m]]))
        if S is not None:
            zf = zf - S[np.arange(zf.size) % m]
    return core.med3(zf)


def _changes(hist: pd.Series, periods: dict[int, str], L: int, profiles: dict | None = None,
             **kw) -> tuple[Change, ...]:
    d = _deseasonalised(hist.to_numpy(float), periods, profiles)
    return tuple(Change(timestamp=hist.index[k], kind=kind, size=float(size), index=int(k))
                 for k, kind, size in find_changes(d, L, **kw))


def detect_changes(y: pd.Series, *, grain: str = "1h", max_changes: int = 5,
                   threshold: float | None = None) -> tuple[Change, ...]:
    """Level and trend shifts of ``y`` at ``grain`` (method: :mod:`capplan.models.changes`).

    Raises InsufficientData below ``MIN_HISTORY`` observed bins.
    """
    hist, _, step = _resample(y, grain)
    _check_history(hist, grain, getattr(y, "name", None))
    periods = _periods(step, len(hist))
    return _changes(hist, periods, _block(step, len(hist)), max_changes=max_changes,
                    threshold=threshold)


def _check_history(hist: pd.Series, grain: str, name) -> int:
    n_obs = int(np.count_nonzero(~np.isnan(hist.to_numpy(float))))
    if n_obs < MIN_HISTORY:
        what = f"series {name!r}" if name else "series"
        raise InsufficientData(f"{what}: too little history to forecast at grain {grain}",
                               needed=MIN_HISTORY, have=n_obs, unit=f"observed {grain} bins",
                               hint="collect more history or use a finer --grain")
    return n_obs


# --- fitting ----------------------------------------------------------------------------------

def fit_forecast(y: pd.Series, *, horizon: int, grain: str = "1h",
                 bounds: tuple[float | None, float | None] = (None, None),
                 seed: int = 0) -> Forecast:
    """Fit, select and calibrate a forecast of ``y`` for ``horizon`` steps of ``grain``.

    ``bounds``: (lo, hi) physical limits of the value (None = unbounded), e.g. (0, 1) for ratios.
    ``seed`` is accepted for API stability; the fit itself is deterministic.
    Raises ConfigError (bad horizon, grain or bounds), DataContractError (not a time-indexed
    Series) and InsufficientData (fewer than ``MIN_HISTORY`` observed bins).
    """
    if isinstance(horizon, bool) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ConfigError(f"horizon must be a positive integer number of steps, got {horizon!r}",
                          key="horizon")
    horizon = int(horizon)
    lo, hi = bounds
    if lo is not None and hi is not None and not lo < hi:
        raise ConfigError(f"bounds {bounds!r}: lower must be below upper", key="bounds")
    hist, warns, step = _resample(y, grain)
    name = getattr(y, "name", None)
    n_obs = _check_history(hist, grain, name)
    n = len(hist)
    values = hist.to_numpy(float)
    gap = 1 - n_obs / n
    if gap > 0:
        runs = np.diff(np.flatnonzero(np.diff(np.concatenate([[0], np.isnan(values), [0]]))))[::2]
        warns.append(f"{n - n_obs} of {n} {grain} bins are missing ({gap:.1%}, longest gap "
                     f"{int(runs.max())} bins); gaps are interpolated for fitting")
    if (lo is not None and np.nanmin(values) < lo) or (hi is not None and np.nanmax(values) > hi):
        warns.append(f"history has values outside bounds {bounds}; forecasts are clipped")
    periods = _periods(step, n)
    L = _block(step, n)
    min_fit = max(MIN_HISTORY // 2, 12)
    # the seasonal profiles at every backtest origin and at the end, computed once for the
    # change detection (the last row) and the backtest
    origins, _ = core.fold_origins(n, horizon, periods, min_fit)
    profiles = core.profiles_at(core.fill_gaps(values), [*origins, n], periods)
    changes = _changes(hist, periods, L, profiles)
    for c in changes[-2:]:
        what = "level shift" if c.kind == "level" else "trend change"
        unit = "" if c.kind == "level" else f" per {grain}"
        warns.append(f"{what} of {c.size:+.4g}{unit} at {c.timestamp.isoformat()}: level and trend "
                     "are fitted on the history after it")
    res = core.run_core(values, horizon, periods, L, bounds, [c.index for c in changes],
                        min_fit=min_fit,
                        level_changes=[c.index for c in changes if c.kind == "level"],
                        profiles=profiles)
    names = {m: nm for m, nm in periods.items()}
    model = " + ".join(s.name(names) for s in res.specs)
    if len(res.specs) > 1:
        model = f"mean of [{model}]"

    zq = res.q_int
    mean = res.mean
    cols = np.stack([mean, mean + zq[1] * res.scale, mean + zq[2] * res.scale,
                     mean + zq[0] * res.scale, mean + zq[3] * res.scale], axis=1)
    # the steps after the history (freq None, as the index used to be built from the sum of the
    # last timestamp and an array of steps, element by element)
    future = pd.DatetimeIndex(pd.date_range(hist.index[-1] + step, periods=horizon, freq=step,
                                            name="timestamp"), freq=None)
    frame = pd.DataFrame(_clip_like_pandas(cols, lo, hi), columns=_frame_columns().copy(),
                         index=future)
    m0 = min(periods, default=1)
    sn = np.abs(values[m0:] - values[:-m0]) if n > m0 else np.abs(np.diff(values))
    sn_mae = float(np.nanmean(sn)) if np.isfinite(sn).any() else float("nan")
    mase = res.score / sn_mae if sn_mae > 0 else float("nan")
    hb = res.errors.shape[1]
    bt = Backtest(mase=mase, coverage80=res.cov80, coverage95=res.cov95,
                  folds=len(res.origins), horizon=hb)
    if hb < horizon:
        warns.append(f"backtest covers {hb} of {horizon} steps; interval widths beyond step {hb} "
                     "are extrapolated")
    if len(res.origins) < 5:
        warns.append(f"only {len(res.origins)} backtest folds: interval calibration is rough")
    if np.isfinite(res.cov95) and res.cov95 < 0.85:
        warns.append(f"95% intervals covered only {res.cov95:.0%} in the backtest")
    zs = res.zs if res.zs.size else np.zeros(1)
    ku = [0.0, 0.001, 0.025, 0.1, 0.5, 0.9, 0.975, 0.999, 1.0]
    tl = res.tails if res.tails is not None else (zs[0], np.quantile(zs, 0.001),
                                                   np.quantile(zs, 0.999), zs[-1])
    kz = [min(tl[0], zq[0]), min(tl[1], zq[0]), zq[0], zq[1],
          float(np.clip(np.median(zs), zq[1], zq[2])), zq[2], zq[3],
          max(tl[2], zq[3]), max(tl[3], zq[3])]
    knots = (np.array(ku), np.maximum.accumulate(np.array(kz, dtype=float)))
    trend_up = bool(res.slope > 0 and res.slope_t >= TREND_T_MIN and res.trend_blocks >= 4)
    return Forecast(model=model, grain=grain, horizon=horizon, frame=frame, history=hist,
                    backtest=bt, changes=changes, warnings=tuple(warns), n_obs=n_obs,
                    window_start=hist.index[0], window_end=hist.index[-1], bounds=(lo, hi),
                    trend_per_step=float(res.slope), trend_t=float(res.slope_t),
                    trend_up=trend_up, trend_blocks=int(res.trend_blocks),
                    season=periods.get(res.specs[0].period, "none"), scale=res.scale,
                    path_knots=knots, members=_clip_members(res.members, lo, hi),
                    block=res.block, noise=res.noise)


@functools.cache
def _frame_columns() -> pd.Index:
    """The frame's column labels, built once (each frame gets its own shallow copy, so that
    renaming one frame's columns cannot touch another's)."""
    return pd.Index(COLS)


def _clip_like_pandas(a: np.ndarray, lo, hi) -> np.ndarray:
    """``DataFrame.clip(lower=lo, upper=hi)`` on an array (values beyond a bound replaced by it,
    NaN and -0.0 kept), without the DataFrame round trip."""
    if lo is not None:
        a = np.where(a < lo, float(lo), a)
    if hi is not None:
        a = np.where(a > hi, float(hi), a)
    return a


def _clip_members(m: np.ndarray, lo, hi) -> np.ndarray:
    return np.clip(m, -np.inf if lo is None else lo, np.inf if hi is None else hi)


# --- many series ----------------------------------------------------------------------------------

def _fit_one(item, kw):
    key, y = item
    try:
        return key, fit_forecast(y, **kw)
    except CapplanError as exc:
        return key, exc


def fit_many(series_by_key: dict, *, processes: int = 2,
             map_fn: Callable | None = None, executor: cf.Executor | None = None,
             **kw) -> dict:
    """Fit every series; returns ``{key: Forecast | CapplanError}`` in the input order.

    Parallelism, in order of precedence: ``map_fn(func, items)`` (any map returning results in
    order, e.g. a Dask client wrapper ``lambda f, xs: client.gather(client.map(f, xs))``),
    ``executor`` (anything with ``.map``, e.g. a ProcessPoolExecutor you own), else a
    process pool of ``processes`` workers (serial when ``processes <= 1``).  ``kw`` go to
    :func:`fit_forecast`.  Only CapplanError is captured per series; anything else propagates.
    """
    items = list(series_by_key.items())
    func = functools.partial(_fit_one, kw=kw)
    if map_fn is not None:
        results = list(map_fn(func, items))
    elif executor is not None:
        results = list(executor.map(func, items))
    elif processes <= 1 or len(items) < 2:
        results = [func(it) for it in items]
    else:
        chunk = max(1, len(items) // (processes * 8))
        with cf.ProcessPoolExecutor(max_workers=processes) as pool:
            results = list(pool.map(func, items, chunksize=chunk))
    return dict(results)
