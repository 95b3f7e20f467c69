"""From the store to analysis-ready evidence: one named quantity, one window, its sample count.

Params name quantities by metric name.  A stored metric is read as it is; a few *derived*
quantities are defined once here, so every notebook and every source computes them the same way:

=============================== ============================================================
name                            definition
=============================== ============================================================
``<x>_per_second``              counter rate of ``<x>_total`` (:func:`capplan.rates.rate_frame`)
``redis_keyspace_hit_ratio``    Δhits / (Δhits + Δmisses), summed deltas, Wilson interval
``pg_cache_hit_ratio``          Δblks_hit / (Δblks_hit + Δblks_read), summed deltas
``http_success_ratio``          1 − Δfailed / Δrequests (availability), summed deltas
``pg_client_backends_total``    sum over ``state`` of ``pg_client_backends``
=============================== ============================================================

Counter resets that the values alone cannot show (a counter that climbed back past its old
value between two samples) are taken from the collectors' own signals: ``redis_counter_reset``
(1 at the first sample after a restart or ``CONFIG RESETSTAT``), a change of
``redis_start_time_seconds``, and a change of ``pg_stats_reset_time_seconds``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from capplan.errors import InsufficientData
from capplan.frame import SERIES_KEY
from capplan.rates import RatioEstimate, counter_increase, ratio_from_counters, resets_from_start_time

__all__ = ["RATIOS", "SUMS", "Evidence", "load_series", "load_ratio", "describe_store",
           "counter_total", "counter_cumulative", "ratio_series",
           "is_ratio", "unit_of"]

#: ratio name -> (numerator counter, other counter, "other" means complement (hits/misses) or
#: "total" means the second counter is the total and the ratio is 1 - num/total)
RATIOS: dict[str, tuple[str, str, str]] = {
    "redis_keyspace_hit_ratio": ("redis_keyspace_hits_total", "redis_keyspace_misses_total", "other"),
    "pg_cache_hit_ratio": ("pg_blks_hit_total", "pg_blks_read_total", "other"),
    "http_success_ratio": ("http_requests_failed_total", "http_requests_total", "complement"),
}
SUMS: dict[str, str] = {"pg_client_backends_total": "pg_client_backends"}


@dataclass(frozen=True)
class Evidence:
    """A series at the analysis grain plus where it came from and how much data is behind it."""

    name: str
    series: pd.Series
    unit: str
    source: str
    n_samples: int
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    grain: str
    how: str

    def window(self) -> list[str | None]:
        return [None if self.start is None else self.start.isoformat(),
                None if self.end is None else self.end.isoformat()]


def is_ratio(name: str) -> bool:
    return name in RATIOS or name.endswith("_ratio")


def unit_of(name: str, store) -> str:
    if is_ratio(name):
        return "ratio"
    if name.endswith("_per_second"):
        return "per_second"
    base = SUMS.get(name, name)
    s = store.series()
    rows = s[s["metric"] == base]
    return str(rows["unit"].iloc[0]) if len(rows) else "count"


def _read(store, metric: str, start, end, source: str | None = None) -> pd.DataFrame:
    return store.query(metric, source=source, start=start, end=end)


def _resets_for(store, source: str, start, end):
    """Reset times of a source's counters that the values alone may not show (module doc)."""
    kind = source.split(":", 1)[0]
    times: list[pd.Timestamp] = []
    if kind == "redis":
        flag = store.query("redis_counter_reset", source=source, start=start, end=end)
        times += list(flag.loc[flag["value"] >= 1, "timestamp"])
        st = store.query("redis_start_time_seconds", source=source, start=start, end=end)
        if not st.empty:
            times += list(resets_from_start_time(st.set_index("timestamp")["value"]))
    elif kind == "postgres":
        sr = store.query("pg_stats_reset_time_seconds", source=source, start=start, end=end)
        for _lab, rows in sr.groupby("labels"):
            v = rows.set_index("timestamp")["value"].dropna().sort_index()
            if len(v) > 1:
                times += list(v.index[1:][np.diff(v.to_numpy()) != 0])
    return sorted(set(times)) or None


def load_series(store, name: str, *, start=None, end=None, grain: str = "1h",
                statistic: str = "mean", source: str | None = None) -> Evidence:
    """One quantity as a regular series at ``grain``; ``statistic`` aggregates within a bucket.

    ``statistic`` is ``mean`` or ``max`` (capacity limits bite at the peak: use ``max`` for
    connections and request rates).  Several series of a stored metric are summed per bucket
    (e.g. clients over states); ``source`` (e.g. ``redis:cache``) keeps one instance when the
    store holds several.  Raises :class:`InsufficientData` when nothing is stored.
    """
    if name in RATIOS:
        num, other, how = RATIOS[name]
        df = ratio_series(store, name, start=start, end=end, grain=grain, source=source)
        s = df["ratio"]
        src = ",".join(sorted(set(store.query(num, source=source, start=start, end=end)["source"])))
        n = int(np.nansum(df["n"].to_numpy()))
        return Evidence(name, s, "ratio", src, n, s.index.min() if len(s) else None,
                        s.index.max() if len(s) else None, grain, f"summed deltas of {num}, {other}")
    per_second = name.endswith("_per_second") and name not in SUMS
    base = (name[: -len("_per_second")] + "_total") if per_second else SUMS.get(name, name)
    raw = _read(store, base, start, end, source)
    if raw.empty:
        raise InsufficientData(f"no samples of '{base}' in the store"
                               + (f" from source '{source}'" if source else "")
                               + (f" between {start} and {end}" if start or end else ""),
                               hint="collect it first (notebook 01-collect) or fix the metric name")
    parts = []
    for (source, _metric, _labels), rows in raw.groupby(list(SERIES_KEY), sort=False):
        s = rows.set_index("timestamp")["value"].sort_index()
        if per_second:
            resets = _resets_for(store, source, start, end)
            inc = counter_increase(s, resets=resets)
            secs = pd.Series(np.diff((s.index - s.index[0]).total_seconds().to_numpy()),
                             index=inc.index) if len(s) > 1 else pd.Series(dtype=float)
            if statistic == "max":
                # peak of the per-interval rate within each bucket
                rate = (inc / secs.where(secs > 0)).resample(grain, label="left", closed="right").max()
            else:
                rate = inc.resample(grain, label="left", closed="right").sum(min_count=1) / \
                    secs.resample(grain, label="left", closed="right").sum(min_count=1)
            parts.append(rate)
        else:
            agg = s.resample(grain, label="left", closed="left")
            parts.append(agg.max() if statistic == "max" else agg.mean())
    if len(parts) == 1:
        series = parts[0]
    elif statistic == "max" and not per_second:
        # sum first at the raw resolution, then take the bucket peak
        wide = pd.concat([rows.set_index("timestamp")["value"].rename(i)
                          for i, (_, rows) in enumerate(raw.groupby(list(SERIES_KEY)))], axis=1)
        series = wide.sum(axis=1, min_count=1).resample(grain, label="left", closed="left").max()
    else:
        series = pd.concat(parts, axis=1).sum(axis=1, min_count=1)
    series = series.dropna()
    series.name = name
    unit = "per_second" if per_second else str(raw["unit"].iloc[0])
    how = ("counter rate" if per_second else "stored gauge") + \
        (f", summed over {raw[list(SERIES_KEY)].drop_duplicates().shape[0]} series" if len(parts) > 1 else "") + \
        f", {statistic} per {grain}"
    return Evidence(name, series, unit, ",".join(sorted(set(raw["source"]))), int(len(raw)),
                    raw["timestamp"].min(), raw["timestamp"].max(), grain, how)


def _counter_pair(store, name, start, end, source=None):
    num, other, how = RATIOS[name]
    a = _read(store, num, start, end, source)
    b = _read(store, other, start, end, source)
    if a.empty or b.empty:
        raise InsufficientData(f"'{name}' needs counters {num} and {other}; "
                               f"found {len(a)} and {len(b)} samples",
                               hint="collect both counters (notebook 01-collect)")
    sa = a.groupby("timestamp")["value"].sum().sort_index()
    sb = b.groupby("timestamp")["value"].sum().sort_index()
    resets = None
    sources = sorted(set(a["source"]))
    if len(sources) == 1:
        resets = _resets_for(store, sources[0], start, end)
    return sa, sb, how, resets


def ratio_series(store, name: str, *, start=None, end=None, grain: str = "1h",
                 source: str | None = None) -> pd.DataFrame:
    """Per-bucket ratio with Wilson interval and counts (see :func:`capplan.rates.ratio_from_counters`)."""
    sa, sb, how, resets = _counter_pair(store, name, start, end, source)
    if how == "complement":
        df = ratio_from_counters(sa, sb - sa, grain=grain, resets=resets)
        return df.assign(ratio=1 - df["ratio"], lo95=1 - df["hi95"], hi95=1 - df["lo95"],
                         successes=df["n"] - df["successes"])
    return ratio_from_counters(sa, sb, grain=grain, resets=resets)


def load_ratio(store, name: str, *, start=None, end=None, source: str | None = None) -> RatioEstimate:
    """One ratio over a whole window from summed counter deltas, with its Wilson interval."""
    sa, sb, how, resets = _counter_pair(store, name, start, end, source)
    if how == "complement":
        est = ratio_from_counters(sa, (sb - sa).clip(lower=0), resets=resets)
        return RatioEstimate(value=1 - est.value, lo95=1 - est.hi95, hi95=1 - est.lo95,
                             successes=est.n - est.successes, n=est.n, start=est.start,
                             end=est.end, resets=est.resets)
    return ratio_from_counters(sa, sb, resets=resets)


def describe_store(store) -> pd.DataFrame:
    """Sources, series, windows and sample counts for the report's Data section."""
    s = store.series()
    if s.empty:
        return pd.DataFrame(columns=["source", "series", "samples", "first", "last"])
    return (s.groupby("source")
            .agg(series=("metric", "size"), samples=("n", "sum"), first=("first", "min"),
                 last=("last", "max"))
            .reset_index())


def counter_total(store, metric: str, *, start=None, end=None,
                  source: str | None = None) -> tuple[float, int]:
    """Summed increase of a counter (all its series) over a window, and the samples behind it."""
    raw = _read(store, metric, start, end, source)
    if raw.empty:
        raise InsufficientData(f"no samples of counter '{metric}'"
                               + (f" between {start} and {end}" if start or end else ""),
                               hint="collect it first (notebook 01-collect)")
    total = 0.0
    for (source, _m, _l), rows in raw.groupby(list(SERIES_KEY), sort=False):
        s = rows.set_index("timestamp")["value"]
        total += float(counter_increase(s, resets=_resets_for(store, source, start, end)).sum())
    return total, int(len(raw))


def counter_cumulative(store, metric: str, *, start=None, end=None, grain: str = "1h",
                       source: str | None = None) -> pd.Series:
    """Cumulative increase of a counter since ``start`` at ``grain`` (for burn-down figures)."""
    raw = _read(store, metric, start, end, source)
    parts = []
    for (source, _m, _l), rows in raw.groupby(list(SERIES_KEY), sort=False):
        s = rows.set_index("timestamp")["value"]
        inc = counter_increase(s, resets=_resets_for(store, source, start, end))
        parts.append(inc.resample(grain, label="right", closed="right").sum())
    if not parts:
        return pd.Series(dtype=float)
    return pd.concat(parts, axis=1).sum(axis=1).cumsum()
