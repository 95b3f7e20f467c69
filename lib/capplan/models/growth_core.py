"""Numerical core of :mod:`capplan.models.growth`: arrays in, arrays out (no pandas, no I/O).

The model family, the candidate grid, the rolling-origin backtest and the interval calibration
are documented in the docstring of :mod:`capplan.models.growth`; this module implements them,
with the components at every origin from :mod:`capplan.models.growth_windows`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from capplan.models._fastmath import isotonic, median_last
# the components at every origin (med3, season_profile and weekly_profile are used from here by
# capplan.models.growth)
from capplan.models.growth_windows import (KMAX, forecast_matrix, local_noise, med3,  # noqa: F401
                                           prepare, season_matrix, season_profile,
                                           season_profiles, trend_stats, weekly_profile,
                                           weekly_profiles)

LEVELS = (("ewm", 0.05), ("ewm", 0.15), ("ewm", 0.4), ("med", 0.0))
TRENDS = ("none", "damped", "linear")
MAX_FOLDS = 20
LOCAL_SCALE = False   # normalise backtest errors by the local noise level (see run_core; off:
                      # on the dev series it inflated bands after a volatile day, issue 12)
TOP_K = 3             # best candidates averaged into the final forecast


@dataclass(frozen=True)
class Spec:
    """One candidate: seasonal period (steps, 0 = none), level rule, trend rule, transform."""

    period: int
    level: str
    lpar: float
    trend: str
    transform: str

    def name(self, period_names: dict[int, str]) -> str:
        season = period_names.get(self.period, f"m={self.period}") if self.period else "none"
        level = f"ewm(a={self.lpar:g})" if self.level == "ewm" else "median(1 block)"
        tr = "" if self.transform == "none" else f"{self.transform} "
        return f"{tr}level={level} trend={self.trend} season={season}"


# --- transforms -----------------------------------------------------------------------------

def make_transform(kind: str, y: np.ndarray, lo: float | None, hi: float | None):
    """Return (forward, inverse) for ``none``, ``log`` (y - lo > 0) or ``logit`` (lo < y < hi)."""
    if kind == "none":
        return (lambda v: v), (lambda v: v)
    if kind == "log":
        base = 0.0 if lo is None else lo
        shift = 1e-3 * max(float(np.nanmedian(np.abs(y - base))), 1e-12)
        return (lambda v: np.log(np.maximum(v - base, 0) + shift)), \
               (lambda v: np.exp(np.minimum(v, 700)) - shift + base)
    span = hi - lo
    eps = 1e-4

    def fwd(v):
        p = np.clip((v - lo) / span, eps, 1 - eps)
        return np.log(p / (1 - p))

    def inv(v):
        return lo + span / (1 + np.exp(-np.clip(v, -700, 700)))
    return fwd, inv


def fill_gaps(z: np.ndarray) -> np.ndarray:
    """Linear interpolation over missing points (ends held flat); the mask is kept by callers."""
    ok = ~np.isnan(z)
    if ok.all():
        return z
    idx = np.arange(z.size)
    return np.interp(idx, idx[ok], z[ok])


# --- intervals --------------------------------------------------------------------------------

def scale_curve(E: np.ndarray, H: int) -> np.ndarray:
    """Error scale s(h), h = 1..H, from the backtest MAE by horizon: smoothed (moving average over
    ~hb/10 horizons), made non-decreasing, and beyond the backtest horizon hb extrapolated as
    s(hb) * (h / hb)**p with p in [0, 1] fitted (log-log) on the second half of the horizons."""
    ok = np.isfinite(E)
    s = _scale_rows(np.where(ok, np.abs(E), 0.0).sum(axis=0)[None, :], ok.sum(axis=0)[None, :])[0]
    hb = s.size
    if H <= hb:
        return s[:H]
    h = np.arange(1, hb + 1, dtype=float)
    half = slice(hb // 2, hb)
    p = 0.5
    if hb >= 6 and np.ptp(np.log(h[half])) > 0:
        p = float(np.clip(np.polyfit(np.log(h[half]), np.log(s[half]), 1)[0], 0.0, 1.0))
    ext = s[-1] * (np.arange(hb + 1, H + 1, dtype=float) / hb) ** p
    return np.concatenate([s, ext])


def _scale_rows(tot: np.ndarray, cnt: np.ndarray) -> np.ndarray:
    """The scale curves (rows, up to hb) of :func:`scale_curve` from the sums of absolute errors
    ``tot`` and their counts ``cnt`` by horizon (one row per set of folds)."""
    mae = np.where(cnt > 0, tot / np.maximum(cnt, 1), np.nan)
    hb = mae.shape[1]
    for i in np.flatnonzero(~np.isfinite(mae).all(axis=1)).tolist():
        mae[i] = fill_gaps(mae[i]) if np.isfinite(mae[i]).any() else np.zeros(hb)
    w = max(1, hb // 10)
    if w > 1:
        cs = np.zeros((mae.shape[0], hb + 1))
        np.cumsum(mae, axis=1, out=cs[:, 1:])
        lo = np.clip(np.arange(hb) - w // 2, 0, hb)
        hi = np.clip(np.arange(hb) + w // 2 + 1, 0, hb)
        mae = (cs[:, hi] - cs[:, lo]) / (hi - lo)
    # non-decreasing by isotonic regression (pool adjacent violators), not a running max: the
    # running max of a noisy curve is biased upward (an iid series would get widening bands)
    return np.maximum(np.array([isotonic(r) for r in mae]), 1e-9)


def conformal_q(zs: np.ndarray, q: float) -> float:
    """Quantile of sorted ``zs`` with the split-conformal finite-sample correction
    (Vovk et al. 2005): the ceil((n + 1) q)-th order statistic (mirrored for q < 0.5)."""
    n = zs.size
    if n == 0:
        return 0.0
    if q > 0.5:
        return float(zs[min(n - 1, int(np.ceil((n + 1) * q)) - 1)])
    return float(zs[max(0, int(np.floor((n + 1) * q)) - 1)])


QUANTS = (0.025, 0.1, 0.9, 0.975)
SEPARATION = 1.0     # reported coverage: calibrate fold k on folds >= SEPARATION * hb away
PESSIMISM = 1.0      # quantile over folds of the per-fold error quantiles (see calibrate)


_UP = np.asarray(QUANTS) > 0.5      # the upper quantiles among QUANTS


def _fold_rule(pooled_q: np.ndarray, per: np.ndarray) -> np.ndarray:
    """Widen pooled quantiles (at QUANTS) to the PESSIMISM-quantile of the per-fold ones."""
    if per.shape[0] < 3:
        return pooled_q
    up = _UP
    if PESSIMISM >= 1.0:
        qf = np.where(up, per.max(axis=0), per.min(axis=0))
    else:
        qf = np.where(up, np.quantile(per, PESSIMISM, axis=0),
                      np.quantile(per, 1 - PESSIMISM, axis=0))
    return np.where(up, np.maximum(pooled_q, qf), np.minimum(pooled_q, qf))


def _pooled_q(z: np.ndarray) -> np.ndarray:
    """conformal_q at every QUANTS level for *unsorted* z (one partial sort, O(n))."""
    n = z.size
    if n == 0:
        return np.zeros(len(QUANTS))
    k = [min(n - 1, math.ceil((n + 1) * a) - 1) if a > 0.5
         else max(0, math.floor((n + 1) * a) - 1) for a in QUANTS]
    return np.partition(z, k)[k]


def _row_quantiles(Z: np.ndarray, qs) -> tuple[np.ndarray, np.ndarray]:
    """Linear-interpolation quantiles (as np.quantile) of every row's finite values, vectorised;
    returns (rows x len(qs), finite count per row)."""
    fin = np.isfinite(Z)
    S = np.sort(np.where(fin, Z, np.inf), axis=1)
    c = fin.sum(axis=1)
    pos = np.asarray(qs)[None, :] * np.maximum(c - 1, 0)[:, None]
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, np.maximum(c - 1, 0)[:, None])
    a = np.take_along_axis(S, lo, axis=1)
    b = np.take_along_axis(S, hi, axis=1)
    with np.errstate(invalid="ignore"):
        return a + (pos - lo) * np.where(hi > lo, b - a, 0.0), c


def _rule(Z: np.ndarray) -> np.ndarray:
    """Interval quantiles (at QUANTS) from normalised fold errors Z (folds x steps)."""
    per, c = _row_quantiles(Z, QUANTS)
    return _fold_rule(_pooled_q(Z[np.isfinite(Z)]), per[c >= 5])


def _rules(Z: np.ndarray, sets: np.ndarray) -> np.ndarray:
    """:func:`_rule` of every set of rows of Z (``sets``: the set of each row, ascending), one
    row of quantiles per set: the per-fold quantiles of all sets in one sort."""
    per, c = _row_quantiles(Z, QUANTS)
    fin = np.isfinite(Z)
    cuts = np.flatnonzero(np.diff(sets)) + 1
    out = []
    for a, b in zip([0, *cuts.tolist()], [*cuts.tolist(), sets.size]):
        z = Z[a:b]
        out.append(_fold_rule(_pooled_q(z[fin[a:b]]), per[a:b][c[a:b] >= 5]))
    return np.array(out)


def calibrate(E: np.ndarray, H: int, origins=None
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """Scale curve, interval quantiles (at QUANTS), pooled normalised errors (sorted) and the
    out-of-sample 80/95 % coverage of the same rule.

    Interval rule: the pooled split-conformal quantile of the normalised errors, widened to the
    PESSIMISM-quantile over folds of the per-fold quantiles (server metrics are not stationary:
    the next window tends to look like one of the worse past windows, not like their average).

    Coverage (issue 12 item 2): each fold k is scored with a scale curve *and* quantiles fitted
    only on the folds whose forecast windows do not overlap fold k's (``|o_j - o_k| >= hb``; at
    least 3 such folds, else those at least hb/2 away, else all others), so the fold's own
    actuals never calibrate its interval.  This is what predicts the coverage of the final
    forecast, whose future no fold has seen.  (All scored folds at once: one row per fold k.)
    """
    F, hb = E.shape
    s = scale_curve(E, max(H, hb))
    Z = E / s[None, :hb]
    q_all = _rule(Z)
    zs = np.sort(Z[np.isfinite(Z)])
    o = np.asarray(origins if origins is not None else np.arange(F) * hb, dtype=float)
    ok = np.isfinite(E)
    # every other fold when there are many (halves the cost; the estimate stays unbiased)
    ks, rests = [], []
    for k in range(0, F, 2 if F > 12 else 1):
        if not ok[k].any():
            continue
        dist = np.abs(o - o[k])
        rest = dist >= SEPARATION * hb
        if rest.sum() < 3:
            rest = dist >= SEPARATION * hb / 2
        if rest.sum() < 3:
            rest = dist > 0
        if rest.sum() < 2:
            continue
        ks.append(k)
        rests.append(rest)
    if not ks:
        return s[:H], q_all, zs, float("nan"), float("nan")
    M = np.array(rests)                                        # (scored folds, F)
    A = np.where(ok, np.abs(E), 0.0)
    # sums over each fold set in fold order (a fold outside the set adds an exact 0)
    tot = (A[None, :, :] * M[:, :, None]).sum(axis=1)
    cnt = (ok[None, :, :] & M[:, :, None]).sum(axis=1)
    sk = _scale_rows(tot, cnt)                                  # (scored folds, hb)
    kk, ff = np.nonzero(M)                  # the rows of every set, in fold order
    q = _rules(E[ff] / sk[kk], kk)                              # (scored folds, 4)
    zk = E[ks] / sk
    fin = np.isfinite(zk)
    hits95 = int((fin & (zk >= q[:, :1]) & (zk <= q[:, 3:4])).sum())
    hits80 = int((fin & (zk >= q[:, 1:2]) & (zk <= q[:, 2:3])).sum())
    n = int(fin.sum())
    cov80 = hits80 / n if n else float("nan")
    cov95 = hits95 / n if n else float("nan")
    return s[:H], q_all, zs, cov80, cov95


# --- selection by rolling-origin backtest ----------------------------------------------------

@dataclass
class CoreResult:
    mean: np.ndarray            # (H,) point forecast, original units, not yet clipped to bounds
    specs: list                 # the combined candidates, best first
    score: float                # backtest MAE of the combination (original units)
    errors: np.ndarray          # (folds, Hb) backtest errors actual - forecast of the combination
    origins: list
    scale: np.ndarray           # (H,) error scale s(h)
    zs: np.ndarray              # sorted pooled normalised errors
    q_int: list                 # normalised error quantiles at QUANTS used for the intervals
    cov80: float
    cov95: float
    slope: float                # trend per step (original units) on the final trend window
    slope_t: float              # its t statistic (block medians)
    trend_blocks: int
    members: np.ndarray = None  # (K, H) point forecasts of the combined candidates
    block: int = 1              # bootstrap block length (steps)
    tails: tuple = None         # (min, 0.1 %, 99.9 %, max) of the time-weighted normalised errors
    noise: np.ndarray = None    # short-lived departures (value units) for the residual bootstrap


BLOCK_FRACTION = 0.5     # bootstrap block = this share of a day (of the block length L)
RESID_BLOCKS = 28        # the residual pool covers at most this many blocks (days)


def cross_fitted(results: dict, Y: np.ndarray, origins: list, hb: int) -> np.ndarray:
    """Backtest errors of the TOP_K combination selected on the other half of the folds (two
    contiguous halves in time); the plain in-sample errors when there are fewer than 4 folds."""
    F = Y.shape[0]
    specs = list(results)
    E_all = np.array([Y - results[sp][1] for sp in specs])          # (specs, F, hb)
    A = np.abs(E_all)
    ok = np.isfinite(A)
    fold_mae = np.where(ok, A, 0.0).sum(axis=2) / np.maximum(ok.sum(axis=2), 1)
    fold_mae[ok.sum(axis=2) == 0] = np.nan                           # (specs, F)
    if F < 4:
        return Y - np.mean([results[sp][1] for sp in sorted(specs, key=lambda x: results[x][0])
                            [:TOP_K]], axis=0)
    half = F // 2
    out = np.empty_like(Y, dtype=float)
    for g, other in ((slice(0, half), slice(half, F)), (slice(half, F), slice(0, half))):
        fm = fold_mae[:, other]
        cnt = np.isfinite(fm).sum(axis=1)
        score = np.where(cnt > 0, np.where(np.isfinite(fm), fm, 0).sum(axis=1) / np.maximum(cnt, 1),
                         np.inf)
        order = np.argsort(score, kind="stable")[:TOP_K]
        out[g] = E_all[order][:, g].mean(axis=0)
    return out


def time_weighted_tails(Z: np.ndarray, origins: list) -> tuple | None:
    """(min, 0.1 %, 99.9 %, max) of the normalised errors, each error weighted by 1 / the number
    of folds that forecast the same hour: overlapping folds see one spike many times, and
    unweighted pooling would multiply its frequency by the overlap (and so every path's chance
    of meeting one)."""
    F, hb = Z.shape
    t = (np.asarray(origins)[:, None] + np.arange(hb)[None, :]).ravel()
    z = Z.ravel()
    ok = np.isfinite(z)
    t, z = t[ok], z[ok]
    if z.size < 2:
        return None
    w = 1.0 / np.bincount(t - t.min())[t - t.min()]
    o = np.argsort(z)
    z, w = z[o], w[o]
    c = (np.cumsum(w) - 0.5 * w) / w.sum()
    return (float(z[0]), float(np.interp(0.001, c, z)), float(np.interp(0.999, c, z)),
            float(z[-1]))


def noise_pool(z: np.ndarray, spec: Spec, got, L: int) -> np.ndarray | None:
    """Short-lived departures of the recent history, in value units, for the residual block
    bootstrap of sample paths: the deseasonalised series minus its centred running median over
    one block (a day), over at most RESID_BLOCKS blocks, centred on its median.  Bursts and
    spikes are kept at their historical frequency and size (they are what reaches a limit); the
    slow wander of the level is left to the level error of the paths."""
    n = z.size
    w = min(n, RESID_BLOCKS * L)
    x = z[n - w:]
    if got is not None and spec.period:
        x = x - got[0].S[-1][np.arange(n - w, n) % spec.period]
    k = int(L) | 1
    if x.size < 2 * k:
        return None
    pad = np.concatenate([np.full(k // 2, x[0]), x, np.full(k // 2, x[-1])])
    med = median_last(np.lib.stride_tricks.sliding_window_view(pad, k))
    r = x - med
    r = r[np.isfinite(r)]
    return r - median_last(r) if r.size >= 8 else None


def fold_origins(n: int, H: int, periods: dict[int, str], min_fit: int) -> tuple[list, int]:
    """(backtest origins, backtest horizon hb) for a series of n steps and horizon H."""
    # the first origin leaves room for the profiles: 3 cycles of the longest period, else 2
    # (the weekly profile needs two weeks), as long as a third of the series stays for folds
    o_min = min_fit
    for m in sorted(periods, reverse=True):
        fit = [c * m for c in (3, 2) if n - c * m >= n // 3]
        if fit:
            o_min = max(min_fit, fit[0])
            break
    avail = n - o_min
    hb = int(max(1, min(H, avail // 2 if avail >= 2 else 1)))
    last = n - hb
    if last < o_min:
        o_min = max(1, last)
    # short backtest horizons get more folds so that >= ~240 errors calibrate the intervals
    nf = int(min(max(MAX_FOLDS, min(40, int(np.ceil(240 / hb)))), max(1, last - o_min + 1)))
    return sorted({int(round(v)) for v in np.linspace(o_min, last, nf)}), hb


def profiles_at(zf: np.ndarray, origins, periods: dict[int, str]) -> dict:
    """{period: seasonal profiles at every origin (rows)} of the untransformed, gap-filled series
    (what :func:`run_core` computes for its 'none' candidates; None where a profile is missing)."""
    m_day = next((m for m, nm in periods.items() if nm == "day"), 0)
    out = {}
    for m in sorted(periods):
        if periods[m] == "week" and m_day:
            Sd = out.get(m_day)
            out[m] = None if Sd is None else weekly_profiles(zf, origins, m, KMAX["week"], m_day,
                                                             Sd)
        else:
            out[m] = season_profiles(zf, origins, m, KMAX.get(periods[m], 6))
    return out


def run_core(y: np.ndarray, H: int, periods: dict[int, str], L: int,
             bounds: tuple[float | None, float | None], changes: list[int],
             min_fit: int, level_changes: list[int] = (), profiles: dict | None = None
             ) -> CoreResult:
    """Evaluate the candidate grid by rolling-origin backtest and return the combined forecast.

    ``profiles``: :func:`profiles_at` of this series at ``fold_origins(...) + [n]``, if the
    caller has it already."""
    n = y.size
    lo_b, hi_b = bounds
    obs = y[~np.isnan(y)]
    transforms = ["none"]
    if obs.size and np.all(obs - (lo_b or 0.0) > 0):
        transforms.append("log")
    if lo_b is not None and hi_b is not None:
        transforms.append("logit")
    tf = {t: make_transform(t, y, lo_b, hi_b) for t in transforms}
    zf = {t: fill_gaps(tf[t][0](y)) for t in transforms}

    origins, hb = fold_origins(n, H, periods, min_fit)
    Y = np.array([y[o:o + hb] for o in origins])

    def t_start(o: int) -> int:
        c = [k for k in changes if k <= o - 3 * L]
        return c[-1] if c else 0

    def l_start(o: int) -> int:
        c = [k for k in level_changes if k <= o - 6]
        return c[-1] if c else 0

    m_day = next((m for m, nm in periods.items() if nm == "day"), 0)
    # every component is computed at the F fold origins and the final origin n at once (rows)
    F = len(origins)
    O = np.array([*origins, n], dtype=np.int64)
    t_starts = [t_start(o) for o in O.tolist()]
    l_starts = [l_start(o) for o in O.tolist()]
    folds, final = slice(0, F), slice(F, F + 1)
    prep_cache: dict = {}

    def prepared(t: str, m: int):
        key = (t, m)
        if key not in prep_cache:
            kmax = KMAX.get(periods.get(m, ""), 6)
            md = m_day if periods.get(m) == "week" else 0
            Sd = None
            if md:
                dp = prepared(t, m_day)
                if dp is not None:
                    Sd = dp[0].S
            S = profiles.get(m, False) if profiles is not None and t == "none" and m else False
            win = prepare(zf[t], O, m, kmax, L, t_starts, l_starts, md, Sd, S)
            prep_cache[key] = None if win is None else (win, season_matrix(win, m, hb, folds))
        return prep_cache[key]

    results: dict[Spec, tuple[float, np.ndarray]] = {}        # (backtest MAE, fold forecasts)

    def evaluate(spec: Spec) -> None:
        if spec in results:
            return
        got = prepared(spec.transform, spec.period)
        if got is None:
            return
        win, s_folds = got
        inv = tf[spec.transform][1]
        Fb = inv(forecast_matrix(win, spec, hb, L, folds, s_folds))
        err = np.abs(Y - Fb)
        tot = err.sum()
        # = np.nanmean(err) when nothing is missing (the same sum and count), else nanmean
        score = float(tot / err.size) if np.isfinite(tot) else \
            float(np.nanmean(err)) if np.isfinite(err).any() else np.inf
        results[spec] = (score, Fb)

    def final_forecast(spec: Spec) -> np.ndarray:
        """The forecast from the last origin (only the combined candidates need it)."""
        win = prepared(spec.transform, spec.period)[0]
        s_final = season_matrix(win, spec.period, H, final)
        return tf[spec.transform][1](forecast_matrix(win, spec, H, L, final, s_final))[0]

    for m in [0, *periods]:
        for lv, lp in LEVELS:
            evaluate(Spec(m, lv, lp, "none", "none"))
    best = min(results, key=lambda s: results[s][0])
    for t in transforms:
        for tr in TRENDS:
            evaluate(Spec(best.period, best.level, best.lpar, tr, t))
    ranked = sorted(results, key=lambda s: results[s][0])
    chosen = ranked[:TOP_K]
    Fb = np.mean([results[s][1] for s in chosen], axis=0)
    finals = [final_forecast(s) for s in chosen]
    mean = np.mean(finals, axis=0)
    comb_err = np.abs(Y - Fb)
    comb_score = float(np.nanmean(comb_err)) if np.isfinite(comb_err).any() else float("nan")
    E = Y - Fb
    # cross-fitted errors (issue 12 item 2): the errors that calibrate the intervals come, for
    # each half of the folds, from the combination selected on the *other* half, so the errors
    # that chose the model are not the ones that judge its uncertainty
    E_cal = cross_fitted(results, Y, origins, hb)
    # locally adaptive calibration (normalised conformal scores, Papadopoulos et al. 2008; Lei et
    # al. 2018): each fold's errors are divided by the noise level just before its origin, and
    # the final bands are multiplied by the noise level now, so a noisier regime after a deploy
    # widens the intervals instead of inheriting the calm past.
    ref = sig_now = 0.0
    if LOCAL_SCALE:      # (off: the noise levels are not computed at all)
        sig = np.array([local_noise(y, o, 2 * L) for o in origins])
        sig_now = local_noise(y, n, 2 * L)
        ref = float(np.median(sig)) if np.isfinite(sig).all() and np.median(sig) > 0 else 0.0
    if LOCAL_SCALE and ref > 0 and sig_now > 0:
        sig = np.maximum(sig, 0.2 * ref) / ref
        sig_now = max(sig_now, 0.2 * ref) / ref
    else:
        sig, sig_now = np.ones(len(origins)), 1.0
    s, q_int, zs, cov80, cov95 = calibrate(E_cal / sig[:, None], H, origins)
    tails = time_weighted_tails(E_cal / sig[:, None] / s[None, :hb], origins)
    s = s * sig_now
    members = np.array(finals)
    block = int(max(1, round(BLOCK_FRACTION * L)))
    noise = noise_pool(zf["none"], chosen[0], prepared("none", chosen[0].period), L)

    got = prepared("none", chosen[0].period)
    slope, slope_t, nb = trend_stats(got[0].d(F), L) if got is not None else (0.0, 0.0, 0)
    return CoreResult(mean=mean, specs=chosen, score=comb_score, errors=E, origins=origins,
                      scale=s, zs=zs, q_int=q_int, cov80=cov80, cov95=cov95, slope=slope, slope_t=slope_t,
                      trend_blocks=nb, members=members, block=block, tails=tails,
                      noise=noise)
