"""The fitted-forecast value types, shared by :mod:`capplan.models.growth` (which builds them) and
:mod:`capplan.models.runway` (which reads them), so neither imports the other.

Sample paths (issue 12 item 1).  A forecast's uncertainty has two parts with different dependence
over time: a persistent *level* error (level, trend and season estimates are off, and the level
keeps wandering: its variance grows with the horizon) and short-lived *noise* (bursts and spikes
of a few hours).  :meth:`Forecast.sample_paths` simulates both jointly,

    path[k, h] = mean(h) + level[k, h] + noise[k, h] + (member_k(h) - mean(h)),

* ``noise``: a circular block bootstrap (Politis & Romano 1992; blocks of half a day keep the
  bursts' own autocorrelation) of the recent departures of the deseasonalised history from its
  centred running median over a day: spikes come back at the frequency and size they had;
* ``level``: a Gaussian random walk whose variance at step h is what the calibrated error adds
  beyond that noise, ``var_l(h) = max(sd_e(h)**2 - var_noise, 0)`` made non-decreasing, where
  ``sd_e(h)`` is the out-of-sample 80 % band half-width / 1.2816 (the 80 % band: robust to the
  tails) and ``var_noise`` the robust (MAD) variance of the noise;
* each path follows one randomly drawn ensemble member (model uncertainty).

The share of paths that reach a limit is then a probability of crossing, not the largest
marginal exceedance that comonotone quantile paths give (a lower bound).  The paths' step-wise
spread is close to, not identical with, the calibrated bands (``frame``), which stay the
marginal statement.  On the 29 dev/NAB series (``bench/runway_calibration.py``) this gave a
Brier score of 0.20 against 0.21 for the historical analog and 0.23 for the old quantile paths.
The probability a runway reports is not this share itself but its calibration on real series
(:mod:`capplan.models.runway_prob`: the share, the share of the paths widened 4x and the
historical analog in a fixed logistic stack; held out, Brier 0.167 (0.78 x the analog) leaving one series out);
the crossing dates still come from these paths' first passages.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["Backtest", "Forecast"]

RUNWAY_PATHS = 1000     # paths behind every runway probability and date


def _num(v) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None


@dataclass(frozen=True)
class Backtest:
    """Rolling-origin backtest of the chosen forecast (see :mod:`capplan.models.growth`).

    ``coverage80/95`` are out-of-sample: the errors come from models selected on other folds
    (cross-fitted) and each fold is scored with interval quantiles calibrated on folds whose
    forecast windows do not overlap it."""

    mase: float
    coverage80: float
    coverage95: float
    folds: int
    horizon: int          # steps forecast per fold

    def to_dict(self) -> dict:
        return {"mase": _num(self.mase), "coverage80": _num(self.coverage80),
                "coverage95": _num(self.coverage95), "folds": self.folds}


@dataclass(frozen=True, eq=False)
class Forecast:
    """A fitted forecast.  ``frame``: index = future timestamps, columns mean, lo80, hi80, lo95,
    hi95 (value units).  ``trend_per_step`` / ``trend_t``: slope of the deseasonalised series over
    the trend window (units per grain step) and its t statistic; ``trend_up`` says whether it is
    significantly upward (t >= 2.5 with >= 4 blocks).  ``scale`` is the error scale s(h),
    ``path_knots`` the normalised error quantile function, ``members`` the ensemble members' point
    forecasts, ``noise`` the recent short-lived departures (value units) and ``block`` the
    bootstrap block length (steps) used by :meth:`sample_paths`."""

    model: str
    grain: str
    horizon: int
    frame: pd.DataFrame
    history: pd.Series
    backtest: Backtest
    changes: tuple
    warnings: tuple
    n_obs: int
    window_start: pd.Timestamp
    window_end: pd.Timestamp
    bounds: tuple
    trend_per_step: float
    trend_t: float
    trend_up: bool
    trend_blocks: int
    season: str           # seasonality of the best candidate: 'none' | 'day' | 'week'
    scale: np.ndarray = field(repr=False)
    path_knots: tuple = field(repr=False)
    members: np.ndarray = field(repr=False, default=None)
    noise: np.ndarray = field(repr=False, default=None)
    block: int = 1

    @functools.cached_property
    def runway_paths(self) -> np.ndarray:
        """The sample paths :func:`capplan.models.runway.time_to_limit` reads (RUNWAY_PATHS,
        seed 0), computed once per forecast."""
        return self.sample_paths(RUNWAY_PATHS, seed=0)

    @functools.cached_property
    def runway_wide_paths(self) -> np.ndarray:
        """:attr:`runway_paths` with their departures from the mean widened
        :data:`capplan.models.runway_prob.WIDEN` times, clipped to bounds (one of the readings
        behind the calibrated crossing probability)."""
        from capplan.models.runway_prob import widened
        wide = widened(self.runway_paths, self.frame["mean"].to_numpy())
        return self._clip(wide, out=wide)

    def error_quantile(self, u) -> np.ndarray:
        """Normalised error quantile function Q(u), u in (0, 1): piecewise linear through the
        interval quantiles (so the 2.5 % / 97.5 % marginals are the 95 % band edges), the pooled
        median and the pooled 0.1 % / 99.9 % tails."""
        return np.interp(u, self.path_knots[0], self.path_knots[1])

    def quantile_path(self, q: float) -> np.ndarray:
        """The marginal ``q`` quantile (0..1) at every step, clipped to bounds.  It is a band
        edge, not a scenario: no single path follows it (use :meth:`sample_paths`)."""
        return self._clip(self.frame["mean"].to_numpy() + float(self.error_quantile(q)) * self.scale)

    def sample_paths(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` x ``horizon`` joint sample paths, clipped to bounds: mean + level error +
        residual block bootstrap + ensemble member (module docstring).  Deterministic for a
        fixed seed."""
        rng = np.random.default_rng(seed)
        H = self.horizon
        mean = self.frame["mean"].to_numpy()
        s = np.asarray(self.scale, float)
        sd_e = s * float(self.error_quantile(0.9) - self.error_quantile(0.1)) / 2.5631
        r = self.noise
        if r is None or r.size < 2:
            r = np.zeros(1)
        var_r = (1.4826 * float(np.median(np.abs(r)))) ** 2
        var_l = np.maximum.accumulate(np.maximum(sd_e ** 2 - var_r, 0.0))
        inc = np.sqrt(np.diff(np.concatenate(([0.0], var_l))))
        # in place where possible: every fresh (n, H) array costs more than the arithmetic
        paths = rng.standard_normal((n, H))
        paths *= inc[None, :]
        # level error: a random walk along each path, i.e. np.cumsum(axis=1); for many paths step
        # by step (one vector add per step beats n short scans; the same sums in the same order)
        if n >= 256:
            for h in range(1, H):
                np.add(paths[:, h], paths[:, h - 1], out=paths[:, h])
        else:
            np.cumsum(paths, axis=1, out=paths)
        paths += mean[None, :]
        b = int(max(1, min(self.block, r.size)))
        nb = -(-H // b)
        starts = rng.integers(0, r.size, size=(n, nb))
        # circular blocks r[(start + i) % r.size], i < b: rows of the windows of r extended by b
        blocks = np.lib.stride_tricks.sliding_window_view(np.concatenate([r, r[:b]]), b)
        paths += blocks[starts].reshape(n, nb * b)[:, :H]
        m = self.members
        if m is not None and len(m) > 1:
            paths += (m - mean[None, :])[rng.integers(0, len(m), size=n)]
        return self._clip(paths, out=paths)

    def _clip(self, a: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        lo, hi = self.bounds
        return np.clip(a, -np.inf if lo is None else lo, np.inf if hi is None else hi, out=out)

    def to_dict(self) -> dict:
        """The ``capplan forecast --json`` shape (issue 5 item 6): keys model, grain, forecast,
        backtest, changes (ISO dates), warnings."""
        rows = [{"timestamp": ts.isoformat(), **{c: _num(r[c]) for c in COLS}}
                for ts, r in zip(self.frame.index, self.frame.to_dict("records"))]
        return {"model": self.model, "grain": self.grain, "forecast": rows,
                "backtest": self.backtest.to_dict(),
                "changes": [c.timestamp.isoformat() for c in self.changes],
                "warnings": list(self.warnings)}


COLS = ("mean", "lo80", "hi80", "lo95", "hi95")
