"""Quantiles and SLO fractions from Prometheus histogram bucket counters (``*_bucket{le}``).

:func:`histogram_quantile` follows PromQL's ``histogram_quantile`` for classic histograms
(prometheus ``promql/quantile.go``, ``bucketQuantile``) rule for rule:

* ``q < 0`` gives ``-inf``, ``q > 1`` gives ``+inf``, a NaN ``q`` gives NaN;
* buckets are sorted by upper bound and buckets with the same bound are added together;
* the highest bucket must be ``+Inf`` (else NaN); fewer than two buckets or zero observations
  give NaN;
* cumulative counts that go down (bucket counters scraped at slightly different moments, or a
  reset seen by one bucket and not another) are forced monotonic: each count becomes the maximum
  of itself and the counts below it (``ensureMonotonic``);
* ``rank = q * count(+Inf)``; the first bucket whose cumulative count reaches the rank holds
  the quantile; inside it the value is interpolated linearly between its lower bound (the
  previous bucket's upper bound, or **0 for the lowest bucket**) and its upper bound;
* when the rank falls in the ``+Inf`` bucket the result is the highest finite bound (a lower
  limit only: the true quantile is somewhere above it);
* when the lowest bucket's upper bound is <= 0 and the rank falls in it, that bound is returned.

Linear interpolation assumes observations spread evenly inside a bucket, so the answer is only
known to lie within the bucket's bounds: :class:`HistogramQuantile` carries those bounds
(``lower``, ``upper``) and the bucket width, which is the precision of the figure.

A latency SLO ("99 % of requests under 300 ms") is a fraction of observations at or below a
threshold.  When the threshold is a bucket bound the fraction is *exact* from the counters
(``count(le=threshold) / count(+Inf)``); otherwise :func:`fraction_below` interpolates and says
the exact answer lies between the fractions at the neighbouring bounds.

Windows: bucket counters are cumulative since the process started.  :func:`window_counts`
turns a time series of cumulative counts into the increase over a window per bucket, with
Prometheus's reset rule (a decrease means the counter restarted from 0) applied bucket by
bucket -- the same as ``increase(x_bucket[w])`` without the edge extrapolation.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from capplan.errors import ConfigError, InsufficientData

__all__ = ["Buckets", "HistogramQuantile", "SloFraction", "parse_le", "buckets",
           "histogram_quantile", "quantile", "fraction_below", "window_counts",
           "increase", "histograms_from_frame"]


def parse_le(value: object) -> float:
    """A bucket bound from an ``le`` label (``"0.25"``, ``"+Inf"``, ``"1e-3"``)."""
    text = str(value).strip()
    if text in ("+Inf", "Inf", "inf", "+inf"):
        return math.inf
    try:
        out = float(text)
    except ValueError:
        raise ConfigError(f"bucket bound le={value!r} is not a number",
                          hint="histogram buckets have le labels like 0.1, 0.25, +Inf") from None
    if math.isnan(out):
        raise ConfigError("bucket bound le=NaN", hint="histogram bucket bounds must be numbers")
    return out


@dataclass(frozen=True)
class Buckets:
    """Cumulative bucket counts, sorted by upper bound, duplicates added, forced monotonic.

    ``forced_monotonic`` says whether any count had to be raised to the one below it.
    """

    upper: tuple[float, ...]
    counts: tuple[float, ...]
    forced_monotonic: bool = False

    @property
    def total(self) -> float:
        """Observations (the ``+Inf`` bucket; NaN when there is none)."""
        return self.counts[-1] if self.upper and math.isinf(self.upper[-1]) else math.nan

    @property
    def finite_bounds(self) -> tuple[float, ...]:
        return tuple(u for u in self.upper if not math.isinf(u))


def buckets(le: Iterable[object] | Mapping[object, float], counts: Iterable[float] | None = None
            ) -> Buckets:
    """:class:`Buckets` from bounds and cumulative counts (or one ``{le: count}`` mapping).

    Bounds may be numbers or ``le`` label text.  Sorts, adds equal bounds and forces monotonic
    counts as PromQL does.  NaN counts are refused.
    """
    if counts is None:
        if not isinstance(le, Mapping):
            raise ConfigError("give bounds and counts, or one {le: count} mapping")
        pairs = [(parse_le(k), float(v)) for k, v in le.items()]
    else:
        les, cs = list(le), [float(c) for c in counts]
        if len(les) != len(cs):
            raise ConfigError(f"{len(les)} bucket bounds but {len(cs)} counts")
        pairs = [(parse_le(k), c) for k, c in zip(les, cs)]
    if any(math.isnan(c) for _u, c in pairs):
        raise ConfigError("a bucket count is NaN", hint="drop the incomplete scrape")
    pairs.sort(key=lambda p: p[0])
    upper: list[float] = []
    cnt: list[float] = []
    for u, c in pairs:           # coalesceBuckets: equal bounds are added together
        if upper and upper[-1] == u:
            cnt[-1] += c
        else:
            upper.append(u)
            cnt.append(c)
    forced = False
    for i in range(1, len(cnt)):  # ensureMonotonic
        if cnt[i] < cnt[i - 1]:
            cnt[i] = cnt[i - 1]
            forced = True
    return Buckets(tuple(upper), tuple(cnt), forced)


@dataclass(frozen=True)
class HistogramQuantile:
    """A quantile from bucket counts: ``value`` (PromQL's answer) and what limits it.

    ``lower``/``upper`` bound the true quantile (the bucket it falls in); ``width`` is the
    precision.  ``open_ended`` is True when the rank fell in the ``+Inf`` bucket: ``value`` is
    then only a lower limit.  ``n`` is the number of observations.
    """

    q: float
    value: float
    lower: float
    upper: float
    n: float
    bucket_index: int
    open_ended: bool = False
    forced_monotonic: bool = False

    @property
    def width(self) -> float:
        return self.upper - self.lower

    def precision_note(self) -> str:
        if math.isnan(self.value):
            return "no observations"
        if self.open_ended:
            return (f"the {self.q:g} quantile lies above the highest finite bucket bound "
                    f"{self.lower:g}: only a lower limit is known (add buckets above it)")
        return (f"the {self.q:g} quantile lies in the bucket ({self.lower:g}, {self.upper:g}]; "
                f"linear interpolation within it; precision {self.width:g} (bucket width)")

    def to_dict(self) -> dict:
        return {"q": self.q, "value": self.value, "lower": self.lower, "upper": self.upper,
                "width": self.width, "n": self.n, "open_ended": self.open_ended,
                "forced_monotonic": self.forced_monotonic, "note": self.precision_note()}


def quantile(q: float, b: Buckets) -> HistogramQuantile:
    """PromQL ``histogram_quantile(q, ...)`` on one set of cumulative buckets (module doc)."""
    nan = math.nan
    q = float(q)
    if math.isnan(q):
        return HistogramQuantile(q, nan, nan, nan, nan, -1, forced_monotonic=b.forced_monotonic)
    if q < 0:
        return HistogramQuantile(q, -math.inf, nan, nan, nan, -1)
    if q > 1:
        return HistogramQuantile(q, math.inf, nan, nan, nan, -1)
    up, cs = b.upper, b.counts
    if not up or not math.isinf(up[-1]) or len(up) < 2:
        return HistogramQuantile(q, nan, nan, nan, nan, -1, forced_monotonic=b.forced_monotonic)
    n = cs[-1]
    if n == 0:
        return HistogramQuantile(q, nan, nan, nan, 0.0, -1, forced_monotonic=b.forced_monotonic)
    rank = q * n
    # sort.Search over all but the +Inf bucket: first index whose count >= rank
    idx = len(up) - 1
    for i in range(len(up) - 1):
        if cs[i] >= rank:
            idx = i
            break
    if idx == len(up) - 1:
        return HistogramQuantile(q, up[-2], up[-2], math.inf, n, idx, open_ended=True,
                                 forced_monotonic=b.forced_monotonic)
    if idx == 0 and up[0] <= 0:
        return HistogramQuantile(q, up[0], up[0], up[0], n, 0, forced_monotonic=b.forced_monotonic)
    start, end, count = 0.0, up[idx], cs[idx]
    if idx > 0:
        start = up[idx - 1]
        count -= cs[idx - 1]
        rank -= cs[idx - 1]
    value = start + (end - start) * (rank / count)
    return HistogramQuantile(q, value, start, end, n, idx, forced_monotonic=b.forced_monotonic)


def histogram_quantile(q: float, le: Iterable[object], counts: Iterable[float]) -> float:
    """The number PromQL's ``histogram_quantile(q, ...)`` returns for these buckets."""
    return quantile(q, buckets(le, counts)).value


@dataclass(frozen=True)
class SloFraction:
    """Fraction of observations at or below ``threshold``.

    ``exact`` is True when the threshold is a bucket bound (the fraction is then a count ratio,
    ``good / n``); otherwise ``value`` interpolates linearly and the true fraction lies in
    ``[lower, upper]`` (the fractions at the neighbouring bounds ``bounds``).
    """

    threshold: float
    value: float
    lower: float
    upper: float
    good: float
    n: float
    exact: bool
    bounds: tuple[float, float]
    note: str = ""

    def to_dict(self) -> dict:
        return {"threshold": self.threshold, "value": self.value, "lower": self.lower,
                "upper": self.upper, "good": self.good, "n": self.n, "exact": self.exact,
                "bounds": list(self.bounds), "note": self.note}


def fraction_below(threshold: float, b: Buckets, *, rel_tol: float = 1e-9) -> SloFraction:
    """Share of observations <= ``threshold`` (e.g. 0.3 s) from cumulative buckets.

    Raises :class:`InsufficientData` when there are no observations and
    :class:`ConfigError` when the buckets have no ``+Inf`` bucket.
    """
    thr = float(threshold)
    up, cs = b.upper, b.counts
    if not up or not math.isinf(up[-1]):
        raise ConfigError("the buckets have no +Inf bucket", hint="pass every le of the histogram")
    n = cs[-1]
    if n <= 0:
        raise InsufficientData("no observations in the histogram window", needed=1, have=0,
                               unit="observations")
    for u, c in zip(up, cs):
        if not math.isinf(u) and math.isclose(u, thr, rel_tol=rel_tol, abs_tol=0.0):
            return SloFraction(thr, c / n, c / n, c / n, c, n, True, (u, u),
                               f"exact: {thr:g} is a bucket bound ({c:g} of {n:g} observations)")
    lo_b, lo_c = 0.0, 0.0
    for u, c in zip(up, cs):
        if u > thr:
            hi_b, hi_c = u, c
            break
        lo_b, lo_c = u, c
    else:   # unreachable: the +Inf bucket is always above
        hi_b, hi_c = math.inf, n
    if math.isinf(hi_b):
        est = lo_c
        note = (f"not exact: {thr:g} is above the highest finite bound {lo_b:g}; between "
                f"{lo_c / n:.6g} and 1")
    else:
        est = lo_c + (hi_c - lo_c) * (thr - lo_b) / (hi_b - lo_b) if hi_b > lo_b else lo_c
        note = (f"not exact: {thr:g} is not a bucket bound; the true fraction lies between the "
                f"values at le={lo_b:g} and le={hi_b:g} ({lo_c / n:.6g} .. {hi_c / n:.6g}); a "
                f"bucket at {thr:g} would make it exact")
    return SloFraction(thr, est / n, lo_c / n, hi_c / n, est, n, False, (lo_b, hi_b), note)


def increase(values: Sequence[float]) -> float:
    """Increase of one cumulative counter over a series of readings (Prometheus reset rule:
    a decrease means a restart from 0, so the new reading counts in full); no extrapolation."""
    v = np.asarray(values, dtype=float)
    v = v[~np.isnan(v)]
    if len(v) < 2:
        return 0.0
    d = np.diff(v)
    return float(np.where(d < 0, v[1:], d).sum())


def window_counts(le: Sequence[object], readings: Sequence[Sequence[float]]) -> Buckets:
    """Buckets of the observations made during a window, from cumulative readings.

    ``readings`` has one row per scrape (oldest first) and one column per bound in ``le``; the
    increase of each bucket over the window is taken with :func:`increase` (resets per bucket).
    """
    m = np.asarray(readings, dtype=float)
    if m.ndim != 2 or m.shape[1] != len(le):
        raise ConfigError(f"readings must be scrapes x {len(le)} buckets, got shape {m.shape}")
    if m.shape[0] < 2:
        raise InsufficientData("a window needs two scrapes of the bucket counters",
                               needed=2, have=m.shape[0], unit="scrapes")
    return buckets(list(le), [increase(m[:, j]) for j in range(m.shape[1])])


def histograms_from_frame(frame, metric: str, *, by: Sequence[str] = (), start=None, end=None
                          ) -> dict[tuple, Buckets]:
    """Window buckets of a ``<name>_bucket`` counter in a contract frame, grouped by ``by`` labels.

    Like ``sum by (le, <by>) (increase(metric[window]))``: the increase of every bucket series
    is taken first (resets per series), then the series are added per ``(by..., le)``.  Returns
    ``{tuple of by-label values: Buckets}``.  Raises :class:`InsufficientData` when the frame
    holds no such series.
    """
    import pandas as pd

    from capplan.core.frame import parse_labels

    df = frame[frame["metric"] == metric]
    if start is not None:
        df = df[df["timestamp"] >= pd.Timestamp(start)]
    if end is not None:
        df = df[df["timestamp"] <= pd.Timestamp(end)]
    if df.empty:
        raise InsufficientData(f"no samples of {metric} in the window",
                               hint="histogram series end in _bucket and carry an le label")
    groups: dict[tuple, dict[float, float]] = {}
    for (src, lab), part in df.groupby(["source", "labels"], sort=False):
        labels = parse_labels(lab)
        if "le" not in labels:
            continue
        le = parse_le(labels["le"])
        key = tuple(labels.get(k, "") for k in by)
        inc = increase(part.sort_values("timestamp")["value"].to_numpy())
        g = groups.setdefault(key, {})
        g[le] = g.get(le, 0.0) + inc
    if not groups:
        raise InsufficientData(f"{metric} has no series with an le label",
                               hint="pass the _bucket series of a histogram")
    return {k: buckets(list(g), list(g.values())) for k, g in groups.items()}
