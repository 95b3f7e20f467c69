"""Latency from stored histogram bucket counters (``<name>_bucket{le}``), without PromQL.

Scraped ``/metrics`` (``source: metrics_endpoint``), raw buckets read from Prometheus (a query
with ``kind: counter``) and exported files all store histogram buckets as cumulative counters.
This module turns them into what a report states, with :mod:`capplan.models.histogram`:

* :func:`window_quantile` -- one quantile over a window, with the bucket that bounds it;
* :func:`quantile_series` -- a quantile per ``grain`` bucket (what a latency target evaluates);
* :func:`slo_fraction` -- the share of requests at or below a threshold, *exact* when the
  threshold is a bucket bound and said to be approximate (with its bounds) when not;
* :func:`histogram_metric` -- the ``<name>_bucket`` series behind a target's ``metric``, if the
  store holds buckets rather than a quantile gauge;
* :func:`block_histograms`, :func:`block_histogram_quantile`, :func:`block_slo_counts` -- the
  same per time block (hours or days counted back from the window end, as
  :func:`capplan.analysis.evidence.block_labels`), so a latency target or SLO read from buckets
  gets its interval from between-block variation like every other target.

Intervals of a bucket quantile (:func:`block_histogram_quantile`).  Blocks are resampled with
replacement and their bucket counts summed (a block bootstrap of the pooled histogram, Künsch
1989), and the interval is widened to the bucket bounds the bootstrap quantiles fall in: the
linear interpolation inside a bucket is PromQL's guess, the bucket is what the data know.  So a
target on a bucket bound can be decided, and one inside the quantile's bucket gives
"insufficient evidence" unless the blocks clear it.  A quantile in the ``+Inf`` bucket has no
upper end (``hi`` = inf): only a lower limit is known.

Increases are taken per bucket series first (Prometheus's reset rule, plus the store's known
reset times for the source), then added over series with the same ``le`` -- the equivalent of
``sum by (le) (increase(x_bucket[window]))`` without edge extrapolation.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from capplan.core.frame import parse_labels
from capplan.core.rates import counter_increase
from dataclasses import dataclass

from capplan.errors import InsufficientData
from capplan.models import histogram as h

__all__ = ["bucket_increases", "window_quantile", "quantile_series", "slo_fraction",
           "histogram_metric", "BlockHistograms", "block_histograms", "block_histogram_quantile",
           "block_slo_counts"]


def bucket_increases(store, metric: str, *, start=None, end=None, source: str | None = None,
                     grain: str | None = None) -> pd.DataFrame:
    """Increases of every bucket, summed per ``le``: rows = interval ends (or ``grain``
    buckets), columns = bucket bounds (float, ``inf`` last).  Raises :class:`InsufficientData`
    when the store holds no ``le``-labelled series of ``metric``."""
    return _wide(store.query(metric, source=source, start=start, end=end), metric, source, grain)


def _wide(raw: pd.DataFrame, metric: str, source: str | None, grain: str | None) -> pd.DataFrame:
    if raw.empty:
        raise InsufficientData(f"no samples of histogram '{metric}'"
                               + (f" from source '{source}'" if source else ""),
                               hint="histogram buckets are stored as <name>_bucket counters")
    cols: dict[float, list[pd.Series]] = {}
    for (_src, lab), rows in raw.groupby(["source", "labels"], sort=False):
        labels = parse_labels(lab)
        if "le" not in labels:
            continue
        inc = counter_increase(rows.set_index("timestamp")["value"].sort_index())
        cols.setdefault(h.parse_le(labels["le"]), []).append(inc)
    if not cols:
        raise InsufficientData(f"'{metric}' has no series with an le label",
                               hint="pass the _bucket series of a histogram")
    wide = pd.DataFrame({le: pd.concat(parts, axis=1, sort=True).sum(axis=1)
                         for le, parts in sorted(cols.items())}).fillna(0.0)
    if grain:
        wide = wide.resample(grain, label="left", closed="right").sum()
    return wide


def window_quantile(store, metric: str, q: float, *, start=None, end=None,
                    source: str | None = None) -> h.HistogramQuantile:
    """The ``q`` quantile of the observations made in the window (PromQL's rules)."""
    wide = bucket_increases(store, metric, start=start, end=end, source=source)
    return h.quantile(q, h.buckets(list(wide.columns), wide.sum(axis=0).tolist()))


def quantile_series(store, metric: str, q: float, *, grain: str = "1h", start=None, end=None,
                    source: str | None = None, min_count: float = 1.0) -> pd.DataFrame:
    """Per ``grain`` bucket: ``value`` (the quantile), ``lower``/``upper`` (its bucket), ``n``
    (observations); buckets with fewer than ``min_count`` observations are dropped."""
    wide = bucket_increases(store, metric, start=start, end=end, source=source, grain=grain)
    rows = []
    for ts, r in wide.iterrows():
        b = h.buckets(list(wide.columns), r.tolist())
        if not b.total >= min_count:
            continue
        res = h.quantile(q, b)
        rows.append({"timestamp": ts, "value": res.value, "lower": res.lower,
                     "upper": res.upper, "n": res.n, "open_ended": res.open_ended})
    out = pd.DataFrame(rows, columns=["timestamp", "value", "lower", "upper", "n", "open_ended"])
    return out.set_index("timestamp")


def slo_fraction(store, metric: str, threshold_s: float, *, start=None, end=None,
                 source: str | None = None) -> h.SloFraction:
    """Share of the window's observations at or below ``threshold_s`` (exact on a bucket bound;
    see :func:`capplan.models.histogram.fraction_below`)."""
    wide = bucket_increases(store, metric, start=start, end=end, source=source)
    totals = wide.sum(axis=0)
    if not math.isinf(float(totals.index[-1])):
        raise InsufficientData(f"'{metric}' has no +Inf bucket in the window",
                               hint="store every bucket of the histogram, +Inf included")
    return h.fraction_below(threshold_s, h.buckets(list(totals.index), np.asarray(totals)))


# ----------------------------------------------------------------------- per time block (targets)


def histogram_metric(store, metric: str | None) -> str | None:
    """``<metric>_bucket`` when the store holds that histogram and not ``metric`` itself (or
    ``metric`` when it already names stored ``_bucket`` series); None otherwise."""
    if not metric:
        return None
    ser = store.series()
    if ser.empty:
        return None
    names = set(ser["metric"])
    if metric.endswith("_bucket"):
        return metric if metric in names else None
    return f"{metric}_bucket" if f"{metric}_bucket" in names and metric not in names else None


@dataclass(frozen=True)
class BlockHistograms:
    """Cumulative bucket counts observed in each time block of a window.

    ``counts[i, j]``: observations <= ``bounds[j]`` in block ``labels[i]`` (0 = the newest
    block); ``bounds`` ends with ``inf``.  ``samples`` counts the stored bucket readings."""

    metric: str
    bounds: tuple[float, ...]
    counts: np.ndarray
    labels: tuple[int, ...]
    block: str
    samples: int
    first: pd.Timestamp
    last: pd.Timestamp
    sources: tuple[str, ...]

    @property
    def total(self) -> float:
        return float(self.counts[:, -1].sum()) if self.counts.size else 0.0

    def window(self) -> h.Buckets:
        return h.buckets(list(self.bounds), self.counts.sum(axis=0).tolist())


def block_histograms(store, metric: str, *, start, end, source: str | None = None,
                     block: str = "hour") -> BlockHistograms:
    """The window's bucket increases summed per time block (end sample included); blocks with
    no observations are dropped.  :class:`InsufficientData` when nothing is stored."""
    from capplan.analysis.evidence import block_labels, inclusive

    raw = store.query(metric, source=source, start=start, end=inclusive(end))
    wide = _wide(raw, metric, source, None)
    if not math.isinf(float(wide.columns[-1])):
        raise InsufficientData(f"'{metric}' has no +Inf bucket in the window",
                               hint="store every bucket of the histogram, +Inf included")
    g = wide.groupby(block_labels(pd.DatetimeIndex(wide.index), end, block)).sum().sort_index()
    g = g[g.iloc[:, -1] > 0]
    return BlockHistograms(metric, tuple(float(c) for c in wide.columns), g.to_numpy(float),
                           tuple(int(x) for x in g.index), block, int(len(raw)),
                           pd.Timestamp(raw["timestamp"].min()),
                           pd.Timestamp(raw["timestamp"].max()),
                           tuple(sorted(set(raw["source"]))))


def block_histogram_quantile(bh: BlockHistograms, q: float, *, conf: float = 0.95,
                             min_blocks: int | None = None, n_boot: int = 400, seed: int = 0):
    """(:class:`capplan.models.blocks.BlockEstimate`, window :class:`HistogramQuantile`) of the
    ``q`` quantile of a window's observations (module doc: the interval is a block bootstrap of
    the summed bucket counts, widened to the bounds of the buckets it falls in)."""
    from capplan.models.blocks import MIN_BLOCKS, BlockEstimate, blocks_text

    min_blocks = MIN_BLOCKS if min_blocks is None else min_blocks
    bounds = list(bh.bounds)
    k = int(bh.counts.shape[0])
    method = "block bootstrap of bucket counts, widened to bucket bounds"
    if k == 0:
        return (BlockEstimate(None, None, None, 0, min_blocks, bh.block, method, (), conf,
                              "no observations in the window"),
                h.quantile(q, h.buckets(bounds, [0.0] * len(bounds))))
    whole = h.quantile(q, bh.window())
    vals = tuple(float(h.quantile(q, h.buckets(bounds, row.tolist())).value) for row in bh.counts)
    if k < min_blocks:
        return (BlockEstimate(whole.value, None, None, k, min_blocks, bh.block, method, vals,
                              conf, f"{blocks_text(k, bh.block)}; at least {min_blocks} are "
                                    "needed"), whole)
    rng = np.random.default_rng(seed)
    lows, highs = np.empty(n_boot), np.empty(n_boot)
    for i in range(n_boot):
        res = h.quantile(q, h.buckets(bounds, bh.counts[rng.integers(0, k, size=k)].sum(axis=0)
                                      .tolist()))
        lows[i], highs[i] = res.lower, res.upper
    a = (1 - conf) / 2
    lo = min(float(np.quantile(lows, a, method="lower")), whole.lower)
    hi = max(float(np.quantile(highs, 1 - a, method="higher")), whole.upper)
    return BlockEstimate(whole.value, lo, hi, k, min_blocks, bh.block, method, vals, conf), whole


def block_slo_counts(bh: BlockHistograms, threshold: float):
    """(good per block, total per block, window :class:`SloFraction`): observations at or below
    ``threshold`` -- exact counts when it is a bucket bound, interpolated (and said so in the
    window fraction's ``note``) when not."""
    bounds = list(bh.bounds)
    good = np.array([h.fraction_below(threshold, h.buckets(bounds, row.tolist())).good
                     for row in bh.counts], float)
    return good, bh.counts[:, -1].astype(float), h.fraction_below(threshold, bh.window())
