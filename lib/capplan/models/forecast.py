"""The fitted-forecast value types, shared by :mod:`capplan.models.growth` (which builds them) and
:mod:`capplan.models.runway` (which reads them), so neither imports the other.

Sample paths (issue 12 item 1).  A forecast's uncertainty has two parts with different dependence
over time: a persistent *level* error (the level, trend and season estimates are off, and the
level keeps wandering: its variance grows with the horizon) and short-lived *noise* (bursts of a
few hours).  :meth:`Forecast.sample_paths` simulates both jointly,

    D[k, h] = sqrt(f(h)) * W[k, h] + sqrt(1 - f(h)) * R[k, h] + member deviation,

where ``W`` is a standardised Gaussian random walk (``cumsum(N(0, 1)) / sqrt(h)``: the correlation
of a random walk level), ``R`` a circular block bootstrap of the fit's standardised one-step
residuals (Politis & Romano 1992: blocks keep the bursts' own autocorrelation), ``f(h) = 1 -
s(1)**2 / s(h)**2`` the share of the calibrated error variance that the horizon added, and each
path follows one randomly drawn ensemble member (model uncertainty: the member's departure from
the combined mean, in units of ``s(h)``).  The calibrated marginals are then put on these paths by
rank at every step (ensemble copula coupling, Schefzik, Thorarinsdottir & Gneiting 2013; the
Schaake shuffle, Clark et al. 2004): at step ``h`` the path with the j-th smallest ``D`` gets the
j-th of the stratified marginal quantiles ``mean(h) + Q((j + 0.5) / n) s(h)``.  So every step's
spread is exactly the calibrated interval (the 2.5 % / 97.5 % marginals are the 95 % band), while
a path's course over the horizon has the simulated dependence, and the share of paths that reach
a limit is a probability, not the largest marginal exceedance that comonotone quantile paths give.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

__all__ = ["Backtest", "Forecast"]

RUNWAY_PATHS = 1000     # paths behind every runway probability and date
MIN_TEMPLATES = 5       # backtest error paths needed to use them as dependence templates
NOISE_SHARE = 0.25      # variance share of bootstrapped noise added to an error-path template


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
    forecasts, ``resid`` the standardised one-step residuals and ``block`` the bootstrap block
    length used by :meth:`sample_paths`."""

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
    resid: np.ndarray = field(repr=False, default=None)
    block: int = 1
    error_paths: np.ndarray = field(repr=False, default=None)

    @functools.cached_property
    def runway_paths(self) -> np.ndarray:
        """The sample paths :func:`capplan.models.runway.time_to_limit` reads (RUNWAY_PATHS,
        seed 0), computed once per forecast."""
        return self.sample_paths(RUNWAY_PATHS, seed=0)

    def error_quantile(self, u) -> np.ndarray:
        """Normalised error quantile function Q(u), u in (0, 1): piecewise linear through the
        interval quantiles (so the 2.5 % / 97.5 % marginals are the 95 % band edges), the pooled
        median and the pooled 0.1 % / 99.9 % tails."""
        return np.interp(u, self.path_knots[0], self.path_knots[1])

    def quantile_path(self, q: float) -> np.ndarray:
        """The marginal ``q`` quantile (0..1) at every step, clipped to bounds.  It is a band
        edge, not a scenario: no single path follows it (use :meth:`sample_paths`)."""
        return self._clip(self.frame["mean"].to_numpy() + float(self.error_quantile(q)) * self.scale)

    def dependence(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` x ``horizon`` simulated dependence process D (module docstring): only its ranks
        at each step are used.  Deterministic for a fixed seed."""
        rng = np.random.default_rng(seed)
        H = self.horizon
        s = np.maximum(np.asarray(self.scale, float), 1e-12)
        E = self.error_paths
        if E is not None and E.shape[0] >= MIN_TEMPLATES:
            # a past forecast's whole error path (backtest fold), continued as a random walk
            # beyond the backtest horizon, plus bootstrapped noise for variety within a template
            hb = min(E.shape[1], H)
            T = np.zeros((n, H))
            T[:, :hb] = E[rng.integers(0, E.shape[0], size=n), :hb]
            if H > hb:
                g = np.sqrt(np.clip(1.0 - (s[hb - 1] / s[hb:]) ** 2, 0.0, 1.0))
                T[:, hb:] = T[:, hb - 1:hb] * (s[hb - 1] / s[hb:]) + g * (
                    np.cumsum(rng.standard_normal((n, H - hb)), axis=1)
                    / np.sqrt(np.arange(1, H - hb + 1)))
            D = np.sqrt(1.0 - NOISE_SHARE) * T + np.sqrt(NOISE_SHARE) * self._noise(rng, n, H)
        else:
            f = np.clip(1.0 - (s[0] / s) ** 2, 0.0, 1.0)
            W = np.cumsum(rng.standard_normal((n, H)), axis=1) / np.sqrt(np.arange(1, H + 1))
            D = np.sqrt(f)[None, :] * W + np.sqrt(1.0 - f)[None, :] * self._noise(rng, n, H)
        m = self.members
        if m is not None and len(m) > 1:
            dev = (m - self.frame["mean"].to_numpy()[None, :]) / s[None, :]
            D += dev[rng.integers(0, len(m), size=n)]
        return D

    def _noise(self, rng, n: int, H: int) -> np.ndarray:
        """Circular block bootstrap of the standardised residuals (N(0, 1) without them)."""
        r = self.resid
        if r is None or r.size < 2:
            return rng.standard_normal((n, H))
        b = int(max(1, min(self.block, r.size)))
        nb = -(-H // b)
        starts = rng.integers(0, r.size, size=(n, nb))
        idx = (starts[:, :, None] + np.arange(b)[None, None, :]).reshape(n, nb * b)[:, :H]
        return r[idx % r.size]

    def sample_paths(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` x ``horizon`` joint sample paths (module docstring), clipped to bounds: at every
        step their spread is the calibrated interval, over time they follow the simulated level,
        noise and model dependence.  Deterministic for a fixed seed."""
        D = self.dependence(n, seed)
        z = self.error_quantile((np.arange(n) + 0.5) / n)          # sorted: Q is monotone
        vals = self.frame["mean"].to_numpy()[None, :] + z[:, None] * self.scale[None, :]
        order = np.argsort(D, axis=0, kind="stable")
        paths = np.empty_like(vals)
        np.put_along_axis(paths, order, vals, axis=0)
        return self._clip(paths)

    def _clip(self, a: np.ndarray) -> np.ndarray:
        lo, hi = self.bounds
        return np.clip(a, -np.inf if lo is None else lo, np.inf if hi is None else hi)

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
