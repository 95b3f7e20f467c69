"""Shared logic of the metrics store: append/query pipeline, hourly rollups, downsampling.

Physical layout (both backends; names per backend in its module)
----------------------------------------------------------------
* a **series** table: one row per ``(source, metric, labels)`` with its ``kind`` and ``unit``;
* a **samples** table: one row per sample ``(series_id, ts, value)``, primary key
  ``(series_id, ts)``, so SQL (``sqlite3``, ``psql``, Grafana) reads the store directly through
  the ``samples`` and ``series`` views each backend creates;
* an **hourly rollup** table (see :mod:`capplan.store._rollup`) that answers queries whose grain
  is a whole number of hours without reading every sample.

Append semantics: a repeated ``(series, timestamp)`` **replaces** the stored value (the newest
append wins; inside one frame the later row wins), so re-appending the same frame is
idempotent.  An append whose samples all come after a series' newest stored sample (what a
collector does) is written without looking for conflicts; any other append upserts its samples
and recomputes the rollup hours it touched.  Each append is one transaction: all or nothing.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

import numpy as np
import pandas as pd

from capplan.errors import ConfigError, DataContractError
from capplan.core.frame import COLUMNS, SERIES_KEY, empty_frame, parse_labels, validate_frame
from capplan.store._rollup import HOUR_NS, empty_rollup, rollup, rollup_to_grain

__all__ = ["Batch", "Store", "downsample"]

_I64_MIN = np.iinfo(np.int64).min
_I64_MAX = np.iinfo(np.int64).max
SeriesKey = tuple[str, str, str]  # (source, metric, labels)
#: frames of at most this many rows (a scrape) are keyed with plain Python lists: pandas'
#: per-call overhead (factorize, iloc) costs more than their rows
_SMALL_FRAME = 1000


# --------------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------------

def _ts_ns(values: pd.Series) -> np.ndarray:
    """int64 nanoseconds since the epoch (UTC) of a tz-aware timestamp column of any unit."""
    idx = pd.DatetimeIndex(values).tz_convert("UTC").as_unit("ns")
    return np.asarray(idx.asi8, dtype=np.int64)


def _bound_ns(value, name: str) -> int | None:
    """``start``/``end`` as int64 ns (naive means UTC); ``None`` stays ``None``."""
    if value is None:
        return None
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"cannot read {value!r} as a timestamp", key=name,
                          hint="pass a datetime, an ISO 8601 string or a pandas Timestamp") from exc
    if ts is pd.NaT:
        raise ConfigError("NaT is not a time bound", key=name, hint="pass None for no bound")
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return int(ts.as_unit("ns").value)


def grain_ns(grain) -> int:
    """A fixed bucket width (``"1h"``, ``"5min"``, a Timedelta) in nanoseconds."""
    try:
        td = pd.Timedelta(grain)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"cannot read {grain!r} as a fixed time grain", key="grain",
                          hint="use a fixed width such as '1min', '5min', '1h' or '1D' "
                               "(months and years are not fixed widths)") from exc
    if td is pd.NaT or td <= pd.Timedelta(0):
        raise ConfigError(f"grain must be a positive duration, got {grain!r}", key="grain",
                          hint="use e.g. '5min' or '1h'")
    return int(td.as_unit("ns").value)


def _labels_match(text: str, want: Mapping[str, str]) -> bool:
    have = parse_labels(text)
    return all(have.get(k) == v for k, v in want.items())


def _series_codes(frame: pd.DataFrame) -> tuple[np.ndarray, list[SeriesKey]]:
    """Dense series codes (ordered by key) for every row and the key of each code."""
    if len(frame) <= _SMALL_FRAME:
        rows = list(zip(*(frame[col].tolist() for col in SERIES_KEY)))
        uniq = sorted(set(rows))
        code_of = {k: i for i, k in enumerate(uniq)}
        return np.fromiter(map(code_of.__getitem__, rows), dtype=np.int64, count=len(rows)), uniq
    combined = np.zeros(len(frame), dtype=np.int64)
    levels = []
    for col in SERIES_KEY:  # sorted factorization per column, then a mixed-radix code
        c, u = pd.factorize(frame[col], sort=True)
        combined = combined * len(u) + c
        levels.append(list(u))
    uniq_codes, codes = np.unique(combined, return_inverse=True)
    uniq = []
    for k in uniq_codes.tolist():
        parts = []
        for u in reversed(levels):
            k, r = divmod(k, len(u))
            parts.append(u[r])
        uniq.append(tuple(reversed(parts)))
    return codes.astype(np.int64, copy=False), uniq


# --------------------------------------------------------------------------------------------
# downsampling
# --------------------------------------------------------------------------------------------

def _downsample_arrays(codes: np.ndarray, ts: np.ndarray, val: np.ndarray, is_counter: np.ndarray,
                       width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Aggregate samples sorted by ``(code, ts)`` into left-labelled buckets of ``width`` ns.

    Returns ``(codes, bucket_start_ns, value)`` per (series, bucket): the mean of the non-NaN
    values for gauges (NaN when the bucket holds only NaN) and the last raw value for counters.
    """
    if len(ts) == 0:
        return codes[:0], ts[:0], val[:0]
    bucket = (ts // width) * width  # floor division: UTC-aligned, also before 1970
    new_group = np.empty(len(ts), dtype=bool)
    new_group[0] = True
    new_group[1:] = (codes[1:] != codes[:-1]) | (bucket[1:] != bucket[:-1])
    starts = np.flatnonzero(new_group)
    ends = np.append(starts[1:], len(ts)) - 1
    finite = ~np.isnan(val)
    sums = np.add.reduceat(np.where(finite, val, 0.0), starts)
    counts = np.add.reduceat(finite.astype(np.int64), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    out = np.where(is_counter[starts], val[ends], means)
    return codes[starts], bucket[starts], out


def _assemble(keys: Sequence[tuple[str, str, str, str, str]], codes: np.ndarray, ts: np.ndarray,
              val: np.ndarray) -> pd.DataFrame:
    """A contract frame from per-sample series codes into ``keys`` (source, metric, labels,
    kind, unit), without re-validating (the store only holds validated samples)."""
    cols: dict[str, object] = {"timestamp": pd.to_datetime(ts, unit="ns", utc=True)}
    for j, name in enumerate(("source", "metric", "labels")):
        lookup = np.array([k[j] for k in keys] or [""], dtype=object)
        cols[name] = pd.Series(lookup[codes], dtype=object, copy=False)
    cols["value"] = np.asarray(val, dtype=np.float64)
    for j, name in ((3, "kind"), (4, "unit")):
        lookup = np.array([k[j] for k in keys] or [""], dtype=object)
        cols[name] = pd.Series(lookup[codes], dtype=object, copy=False)
    df = pd.DataFrame(cols, copy=False)
    if str(df["timestamp"].dtype) != "datetime64[ns, UTC]":
        df["timestamp"] = df["timestamp"].astype("datetime64[ns, UTC]")
    return df if list(df.columns) == list(COLUMNS) else df[list(COLUMNS)]


def downsample(frame: pd.DataFrame, grain) -> pd.DataFrame:
    """Per series and per UTC-aligned bucket of width ``grain`` (``"5min"``, ``"1h"``, a Timedelta).

    Buckets are labelled by their left edge: ``[t, t + grain)`` -> ``t``.  Gauges become the
    mean of the bucket's non-NaN values; counters keep their **last raw value** in the bucket
    (a reset inside the bucket is kept as it is: rates are derived later by
    :mod:`capplan.core.rates`).  Empty buckets produce no row.  The result is a contract frame sorted
    by ``(source, metric, labels, timestamp)``.  Pure: ``frame`` is not modified.

    Raises :class:`~capplan.errors.DataContractError` for a frame that breaks the contract and
    :class:`~capplan.errors.ConfigError` for a grain that is not a positive fixed duration.
    """
    width = grain_ns(grain)
    validate_frame(frame, where="downsample input")
    if len(frame) == 0:
        return empty_frame()
    codes, uniq = _series_codes(frame)
    ts = _ts_ns(frame["timestamp"])
    order = np.lexsort((ts, codes))
    codes, ts = codes[order], ts[order]
    val = frame["value"].to_numpy(dtype=np.float64)[order]
    first = order[np.searchsorted(codes, np.arange(len(uniq)))]  # a row of each series
    kinds = frame["kind"].to_numpy(dtype=object)[first]
    units = frame["unit"].to_numpy(dtype=object)[first]
    keys = [(s, m, lab, kinds[c], units[c]) for c, (s, m, lab) in enumerate(uniq)]
    is_counter = np.array([k[3] == "counter" for k in keys])[codes]
    c, b, v = _downsample_arrays(codes, ts, val, is_counter, width)
    return _assemble(keys, c, b, v)


# --------------------------------------------------------------------------------------------
# the store
# --------------------------------------------------------------------------------------------

Samples = tuple[np.ndarray, np.ndarray, np.ndarray]  # (series_id int64, ts int64 ns, value float64)


class Batch(NamedTuple):
    """An append's samples, sorted by ``(series key, ts)`` and unique per pair."""
    keys: list[tuple[str, str, str, str, str]]  # (source, metric, labels, kind, unit) per series
    bounds: np.ndarray  # samples of series i are [bounds[i], bounds[i + 1])
    ts: np.ndarray      # int64 ns, floored to the store's resolution
    val: np.ndarray     # float64


def _in_code_order(codes: np.ndarray, ts: np.ndarray) -> bool:
    if len(ts) < 2:
        return True
    dc = np.diff(codes)
    return bool(np.all((dc > 0) | ((dc == 0) & (np.diff(ts) > 0))))


class Store(ABC):
    """A metrics store holding contract frames; :func:`capplan.store.open_store` opens one.

    Backends implement the small row-level hooks below; the contract-level behaviour
    (validation, replace-on-repeat, rollups, filters, sorting, downsampling) lives here so that
    every backend behaves identically.
    """

    #: Human-readable location (a path, or ``env:VAR`` plus host/db/schema; never a password).
    target: str

    #: Timestamps are stored to this many ns (1: SQLite keeps ns; 1000: PostgreSQL keeps µs).
    _resolution_ns: int = 1

    # ---- hooks ------------------------------------------------------------------------------
    @property
    @abstractmethod
    def schema_version(self) -> int:
        """Schema version of the opened store."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection (idempotent)."""

    @abstractmethod
    def _write_txn(self) -> contextlib.AbstractContextManager:
        """A write transaction (committed on success, rolled back on error)."""

    @abstractmethod
    def _ensure_series(self, keys: list[tuple[str, str, str, str, str]]) -> list[tuple[int, str, str]]:
        """Create missing series and lock all of them for this transaction; returns
        ``(id, stored_kind, stored_unit)`` per key, in order."""

    @abstractmethod
    def _tails(self, ids: list[int]) -> dict[int, int]:
        """``series_id -> newest stored sample (ns)`` for the ids that hold samples."""

    @abstractmethod
    def _write_samples(self, sid: np.ndarray, ts: np.ndarray, val: np.ndarray, *,
                       replace: bool) -> None:
        """Write samples (unique per ``(sid, ts)``).  ``replace=False`` promises that none of
        them is stored yet; ``replace=True`` overwrites the stored value of a repeated one."""

    @abstractmethod
    def _read_samples(self, ids: list[int], lo: int | None, hi: int | None) -> Iterable[Samples]:
        """Chunks of the samples of ``ids`` with ``lo <= ts < hi`` (``None``: unbounded)."""

    @abstractmethod
    def _rollup_merge(self, rows: np.ndarray) -> None:
        """Add rollup rows of samples newer than everything stored (merge into existing hours)."""

    @abstractmethod
    def _rollup_replace(self, spans: list[tuple[int, int, int]], rows: np.ndarray) -> None:
        """Delete the rollup rows of each ``(series_id, lo_bucket, hi_bucket)`` (inclusive),
        then insert ``rows``."""

    @abstractmethod
    def _read_rollup(self, ids: list[int], lo: int | None, hi: int | None) -> np.ndarray:
        """Rollup rows (:data:`~capplan.store._rollup.READ_DTYPE` fields) of ``ids`` with
        ``lo <= bucket < hi``, sorted by ``(sid, bucket)``."""

    @abstractmethod
    def _series_rows(self) -> list[tuple[int, str, str, str, str, str]]:
        """``(id, source, metric, labels, kind, unit)`` of every series."""

    @abstractmethod
    def _series_stats(self) -> dict[int, tuple[int, int | None, int | None]]:
        """``series_id -> (n, first_ns, last_ns)``."""

    def _prepare_write(self, lo: int, hi: int) -> None:
        """Called before the write transaction of samples spanning ``[lo, hi]`` ns."""

    def _read_txn(self) -> contextlib.AbstractContextManager:
        """A consistent read snapshot for several statements (default: none needed)."""
        return contextlib.nullcontext()

    # ---- public API -------------------------------------------------------------------------
    def append(self, frame: pd.DataFrame) -> int:
        """Validate ``frame`` and write it in one transaction; returns the number of samples
        written (rows of ``frame`` after collapsing repeated ``(series, timestamp)`` rows).

        A repeated ``(series, timestamp)`` replaces the stored value (newest append wins, and
        inside one frame the later row wins), so re-appending a frame changes nothing.  Raises
        :class:`~capplan.errors.DataContractError` for a bad frame or a series whose kind/unit
        differs from the stored one, :class:`~capplan.errors.StoreError` when writing fails
        (nothing of the frame is then stored).
        """
        batch = self._batch(frame)
        return 0 if batch is None else self._append_batch(batch)

    def _batch(self, frame: pd.DataFrame) -> Batch | None:
        """The validated samples of ``frame`` sorted by series key and time, one per
        ``(series, timestamp)`` (the later row wins); ``None`` for an empty frame."""
        validate_frame(frame, where=f"frame appended to {self.target}")
        if len(frame) == 0:
            return None
        codes, uniq = _series_codes(frame)
        ts = _ts_ns(frame["timestamp"])
        if self._resolution_ns > 1:
            ts = (ts // self._resolution_ns) * self._resolution_ns
        val = frame["value"].to_numpy(dtype=np.float64)
        order = np.lexsort((ts, codes))
        codes, ts, val = codes[order], ts[order], val[order]
        # keep the last row of each run of equal (series, timestamp)
        last = np.ones(len(ts), dtype=bool)
        last[:-1] = (codes[1:] != codes[:-1]) | (ts[1:] != ts[:-1])
        codes, ts, val = codes[last], ts[last], val[last]
        bounds = np.searchsorted(codes, np.arange(len(uniq) + 1))
        rows = order[np.flatnonzero(last)[bounds[:-1]]]  # a frame row of each series
        if len(frame) <= _SMALL_FRAME:
            kind_col, unit_col = frame["kind"].tolist(), frame["unit"].tolist()
            kinds = [kind_col[i] for i in rows.tolist()]
            units = [unit_col[i] for i in rows.tolist()]
        else:
            kinds = frame["kind"].iloc[rows].tolist()
            units = frame["unit"].iloc[rows].tolist()
        keys = [(s, m, lab, kinds[i], units[i]) for i, (s, m, lab) in enumerate(uniq)]
        return Batch(keys, bounds, ts, val)

    def _append_batch(self, batch: Batch) -> int:
        """Write a :meth:`_batch` in one transaction; returns the number of samples."""
        keys, bounds, ts, val = batch
        self._prepare_write(int(ts.min()), int(ts.max()))
        with self._write_txn():
            ids = self._ensure_series(keys)
            clashes = [(k, (kd, u)) for k, (_, kd, u) in zip(keys, ids) if (k[3], k[4]) != (kd, u)]
            if clashes:
                raise DataContractError(
                    [{"column": "kind/unit",
                      "reason": f"series {k[:3]} is stored as {stored[0]}/{stored[1]} in "
                                f"{self.target}, the frame has {k[3]}/{k[4]}",
                      "examples": None} for k, stored in clashes[:5]],
                    where=f"frame appended to {self.target}")
            sids = np.array([i[0] for i in ids], dtype=np.int64)
            tails = self._tails(sids.tolist())
            counts = np.diff(bounds)
            first_new = ts[bounds[:-1]]
            after_tail = np.array([tails.get(int(s)) is None or int(f) > tails[int(s)]
                                   for s, f in zip(sids, first_new)], dtype=bool)
            sid = np.repeat(sids, counts)
            if after_tail.all():
                self._write_samples(sid, ts, val, replace=False)
                self._rollup_merge(rollup(sid, ts, val))
            else:
                self._append_mixed(sid, ts, val, np.repeat(after_tail, counts), sids[~after_tail],
                                   first_new[~after_tail], ts[bounds[1:] - 1][~after_tail])
        return int(len(ts))

    def _append_mixed(self, sid, ts, val, tail_mask, over_ids, over_lo, over_hi) -> None:
        if tail_mask.any():
            self._write_samples(sid[tail_mask], ts[tail_mask], val[tail_mask], replace=False)
            self._rollup_merge(rollup(sid[tail_mask], ts[tail_mask], val[tail_mask]))
        keep = ~tail_mask
        self._write_samples(sid[keep], ts[keep], val[keep], replace=True)
        # recompute the touched hours of the overlapping series from what is now stored
        spans, parts = [], []
        for s, lo, hi in zip(over_ids.tolist(), over_lo.tolist(), over_hi.tolist()):
            b_lo, b_hi = (lo // HOUR_NS) * HOUR_NS, (hi // HOUR_NS) * HOUR_NS
            spans.append((s, b_lo, b_hi))
            chunks = list(self._read_samples([s], b_lo, b_hi + HOUR_NS))
            s_ts = np.concatenate([c[1] for c in chunks]) if chunks else np.empty(0, np.int64)
            s_val = np.concatenate([c[2] for c in chunks]) if chunks else np.empty(0, np.float64)
            o = np.argsort(s_ts, kind="stable")
            parts.append(rollup(np.full(len(o), s, dtype=np.int64), s_ts[o], s_val[o]))
        self._rollup_replace(spans, np.concatenate(parts) if parts else empty_rollup())

    def _select_series(self, metric, source, labels) -> list[tuple[int, str, str, str, str, str]]:
        rows = self._series_rows()
        if metric is not None:
            metrics = {metric} if isinstance(metric, str) else set(metric)
            rows = [r for r in rows if r[2] in metrics]
        if source is not None:
            rows = [r for r in rows if r[1] == source]
        if labels:
            want = {str(k): str(v) for k, v in labels.items()}
            rows = [r for r in rows if _labels_match(r[3], want)]
        return sorted(rows, key=lambda r: (r[1], r[2], r[3]))

    def _gather(self, chunks: Iterable[Samples], code_of: dict[int, int]) -> tuple[np.ndarray, ...]:
        """Samples of ``chunks`` as ``(codes, ts, val)`` sorted by ``(code, ts)``."""
        chunks = [c for c in chunks if len(c[1])]
        if not chunks:
            return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, np.float64)
        ids = np.fromiter(code_of, dtype=np.int64, count=len(code_of))
        ids.sort()
        lookup = np.array([code_of[i] for i in ids.tolist()], dtype=np.int64)
        chunk_codes = [np.full(len(c[0]), lookup[np.searchsorted(ids, c[0][0])], dtype=np.int64)
                       if c[0][0] == c[0][-1] and (c[0] == c[0][0]).all()
                       else lookup[np.searchsorted(ids, c[0])] for c in chunks]
        # chunks usually hold one series in time order each: put them in (code, time) order so
        # that the result needs no full sort
        order = sorted(range(len(chunks)), key=lambda i: (int(chunk_codes[i][0]), int(chunks[i][1][0])))
        codes = np.concatenate([chunk_codes[i] for i in order])
        ts = np.concatenate([chunks[i][1] for i in order])
        val = np.concatenate([chunks[i][2] for i in order])
        if not _in_code_order(codes, ts):
            order = np.lexsort((ts, codes))
            codes, ts, val = codes[order], ts[order], val[order]
        return codes, ts, val

    def query(self, metric: str | Sequence[str] | None = None, *, source: str | None = None,
              labels: Mapping[str, object] | None = None, start=None, end=None,
              grain=None) -> pd.DataFrame:
        """Samples as a contract frame sorted by ``(source, metric, labels, timestamp)``.

        ``metric``: a name, a list of names or ``None`` for all; ``labels``: the series' labels
        must contain these pairs; ``start`` (inclusive) and ``end`` (exclusive): anything
        :class:`pandas.Timestamp` accepts, naive meaning UTC; ``grain``: when given the result
        is :func:`downsample`-d to it (grains of whole hours are served from the hourly rollup,
        with the partial buckets at ``start``/``end`` computed from the samples).  Raises
        :class:`~capplan.errors.ConfigError` for an unreadable bound or grain,
        :class:`~capplan.errors.StoreError` when reading fails.
        """
        lo = _bound_ns(start, "start")
        hi = _bound_ns(end, "end")
        width = grain_ns(grain) if grain is not None else None
        with self._read_txn():
            rows = self._select_series(metric, source, labels)
            if not rows or (lo is not None and hi is not None and hi <= lo):
                return empty_frame()
            ids = [r[0] for r in rows]
            code_of = {r[0]: i for i, r in enumerate(rows)}
            keys = [r[1:] for r in rows]
            counter = np.array([k[3] == "counter" for k in keys] or [False])
            if width is not None and width % HOUR_NS == 0:
                return self._query_rollup(ids, code_of, keys, counter, lo, hi, width)
            codes, ts, val = self._gather(self._read_samples(ids, lo, hi), code_of)
        if len(ts) == 0:
            return empty_frame()
        if width is not None:
            codes, ts, val = _downsample_arrays(codes, ts, val, counter[codes], width)
        return _assemble(keys, codes, ts, val)

    def _query_rollup(self, ids, code_of, keys, counter, lo, hi, width) -> pd.DataFrame:
        """Buckets wholly inside ``[lo, hi)`` from the rollup, the partial ones from samples."""
        a = None if lo is None else -((-lo) // width) * width  # first bucket edge >= lo
        b = None if hi is None else (hi // width) * width       # last bucket edge <= hi
        if a is not None and b is not None and a >= b:
            parts = [(lo, hi)]  # no whole bucket: all from samples
            whole = None
        else:
            parts = [(lo, a)] if lo is not None and a != lo else []
            if hi is not None and b != hi:
                parts.append((b, hi))
            whole = (a, b)
        out = []
        for p_lo, p_hi in parts:
            codes, ts, val = self._gather(self._read_samples(ids, p_lo, p_hi), code_of)
            out.append(_downsample_arrays(codes, ts, val, counter[codes], width))
        if whole is not None:
            r = self._read_rollup(ids, *whole)
            if len(r):
                ids_sorted = np.array(sorted(code_of), dtype=np.int64)
                lookup = np.array([code_of[i] for i in ids_sorted.tolist()], dtype=np.int64)
                rcodes = lookup[np.searchsorted(ids_sorted, r["sid"])]
                order = np.lexsort((r["bucket"], rcodes))
                r, rcodes = r[order], rcodes[order]
                out.append(rollup_to_grain(rcodes, r, counter[rcodes], width))
        out = [o for o in out if len(o[0])]
        if not out:
            return empty_frame()
        codes = np.concatenate([o[0] for o in out])
        ts = np.concatenate([o[1] for o in out])
        val = np.concatenate([o[2] for o in out])
        if len(out) > 1:
            order = np.lexsort((ts, codes))
            codes, ts, val = codes[order], ts[order], val[order]
        return _assemble(keys, codes, ts, val)

    def series(self) -> pd.DataFrame:
        """One row per stored series: ``source, metric, labels, kind, unit, n, first, last``
        (``first``/``last`` UTC timestamps, NaT for a series without samples), sorted by key."""
        with self._read_txn():
            rows = sorted(self._series_rows(), key=lambda r: (r[1], r[2], r[3]))
            stats = self._series_stats()
        recs = []
        for sid, source, metric, labels, kind, unit in rows:
            n, first, last = stats.get(sid, (0, None, None))
            recs.append((source, metric, labels, kind, unit, int(n), first, last))
        df = pd.DataFrame.from_records(
            recs, columns=["source", "metric", "labels", "kind", "unit", "n", "first", "last"])
        for col in ("source", "metric", "labels", "kind", "unit"):
            df[col] = df[col].astype(object)
        df["n"] = df["n"].astype(np.int64)
        for col in ("first", "last"):
            df[col] = pd.Series([pd.NaT if v is None else pd.Timestamp(int(v), unit="ns", tz="UTC")
                                 for v in df[col]], dtype="datetime64[ns, UTC]", index=df.index)
        return df

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
