"""From the store to analysis-ready evidence: one named quantity, one window, its sample count.

Params name quantities by metric name.  A stored metric is read as it is; a few *derived*
quantities are defined once here, so every notebook and every source computes them the same way:

=============================== ============================================================
name                            definition
=============================== ============================================================
``<x>_per_second``              counter rate of ``<x>_total`` (:func:`capplan.core.rates.rate_frame`)
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
from capplan.core.frame import SERIES_KEY
from capplan.core.rates import (RatioEstimate, bucket_rate, counter_increase, ratio_from_increases,
                           resets_from_start_time)

__all__ = ["RATIOS", "SUMS", "data_end", "Evidence", "Increases", "load_series", "load_ratio",
           "ratio_series", "counter_increases", "describe_store", "Windows", "windows_for",
           "inclusive", "choose_block", "ratio_blocks", "raw_series", "RawSeries", "block_labels"]

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


@dataclass(frozen=True)
class Increases:
    """Per-interval increases of every series of one counter, each derived from its own series
    (with its own resets) before anything is summed: "rate before sum" (REFERENCE gotcha 4)."""

    values: pd.Series          # indexed by interval end; several series concatenated
    n_samples: int
    resets: int
    sources: tuple[str, ...]
    start: pd.Timestamp
    end: pd.Timestamp

    @property
    def total(self) -> float:
        return float(self.values.sum())

    def cumulative(self, grain: str = "1h") -> pd.Series:
        """Running total at ``grain`` (labelled by bucket end), e.g. for burn-down figures."""
        return self.values.resample(grain, label="right", closed="right").sum().cumsum()


def counter_increases(store, metric: str, *, start=None, end=None,
                      source: str | None = None) -> Increases:
    """:class:`Increases` of a counter over a window; :class:`InsufficientData` when none stored."""
    raw = _read(store, metric, start, end, source)
    if raw.empty:
        raise InsufficientData(f"no samples of counter '{metric}'"
                               + (f" from source '{source}'" if source else "")
                               + (f" between {start} and {end}" if start or end else ""),
                               hint="collect it first (notebook 01-collect) or fix the metric name")
    resets_by_source: dict[str, list | None] = {}
    parts, n_resets = [], 0
    for (src, _m, _l), rows in raw.groupby(list(SERIES_KEY), sort=False):
        if src not in resets_by_source:
            resets_by_source[src] = _resets_for(store, src, start, end)
        s = rows.set_index("timestamp")["value"].sort_index()
        parts.append(counter_increase(s, resets=resets_by_source[src]))
        n_resets += int((np.diff(s.to_numpy()) < 0).sum())
    return Increases(pd.concat(parts).sort_index(), int(len(raw)), n_resets,
                     tuple(sorted(set(raw["source"]))), raw["timestamp"].min(),
                     raw["timestamp"].max())


def _ratio_parts(store, name, start, end, source):
    """(numerator increases, other increases, numerator's Increases) for a ratio in RATIOS."""
    num, other, how = RATIOS[name]
    a = counter_increases(store, num, start=start, end=end, source=source)
    b = counter_increases(store, other, start=start, end=end, source=source)
    if how == "complement":
        # good = total - bad: the good increases are the total's minus the bad ones, so that
        # both sums and bucket sums come out as Σtotal - Σbad (each series derived on its own)
        good = pd.concat([b.values, -a.values]).sort_index()
        return good, a.values, b
    return a.values, b.values, a


def ratio_series(store, name: str, *, start=None, end=None, grain: str = "1h",
                 source: str | None = None) -> pd.DataFrame:
    """Per-bucket ratio with Wilson interval and counts (:func:`capplan.core.rates.ratio_from_increases`)."""
    k, other, _meta = _ratio_parts(store, name, start, end, source)
    return ratio_from_increases(k, other, grain)


def load_ratio(store, name: str, *, start=None, end=None, source: str | None = None) -> RatioEstimate:
    """One ratio over a whole window from summed counter increases, with its Wilson interval."""
    k, other, meta = _ratio_parts(store, name, start, end, source)
    return ratio_from_increases(k, other, resets=meta.resets, start=meta.start, end=meta.end)


def load_series(store, name: str, *, start=None, end=None, grain: str = "1h",
                statistic: str = "mean", source: str | None = None) -> Evidence:
    """One quantity as a regular series at ``grain``; ``statistic`` aggregates within a bucket.

    ``statistic`` is ``mean`` or ``max`` (capacity limits bite at the peak: use ``max`` for
    connections and request rates).  Several series of a stored metric are summed: counters
    after each is turned into a rate, gauges at their own resolution before the bucket
    statistic (e.g. clients over states); ``source`` (e.g. ``redis:cache``) keeps one instance
    when the store holds several.  Raises :class:`InsufficientData` when nothing is stored.
    """
    if name in RATIOS:
        df = ratio_series(store, name, start=start, end=end, grain=grain, source=source)
        num, other, _how = RATIOS[name]
        s = df["ratio"].dropna()
        src = ",".join(sorted(set(store.query(num, source=source, start=start, end=end)["source"])))
        return Evidence(name, s, "ratio", src, int(np.nansum(df["n"].to_numpy())),
                        s.index.min() if len(s) else None, s.index.max() if len(s) else None,
                        grain, f"summed increases of {num} and {other}")
    per_second = name.endswith("_per_second") and name not in SUMS
    base = (name[: -len("_per_second")] + "_total") if per_second else SUMS.get(name, name)
    raw = _read(store, base, start, end, source)
    if raw.empty:
        raise InsufficientData(f"no samples of '{base}' in the store"
                               + (f" from source '{source}'" if source else "")
                               + (f" between {start} and {end}" if start or end else ""),
                               hint="collect it first (notebook 01-collect) or fix the metric name")
    groups = list(raw.groupby(list(SERIES_KEY), sort=False))
    if per_second:
        resets = {src: _resets_for(store, src, start, end) for src in set(raw["source"])}
        rates = [bucket_rate(rows.set_index("timestamp")["value"].sort_index(), grain,
                             statistic=statistic, resets=resets[src])
                 for (src, _m, _l), rows in groups]
        series = pd.concat(rates, axis=1).sum(axis=1, min_count=1)
    else:
        wide = pd.concat([rows.set_index("timestamp")["value"].rename(i)
                          for i, (_key, rows) in enumerate(groups)], axis=1)
        summed = wide.sum(axis=1, min_count=1).resample(grain, label="left", closed="left")
        series = summed.max() if statistic == "max" else summed.mean()
    series = series.dropna()
    series.name = name
    how = ("counter rate" if per_second else "stored gauge") + \
        (f", summed over {len(groups)} series" if len(groups) > 1 else "") + \
        f", {statistic} per {grain}"
    return Evidence(name, series, "per_second" if per_second else str(raw["unit"].iloc[0]),
                    ",".join(sorted(set(raw["source"]))), int(len(raw)),
                    raw["timestamp"].min(), raw["timestamp"].max(), grain, how)


def describe_store(store) -> pd.DataFrame:
    """Sources, series, windows and sample counts for the report's Data section."""
    s = store.series()
    if s.empty:
        return pd.DataFrame(columns=["source", "series", "samples", "first", "last"])
    return (s.groupby("source")
            .agg(series=("metric", "size"), samples=("n", "sum"), first=("first", "min"),
                 last=("last", "max"))
            .reset_index())


def data_end(store) -> pd.Timestamp | None:
    """The newest sample in the store: the report's "now"."""
    s = store.series()
    return None if s.empty else pd.Timestamp(s["last"].max())


# ------------------------------------------------------------------------- windows and blocks


def inclusive(end):
    """A window end for the store's half-open queries that keeps the end sample itself."""
    return None if end is None else pd.Timestamp(end) + pd.Timedelta(1, "ns")


@dataclass(frozen=True)
class Windows:
    """The current window (the last ``current_days`` up to the newest sample, end included) and
    the baseline (the first ``baseline_days``), which never overlap: when the history is too
    short for both, ``baseline`` is None and ``why`` says "no baseline: N of M days"."""

    current: tuple[pd.Timestamp, pd.Timestamp]
    baseline: tuple[pd.Timestamp, pd.Timestamp] | None
    why: str | None = None


def windows_for(start: pd.Timestamp, end: pd.Timestamp, *, baseline_days: float,
                current_days: float) -> Windows:
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    # (end - current_days, end]: the start is exclusive, so the window holds whole days
    cur = (max(start, end - pd.Timedelta(days=current_days) + pd.Timedelta(1, "ns")), end)
    span_days = (end - start) / pd.Timedelta(days=1)
    need = baseline_days + current_days
    if span_days < need:
        return Windows(cur, None, f"no baseline: {span_days:.3g} of {need:g} days of history "
                                  f"(baseline {baseline_days:g} d + current {current_days:g} d)")
    # the baseline ends strictly before the current window starts
    base_end = min(start + pd.Timedelta(days=baseline_days), cur[0] - pd.Timedelta(1, "ns"))
    return Windows(cur, (start, base_end))


def choose_block(start, end, min_blocks: int) -> str:
    """``day`` when the window holds at least ``min_blocks`` days, else ``hour``."""
    if start is None or end is None:
        return "hour"
    return "day" if (pd.Timestamp(end) - pd.Timestamp(start)) >= pd.Timedelta(days=min_blocks) \
        else "hour"


_BLOCK_FREQ = {"hour": "1h", "day": "1D"}


def ratio_blocks(store, name: str, *, start, end, source: str | None = None,
                 block: str = "hour") -> tuple[np.ndarray, np.ndarray, Increases]:
    """(successes, events) per time block of a ratio in :data:`RATIOS`, end sample included,
    with the numerator's :class:`Increases` (samples, first and last sample seen)."""
    k, other, meta = _ratio_parts(store, name, start, inclusive(end), source)
    a = k.groupby(block_labels(k.index, end, block)).sum()
    b = other.groupby(block_labels(other.index, end, block)).sum()
    g = pd.concat([a.rename("a"), b.rename("b")], axis=1).fillna(0.0).sort_index(ascending=False)
    succ = g["a"].to_numpy(float)
    return succ, succ + g["b"].to_numpy(float), meta


def block_labels(index: pd.DatetimeIndex, end, block: str) -> np.ndarray:
    """Block number of each timestamp counted back from the window end: the window
    ``(end - k·block, end]`` splits into whole blocks, the newest being block 0."""
    step = pd.Timedelta(_BLOCK_FREQ[block]).value
    back = pd.Timestamp(end).value - index.asi8
    return back // step


@dataclass(frozen=True)
class RawSeries:
    """A quantity at the resolution it was sampled at (several series summed per timestamp;
    counters as per-interval rates), with its sampling interval in seconds."""

    series: pd.Series
    sampling_s: float | None
    source: str
    n_samples: int

    @property
    def newest(self) -> pd.Timestamp | None:
        return None if self.series.empty else self.series.index.max()

    @property
    def oldest(self) -> pd.Timestamp | None:
        return None if self.series.empty else self.series.index.min()


def raw_series(store, name: str, *, start=None, end=None, source: str | None = None) -> RawSeries:
    """A stored gauge (or a counter's per-interval rate, for ``<x>_per_second``) at its own
    resolution, end sample included; :class:`InsufficientData` when nothing is stored."""
    from capplan.core.rates import counter_rate

    per_second = name.endswith("_per_second") and name not in SUMS
    base = (name[: -len("_per_second")] + "_total") if per_second else SUMS.get(name, name)
    raw = _read(store, base, start, inclusive(end), source)
    if raw.empty:
        raise InsufficientData(f"no samples of '{base}' in the store"
                               + (f" from source '{source}'" if source else "")
                               + (f" between {start} and {end}" if start or end else ""),
                               hint="collect it first (notebook 01-collect) or fix the metric name")
    parts = []
    for i, ((src, _m, _l), rows) in enumerate(raw.groupby(list(SERIES_KEY), sort=False)):
        s = rows.set_index("timestamp")["value"].sort_index()
        if per_second:
            s = counter_rate(s, resets=_resets_for(store, src, start, inclusive(end)))
        parts.append(s.rename(i))
    wide = pd.concat(parts, axis=1).sort_index()
    series = wide.sum(axis=1, min_count=1).dropna()
    series.name = name
    steps = np.diff(series.index.asi8) / 1e9 if len(series) > 1 else np.array([])
    sampling = float(np.median(steps)) if steps.size else None
    return RawSeries(series, sampling, ",".join(sorted(set(raw["source"]))), int(len(raw)))
