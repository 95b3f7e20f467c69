"""Profile-likelihood intervals for quantities derived from a USL fit (private helper of usl.py).

For a function ``g(theta)`` of the coefficients, the profile-t interval (Bates & Watts,
*Nonlinear Regression Analysis and Its Applications*, 1988, sec. 6.1) is::

    { g(theta) : RSS(theta) <= RSS_min + s^2 * t(0.975, df)^2 }

i.e. the range of ``g`` over the likelihood confidence region with one degree of freedom.  The
derived quantities used here (``N* = sqrt((1-sigma)/kappa)``, ``X(N*)``, ``lambda/sigma``) have no
stationary point inside the region, so their extremes lie on its boundary.  The boundary is found
along rays from the optimum in the coordinates whitened by the Wald covariance (where the region
is the ball of radius ``t`` for a linear model): a fixed set of directions (a Fibonacci sphere)
plus, for every quantity, the two directions of its gradient (which hit the extremes exactly
when the region is close to an ellipsoid).  Each ray is solved by vectorised bisection on
``RSS(theta) = limit``.  No optimiser is involved and a fit costs a few milliseconds.

Directions along which the region does not close within ``2**10`` times the linear radius make
the corresponding side of an interval unbounded (``None``); so does a region that reaches
``kappa <= 0`` (no peak) for ``N*`` or ``sigma <= 0`` (no ceiling) for ``lambda/sigma``.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

_N_DIRECTIONS = {2: 48, 3: 100}
_EXPANSIONS = 10
_ROOT_STEPS = 10
_REFINE = (0.3, 0.08, 0.02)
_N_REFINE = {2: 6, 3: 16}


@lru_cache(maxsize=8)
def _directions(p: int, k: int) -> np.ndarray:
    """``k`` unit vectors spread evenly over the circle (p = 2) or sphere (p = 3)."""
    if p == 2:
        a = np.linspace(0.0, 2 * np.pi, k, endpoint=False)
        return np.column_stack([np.cos(a), np.sin(a)])
    i = np.arange(k) + 0.5
    z = 1.0 - 2.0 * i / k
    r = np.sqrt(1.0 - z * z)
    phi = np.pi * (3.0 - np.sqrt(5.0)) * i
    return np.column_stack([r * np.cos(phi), r * np.sin(phi), z])


def _derived(th: np.ndarray) -> dict[str, np.ndarray]:
    """N*, X(N*) (the supremum lambda/sigma when there is no peak) and lambda/sigma, rowwise."""
    s, k, lam = th[:, 0], th[:, 1], th[:, 2]
    inf = np.inf
    with np.errstate(all="ignore"):
        has_peak = (k > 0) & (s < 1)
        npk = np.where(has_peak, np.sqrt(np.abs((1.0 - s) / k)), inf)
        ceiling = np.where(s > 0, lam / s, inf)
        xpk = np.where(has_peak, lam * npk / (1.0 + s * (npk - 1.0) + k * npk * (npk - 1.0)), ceiling)
    return {"n_peak": npk, "x_peak": xpk, "x_ceiling": ceiling}


def _rss(th: np.ndarray, n: np.ndarray, x: np.ndarray) -> np.ndarray:
    s, k, lam = th[:, 0:1], th[:, 1:2], th[:, 2:3]
    with np.errstate(all="ignore"):
        d = 1.0 + s * (n - 1.0) + k * n * (n - 1.0)
        pred = lam * n / d
        rss = np.sum((pred - x) ** 2, axis=1)
        bad = ~np.isfinite(rss) | np.any(d <= 0, axis=1) | (th[:, 2] <= 0)
    rss[bad] = np.inf
    return rss


def profile_intervals(n, x, theta, cov, free, rss_min, s2, tq, bounds=None) -> dict:
    """See :func:`_profile_intervals`; floating-point warnings are expected and silenced."""
    with np.errstate(all="ignore"):
        return _profile_intervals(n, x, theta, cov, free, rss_min, s2, tq, bounds)


def _profile_intervals(n, x, theta, cov, free, rss_min, s2, tq, bounds) -> dict:
    """``{"n_peak": (lo, hi), "x_peak": (lo, hi), "x_ceiling": (lo, hi)}``, ``None`` = unbounded.

    ``theta`` is the full (sigma, kappa, lambda) optimum, ``cov`` the Wald covariance of the
    ``free`` coefficients (indices into theta), ``rss_min`` the minimum residual sum of squares,
    ``s2 = rss_min/df``, ``tq = t(0.975, df)``; ``bounds`` (one (lo, hi) per coefficient) cuts
    the region for constrained fits.
    """
    p = len(free)
    limit = rss_min + s2 * tq * tq
    w, v = np.linalg.eigh(np.asarray(cov, dtype=float))
    ell = v * np.sqrt(np.maximum(w, 0.0))  # theta_free = theta_hat + ell @ u
    dirs = [_directions(p, _N_DIRECTIONS[p])]
    # gradient directions of each derived quantity (central differences in whitened space)
    base = np.repeat(theta[None, :], 2 * p, axis=0)
    h = 1e-4
    for j in range(p):
        base[2 * j, free] += h * ell[:, j]
        base[2 * j + 1, free] -= h * ell[:, j]
    vals = _derived(base)
    for q in vals.values():
        with np.errstate(all="ignore"):
            g = (q[0::2] - q[1::2]) / (2 * h)
        if np.all(np.isfinite(g)) and np.linalg.norm(g) > 0:
            g = g / np.linalg.norm(g)
            dirs.append(np.vstack([g, -g]))
    u = np.vstack(dirs)
    pts, unb = _boundary(u, theta, ell, free, n, x, limit, float(tq), bounds)
    # refine around the extreme directions found so far (two passes, shrinking cones)
    for spread in _REFINE:
        centres = []
        for q in _derived(pts[1:]).values():
            q = np.where(np.isnan(q), np.inf, q)
            for idx in (int(np.argmin(q)), int(np.argmax(q))):
                if np.isfinite(q[idx]) and not unb[idx + 1]:
                    centres.append(u[idx])
        if not centres:
            break
        cloud = _directions(p, _N_REFINE[p]) * spread
        new_u = (np.asarray(centres)[:, None, :] + cloud[None, :, :]).reshape(-1, p)
        new_u /= np.linalg.norm(new_u, axis=1, keepdims=True)
        new_pts, new_unb = _boundary(new_u, theta, ell, free, n, x, limit, float(tq), bounds)
        u = np.vstack([u, new_u])
        pts = np.vstack([pts, new_pts[1:]])
        unb = np.concatenate([unb, new_unb[1:]])
    out = {}
    for name, q in _derived(pts).items():
        q = np.where(np.isnan(q), np.inf, q)
        i_lo, i_hi = int(np.argmin(q)), int(np.argmax(q))
        q_lo = None if unb[i_lo] or not np.isfinite(q[i_lo]) else float(q[i_lo])
        q_hi = None if unb[i_hi] or not np.isfinite(q[i_hi]) else float(q[i_hi])
        out[name] = (q_lo, q_hi)
    return out


def _boundary(u, theta, ell, free, n, x, limit, tq, bounds):
    """Points where rays theta + r * ell @ u leave the region (first row: theta itself)."""
    step = np.zeros((u.shape[0], 3))
    step[:, free] = u @ ell.T  # displacement per unit radius, in theta units
    # along a ray the USL's numerator and denominator are linear in r: precompute both parts
    a1 = n - 1.0
    a2 = n * a1
    d0 = 1.0 + theta[0] * a1 + theta[1] * a2
    d1 = np.outer(step[:, 0], a1) + np.outer(step[:, 1], a2)
    num0 = theta[2] * n
    num1 = np.outer(step[:, 2], n)

    def f(r):
        rc = r[:, None]
        den = d0 + rc * d1
        res = (num0 + rc * num1) / den - x
        out = np.einsum("ij,ij->i", res, res) - limit
        out[(den.min(axis=1) <= 0) | (theta[2] + r * step[:, 2] <= 0) | np.isnan(out)] = np.inf
        return out

    lo = np.zeros(u.shape[0])
    f_lo = f(lo)
    hi = np.full(u.shape[0], float(tq))
    f_hi = f(hi)
    for _ in range(_EXPANSIONS):
        inside = f_hi < 0
        if not inside.any():
            break
        lo, f_lo = np.where(inside, hi, lo), np.where(inside, f_hi, f_lo)
        hi = np.where(inside, hi * 2.0, hi)
        f_hi = np.where(inside, f(hi), f_hi)
    unbounded = f_hi < 0
    for it in range(_ROOT_STEPS):
        # RSS is close to quadratic in r: regula falsi in r^2 (exact for a linear model), kept
        # inside the bracket; every third step bisects so the bracket always shrinks
        w = hi - lo
        if it % 3 == 2:
            mid = lo + 0.5 * w
        else:
            r2 = lo**2 - f_lo * (hi**2 - lo**2) / (f_hi - f_lo)
            mid = np.sqrt(np.nan_to_num(r2, nan=0.0, posinf=0.0, neginf=0.0).clip(0.0))
            mid = np.clip(mid, lo + 0.01 * w, hi - 0.01 * w)
        f_mid = f(mid)
        inside = f_mid < 0
        lo, f_lo = np.where(inside, mid, lo), np.where(inside, f_mid, f_lo)
        hi, f_hi = np.where(inside, hi, mid), np.where(inside, f_hi, f_mid)
    r_fin = lo  # the last point known to be inside the region
    r = np.where(unbounded, hi, r_fin)
    if bounds is not None:
        # a constrained region ends where the ray leaves the box; points are put exactly on the
        # bound there (kappa = 0 -> no peak, sigma = 0 -> no ceiling: that side is unbounded)
        b_lo, b_hi = np.array(bounds, dtype=float).T
        to_lo = np.where(step < 0, (b_lo - theta) / step, np.inf)
        to_hi = np.where(step > 0, (b_hi - theta) / step, np.inf)
        r_box = np.maximum(np.min(np.minimum(to_lo, to_hi), axis=1), 0.0)
        unbounded &= r_box > r
        r = np.minimum(r, r_box)
    pts = np.vstack([theta[None, :], theta[None, :] + r[:, None] * step])
    if bounds is not None:
        pts = np.clip(pts, b_lo, b_hi)
    unb = np.concatenate([[False], unbounded])
    return pts, unb
