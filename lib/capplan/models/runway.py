"""Time to limit: when does a forecast cross a capacity limit, and how sure are we (issue 5 item 3).

Rules (see :func:`time_to_limit`):

* ``crossing`` is the first future step where the forecast mean reaches the limit;
  ``crossing_lo`` / ``crossing_hi`` are the first crossings of the upper (97.5 %) and lower (2.5 %)
  quantile paths, i.e. a 95 % range for the crossing date (``crossing_hi`` None = possibly beyond
  the horizon).
* ``p_cross_within_horizon`` is the share of the calibrated quantile paths (``mean + Q(u) s(h)``,
  u on a uniform grid of 1,000 points) that reach the limit within the horizon.
* Never a crossing extrapolated from a flat or falling series: unless the forecast's trend is
  significantly upward (``Forecast.trend_up``) all three dates are None and a warning says so;
  ``p_cross_within_horizon`` still comes from the calibrated paths (seasonal peaks or noise may
  reach the limit).
* A limit given as a Series (another metric, e.g. ``maxmemory``) is taken at its latest observed
  value; the warnings say so, with the value and its timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from capplan.errors import CapplanError, ConfigError, InsufficientData

if TYPE_CHECKING:  # pragma: no cover
    from capplan.models.growth import Forecast

__all__ = ["Runway", "time_to_limit"]

_GRID = (np.arange(1000) + 0.5) / 1000


@dataclass(frozen=True)
class Runway:
    """Result of :func:`time_to_limit`.  Timestamps are UTC; ``limit`` in the series' units."""

    crossing: pd.Timestamp | None
    crossing_lo: pd.Timestamp | None
    crossing_hi: pd.Timestamp | None
    p_cross_within_horizon: float | None
    model: str
    warnings: tuple
    status: str        # 'crosses' | 'not within horizon' | 'already over limit' | 'insufficient data'
    limit: float | None
    limit_source: str
    horizon_end: pd.Timestamp | None

    def to_dict(self) -> dict:
        """The ``capplan runway --json`` shape (issue 5 item 6)."""
        def iso(t):
            return None if t is None else t.isoformat()
        p = self.p_cross_within_horizon
        return {"crossing": iso(self.crossing), "crossing_lo": iso(self.crossing_lo),
                "crossing_hi": iso(self.crossing_hi),
                "p_cross_within_horizon": None if p is None else float(p),
                "model": self.model, "warnings": list(self.warnings)}


def _limit_value(limit) -> tuple[float, str, list[str]]:
    if isinstance(limit, pd.Series):
        s = pd.to_numeric(limit, errors="coerce").dropna()
        name = limit.name or "limit series"
        if s.empty:
            raise InsufficientData(f"limit series {name!r} has no observed value", needed=1,
                                   have=0, unit="points",
                                   hint="pass a constant limit or a series with data")
        ts = s.index[-1]
        when = ts.isoformat() if hasattr(ts, "isoformat") else str(ts)
        src = f"latest value of {name} ({float(s.iloc[-1]):.6g} at {when})"
        notes = [f"limit taken as the {src}"]
        if s.nunique() > 1:
            notes.append(f"{name} changed during its history; a later change moves the crossing")
        return float(s.iloc[-1]), src, notes
    try:
        v = float(limit)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"limit {limit!r} is not a number or a Series", key="limit") from exc
    if not np.isfinite(v):
        raise ConfigError(f"limit {limit!r} must be finite", key="limit")
    return v, "constant", []


def _first_cross(path: np.ndarray, limit: float, index: pd.DatetimeIndex):
    hit = np.flatnonzero(path >= limit)
    return index[hit[0]] if hit.size else None


def time_to_limit(fc: "Forecast | CapplanError", limit: "float | pd.Series") -> Runway:
    """First crossing of ``limit`` by forecast ``fc``, with a 95 % range and a probability.

    ``fc`` may also be the CapplanError that :func:`capplan.models.growth.fit_many` returned for a
    series; the result then has status 'insufficient data' and the message as its warning.
    Raises ConfigError for a limit that is not a finite number or a Series.
    """
    if isinstance(fc, CapplanError):
        return Runway(None, None, None, None, "none", (str(fc).splitlines()[0],),
                      "insufficient data", None, "", None)
    value, src, warns = _limit_value(limit)
    idx = fc.frame.index
    mean = fc.frame["mean"].to_numpy()
    hist = fc.history.dropna()
    if hist.size and hist.iloc[-1] >= value:
        above = (hist >= value).to_numpy()
        start = len(above) - np.argmin(above[::-1]) if not above.all() else 0
        warns.append(f"already over the limit {value:.6g} since {hist.index[start].isoformat()}")
        return Runway(hist.index[start], None, None, 1.0, fc.model, tuple(warns),
                      "already over limit", value, src, idx[-1])
    zgrid = fc.error_quantile(_GRID)
    peaks = np.max(mean[None, :] + zgrid[:, None] * fc.scale[None, :], axis=1)
    lo_b, hi_b = fc.bounds
    if hi_b is not None:
        peaks = np.minimum(peaks, hi_b)
    p = float(np.mean(peaks >= value))
    if not fc.trend_up:
        why = (f"only {fc.trend_blocks} blocks of history after the last change to estimate a trend"
               if fc.trend_blocks < 4 else
               f"trend not significantly upward ({fc.trend_per_step:+.3g} per {fc.grain}, "
               f"t = {fc.trend_t:.1f})")
        warns.append(f"{why}: no crossing date is extrapolated; p_cross_within_horizon comes "
                     "from the calibrated paths")
        return Runway(None, None, None, p, fc.model, tuple(warns), "not within horizon", value,
                      src, idx[-1])
    crossing = _first_cross(mean, value, idx)
    c_lo = _first_cross(fc.quantile_path(0.975), value, idx)
    c_hi = _first_cross(fc.quantile_path(0.025), value, idx)
    if crossing is None and "trend=linear" not in fc.model and "trend=damped" not in fc.model:
        warns.append(f"the series grows significantly ({fc.trend_per_step:+.3g} per {fc.grain}) "
                     "but the backtest preferred models without a trend; a crossing at that "
                     "growth is not forecast")
    if crossing is None:
        warns.append(f"the forecast mean stays below {value:.6g} until {idx[-1].isoformat()} "
                     "(not within horizon)")
        status = "not within horizon"
    else:
        status = "crosses"
        if c_hi is None:
            warns.append("the lower path stays below the limit within the horizon: the crossing "
                         "may come after " + idx[-1].isoformat())
    return Runway(crossing, c_lo, c_hi, p, fc.model, tuple(warns), status, value, src, idx[-1])
