"""Components of the growth model at every backtest origin at once (issue 16 item 3): seasonal
profiles, the deseasonalised and spike-filtered trend windows, level and trend estimates, and the
point forecasts of a candidate, one row per origin (the final origin last).

:mod:`capplan.models.growth_core` selects and calibrates with them; the method is documented in
:mod:`capplan.models.growth`.  The single-origin functions (:func:`season_profile`,
:func:`weekly_profile`) are the same code with one row, so the backtest, the final forecast and
the change detection cannot drift apart.  Every step gives bit for bit what the per-origin loop
it replaced gave (``tests/test_growth_identity.py``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import numpy as np

from capplan.models._fastmath import median_first, median_last

PHI = 0.99            # damping per step of the damped trend (Gardner & McKenzie 1985)
KMAX = {"day": 14, "week": 6}   # cycles used for the seasonal profile
TREND_BLOCKS = 60     # at most this many blocks (days) in the trend window


def med3(x: np.ndarray) -> np.ndarray:
    """Running median of 3 (Tukey 1977): removes single-point spikes, keeps steps (a step at the
    very last point shows after one more point)."""
    if x.size < 3:
        return x
    a, b, c = x[:-2], x[1:-1], x[2:]
    mid = np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))
    # ends: the median of the first / last three (a one-point spike at the edge is not a level)
    return np.concatenate([[_med3(*x[:3])], mid, [_med3(*x[-3:])]])


def _med3(a: float, b: float, c: float) -> float:
    return max(min(a, b), min(max(a, b), c))


def season_profiles(zf: np.ndarray, origins, m: int, kmax: int) -> np.ndarray | None:
    """:func:`season_profile` at every origin (rows, shape (origins, m)); None when any origin has
    fewer than 2 cycles."""
    O = np.asarray(origins, dtype=np.int64)
    h = m // 2
    K = np.minimum(kmax, (O - 2 * h) // m)
    if K.size == 0 or K.min() < 2:
        return None
    out = np.empty((O.size, m))
    for k in np.unique(K).tolist():
        g = np.flatnonzero(K == k) if K[0] != K[-1] else slice(None)
        start = O[g] - h - k * m
        seg = zf[(start - h)[:, None] + np.arange(k * m + 2 * h)]
        cs = np.zeros((seg.shape[0], seg.shape[1] + 1))
        np.cumsum(seg, axis=1, out=cs[:, 1:])
        ma = (cs[:, m:m + k * m] - cs[:, :k * m]) / m
        block = (seg[:, h:h + k * m] - ma).reshape(-1, k, m)
        # per-phase median over the cycles: rows of k values (contiguous), as np.median(axis=1)
        prof = median_last(np.ascontiguousarray(block.transpose(0, 2, 1))) if k >= 3 \
            else block.mean(axis=1)
        prof = prof - prof.mean(axis=1, keepdims=True)
        rows = np.arange(O.size)[g]
        out[rows[:, None], (start[:, None] + np.arange(m)) % m] = prof
    return out


def season_profile(zf: np.ndarray, o: int, m: int, kmax: int) -> np.ndarray | None:
    """Seasonal profile (length m, by phase t % m, mean 0) from the last <= kmax cycles before o.

    Classical decomposition made robust: the centred moving average of length m (which follows
    trends and, smoothly, level steps) is removed, then the per-phase *median* over the cycles is
    taken (a step or a spike disturbs one cycle, not the median).  The last half cycle before o
    has no centred average and is not used.  None when fewer than 2 cycles are available.
    """
    S = season_profiles(zf, [o], m, kmax)
    return None if S is None else S[0]


def weekly_profiles(zf: np.ndarray, origins, m: int, kmax: int, m_day: int,
                    Sd: np.ndarray | None = None) -> np.ndarray | None:
    """:func:`weekly_profile` at every origin (rows); ``Sd``: the daily profiles at the same
    origins (rows) if already computed.  None when any origin has no daily profile."""
    O = np.asarray(origins, dtype=np.int64)
    if Sd is None:
        Sd = season_profiles(zf, O, m_day, KMAX["day"])
    if Sd is None:
        return None
    base = Sd[:, np.arange(m) % m_day]
    out = base.copy()                       # fewer than two weeks: the daily profile
    K = np.minimum(kmax, O // m)
    rows = np.flatnonzero(K >= 2)
    if rows.size == 0:
        return out
    # all origins in one pass: row i holds its k_i weeks from the left (columns beyond k_i m are
    # padding, never read by a row's own sums, medians or means)
    k = K[rows]
    G, kM = rows.size, int(k.max())
    W = kM * m
    start = O[rows] - k * m
    # x[i] = zf[start:o] - base[t % m]: windows of the series and of the profile tiled
    x = np.lib.stride_tricks.sliding_window_view(np.concatenate([zf, np.zeros(W)]), W)[start]
    x -= np.lib.stride_tricks.sliding_window_view(np.tile(base[rows], (1, kM + 1)), W,
                                                  axis=1)[np.arange(G), start % m]
    cs = np.zeros((G, W + 1))
    np.cumsum(x, axis=1, out=cs[:, 1:])
    ma_valid = (cs[:, m:] - cs[:, :-m]) / m            # centred at i + m/2; row i: nv_i values
    nv = k * m - m + 1
    b0, b1 = np.empty(G), np.empty(G)
    for kk in np.unique(k).tolist():     # the centred average's linear extension, per length
        g = np.flatnonzero(k == kk)
        n_v = kk * m - m + 1
        mv = ma_valid[g, :n_v].mean(axis=1)
        if n_v >= 2:
            pc, ppc, pm = _centred(n_v, m)
            dv = ma_valid[g, :n_v] - mv[:, None]
            b1[g] = np.array([np.dot(pc, d) for d in dv]) / ppc
            b0[g] = mv - b1[g] * pm
        else:
            b1[g], b0[g] = 0.0, ma_valid[g, 0]
    ma = b0[:, None] + b1[:, None] * np.arange(W)
    lo = int(np.ceil(m / 2))
    j = np.arange(ma_valid.shape[1])                  # row i: ma[lo:lo + nv_i] = ma_valid[:nv_i]
    ma[:, lo:lo + j.size] = np.where(j[None, :] < nv[:, None], ma_valid, ma[:, lo:lo + j.size])
    blocks = (x - ma).reshape(G, kM, m)
    dev = np.empty((G, m))
    noise = np.empty(G)
    r3 = np.flatnonzero(k >= 3)
    if r3.size:   # robust: bursts in one week must not hide a real weekly cycle
        k3 = k[r3]
        b3 = blocks[r3] if r3.size < G else blocks
        med = median_first(b3, k3)                         # per phase, over the row's k weeks
        dev[r3] = med - med.mean(axis=1, keepdims=True)
        mad = median_first(np.abs(b3 - med[:, None, :]), k3)
        noise[r3] = np.mean((1.4826 * mad) ** 2, axis=1) * (np.pi / 2) / k3   # var of a median
    r2 = np.flatnonzero(k == 2)
    if r2.size:
        b2 = blocks[r2, :2]
        d2 = b2.mean(axis=1)
        dev[r2] = d2 - d2.mean(axis=1, keepdims=True)
        noise[r2] = np.mean(b2.var(axis=1, ddof=1), axis=1) / 2
    signal = np.maximum(0.0, np.mean(dev ** 2, axis=1) - noise)
    tot = signal + noise
    w = np.where(tot > 0, signal / np.where(tot > 0, tot, 1.0), 0.0)
    og = base[rows]
    og[np.arange(G)[:, None], (start[:, None] + np.arange(m)) % m] += w[:, None] * dev
    out[rows] = og - og.mean(axis=1, keepdims=True)
    return out


@functools.lru_cache(maxsize=64)
def _centred(n_v: int, m: int) -> tuple[np.ndarray, float, float]:
    """Positions i + m/2 of n_v centred averages: (centred positions, their sum of squares,
    their mean)."""
    pos = np.arange(n_v) + m / 2
    pc = pos - pos.mean()
    return pc, np.dot(pc, pc), pos.mean()


def weekly_profile(zf: np.ndarray, o: int, m: int, kmax: int, m_day: int,
                   Sd: np.ndarray | None = None) -> np.ndarray | None:
    """Weekly profile (length m, by phase t % m) that needs only two weeks: the daily profile plus
    the weekly departure from it, shrunk toward the daily profile (issue 12 item 3).

    The daily profile comes from :func:`season_profile` (<= 14 days).  The departure is the
    per-phase mean (median from 3 weeks) over the last k <= kmax full weeks of the series minus
    the daily profile minus its centred weekly moving average (extended linearly where a week
    does not fit).  It is shrunk by the empirical-Bayes factor w = signal / (signal + noise),
    where noise is the mean per-phase variance of that estimate (between-week variance / k for
    two weeks; from 3 weeks the variance of a median, pi/2 (1.4826 MAD)**2 / k, so that a burst
    in one week does not hide the cycle) and
    signal the departure's mean square beyond it (James & Stein 1961; Efron & Morris 1973): a
    real weekly cycle is kept from two weeks on, a noisy one fades toward the daily profile.
    With fewer than two weeks it *is* the daily profile.  None without a daily profile.
    """
    S = weekly_profiles(zf, [o], m, kmax, m_day, None if Sd is None else Sd[None, :])
    return None if S is None else S[0]


def _med3_rows(X: np.ndarray, size: np.ndarray) -> np.ndarray:
    """:func:`med3` of every row's last ``size`` values (right-aligned rows, NaN before)."""
    G, W = X.shape
    if W < 3 or size.min() < 3:
        out = np.full((G, W), np.nan)
        for i in range(G):
            out[i, W - size[i]:] = med3(X[i, W - size[i]:])
        return out
    out = np.empty((G, W))
    a, b, c = X[:, :-2], X[:, 1:-1], X[:, 2:]
    lo = np.minimum(a, b)
    hi = np.maximum(a, b)
    np.minimum(hi, c, out=hi)
    np.maximum(lo, hi, out=out[:, 1:-1])
    # ends: the median of the first / last three (a one-point spike at the edge is not a level)
    r = np.arange(G)
    f = W - size
    a, b, c = X[r, f], X[r, f + 1], X[r, f + 2]
    out[r, f] = np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))
    a, b, c = X[:, -3], X[:, -2], X[:, -1]
    out[:, -1] = np.maximum(np.minimum(a, b), np.minimum(np.maximum(a, b), c))
    for i in np.flatnonzero(f).tolist():
        out[i, :f[i]] = np.nan
    return out


@functools.lru_cache(maxsize=64)
def _ewm_weights(alpha: float, k: int) -> tuple[np.ndarray, float]:
    """Weights of the last k values in simple exponential smoothing (Brown 1956), oldest first,
    and their sum (the level is normalised by it)."""
    w = alpha * (1 - alpha) ** np.arange(k)[::-1]
    return w, w.sum()


def _ewm_k(alpha: float) -> int:
    """Values that carry all but 1e-4 of the smoothing weight."""
    return int(np.ceil(np.log(1e-4) / np.log(1 - alpha))) + 1


def block_medians(d: np.ndarray, L: int) -> np.ndarray:
    nb = d.size // L
    if nb == 0:
        return np.empty(0)
    return median_last(d[d.size - nb * L:].reshape(nb, L))


@functools.lru_cache(maxsize=256)
def _pairs(nb: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    i, j = np.triu_indices(nb, 1)
    return i, j, j - i


def trend_stats(d: np.ndarray, L: int) -> tuple[float, float, int]:
    """OLS slope per step, its t statistic and the number of blocks, on block medians of d."""
    bm = block_medians(d, L)
    nb = bm.size
    if nb < 4:
        return 0.0, 0.0, nb
    x = np.arange(nb, dtype=float)
    x -= x.mean()
    b = float(np.dot(x, bm - bm.mean()) / np.dot(x, x))
    resid = bm - bm.mean() - b * x
    s2 = float(np.dot(resid, resid) / (nb - 2))
    se = np.sqrt(s2 / np.dot(x, x)) if s2 > 0 else 0.0
    t = b / se if se > 0 else float(np.sign(b)) * 999.0
    return b / L, float(np.clip(t, -999.0, 999.0)), nb


@dataclass
class Windows:
    """Per (transform, period), one row per origin (the final origin last): the seasonal profiles
    and the deseasonalised, spike-filtered trend windows, shared by all candidates."""

    S: np.ndarray | None   # (rows, m) profiles, None without season
    D: np.ndarray          # (rows, W) windows before each origin, right-aligned, NaN before
    size: np.ndarray       # (rows,) window lengths
    lv: np.ndarray         # (rows,) the level is estimated from d[lv:] (after the last level shift)
    o: np.ndarray          # (rows,) origins
    cache: dict = field(default_factory=dict)

    def d(self, r: int) -> np.ndarray:
        """Row r's window (1-D)."""
        return self.D[r, self.D.shape[1] - self.size[r]:]


def prepare(zf: np.ndarray, origins, m: int, kmax: int, L: int, t_start, l_start,
            m_day: int = 0, Sd: np.ndarray | None = None, S=False) -> Windows | None:
    """Profiles and trend windows at every origin (``t_start`` / ``l_start``: per origin, where
    the trend window / the level may start).  ``Sd``: the daily profiles at the same origins,
    already computed for this transform (reused by the weekly profile); ``S``: the profiles
    themselves if already computed (None: missing).  None when a profile is missing at any
    origin."""
    O = np.asarray(origins, dtype=np.int64)
    if S is not False:
        pass
    elif m and m_day and m > m_day:
        S = weekly_profiles(zf, O, m, kmax, m_day, Sd)
    elif m:
        S = season_profiles(zf, O, m, kmax)
    else:
        S = None
    if m and S is None:
        return None
    lo = np.maximum(np.maximum(np.asarray(t_start, dtype=np.int64), O - TREND_BLOCKS * L), 0)
    lo = np.minimum(lo, np.maximum(O - 2 * L, 0))
    size = O - lo
    W = int(size.max())
    # rows zf[o - W:o] (zeros before the series: they fall outside every window, see _med3_rows)
    win = np.lib.stride_tricks.sliding_window_view(np.concatenate([np.zeros(W), zf]), W)
    seg = win[O]
    if S is not None:    # minus the profile at phase t % m: windows of the profile tiled
        St = np.tile(S, (1, W // m + 2))
        seg -= np.lib.stride_tricks.sliding_window_view(St, W, axis=1)[np.arange(O.size),
                                                                        (O - W) % m]
    lv = np.maximum(0, np.minimum(np.asarray(l_start, dtype=np.int64) - lo, size - 1))
    return Windows(S=S, D=_med3_rows(seg, size), size=size, lv=lv, o=O)


def _levels(p: Windows, spec: Spec, L: int) -> tuple[np.ndarray, np.ndarray]:
    """(level, lag in steps) of the level rule at every origin, cached per rule: the final value
    of simple exponential smoothing (weights normalised to 1) or the median of the last block."""
    key = (spec.level, spec.lpar)
    if key not in p.cache:
        W = p.D.shape[1]
        avail = p.size - p.lv
        level = np.empty(p.size.size)
        if spec.level == "ewm":
            k = np.minimum(avail, _ewm_k(spec.lpar))
            for kk in np.unique(k).tolist():
                g = np.flatnonzero(k == kk)
                w, ws = _ewm_weights(spec.lpar, kk)
                X = p.D[:, W - kk:]
                level[g] = [np.dot(w, X[i]) / ws for i in g.tolist()]
            lag = np.full(level.size, (1 - spec.lpar) / spec.lpar)
        else:
            w = np.minimum(L, avail)
            for ww in np.unique(w).tolist():
                g = np.flatnonzero(w == ww)
                level[g] = median_last(p.D[g, W - ww:])
            lag = (w - 1) / 2
        p.cache[key] = (level, lag)
    return p.cache[key]


def _slopes(p: Windows, L: int) -> np.ndarray:
    """Theil (1950) / Sen (1968) slope of the block medians of every window, per step, cached
    (0 with fewer than 3 blocks)."""
    if "slope" not in p.cache:
        G, W = p.D.shape
        nb = p.size // L
        NB = int(nb.max())
        out = np.zeros(G)
        if NB >= 3:
            # block medians of all windows at once (right-aligned; a row's blocks before its
            # window are NaN and never used)
            BM = median_last(p.D[:, W - NB * L:].reshape(G, NB, L))
            rows = np.flatnonzero(nb >= 3)
            for v in np.unique(nb[rows]).tolist():
                g = rows[nb[rows] == v]
                bm = BM[g, NB - v:]
                i, j, dij = _pairs(v)
                out[g] = median_last((bm[:, j] - bm[:, i]) / dij) / L
        p.cache["slope"] = out
    return p.cache["slope"]


def season_matrix(p: Windows, m: int, H: int, rows: slice) -> np.ndarray | None:
    """Seasonal terms for steps o .. o+H-1 of the windows ``rows``, or None without season."""
    if not m:
        return None
    idx = (p.o[rows][:, None] + np.arange(H)[None, :]) % m
    return np.take_along_axis(p.S[rows], idx, axis=1)


def forecast_matrix(p: Windows, spec: Spec, H: int, L: int, rows: slice,
                    S: np.ndarray | None) -> np.ndarray:
    """Point forecasts (transformed space), one row per window in ``rows``, steps o .. o+H-1."""
    level, lag = _levels(p, spec, L)
    level, lag = level[rows], lag[rows]
    if spec.trend != "none":
        b = _slopes(p, L)[rows]
        h, damped = _steps(H)
        f = (level + b * lag)[:, None] + b[:, None] * (h if spec.trend == "linear" else damped)
    else:
        f = np.repeat(level[:, None], H, axis=1)
    return f if S is None else f + S


@functools.lru_cache(maxsize=64)
def _steps(H: int) -> tuple[np.ndarray, np.ndarray]:
    """h = 1..H and the damped-trend multiplier sum_{i<=h} PHI**i (Gardner & McKenzie 1985)."""
    h = np.arange(1, H + 1, dtype=float)
    return h, PHI * (1 - PHI ** h) / (1 - PHI)


def local_noise(y: np.ndarray, o: int, w: int) -> float:
    """Robust noise level before index o: 1.4826 * MAD of first differences over w steps."""
    seg = y[max(0, o - w):o]
    dd = np.diff(seg)
    dd = dd[np.isfinite(dd)]
    if dd.size < 4:
        return float("nan")
    return 1.4826 * float(median_last(np.abs(dd - median_last(dd))))
