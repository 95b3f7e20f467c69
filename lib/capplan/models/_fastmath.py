"""Small numerical kernels of the growth model, written for speed but giving exactly (bit for bit)
what the plain numpy calls they replace give (issue 16 item 3: the fleet fits thousands of series).

* :func:`median_last`: ``np.median(x, axis=-1)`` -- the same order statistics and the same
  ``(a + b) / 2`` for an even count, NaN when a row has a NaN -- by a sort for short rows (many
  rows of a few values: the per-phase medians over cycles) and a partition for long ones, without
  ``np.median``'s per-call overhead.
* :func:`median_first`: ``np.median`` of the first ``n[r]`` of a few values (the weeks of a
  weekly profile) for every row r and phase, by an odd-even transposition network of
  ``np.minimum`` / ``np.maximum`` over whole arrays instead of many tiny sorts.
* :func:`isotonic`: pool adjacent violators with the same arithmetic as the plain loop, skipping
  the loop where the input is already non-decreasing (the usual case for an error-scale curve).
"""

from __future__ import annotations

import numpy as np

__all__ = ["median_last", "median_first", "isotonic"]

SORT_MAX = 32     # rows up to this length are sorted, longer ones partitioned


def median_last(x: np.ndarray) -> np.ndarray:
    """``np.median(x, axis=-1)`` for a float array with at least one column."""
    n = x.shape[-1]
    h = n // 2
    if n <= SORT_MAX:
        s = np.sort(x, axis=-1)
        top = s[..., -1]
    else:
        kth = [h - 1, h, n - 1] if n % 2 == 0 else [h, n - 1]
        s = np.partition(x, kth, axis=-1)
        top = s[..., -1]
    med = (s[..., h - 1] + s[..., h]) / 2 if n % 2 == 0 else s[..., h].copy()
    nan = np.isnan(top)       # NaN sorts last: a row with a NaN has a NaN median, as np.median
    if nan.any():
        med = np.where(nan, np.nan, med)
    return med


def median_first(B: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``np.median(B[r, :n[r], :], axis=0)`` for every row r of B (rows x K x m), 1 <= n[r] <= K:
    the same order statistics, ``(a + b) / 2`` for an even count, NaN where one of the values is
    NaN."""
    R, K, m = B.shape
    X = np.where(np.arange(K)[None, :, None] < n[:, None, None], B, np.inf)   # +inf sorts last
    nan = np.isnan(X).any(axis=1)
    cols = [X[:, c, :] for c in range(K)]
    for rnd in range(K):              # odd-even transposition: sorted after K rounds
        for i in range(rnd % 2, K - 1, 2):
            a, b = cols[i], cols[i + 1]
            cols[i], cols[i + 1] = np.minimum(a, b), np.maximum(a, b)
    S = np.stack(cols)                # (K, R, m), sorted along the first axis
    h = (n // 2)[:, None]
    r = np.arange(R)[:, None]
    ph = np.arange(m)[None, :]
    hi = S[h, r, ph]
    med = np.where((n % 2 == 0)[:, None], (S[h - 1, r, ph] + hi) / 2, hi)
    if nan.any():
        med[nan] = np.nan
    return med


def isotonic(y: np.ndarray) -> np.ndarray:
    """Least-squares non-decreasing fit of y (pool adjacent violators, Ayer et al. 1955)."""
    y = np.asarray(y, float)
    if y.size < 2:
        return y.astype(float, copy=True)
    up = np.diff(y) >= 0
    if up.all():
        return y.copy()
    first = int(np.argmin(up))            # y[:first + 1] is non-decreasing: pushed unmerged
    # the blocks below the top one (value, weight, length); the top block lives in locals, so
    # pooling a new point into it (the usual case) touches no list
    vals = y[:first].tolist()
    wts = [1.0] * first
    lens = [1] * first
    tv, tw, tc = float(y[first]), 1.0, 1
    for v in y[first + 1:].tolist():
        if not tv > v:                    # no violation: the top block is final for now
            vals.append(tv)
            wts.append(tw)
            lens.append(tc)
            tv, tw, tc = v, 1.0, 1
            continue
        # pool (below * w_below + top * w_top) / (w_below + w_top): the plain loop's arithmetic
        w = tw + 1.0
        tv = (tv * tw + v * 1.0) / w
        tw = w
        tc += 1
        while vals and vals[-1] > tv:
            pv = vals.pop()
            pw = wts.pop()
            tc += lens.pop()
            w = pw + tw
            tv = (pv * pw + tv * tw) / w
            tw = w
    vals.append(tv)
    lens.append(tc)
    return np.repeat(vals, lens)
