"""Time to limit: when does a forecast cross a capacity limit, and how sure are we (issues 5, 12).

Everything comes from one set of joint sample paths (:attr:`Forecast.runway_paths`: 1,000 paths
of :meth:`Forecast.sample_paths`, seed fixed, so the result is deterministic):

* ``p_cross_within_horizon`` is the *calibrated* probability of :mod:`capplan.models.runway_prob`:
  a fixed logistic stack of the share of paths that reach the limit (``p_paths``), the share of
  the paths widened 4x (``p_wide``) and the historical analog (``p_analog``: how often windows of
  the same length in the last 56 days reached the limit).  The raw share of paths alone was too
  sure near 0 and too eager in the middle on real series (issue 12, second round);
* the crossing dates are the paths' first-passage distribution *given* a crossing, scaled to that
  P: overall quantile q is the conditional quantile q / P (after the horizon when q > P).  So
  ``crossing`` (the median) exists exactly when P >= 0.5; ``crossing_lo`` / ``crossing_hi`` are
  the 2.5 % and 97.5 % quantiles, ``crossing_hi`` None ("after the horizon") when P < 0.975;
* ``status`` has one vocabulary, read from the same P, so it can never contradict it:
  ``crosses`` (P >= 0.5: the median path reaches the limit), ``not within horizon`` (P < 0.5),
  ``already over limit``, ``insufficient data``.  (The report may call a ``not within horizon``
  with P >= 0.2 *at risk*.)
* A crossing that does not come from a significant upward trend (seasonal peaks or noise reaching
  the limit) is still reported, with a warning that says where it comes from.
* A limit given as a Series (another metric, e.g. ``maxmemory``) is taken at its latest observed
  value; the warnings say so, with the value and its timestamp.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from capplan.errors import CapplanError, ConfigError, InsufficientData
from capplan.models.forecast import Forecast
from capplan.models.runway_prob import ANALOG_DAYS, CLEAN_TREND_T, calibrated, readings

__all__ = ["Runway", "time_to_limit", "first_passage", "CROSSES", "NOT_WITHIN", "OVER",
           "INSUFFICIENT", "status_for"]

CROSSES, NOT_WITHIN, OVER, INSUFFICIENT = ("crosses", "not within horizon", "already over limit",
                                           "insufficient data")


def status_for(p: float | None) -> str:
    """The runway status that goes with a crossing probability (the only rule there is)."""
    if p is None:
        return INSUFFICIENT
    return CROSSES if p >= 0.5 else NOT_WITHIN


@dataclass(frozen=True)
class Runway:
    """Result of :func:`time_to_limit`.  Timestamps are UTC; ``limit`` in the series' units."""

    crossing: pd.Timestamp | None
    crossing_lo: pd.Timestamp | None
    crossing_hi: pd.Timestamp | None
    p_cross_within_horizon: float | None
    model: str
    warnings: tuple
    status: str        # status_for(p): 'crosses' | 'not within horizon'; or 'already over limit' |
                       # 'insufficient data'
    limit: float | None
    limit_source: str
    horizon_end: pd.Timestamp | None
    # the readings behind p_cross_within_horizon (capplan.models.runway_prob); None when not
    # computed (already over limit, insufficient data)
    p_paths: float | None = None
    p_wide: float | None = None
    p_analog: float | None = None

    def crossing_text(self, fmt_date=lambda t: t.isoformat(), with_status: bool = True) -> str:
        """The crossing in the one vocabulary the CLI, notebook and report share:
        ``<median> (<2.5 %> – <97.5 % | after <horizon end>>)`` when the status is 'crosses';
        ``not within horizon (median crossing after <end>)``; ``already over limit (since
        <date>)``; else the status.  ``with_status=False`` drops the status words around the
        parenthesis (for a line that prints the status beside it)."""
        if self.status == CROSSES and self.crossing is not None:
            lo = fmt_date(self.crossing_lo) if self.crossing_lo is not None else "n/a"
            hi = (fmt_date(self.crossing_hi) if self.crossing_hi is not None
                  else f"after {fmt_date(self.horizon_end)}")
            return f"{fmt_date(self.crossing)} ({lo} – {hi})"
        if self.status == NOT_WITHIN and self.horizon_end is not None:
            what = f"median crossing after {fmt_date(self.horizon_end)}"
        elif self.status == OVER and self.crossing is not None:
            what = f"since {fmt_date(self.crossing)}"
        else:
            return self.status
        return f"{self.status} ({what})" if with_status else what

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


def first_passage(paths: np.ndarray, limit: float) -> tuple[float, np.ndarray]:
    """(share of paths reaching ``limit``, first-passage step of every path, inf = never)."""
    hit = paths >= limit
    crossed = hit.any(axis=1)
    t = np.where(crossed, np.argmax(hit, axis=1), np.inf).astype(float)
    return float(crossed.mean()), t


def _quantile_step(t: np.ndarray, q: float) -> float:
    """Lower q-quantile of first-passage steps (inf when that share of paths never crosses)."""
    srt = np.sort(t)
    return float(srt[max(0, int(np.ceil(q * srt.size)) - 1)])


def time_to_limit(fc: "Forecast | CapplanError", limit: "float | pd.Series") -> Runway:
    """First crossing of ``limit`` by forecast ``fc`` from its joint sample paths: median first
    passage, 2.5–97.5 % first-passage range and the probability of crossing within the horizon.

    ``fc`` may also be the CapplanError that :func:`capplan.models.growth.fit_many` returned for a
    series; the result then has status 'insufficient data' and the message as its warning.
    Raises ConfigError for a limit that is not a finite number or a Series.
    """
    if isinstance(fc, CapplanError):
        return Runway(None, None, None, None, "none", (str(fc).splitlines()[0],),
                      INSUFFICIENT, None, "", None)
    value, src, warns = _limit_value(limit)
    idx = fc.frame.index
    hist = fc.history.dropna()
    if hist.size and hist.iloc[-1] >= value:
        above = (hist >= value).to_numpy()
        start = len(above) - np.argmin(above[::-1]) if not above.all() else 0
        warns.append(f"already over the limit {value:.6g} since {hist.index[start].isoformat()}")
        return Runway(hist.index[start], None, None, 1.0, fc.model, tuple(warns), OVER, value,
                      src, idx[-1])
    step = idx[0] - hist.index[-1] if hist.size else pd.Timedelta(fc.grain)
    r = readings(fc.runway_paths, fc.runway_wide_paths, hist.to_numpy(float), value,
                 max(1, int(pd.Timedelta(days=ANALOG_DAYS) / step)))
    p = calibrated(r.p_paths, r.p_wide, r.p_analog,
                   clean_trend=bool(fc.trend_up and fc.trend_t >= CLEAN_TREND_T))
    ext = dict(p_paths=r.p_paths, p_wide=r.p_wide, p_analog=r.p_analog)
    # first passages given a crossing: the joint paths', else (no path crosses) the widened
    # paths', else the analog windows'
    t = next((x[np.isfinite(x)] for x in (r.t_paths, r.t_wide, r.t_analog)
              if np.isfinite(x).any()), np.empty(0))

    def at(q: float):
        if q > p or t.size == 0:
            return None
        k = _quantile_step(t, min(1.0, q / p))
        return idx[min(int(k), len(idx) - 1)]

    status = status_for(p)
    if status == NOT_WITHIN:
        warns.append(f"P = {p:.0%} that {value:.6g} is reached by {idx[-1].isoformat()} "
                     f"({r.p_paths:.0%} of the forecast paths, {r.p_analog:.0%} of past windows "
                     "of the same length): the median crossing is after the horizon "
                     "(not within horizon)")
        return Runway(None, None, None, p, fc.model, tuple(warns), status, value, src, idx[-1],
                      **ext)
    crossing, c_lo, c_hi = at(0.5), at(0.025), at(0.975)
    if not fc.trend_up:
        why = (f"only {fc.trend_blocks} blocks of history after the last change to estimate a trend"
               if fc.trend_blocks < 4 else
               f"the trend is not significantly upward ({fc.trend_per_step:+.3g} per {fc.grain}, "
               f"t = {fc.trend_t:.1f})")
        warns.append(f"{why}: the crossing comes from seasonal peaks and noise reaching the limit, "
                     "not from growth")
    if c_hi is None:
        warns.append(f"P = {1 - p:.0%} that the limit is not reached within the horizon: the "
                     "crossing may come after " + idx[-1].isoformat())
    return Runway(crossing, c_lo, c_hi, p, fc.model, tuple(warns), status, value, src, idx[-1],
                  **ext)
