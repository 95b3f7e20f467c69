"""Derived series, one implementation for every source: counter increases, rates and ratios.

Counters stay raw in the store; everything here derives on read, with Prometheus semantics:

* An *increase* is taken between consecutive samples of one counter.  A counter that goes down
  has been reset (restart, ``CONFIG RESETSTAT``, ``pg_stat_reset()``), and the value after the
  reset is taken as the increase since it (what ``rate()``/``increase()`` do).  A delta is never
  negative.  Resets that the values alone cannot show (the counter climbed back above its old
  value before the next sample) are applied when the caller passes their timestamps, e.g. from a
  change of ``redis_start_time_seconds``.
* A *rate* is the increase divided by the seconds between the two samples.
* A *ratio* such as a cache hit ratio is ``sum(Δhits) / (sum(Δhits) + sum(Δmisses))`` over the
  window: deltas are summed first, ratios are never averaged (REFERENCE gotcha 3).  A window with
  no traffic has no ratio (NaN, "no data"), never 0 % or 100 %.  Every ratio carries its Wilson
  95 % score interval and the count behind it.

Wilson score interval (Wilson 1927; Brown, Cai & DasGupta 2001, eq. 4)::

    centre = (p + z²/2n) / (1 + z²/n),  half = z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n)
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from capplan.core.frame import SERIES_KEY, make_frame

__all__ = [
    "Z95",
    "wilson_interval",
    "counter_increase",
    "counter_rate",
    "resets_from_start_time",
    "RatioEstimate",
    "ratio_from_increases",
    "ratio_from_counters",
    "bucket_rate",
    "rate_frame",
]

Z95 = 1.959963984540054


def wilson_interval(successes: float, n: float, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for ``successes`` out of ``n`` (NaNs when ``n`` is 0)."""
    if n <= 0:
        return (math.nan, math.nan)
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def _clean(s: pd.Series) -> pd.Series:
    s = s.dropna().sort_index()
    return s[~s.index.duplicated(keep="last")].astype("float64")


def _seconds_between(idx: pd.DatetimeIndex) -> np.ndarray:
    """Seconds between consecutive timestamps (independent of the index's resolution)."""
    if len(idx) < 2:
        return np.array([], dtype="float64")
    return np.diff((idx - idx[0]).total_seconds().to_numpy())


def counter_increase(s: pd.Series, *, resets: Iterable | None = None) -> pd.Series:
    """Per-interval increases of a counter, labelled by the interval's end timestamp.

    ``s`` is one counter series indexed by timestamp (NaNs dropped).  A decrease, or a sample at
    one of the ``resets`` timestamps, counts as a reset: the increase is then the value itself.
    The result has one row fewer than the cleaned input and is never negative.
    """
    s = _clean(s)
    if len(s) < 2:
        return pd.Series([], index=s.index[:0], dtype="float64", name=s.name)
    v = s.to_numpy()
    d = np.diff(v)
    reset = d < 0
    if resets is not None:
        rs = pd.DatetimeIndex(list(resets))
        if len(rs):
            if rs.tz is None:
                rs = rs.tz_localize("UTC")
            reset |= s.index[1:].isin(rs)
    inc = np.where(reset, v[1:], d)
    return pd.Series(inc, index=s.index[1:], name=s.name)


def counter_rate(s: pd.Series, *, resets: Iterable | None = None) -> pd.Series:
    """Per-second rate of a counter between consecutive samples (see :func:`counter_increase`)."""
    inc = counter_increase(s, resets=resets)
    s = _clean(s)
    dt = _seconds_between(s.index)
    return pd.Series(inc.to_numpy() / dt, index=inc.index, name=s.name)


def resets_from_start_time(start_time: pd.Series, tolerance_s: float = 5.0) -> pd.DatetimeIndex:
    """Timestamps where a process start time (e.g. ``redis_start_time_seconds``) changed."""
    st = _clean(start_time)
    if len(st) < 2:
        return pd.DatetimeIndex([], tz="UTC")
    jump = np.abs(np.diff(st.to_numpy())) > tolerance_s
    return st.index[1:][jump]


@dataclass(frozen=True)
class RatioEstimate:
    """A ratio of summed counter increases over a window, with its Wilson 95 % interval.

    ``value`` is NaN (no data) when ``n`` is 0.  ``successes`` and ``n`` are the summed
    increases of the numerator and of numerator + other.
    """

    value: float
    lo95: float
    hi95: float
    successes: float
    n: float
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    resets: int = 0

    @property
    def has_data(self) -> bool:
        return self.n > 0

    def to_dict(self) -> dict:
        nan = lambda x: None if x is None or (isinstance(x, float) and math.isnan(x)) else x  # noqa: E731
        return {"value": nan(self.value), "interval": [nan(self.lo95), nan(self.hi95)],
                "successes": self.successes, "n": self.n,
                "window": [None if self.start is None else self.start.isoformat(),
                           None if self.end is None else self.end.isoformat()],
                "resets": self.resets}


def ratio_from_increases(num_inc: pd.Series, other_inc: pd.Series, grain: str | None = None, *,
                         resets: int = 0, start=None, end=None):
    """Ratio ``ΣΔnum / (ΣΔnum + ΣΔother)`` from per-interval increases.

    The increases may come from several series (instances, databases) concatenated: each was
    derived from its own counter first, so aggregating them here is "rate before sum"
    (REFERENCE gotcha 4).  With ``grain=None`` returns one :class:`RatioEstimate`; with a grain,
    a DataFrame indexed by bucket start with ``ratio``, ``lo95``, ``hi95``, ``successes``, ``n``
    (increases bucketed by the end of their interval; no traffic gives NaN, never 0 or 1).
    """
    if grain is None:
        k = float(num_inc.sum())
        n = k + float(other_inc.sum())
        lo, hi = wilson_interval(k, n)
        return RatioEstimate(value=(k / n) if n > 0 else math.nan, lo95=lo, hi95=hi,
                             successes=k, n=n, start=start, end=end, resets=resets)
    a = num_inc.resample(grain, label="left", closed="right").sum(min_count=1)
    b = other_inc.resample(grain, label="left", closed="right").sum(min_count=1)
    g = pd.concat([a.rename("a"), b.rename("b")], axis=1)
    k = g["a"].to_numpy(dtype=float)
    n = k + g["b"].to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        ratio = np.where(n > 0, k / np.where(n > 0, n, 1), np.nan)
    ci = np.array([wilson_interval(kk, nn) if nn > 0 else (np.nan, np.nan)
                   for kk, nn in zip(np.nan_to_num(k), np.nan_to_num(n))]).reshape(-1, 2)
    return pd.DataFrame({"ratio": ratio, "lo95": ci[:, 0], "hi95": ci[:, 1],
                         "successes": k, "n": n}, index=g.index)


def ratio_from_counters(num: pd.Series, other: pd.Series, grain: str | None = None, *,
                        resets: Iterable | None = None):
    """Ratio ``Δnum / (Δnum + Δother)`` from two counters of one instance (e.g. hits, misses).

    See :func:`ratio_from_increases` for the result; ``resets`` are extra reset timestamps.
    """
    resets = list(resets) if resets is not None else None
    clean = _clean(num)
    n_resets = int((np.diff(clean.to_numpy()) < 0).sum()) if len(clean) > 1 else 0
    return ratio_from_increases(counter_increase(num, resets=resets),
                                counter_increase(other, resets=resets), grain, resets=n_resets,
                                start=clean.index[0] if len(clean) else None,
                                end=clean.index[-1] if len(clean) else None)


def bucket_rate(s: pd.Series, grain: str, *, statistic: str = "mean",
                resets: Iterable | None = None) -> pd.Series:
    """Per-second rate of one counter per ``grain`` bucket (labelled by the bucket start).

    ``mean``: the bucket's summed increase over its summed seconds (never an average of
    per-interval rates); ``max``: the highest per-interval rate in the bucket (the peak).
    """
    inc = counter_increase(s, resets=resets)
    secs = pd.Series(_seconds_between(_clean(s).index), index=inc.index)
    if statistic == "max":
        return (inc / secs.where(secs > 0)).resample(grain, label="left", closed="right").max()
    return inc.resample(grain, label="left", closed="right").sum(min_count=1) / \
        secs.resample(grain, label="left", closed="right").sum(min_count=1).where(lambda x: x > 0)


def _rate_name(metric: str) -> str:
    base = metric[:-6] if metric.endswith("_total") else metric
    return f"{base}_per_second"


def rate_frame(frame: pd.DataFrame, grain: str | None = None) -> pd.DataFrame:
    """Per-second rates of every counter series in a contract frame, as gauge series.

    ``x_total`` becomes ``x_per_second`` (unit ``per_second``).  With a grain, the rate of a
    bucket is the summed increase in it divided by the summed interval seconds (never an average
    of per-interval rates).  Gauge series are dropped.  A ``redis_counter_reset`` gauge in the
    frame (1 at the first sample after a reset) marks resets of that source's counters.
    """
    out = []
    counters = frame[frame["kind"] == "counter"]
    flags = frame[(frame["metric"] == "redis_counter_reset") & (frame["value"] >= 1)]
    for (source, metric, labels), rows in counters.groupby(list(SERIES_KEY), sort=False):
        s = rows.set_index("timestamp")["value"]
        resets = flags.loc[flags["source"] == source, "timestamp"]
        if grain:
            rate = bucket_rate(s, grain, resets=resets).dropna()
        else:
            rate = counter_rate(s, resets=resets).dropna()
        if rate.empty:
            continue
        out.append(pd.DataFrame({"timestamp": rate.index, "source": source,
                                 "metric": _rate_name(metric), "labels": labels,
                                 "value": rate.to_numpy(), "kind": "gauge", "unit": "per_second"}))
    if not out:
        return make_frame([])
    return make_frame(pd.concat(out, ignore_index=True), validate=False)
