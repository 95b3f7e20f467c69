"""Universal Scalability Law and Amdahl's law fitted to load-test points.

Model (Gunther, *Guerrilla Capacity Planning*, Springer 2007, ch. 4-6)::

    X(N) = lambda * N / D(N),   D(N) = 1 + sigma * (N - 1) + kappa * N * (N - 1)

``N`` is concurrency (users, clients, threads, pods, mean active sessions), ``X`` throughput in
any rate unit (requests/s, transactions/s, scripts/hour); ``lambda`` has the unit of ``X`` (the
throughput of one), ``sigma`` (contention) and ``kappa`` (coherency) are dimensionless.
Amdahl's law is the special case ``kappa = 0``.

Fitting is unweighted least squares on ``X`` with ``scipy.optimize.least_squares`` (start values
from the linearisation ``N/X = (D(N))/lambda``).  Several rows with the same ``N`` are replicates
and all enter the fit.  Uncertainty:

* coefficients: standard errors from ``s^2 (J^T J)^-1`` with ``s^2 = RSS/(n-3)``, 95 % intervals
  ``coef +/- t(0.975, n-3) * se`` (the R package ``usl`` uses ``qt(0.95, n-1)``, too narrow);
* derived quantities (peak concurrency ``N* = sqrt((1-sigma)/kappa)``, peak throughput ``X(N*)``,
  Amdahl ceiling ``lambda/sigma``): profile-likelihood intervals (Bates & Watts 1988, ch. 6),
  i.e. the range of the quantity over the likelihood region
  ``{theta: RSS(theta) <= RSS_min + s^2 t(0.975, n-3)^2}``, see :mod:`capplan.models._usl_profile`;
* ``X(N)``: delta-method prediction intervals (a new measurement at ``N``) or confidence bands.

Policy on bounds (``bounds_policy``):

* ``"report"`` (default): unconstrained fit.  A negative ``sigma`` (superlinear growth, usually a
  warm-up/caching artefact or a low N=1 point) or a negative ``kappa`` (no coherency penalty seen;
  no peak) is kept as fitted and reported in ``warnings``; quantities that do not exist for those
  values (``x_ceiling`` for ``sigma <= 0``, ``n_peak``/``x_peak`` for ``kappa <= 0``) are ``None``.
* ``"clamp"``: ``sigma, kappa`` constrained to ``[0, 1]`` and ``lambda >= 0`` (the R ``usl``
  package's ``nlxb`` bounds); a coefficient resting on a bound is named in ``warnings``.
* ``"raise"``: unconstrained; a negative ``sigma`` or ``kappa`` raises :class:`FitError`.

The log-coherency USL and the Amdahl latency form of the literature are in
:mod:`capplan.models.usl_variants`; queueing (instances for a target load) in
:mod:`capplan.models.queueing`.

Raises :class:`capplan.errors.InsufficientData` below ``MIN_POINTS`` rows or ``MIN_LEVELS``
distinct concurrency levels, :class:`capplan.errors.FitError` on invalid values or no convergence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy import optimize, special  # special, not stats: a much lighter import

from capplan.errors import FitError, InsufficientData
from capplan.models._usl_json import PARAMS as _PARAMS
from capplan.models._usl_json import SCHEMA_VERSION, fit_from_dict, fit_to_dict
from capplan.models._usl_profile import profile_intervals

__all__ = ["UslFit", "fit_usl", "fit_amdahl", "MIN_POINTS", "MIN_LEVELS", "SCHEMA_VERSION",
           "BOUNDS_POLICIES"]

MIN_POINTS = 6
MIN_LEVELS = 4
BOUNDS_POLICIES = ("report", "clamp", "raise")
EXTRAPOLATION_FACTOR = 2.0
#: largest concurrency and throughput accepted: beyond these the fit's sums of squares and its
#: covariance overflow double precision (X ~ 1e300 gave a LinAlgError, issue 10).
MAX_CONCURRENCY = 1e9
MAX_THROUGHPUT = 1e100


def _denom(n, sigma, kappa):
    return 1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0)


def _jacobian(n, sigma, kappa, lam):
    d = _denom(n, sigma, kappa)
    return np.column_stack([-lam * n * (n - 1.0) / d**2, -lam * n * n * (n - 1.0) / d**2, n / d])


@dataclass(frozen=True, eq=False)
class UslFit:
    """A fitted USL (or Amdahl, ``model == "amdahl"``, ``kappa == 0``) model.  Immutable.

    Throughput values are in the unit of the input ``x``; latencies from Little's law are in
    seconds when ``x`` is per second (generally: 1 / the time unit of ``x``).
    """

    sigma: float
    kappa: float
    lam: float
    stderr: dict
    ci95: dict
    df: int
    rse: float
    n_points: int
    n_levels: int
    n_max_tested: float
    n_peak: float | None
    n_peak_ci95: tuple
    x_peak: float | None
    x_peak_ci95: tuple
    x_ceiling: float | None
    x_ceiling_ci95: tuple
    r_squared: float
    warnings: tuple
    model: str = "usl"
    bounds_policy: str = "report"
    cov: tuple = field(default=(), repr=False)
    n_data: tuple = field(default=(), repr=False)
    x_data: tuple = field(default=(), repr=False)

    # -- throughput --------------------------------------------------------------------------
    def throughput_at(self, n):
        """Model throughput ``X(N) = lambda N / D(N)``; scalar in, scalar out (arrays too)."""
        n_arr = np.asarray(n, dtype=float)
        out = self.lam * n_arr / _denom(n_arr, self.sigma, self.kappa)
        return float(out) if out.ndim == 0 else out

    def _cov(self) -> np.ndarray:
        c = np.asarray(self.cov, dtype=float)
        if self.model == "amdahl":  # stored 2x2 for (sigma, lambda): embed with kappa fixed
            full = np.zeros((3, 3))
            full[np.ix_([0, 2], [0, 2])] = c
            return full
        return c

    def predict(self, ns, *, interval: str = "prediction", level: float = 0.95) -> pd.DataFrame:
        """``X(N)`` with a ``level`` interval for each ``N`` in ``ns``.

        ``interval="prediction"`` (default) bounds a new measurement at ``N``
        (``t * sqrt(g' C g + s^2)``, delta method); ``"confidence"`` bounds the mean curve
        (``t * sqrt(g' C g)``).  Lower bounds are clipped at 0.  ``extrapolated`` is true for
        ``N > 2 x`` the largest tested concurrency.  Columns: n, x, x_lo95, x_hi95, extrapolated
        (the ``95`` names are kept whatever ``level`` is).
        """
        if interval not in ("prediction", "confidence"):
            raise FitError(f"unknown interval {interval!r}",
                           hint="use interval='prediction' or interval='confidence'")
        if not self.cov:
            raise FitError("predict(): this fit has no covariance matrix (loaded from a "
                           "document without 'cov', written by an older capplan)",
                           hint="refit with fit_usl()/fit_amdahl(), or re-export with this capplan")
        n_arr = np.atleast_1d(np.asarray(ns, dtype=float))
        if np.any(~np.isfinite(n_arr)) or np.any(n_arr <= 0):
            raise FitError(f"predict(): concurrency values must be positive and finite, got {ns!r}")
        with np.errstate(all="ignore"):  # far extrapolations overflow to inf/NaN: reported
            x = np.atleast_1d(self.throughput_at(n_arr))
            g = _jacobian(n_arr, self.sigma, self.kappa, self.lam)
            var = np.einsum("ij,jk,ik->i", g, self._cov(), g)
        if interval == "prediction":
            var = var + self.rse**2
        t = special.stdtrit(self.df, 0.5 + level / 2.0)  # Student t quantile
        half = t * np.sqrt(np.maximum(var, 0.0))
        return pd.DataFrame({
            "n": n_arr, "x": x, "x_lo95": np.maximum(x - half, 0.0), "x_hi95": x + half,
            "extrapolated": n_arr > EXTRAPOLATION_FACTOR * self.n_max_tested,
        })

    def efficiency(self, n):
        """Model efficiency ``X(N) / (lambda N) = 1 / D(N)`` (1 = linear scaling)."""
        n_arr = np.asarray(n, dtype=float)
        out = 1.0 / _denom(n_arr, self.sigma, self.kappa)
        return float(out) if out.ndim == 0 else out

    def measured_efficiency(self) -> pd.DataFrame:
        """Observed efficiency ``x / (lambda N)`` per input row (what R ``usl`` calls efficiency)."""
        n = np.asarray(self.n_data)
        x = np.asarray(self.x_data)
        return pd.DataFrame({"n": n, "x": x, "efficiency": x / (self.lam * n)})

    @property
    def residuals(self) -> np.ndarray:
        """Measured minus fitted throughput, in input row order."""
        n = np.asarray(self.n_data)
        return np.asarray(self.x_data) - self.lam * n / _denom(n, self.sigma, self.kappa)

    @property
    def fitted(self) -> np.ndarray:
        return np.asarray(self.x_data) - self.residuals

    # -- latency through Little's law ----------------------------------------------------------
    def latency_at(self, n, *, think_time_s: float = 0.0):
        """Response time ``R(N) = N / X(N) - Z = D(N)/lambda - Z`` (Little's law, closed system
        with think time ``Z``); seconds when ``X`` is per second."""
        n_arr = np.asarray(n, dtype=float)
        out = _denom(n_arr, self.sigma, self.kappa) / self.lam - think_time_s
        return float(out) if out.ndim == 0 else out

    def concurrency_at_latency(self, r_target: float, *, think_time_s: float = 0.0):
        """The concurrency ``N`` at which ``R(N) = r_target``, or ``None`` when unreachable.

        Solves ``kappa N^2 + (sigma - kappa) N + 1 - sigma - lambda (R + Z) = 0`` and returns the
        smallest positive root.  ``R(N)`` rises monotonically with ``N`` when ``sigma, kappa >= 0``,
        so the answer is unique; ``None`` when ``r_target`` is below the latency of the lightest
        load (``(1 - sigma)/lambda`` at ``N -> 0``) or never reached.
        """
        c0 = 1.0 - self.sigma - self.lam * (r_target + think_time_s)
        roots = _quadratic_roots(self.kappa, self.sigma - self.kappa, c0)
        pos = [r for r in roots if r > 0]
        return min(pos) if pos else None

    def throughput_at_latency(self, r_target: float, *, think_time_s: float = 0.0):
        """Throughput at the concurrency where ``R(N) = r_target`` (``None`` when unreachable).

        Single-valued: ``R`` is monotone in ``N``.  The inverse, ``R(X)``, is two-valued when
        ``kappa > 0`` (every ``X < X(N*)`` is reached once below and once above ``N*``): this
        returns the throughput of the efficient branch, where ``R`` reaches the target first.
        """
        n = self.concurrency_at_latency(r_target, think_time_s=think_time_s)
        return None if n is None else self.throughput_at(n)

    def latency_at_throughput(self, x_target: float, *, branch: str = "lower"):
        """``R = N/X`` at throughput ``x_target``; ``None`` when ``x_target`` exceeds the peak.

        ``branch="lower"`` (default) is the efficient side ``N <= N*``; ``"upper"`` the retrograde
        side ``N > N*`` (same throughput, more concurrency, higher latency; exists when
        ``kappa > 0``).  Solves ``x kappa N^2 + (x sigma - x kappa - lambda) N + x (1-sigma) = 0``.
        """
        if branch not in ("lower", "upper"):
            raise FitError(f"unknown branch {branch!r}", hint="use branch='lower' or 'upper'")
        x = float(x_target)
        roots = [r for r in _quadratic_roots(x * self.kappa, x * (self.sigma - self.kappa) - self.lam,
                                             x * (1.0 - self.sigma)) if r > 0]
        if not roots:
            return None
        if branch == "upper":
            return max(roots) / x if len(roots) == 2 else None
        return min(roots) / x

    # -- serialisation -------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """The JSON object of ``capplan usl --json`` (contract keys first, then extras incl.
        ``schema_version`` and ``cov``, ``n_data``, ``x_data`` for :meth:`from_dict`)."""
        return fit_to_dict(self)

    @classmethod
    def from_dict(cls, d) -> UslFit:
        """Rebuild the fit that wrote ``d`` (``to_dict()`` output, or ``capplan usl --json``).

        The reloaded fit gives the same numbers (floats round-trip exactly through JSON).
        Version policy: ``schema_version`` above :data:`SCHEMA_VERSION` is refused; every version
        from 1 up is read; a version-1 document from an older capplan without ``cov``/``n_data``/
        ``x_data`` loads, but ``predict()`` then raises and residuals are empty; unknown keys are
        ignored (details in :mod:`capplan.models._usl_json`).  Raises FitError (newer or missing
        schema_version, missing key, value of the wrong type or shape; the message names the key).
        """
        return fit_from_dict(cls, d, bounds_policies=BOUNDS_POLICIES)


def _quadratic_roots(a: float, b: float, c: float) -> list[float]:
    """Real roots of ``a t^2 + b t + c`` (numerically stable; linear when ``a`` is ~0)."""
    if a == 0:
        return [] if b == 0 else [-c / b]
    disc = b * b - 4 * a * c
    if disc < 0:
        return []
    q = -0.5 * (b + math.copysign(math.sqrt(disc), b))
    roots = [q / a] + ([c / q] if q != 0 else [])
    return sorted(roots)


# -- fitting ---------------------------------------------------------------------------------------

def validate_points(n, x) -> tuple[np.ndarray, np.ndarray]:
    """``(n, x)`` as flat float arrays, checked: same length, ``0 < n <= MAX_CONCURRENCY`` and
    ``0 <= x <= MAX_THROUGHPUT``, all finite.  Shared by the fits here and in
    :mod:`capplan.models.usl_variants`.  Raises FitError naming the first bad index."""
    try:
        n_arr = np.asarray(n, dtype=float).ravel()
        x_arr = np.asarray(x, dtype=float).ravel()
    except (TypeError, ValueError, OverflowError) as exc:
        raise FitError(f"load points must be numbers ({type(exc).__name__})",
                       hint="pass sequences of concurrency and throughput values") from None
    if n_arr.shape != x_arr.shape:
        raise FitError(f"n has {n_arr.size} values but x has {x_arr.size}",
                       hint="pass one throughput per concurrency value")
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(~np.isfinite(n_arr) | (n_arr <= 0) | (n_arr > MAX_CONCURRENCY))
    if bad.size:
        i = int(bad[0])
        raise FitError(f"concurrency n[{i}] = {float(n_arr[i]):g} is not a positive finite number up "
                       f"to {MAX_CONCURRENCY:g} ({bad.size} such value(s))",
                       hint="drop rows without a measured load")
    with np.errstate(invalid="ignore"):
        bad = np.flatnonzero(~np.isfinite(x_arr) | (x_arr < 0) | (x_arr > MAX_THROUGHPUT))
    if bad.size:
        i = int(bad[0])
        raise FitError(f"throughput x[{i}] = {float(x_arr[i]):g} is not a finite number from 0 to "
                       f"{MAX_THROUGHPUT:g} ({bad.size} such value(s))",
                       hint="drop failed or unfinished runs, or rescale the unit")
    return n_arr, x_arr


def check_size(n_arr: np.ndarray, what: str) -> int:
    """The number of distinct levels in ``n_arr``; InsufficientData below :data:`MIN_POINTS`
    points or :data:`MIN_LEVELS` levels (``what`` names the fit in the message)."""
    if n_arr.size < MIN_POINTS:
        raise InsufficientData(f"{what} needs at least {MIN_POINTS} load points",
                               needed=MIN_POINTS, have=n_arr.size, unit="points",
                               hint="measure more concurrency levels (e.g. 1, 2, 4, ... up to "
                                    "past the expected peak)")
    levels = np.unique(n_arr).size
    if levels < MIN_LEVELS:
        raise InsufficientData(f"{what} needs distinct concurrency levels, replicates do not count",
                               needed=MIN_LEVELS, have=levels, unit="concurrency levels",
                               hint="measure more distinct concurrency levels")
    return levels


def _start(n, x) -> np.ndarray:
    """Start values from the linear model N/X = a + b (N-1) + c N (N-1) (a=1/lambda)."""
    ok = x > 0
    try:
        a_mat = np.column_stack([np.ones(ok.sum()), n[ok] - 1.0, n[ok] * (n[ok] - 1.0)])
        a, b, c = np.linalg.lstsq(a_mat, n[ok] / x[ok], rcond=None)[0]
        if a > 0 and np.isfinite([a, b, c]).all():
            return np.array([b / a, c / a, 1.0 / a])
    except np.linalg.LinAlgError:
        pass
    return np.array([0.01, 1e-4, float(np.max(x / n))])


def _solve(n, x, free: list[int], policy: str) -> np.ndarray:
    """Least squares on X/xs over the free parameters (indices into sigma, kappa, lambda)."""
    xs = float(np.max(x)) or 1.0
    xn = x / xs
    theta0 = _start(n, x)
    if policy == "clamp":
        theta0 = np.clip(theta0, [1e-6, 1e-9, 1e-12], [0.999, 0.999, np.inf])
    theta0[2] /= xs
    if len(free) == 2:
        theta0[1] = 0.0

    def full(p):
        th = theta0.copy()
        th[free] = p
        return th

    def resid(p):
        s, k, lam = full(p)
        return lam * n / _denom(n, s, k) - xn

    def jac(p):
        s, k, lam = full(p)
        return _jacobian(n, s, k, lam)[:, free]

    kwargs = dict(jac=jac, x_scale="jac", ftol=1e-14, xtol=1e-14, gtol=1e-14, max_nfev=2000)
    if policy == "clamp":
        lo = np.array([0.0, 0.0, 0.0])[free]
        hi = np.array([1.0, 1.0, np.inf])[free]
        kwargs.update(method="trf", bounds=(lo, hi))
    else:
        kwargs.update(method="lm")
    try:
        with np.errstate(all="ignore"):
            res = optimize.least_squares(resid, theta0[free], **kwargs)
    except (ValueError, np.linalg.LinAlgError) as exc:
        raise FitError(f"least squares failed: {exc}",
                       hint="check that throughput rises with concurrency at low load") from exc
    if res.status <= 0 or not np.all(np.isfinite(res.x)):
        raise FitError(f"least squares did not converge: {res.message}",
                       hint="check the data for outliers or a regime change; try "
                            "bounds_policy='clamp'")
    th = full(res.x)
    th[2] *= xs
    return th


def fit_usl(n, x, *, bounds_policy: str = "report", intervals: bool = True) -> UslFit:
    """Fit the 3-coefficient USL to load points ``(n[i], x[i])`` (replicates allowed).

    ``bounds_policy``: ``"report"`` (default), ``"clamp"`` or ``"raise"`` (see module docstring).
    ``intervals=False`` skips the profile-likelihood intervals of derived quantities (they are
    then ``(None, None)``).  Raises InsufficientData (< 6 points or < 4 levels), FitError.
    """
    return _fit(n, x, bounds_policy=bounds_policy, intervals=intervals, amdahl=False)


def fit_amdahl(n, x, *, bounds_policy: str = "report", intervals: bool = True) -> UslFit:
    """Fit Amdahl's law ``X(N) = lambda N / (1 + sigma (N-1))`` (USL with ``kappa = 0``).

    Two coefficients, ``df = n - 2``; ``kappa`` is reported as 0 with standard error 0.  There is
    no peak (``n_peak`` is ``None``); ``x_ceiling = lambda/sigma`` is the asymptote.  Same size
    rules and bounds policies as :func:`fit_usl`.
    """
    return _fit(n, x, bounds_policy=bounds_policy, intervals=intervals, amdahl=True)


def _fit(n, x, *, bounds_policy: str, intervals: bool, amdahl: bool) -> UslFit:
    if bounds_policy not in BOUNDS_POLICIES:
        raise FitError(f"unknown bounds_policy {bounds_policy!r}",
                       hint=f"use one of {', '.join(BOUNDS_POLICIES)}")
    what = "an Amdahl fit" if amdahl else "a USL fit"
    n_arr, x_arr = validate_points(n, x)
    levels = check_size(n_arr, what)
    free = [0, 2] if amdahl else [0, 1, 2]
    theta = _solve(n_arr, x_arr, free, bounds_policy)
    nmax = float(n_arr.max())
    # numerically zero coefficients (an exactly linear data set, a clamped bound) become 0
    theta[0] = 0.0 if abs(theta[0]) * nmax < 1e-12 else theta[0]
    theta[1] = 0.0 if abs(theta[1]) * nmax * nmax < 1e-12 else theta[1]
    sigma, kappa, lam = (float(v) for v in theta)
    if not lam > 0:
        raise FitError(f"{what} gave lambda = {lam:g} <= 0 (throughput of one)",
                       hint="the data do not look like a scalability curve")

    warnings: list[str] = []
    if bounds_policy == "raise" and (sigma < 0 or kappa < 0):
        raise FitError(f"{what} gave sigma = {sigma:.4g}, kappa = {kappa:.4g}: a negative "
                       "coefficient means superlinear or suspect data",
                       hint="inspect the low-load points, or use bounds_policy='report' or 'clamp'")
    if sigma < 0:
        warnings.append(f"sigma = {sigma:.4g} < 0: superlinear scaling at low load (often a "
                        "warm-up or caching artefact, or a low N=1 point); treat the fit as suspect;"
                        " there is no Amdahl ceiling")
    if kappa < 0:
        warnings.append(f"kappa = {kappa:.4g} < 0: no coherency penalty detected and no peak; the "
                        "data may not reach saturation or may be suspect; consider fit_amdahl")
    if bounds_policy == "clamp":
        for name, v in (("sigma", sigma), ("kappa", kappa)):
            if name == "kappa" and amdahl:
                continue
            if v == 0.0 or v >= 1 - 1e-12:
                warnings.append(f"{name} rests on its bound ({v:.3g}; bounds_policy='clamp'): the "
                                "unconstrained optimum lies outside [0, 1]")

    j = _jacobian(n_arr, sigma, kappa, lam)[:, free]
    resid = x_arr - lam * n_arr / _denom(n_arr, sigma, kappa)
    rss = float(resid @ resid)
    df = n_arr.size - len(free)
    s2 = rss / df
    try:
        with np.errstate(all="ignore"):
            cov = np.linalg.inv(j.T @ j) * s2
    except np.linalg.LinAlgError as exc:
        raise FitError(f"{what}: the coefficients are not identifiable from these points",
                       hint="measure more distinct concurrency levels") from exc
    if not (np.all(np.isfinite(cov)) and math.isfinite(s2)):
        raise FitError(f"{what}: the coefficients' covariance is not finite (degenerate or "
                       "badly scaled points)",
                       hint="check the points for outliers and measure more distinct levels")
    se_free = np.sqrt(np.maximum(np.diag(cov), 0.0))
    se = dict(zip(_PARAMS, [0.0, 0.0, 0.0]))
    for i, k in zip(free, se_free):
        se[_PARAMS[i]] = float(k)
    tq = float(special.stdtrit(df, 0.975))
    est = dict(zip(_PARAMS, (sigma, kappa, lam)))
    ci = {k: (est[k] - tq * se[k], est[k] + tq * se[k]) for k in _PARAMS}
    if bounds_policy == "clamp":  # a constrained coefficient's interval stays inside its bounds
        ci = {k: (max(lo, 0.0), min(hi, 1.0) if k != "lambda" else hi) for k, (lo, hi) in ci.items()}
    tss = float(np.sum((x_arr - x_arr.mean()) ** 2))
    r2 = 1.0 - rss / tss if tss > 0 else float("nan")

    n_peak = math.sqrt((1.0 - sigma) / kappa) if kappa > 0 and sigma < 1 else None
    x_peak = lam * n_peak / _denom(n_peak, sigma, kappa) if n_peak is not None else None
    x_ceiling = lam / sigma if sigma > 0 else None
    if intervals:
        bounds = ((0.0, 1.0), (0.0, 1.0), (0.0, np.inf)) if bounds_policy == "clamp" else None
        try:
            prof = profile_intervals(n_arr, x_arr, np.array([sigma, kappa, lam]), cov, free,
                                     rss, s2, tq, bounds)
        except np.linalg.LinAlgError:  # a covariance too ill-conditioned to whiten
            prof = {k: (None, None) for k in ("n_peak", "x_peak", "x_ceiling")}
            warnings.append("the covariance is too ill-conditioned for profile intervals: the "
                            "intervals of N*, X(N*) and lambda/sigma are not reported")
    else:
        prof = {k: (None, None) for k in ("n_peak", "x_peak", "x_ceiling")}
    if amdahl:
        prof["n_peak"] = prof["x_peak"] = (None, None)

    if sigma == 0.0 and kappa == 0.0:
        warnings.append(f"linear scaling up to N = {nmax:g}: no contention or coherency measured; "
                        "test higher concurrency to find the limits")
    if n_peak is not None and n_peak > EXTRAPOLATION_FACTOR * nmax:
        warnings.append(f"N* = {n_peak:.4g} is beyond {EXTRAPOLATION_FACTOR:g}x the largest tested "
                        f"concurrency ({nmax:g}): the peak is an extrapolation")
    if float(n_arr.min()) > 1:
        warnings.append(f"no point at N = 1 (lowest tested N = {float(n_arr.min()):g}): lambda, the "
                        "throughput of one, is an extrapolation")
    warnings.extend(_residual_warnings(n_arr, x_arr, resid, s2, len(free)))

    return UslFit(
        sigma=sigma, kappa=kappa, lam=lam, stderr=se, ci95=ci, df=df, rse=math.sqrt(s2),
        n_points=int(n_arr.size), n_levels=levels, n_max_tested=nmax, n_peak=n_peak,
        n_peak_ci95=prof["n_peak"], x_peak=x_peak, x_peak_ci95=prof["x_peak"],
        x_ceiling=x_ceiling, x_ceiling_ci95=prof["x_ceiling"], r_squared=r2,
        warnings=tuple(warnings), model="amdahl" if amdahl else "usl",
        bounds_policy=bounds_policy, cov=tuple(map(tuple, cov)),
        n_data=tuple(n_arr.tolist()), x_data=tuple(x_arr.tolist()),
    )


def _residual_warnings(n, x, resid, s2, n_params) -> list[str]:
    """Residual diagnostics: outliers, systematic sign runs, lack of fit against replicates."""
    out = []
    if s2 <= 0:
        return out
    z = resid / math.sqrt(s2)
    worst = int(np.argmax(np.abs(z)))
    if abs(z[worst]) > 3:
        out.append(f"outlier: the point N = {n[worst]:g}, X = {x[worst]:g} lies {z[worst]:+.1f} "
                   "residual standard errors from the curve")
    levels, inv = np.unique(n, return_inverse=True)
    mean_res = np.bincount(inv, weights=resid) / np.bincount(inv)
    signs = np.sign(mean_res[mean_res != 0])
    n_pos, n_neg = int((signs > 0).sum()), int((signs < 0).sum())
    if n_pos and n_neg and signs.size >= 8:
        runs = 1 + int(np.sum(signs[1:] != signs[:-1]))
        mu = 1 + 2 * n_pos * n_neg / signs.size
        var = 2 * n_pos * n_neg * (2 * n_pos * n_neg - signs.size) / (signs.size**2 * (signs.size - 1))
        if var > 0 and (runs - mu) / math.sqrt(var) < -1.96:
            out.append(f"residuals change sign only {runs} times over {signs.size} levels (runs "
                       "test p < 0.05): the curve misses a systematic pattern (regime change, "
                       "saturation plateau or a warm-up effect)")
    pure_df = n.size - levels.size
    lof_df = levels.size - n_params
    if pure_df >= 1 and lof_df >= 1:
        pure = float(np.sum((x - (np.bincount(inv, weights=x) / np.bincount(inv))[inv]) ** 2))
        lof = float(resid @ resid) - pure
        if pure > 0:
            p = float(special.fdtrc(lof_df, pure_df, (lof / lof_df) / (pure / pure_df)))  # F survival
            if p < 0.05:
                out.append(f"lack of fit against the replicates (F test p = {p:.3g}): the USL "
                           "shape does not describe these levels well")
    return out
