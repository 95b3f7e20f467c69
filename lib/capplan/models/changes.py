"""Level and trend shifts in a (deseasonalised) series, found by binary segmentation.

Method.  Within a segment ``x`` (length N) a straight line ``a + b t`` is the null model.  For every
candidate index k we test one extra regressor, orthogonalised against ``[1, t]``:

* a level step ``1(t >= k)``  (a deploy or configuration change moves the level), and
* a hinge ``(t - k)+``         (growth speeds up or slows down),

with the statistic ``T_k = <u_k, r> / (sigma * ||u_k - P u_k||)`` where ``r`` are the residuals of the
line and ``sigma`` is a long-run (autocorrelation-aware) noise scale.  All k are evaluated at once
from suffix sums (O(N)).  The largest ``|T_k|`` above ``threshold`` (default
``max(5, sqrt(2 ln N) + 1.5)``, i.e. well above the ~sqrt(2 ln N) maximum of N null statistics) is a
change; the segment is split there and both halves are searched again (binary segmentation, Scott &
Knott 1974; Killick & Eckley 2014 review the family).  Level steps must also exceed twice the
point noise, so that a statistically detectable but operationally irrelevant wiggle is not reported.

``sigma`` is estimated robustly as ``1.4826 * MAD(diff(block means)) / sqrt(2) * sqrt(L)``, with
blocks of L steps (a day), which is insensitive to steps, trends and single spikes (the input is
passed through a centred running median of 7 first, so spikes of up to 3 points are ignored).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

__all__ = ["Change", "find_changes"]


@dataclass(frozen=True)
class Change:
    """One detected shift.  ``size``: level jump (value units) or slope change (units per step)."""

    timestamp: pd.Timestamp
    kind: str          # 'level' | 'trend'
    size: float
    index: int         # position in the resampled history

    def to_dict(self) -> dict:
        return {"timestamp": self.timestamp.isoformat(), "kind": self.kind, "size": self.size}


def _noise(d: np.ndarray, L: int) -> tuple[float, float]:
    """(long-run sigma per point, point sigma) from block means and first differences."""
    diffs = np.diff(d)
    point = 1.4826 * float(np.median(np.abs(diffs - np.median(diffs)))) / np.sqrt(2) if d.size > 2 \
        else 0.0
    nb = d.size // L
    if nb >= 4 and L > 1:
        bm = d[d.size - nb * L:].reshape(nb, L).mean(axis=1)
        db = np.diff(bm)
        lr = 1.4826 * float(np.median(np.abs(db - np.median(db)))) / np.sqrt(2) * np.sqrt(L)
    else:
        lr = point
    return max(lr, point, 1e-12), max(point, 1e-12)


def _scan(x: np.ndarray, sigma: float, min_seg: int, L: int) -> tuple[float, int, str, float]:
    """Best (|T|, k, kind, size) in segment x (k relative to x)."""
    N = x.size
    t = np.arange(N, dtype=float)
    tc = t - t.mean()
    tt = float(np.dot(tc, tc))
    b = float(np.dot(tc, x - x.mean())) / tt
    r = x - x.mean() - b * tc
    # suffix sums S[k] = sum_{t >= k}
    def suffix(v):
        return np.cumsum(v[::-1])[::-1]
    s1, st, stt = suffix(np.ones(N)), suffix(t), suffix(t * t)
    sr, str_ = suffix(r), suffix(t * r)
    k = np.arange(N, dtype=float)
    tbar = t.mean()
    best = (0.0, -1, "level", 0.0)
    # level step u = 1(t >= k)
    ks = slice(min_seg, N - min_seg + 1)
    if N - 2 * min_seg >= 0:
        uu = s1 - s1 ** 2 / N - (st - tbar * s1) ** 2 / tt
        with np.errstate(divide="ignore", invalid="ignore"):
            T = sr / (sigma * np.sqrt(uu))
            size = sr / uu
        Tk = np.abs(np.nan_to_num(T[ks]))
        if Tk.size:
            j = int(np.argmax(Tk))
            best = (float(Tk[j]), j + min_seg, "level", float(size[ks][j]))
    # hinge h = (t - k)+
    hmin = max(2 * L, min_seg)
    kh = slice(hmin, N - hmin + 1)
    if N - 2 * hmin >= 0:
        hr = str_ - k * sr
        hh = stt - 2 * k * st + k * k * s1
        h1 = st - k * s1
        ht = (stt - k * st) - tbar * h1
        uu = hh - h1 ** 2 / N - ht ** 2 / tt
        with np.errstate(divide="ignore", invalid="ignore"):
            T = hr / (sigma * np.sqrt(uu))
            size = hr / uu
        Tk = np.abs(np.nan_to_num(T[kh]))
        if Tk.size:
            j = int(np.argmax(Tk))
            if Tk[j] > best[0]:
                best = (float(Tk[j]), j + hmin, "trend", float(size[kh][j]))
    return best


def find_changes(d: np.ndarray, L: int, *, max_changes: int = 5,
                 threshold: float | None = None) -> list[tuple[int, str, float]]:
    """Changes in array ``d`` (no NaN) as sorted ``(index, kind, size)``; ``L`` = steps per block."""
    n = d.size
    if n < 2 * max(6, L // 2) + 2:
        return []
    sigma, point = _noise(d, L)
    if n >= 7:      # centred running median of 7: spikes of up to 3 points are not shifts
        mid = np.median(np.lib.stride_tricks.sliding_window_view(d, 7), axis=1)
        d = np.concatenate([d[:3], mid, d[-3:]])
    min_seg = max(6, L // 2)
    thr = threshold if threshold is not None else max(5.0, np.sqrt(2 * np.log(n)) + 1.5)
    found: list[tuple[int, str, float]] = []
    todo = [(0, n)]
    while todo and len(found) < max_changes:
        a, b = todo.pop()
        if b - a < 2 * min_seg + 2:
            continue
        T, k, kind, size = _scan(d[a:b], sigma, min_seg, L)
        if T < thr or k <= 0:
            continue
        if kind == "level" and abs(size) < 2 * point:
            continue
        found.append((a + k, kind, size))
        todo.extend([(a, a + k), (a + k, b)])
    return sorted(found)
