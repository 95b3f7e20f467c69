"""Variants of the USL used in the literature, for comparison with published fits.

* :func:`fit_usl_log`: the logarithmic-coherency USL of Schwartz's e-book ("Practical Scalability
  Analysis with the Universal Scalability Law", VividCortex 2015)::

      X(N) = lambda N / (1 + sigma (N - 1) + kappa ln(N) (N - 1))

  which models coherency that grows like ``N log N`` (tree-structured or hierarchical exchange).
* :func:`fit_amdahl_latency`: Amdahl's law written as response time against throughput
  (same e-book, through Little's law with ``kappa = 0``)::

      R(X) = (1 - sigma) / (lambda - sigma X)       (seconds when X is per second)

Both are unweighted least squares with ``scipy.optimize.least_squares`` on internally rescaled
data (the latency form is badly scaled in raw units: R ~ 1e-3 s, X ~ 1e5/s); standard errors
from ``s^2 (J^T J)^-1`` and 95 % intervals with ``t(0.975, n - p)``.  No bounds: a negative
coefficient is kept and named in ``warnings`` (the policy of :mod:`capplan.models.usl`).
The main model for capacity work stays :func:`capplan.models.usl.fit_usl`.

Raises :class:`InsufficientData` below 6 points, :class:`FitError` on invalid values or no
convergence.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import optimize, stats

from capplan.errors import FitError
from capplan.models.usl import check_size, validate_points

__all__ = ["VariantFit", "fit_usl_log", "fit_amdahl_latency"]


@dataclass(frozen=True)
class VariantFit:
    """Coefficients of a USL variant with their uncertainty (``form`` names the formula)."""

    form: str
    coef: dict
    stderr: dict
    ci95: dict
    df: int
    rse: float
    n_points: int
    warnings: tuple = ()

    def predict(self, v):
        """``X(N)`` for ``form == "usl-log"``; ``R(X)`` for ``form == "amdahl-latency"``."""
        v = np.asarray(v, dtype=float)
        c = self.coef
        if self.form == "usl-log":
            out = c["lambda"] * v / (1 + c["sigma"] * (v - 1) + c["kappa"] * np.log(v) * (v - 1))
        else:
            out = (1 - c["sigma"]) / (c["lambda"] - c["sigma"] * v)
        return float(out) if out.ndim == 0 else out

    def to_dict(self) -> dict:
        return {"form": self.form, **self.coef, "stderr": dict(self.stderr),
                "ci95": {k: list(v) for k, v in self.ci95.items()}, "df": self.df,
                "rse": self.rse, "n_points": self.n_points, "warnings": list(self.warnings)}


def _least_squares(resid, jac, p0, names, what) -> tuple[np.ndarray, np.ndarray, float, int]:
    try:
        with np.errstate(all="ignore"):
            res = optimize.least_squares(resid, p0, jac=jac, method="lm", x_scale="jac",
                                         ftol=1e-15, xtol=1e-15, gtol=1e-15, max_nfev=5000)
    except (ValueError, np.linalg.LinAlgError) as exc:
        raise FitError(f"{what}: least squares failed: {exc}") from exc
    if res.status <= 0 or not np.all(np.isfinite(res.x)):
        raise FitError(f"{what}: least squares did not converge: {res.message}")
    return res.x, res.jac, float(2 * res.cost), res.fun.size - len(names)


def _package(form, names, values, jac, rss, df, n_points, scales, y_scale) -> VariantFit:
    """Coefficients back in input units with standard errors and t intervals (``rss`` and
    ``jac`` in the scaled units of the fit; ``y_scale`` converts residuals back)."""
    try:
        cov = np.linalg.inv(jac.T @ jac) * (rss / df)
    except np.linalg.LinAlgError as exc:
        raise FitError(f"{form}: coefficients not identifiable from these points") from exc
    se = np.sqrt(np.maximum(np.diag(cov), 0.0)) * scales
    vals = values * scales
    tq = float(stats.t.ppf(0.975, df))
    coef = {k: float(v) for k, v in zip(names, vals)}
    warnings = tuple(f"{k} = {v:.4g} < 0: superlinear or suspect data" for k, v in coef.items()
                     if k in ("sigma", "kappa") and v < 0)
    return VariantFit(form, coef, {k: float(s) for k, s in zip(names, se)},
                      {k: (float(v - tq * s), float(v + tq * s)) for k, v, s in zip(names, vals, se)},
                      df, math.sqrt(rss / df) * y_scale, n_points, warnings)


def fit_usl_log(n, x) -> VariantFit:
    """Fit ``X(N) = lambda N / (1 + sigma (N-1) + kappa ln(N) (N-1))`` (coefficients sigma,
    kappa, lambda; lambda in the unit of ``x``)."""
    n_arr, x_arr = validate_points(n, x)
    check_size(n_arr, "a log-USL fit")
    xs = float(x_arr.max()) or 1.0
    a1, a2 = n_arr - 1.0, np.log(n_arr) * (n_arr - 1.0)

    def resid(p):
        return p[2] * n_arr / (1 + p[0] * a1 + p[1] * a2) - x_arr / xs

    def jac(p):
        d = 1 + p[0] * a1 + p[1] * a2
        return np.column_stack([-p[2] * n_arr * a1 / d**2, -p[2] * n_arr * a2 / d**2, n_arr / d])

    p0 = np.array([0.01, 0.001, float(np.max(x_arr / n_arr)) / xs])
    p, j, rss, df = _least_squares(resid, jac, p0, ("sigma", "kappa", "lambda"), "log-USL fit")
    return _package("usl-log", ("sigma", "kappa", "lambda"), p, j, rss, df, n_arr.size,
                    np.array([1.0, 1.0, xs]), xs)


def fit_amdahl_latency(x, r) -> VariantFit:
    """Fit ``R(X) = (1 - sigma)/(lambda - sigma X)`` to response times ``r`` at throughputs ``x``
    (lambda in the unit of ``x``; ``r`` in 1/unit of ``x``, e.g. seconds for per-second rates)."""
    x_arr, r_arr = validate_points(x, r)
    check_size(x_arr, "an Amdahl latency fit")
    xs, rs = float(x_arr.max()), float(r_arr.mean()) or 1.0
    u, v = x_arr / xs, r_arr / rs
    # in scaled units: R/rs = (1 - sigma) / (rs xs (l' - sigma u)) with lambda = xs l'

    def resid(p):
        return (1 - p[0]) / (rs * xs * (p[1] - p[0] * u)) - v

    def jac(p):
        d = p[1] - p[0] * u
        k = rs * xs
        return np.column_stack([(-d + (1 - p[0]) * u) / (k * d**2), -(1 - p[0]) / (k * d**2)])

    lam0 = 1.0 / float(r_arr.min()) / xs
    p, j, rss, df = _least_squares(resid, jac, np.array([0.0, lam0]), ("sigma", "lambda"),
                                   "Amdahl latency fit")
    return _package("amdahl-latency", ("sigma", "lambda"), p, j, rss, df, x_arr.size,
                    np.array([1.0, xs]), rs)
