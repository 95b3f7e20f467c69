"""Latency from stored histogram bucket counters (``<name>_bucket{le}``), without PromQL.

Scraped ``/metrics`` (``source: metrics_endpoint``), raw buckets read from Prometheus (a query
with ``kind: counter``) and exported files all store histogram buckets as cumulative counters.
This module turns them into what a report states, with :mod:`capplan.models.histogram`:

* :func:`window_quantile` -- one quantile over a window, with the bucket that bounds it;
* :func:`quantile_series` -- a quantile per ``grain`` bucket (what a latency target evaluates);
* :func:`slo_fraction` -- the share of requests at or below a threshold, *exact* when the
  threshold is a bucket bound and said to be approximate (with its bounds) when not.

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
from capplan.errors import InsufficientData
from capplan.models import histogram as h

__all__ = ["bucket_increases", "window_quantile", "quantile_series", "slo_fraction"]


def bucket_increases(store, metric: str, *, start=None, end=None, source: str | None = None,
                     grain: str | None = None) -> pd.DataFrame:
    """Increases of every bucket, summed per ``le``: rows = interval ends (or ``grain``
    buckets), columns = bucket bounds (float, ``inf`` last).  Raises :class:`InsufficientData`
    when the store holds no ``le``-labelled series of ``metric``."""
    raw = store.query(metric, source=source, start=start, end=end)
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
