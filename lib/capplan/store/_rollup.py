"""Hourly rollups of stored samples, in numpy: what makes a coarse-grain query cheap.

Each backend keeps a rollup table next to its samples, one row per ``(series, hour)`` that holds
samples: ``cnt`` (all samples), ``nfin`` (non-NaN samples), ``sum`` (of the non-NaN values),
``first``/``last`` (int64 ns of the first and last sample) and ``lastval`` (value of the last
sample, NaN included).  That is exactly what :func:`capplan.store.downsample` needs for any grain
that is a whole number of hours: a gauge bucket's mean is ``sum(sum) / sum(nfin)`` and a
counter bucket's value is the ``lastval`` of its latest hour.

Rows are kept exact by the store's append: a pure tail append adds its own rollup rows (merged
into the tail hour), any other append recomputes the hours it touched from the stored samples.
"""

from __future__ import annotations

import numpy as np

__all__ = ["HOUR_NS", "ROLLUP_DTYPE", "READ_DTYPE", "rollup", "rollup_to_grain", "empty_rollup"]

HOUR_NS = 3_600_000_000_000

ROLLUP_DTYPE = np.dtype([("sid", "i8"), ("bucket", "i8"), ("cnt", "i8"), ("nfin", "i8"),
                         ("sum", "f8"), ("first", "i8"), ("last", "i8"), ("lastval", "f8")])

#: the fields a query reads back (what :func:`rollup_to_grain` needs)
READ_DTYPE = np.dtype([("sid", "i8"), ("bucket", "i8"), ("nfin", "i8"), ("sum", "f8"),
                       ("lastval", "f8")])


def empty_rollup() -> np.ndarray:
    return np.empty(0, dtype=ROLLUP_DTYPE)


def _runs(*keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Start and end (inclusive) index of each run of equal consecutive keys."""
    n = len(keys[0])
    new = np.zeros(n, dtype=bool)
    new[0] = True
    for k in keys:
        new[1:] |= k[1:] != k[:-1]
    starts = np.flatnonzero(new)
    return starts, np.append(starts[1:], n) - 1


def rollup(sid: np.ndarray, ts: np.ndarray, val: np.ndarray) -> np.ndarray:
    """Rollup rows of samples sorted by ``(sid, ts)`` (int64 ids, int64 ns, float64 values)."""
    if len(ts) == 0:
        return empty_rollup()
    bucket = (ts // HOUR_NS) * HOUR_NS  # floor: UTC hours, also before 1970
    starts, ends = _runs(sid, bucket)
    fin = ~np.isnan(val)
    out = np.empty(len(starts), dtype=ROLLUP_DTYPE)
    out["sid"] = sid[starts]
    out["bucket"] = bucket[starts]
    out["cnt"] = ends - starts + 1
    out["nfin"] = np.add.reduceat(fin.astype(np.int64), starts)
    out["sum"] = np.add.reduceat(np.where(fin, val, 0.0), starts)
    out["first"] = ts[starts]
    out["last"] = ts[ends]
    out["lastval"] = val[ends]
    return out


def rollup_to_grain(codes: np.ndarray, rows: np.ndarray, is_counter: np.ndarray,
                    width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(codes, bucket_start_ns, value)`` per (series, bucket of ``width`` ns, a multiple of an
    hour) from rollup rows sorted by ``(code, bucket)``; ``is_counter`` is per row."""
    if len(rows) == 0:
        return codes[:0], rows["bucket"][:0], rows["sum"][:0]
    gb = (rows["bucket"] // width) * width
    starts, ends = _runs(codes, gb)
    sums = np.add.reduceat(rows["sum"], starts)
    nfin = np.add.reduceat(rows["nfin"], starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        means = np.where(nfin > 0, sums / np.maximum(nfin, 1), np.nan)
    out = np.where(is_counter[starts], rows["lastval"][ends], means)
    return codes[starts], gb[starts], out
