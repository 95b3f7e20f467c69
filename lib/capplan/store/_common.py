"""Shared logic of the metrics store: block layout, append/query pipeline, downsampling.

Physical layout (both backends)
-------------------------------
* ``series``: one row per ``(source, metric, labels)`` with its ``kind`` and ``unit``.
* ``blocks``: the samples of one series in time order, ``BLOCK_SIZE`` at most per row:
  ``(series_id, t0, t1, n, ts, val)`` where ``ts`` is little-endian int64 nanoseconds since the
  Unix epoch (UTC) and ``val`` little-endian float64, both as BLOBs.  The blocks of a series
  never overlap in time, so a time-range read touches only the blocks with
  ``t1 >= start and t0 < end`` and decodes them with :func:`numpy.frombuffer` (reading ten
  million samples is a few thousand rows, not ten million Python tuples).

Append semantics: a repeated ``(series, timestamp)`` **replaces** the stored value (the newest
append wins; inside one frame the later row wins), so re-appending the same frame is
idempotent.  Appending after the tail of a series merges into the tail block while it is not
full, which keeps blocks large when collectors append a few samples at a time.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd

from capplan.errors import ConfigError, DataContractError
from capplan.core.frame import COLUMNS, SERIES_KEY, empty_frame, parse_labels, validate_frame

__all__ = ["Store", "downsample", "BLOCK_SIZE"]

#: Samples per stored block (64 KiB of timestamps and values).
BLOCK_SIZE = 4096

_TS = np.dtype("<i8")
_VAL = np.dtype("<f8")
_I64_MIN = np.iinfo(np.int64).min
_I64_MAX = np.iinfo(np.int64).max

SeriesKey = tuple[str, str, str]  # (source, metric, labels)


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
    keys = frame[list(SERIES_KEY)]
    grouped = keys.groupby(list(SERIES_KEY), sort=True, dropna=False)
    codes = grouped.ngroup().to_numpy(dtype=np.int64)
    uniq = [tuple(k) for k in grouped.size().index.tolist()]
    return codes, uniq


def _chunks(ts: np.ndarray, val: np.ndarray, size: int) -> Iterator[tuple[int, int, int, bytes, bytes]]:
    """Split sorted samples into ``(t0, t1, n, ts_blob, val_blob)`` blocks of ``size``."""
    for i in range(0, len(ts), size):
        t = ts[i:i + size]
        v = val[i:i + size]
        yield int(t[0]), int(t[-1]), len(t), t.astype(_TS).tobytes(), v.astype(_VAL).tobytes()


def _merge(old: list[tuple[bytes, bytes]], ts: np.ndarray, val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Stored blocks merged with new sorted unique samples; new values replace stored ones."""
    if not old:
        return ts, val
    ots = np.concatenate([np.frombuffer(b[0], dtype=_TS) for b in old])
    ova = np.concatenate([np.frombuffer(b[1], dtype=_VAL) for b in old])
    keep = ~np.isin(ots, ts, assume_unique=True)
    all_ts = np.concatenate([ots[keep], ts])
    all_val = np.concatenate([ova[keep], val])
    order = np.argsort(all_ts, kind="stable")
    return all_ts[order], all_val[order]


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
    df["timestamp"] = df["timestamp"].astype("datetime64[ns, UTC]")
    return df[list(COLUMNS)]


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

class Store(ABC):
    """A metrics store holding contract frames; :func:`capplan.store.open_store` opens one.

    Backends implement the small block-level hooks below; the contract-level behaviour
    (validation, replace-on-repeat, filters, sorting, downsampling) lives here so that every
    backend behaves identically.
    """

    #: Human-readable location (a path, or ``env:VAR`` plus host/db/schema; never a password).
    target: str

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
    def _affected_blocks(self, spans: list[tuple[int, int, int]]) -> dict[int, list[tuple[int, bytes, bytes]]]:
        """For each ``(series_id, lo, hi)``: ``(t0, ts, val)`` of the blocks overlapping
        ``[lo, hi]`` plus the last block starting at or before ``lo`` when it holds fewer than
        ``BLOCK_SIZE`` samples (so that appends after the tail fill it up)."""

    @abstractmethod
    def _replace_blocks(self, deletes: list[tuple[int, int]],
                        inserts: list[tuple[int, int, int, int, bytes, bytes]]) -> None:
        """Delete the blocks ``(series_id, t0)`` then insert ``(series_id, t0, t1, n, ts, val)``."""

    @abstractmethod
    def _series_rows(self) -> list[tuple[int, str, str, str, str, str]]:
        """``(id, source, metric, labels, kind, unit)`` of every series."""

    @abstractmethod
    def _read_blocks(self, ids: list[int], lo: int, hi: int) -> Iterable[tuple[int, bytes, bytes]]:
        """``(series_id, ts, val)`` of blocks of ``ids`` with ``t1 >= lo and t0 < hi``,
        ordered by series id then ``t0``."""

    @abstractmethod
    def _series_stats(self) -> dict[int, tuple[int, int | None, int | None]]:
        """``series_id -> (n, first_ns, last_ns)``."""

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
        differs from the stored one, :class:`~capplan.errors.StoreError` when writing fails.
        """
        validate_frame(frame, where=f"frame appended to {self.target}")
        if len(frame) == 0:
            return 0
        codes, uniq = _series_codes(frame)
        ts = _ts_ns(frame["timestamp"])
        val = frame["value"].to_numpy(dtype=np.float64)
        order = np.lexsort((ts, codes))
        codes, ts, val = codes[order], ts[order], val[order]
        # keep the last row of each run of equal (series, timestamp)
        last = np.ones(len(ts), dtype=bool)
        last[:-1] = (codes[1:] != codes[:-1]) | (ts[1:] != ts[:-1])
        codes, ts, val = codes[last], ts[last], val[last]
        bounds = np.searchsorted(codes, np.arange(len(uniq) + 1))
        kinds = frame["kind"].to_numpy(dtype=object)[order][last]
        units = frame["unit"].to_numpy(dtype=object)[order][last]
        keys = [(s, m, lab, kinds[bounds[i]], units[bounds[i]]) for i, (s, m, lab) in enumerate(uniq)]
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
            spans = [(sid, int(ts[bounds[i]]), int(ts[bounds[i + 1] - 1]))
                     for i, (sid, _, _) in enumerate(ids)]
            old = self._affected_blocks(spans)
            deletes: list[tuple[int, int]] = []
            inserts: list[tuple[int, int, int, int, bytes, bytes]] = []
            for i, (sid, _, _) in enumerate(ids):
                blocks = old.get(sid, [])
                m_ts, m_val = _merge([(b[1], b[2]) for b in blocks],
                                     ts[bounds[i]:bounds[i + 1]], val[bounds[i]:bounds[i + 1]])
                deletes.extend((sid, b[0]) for b in blocks)
                inserts.extend((sid, *c) for c in _chunks(m_ts, m_val, BLOCK_SIZE))
            self._replace_blocks(deletes, inserts)
        return int(len(ts))

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

    def query(self, metric: str | Sequence[str] | None = None, *, source: str | None = None,
              labels: Mapping[str, object] | None = None, start=None, end=None,
              grain=None) -> pd.DataFrame:
        """Samples as a contract frame sorted by ``(source, metric, labels, timestamp)``.

        ``metric``: a name, a list of names or ``None`` for all; ``labels``: the series' labels
        must contain these pairs; ``start`` (inclusive) and ``end`` (exclusive): anything
        :class:`pandas.Timestamp` accepts, naive meaning UTC; ``grain``: when given the result
        is :func:`downsample`-d to it.  Raises :class:`~capplan.errors.ConfigError` for an
        unreadable bound or grain, :class:`~capplan.errors.StoreError` when reading fails.
        """
        lo = _bound_ns(start, "start")
        hi = _bound_ns(end, "end")
        width = grain_ns(grain) if grain is not None else None
        with self._read_txn():
            rows = self._select_series(metric, source, labels)
            if not rows or (lo is not None and hi is not None and hi <= lo):
                return empty_frame()
            pos = {r[0]: i for i, r in enumerate(rows)}
            parts_ts: list[list[np.ndarray]] = [[] for _ in rows]
            parts_val: list[list[np.ndarray]] = [[] for _ in rows]
            for sid, tsb, valb in self._read_blocks([r[0] for r in rows],
                                                    _I64_MIN if lo is None else lo,
                                                    _I64_MAX if hi is None else hi):
                parts_ts[pos[sid]].append(np.frombuffer(tsb, dtype=_TS))
                parts_val[pos[sid]].append(np.frombuffer(valb, dtype=_VAL))
        lengths = np.array([sum(len(a) for a in p) for p in parts_ts], dtype=np.int64)
        flat_ts = [a for p in parts_ts for a in p]
        if not flat_ts:
            return empty_frame()
        ts = np.concatenate(flat_ts).astype(np.int64, copy=False)
        val = np.concatenate([a for p in parts_val for a in p]).astype(np.float64, copy=False)
        codes = np.repeat(np.arange(len(rows), dtype=np.int64), lengths)
        if lo is not None or hi is not None:
            mask = np.ones(len(ts), dtype=bool)
            if lo is not None:
                mask &= ts >= lo
            if hi is not None:
                mask &= ts < hi
            if not mask.all():
                ts, val, codes = ts[mask], val[mask], codes[mask]
        keys = [r[1:] for r in rows]
        if width is not None:
            is_counter = np.array([k[3] == "counter" for k in keys])[codes]
            codes, ts, val = _downsample_arrays(codes, ts, val, is_counter, width)
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
