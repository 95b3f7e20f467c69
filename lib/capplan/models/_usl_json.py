"""JSON form of :class:`capplan.models.usl.UslFit` (private helper of usl.py).

Layout (``schema_version`` 1): the ``capplan usl --json`` contract keys first (``sigma, kappa,
lambda, stderr, ci95, n_peak, n_peak_ci95, x_peak, x_peak_ci95, x_ceiling, n_points, rse, df,
warnings``), then ``schema_version, model, bounds_policy, x_ceiling_ci95, n_levels,
n_max_tested, r_squared`` and the reload keys ``cov`` (covariance of the free coefficients as
nested lists: 3x3 over sigma, kappa, lambda for ``model == "usl"``, 2x2 over sigma, lambda for
``"amdahl"``), ``n_data`` and ``x_data`` (the fitted points in input order).  Non-finite numbers
are written as ``null`` so the text is strict JSON; on reading, ``null`` becomes ``None`` where the
field may be ``None`` (``n_peak``, ``x_peak``, ``x_ceiling``, interval ends) and NaN elsewhere
(``r_squared`` of a flat data set).  Floats are written with ``repr`` precision, so a reload is
bit-identical.

Reading policy (:func:`fit_from_dict`):

* a ``schema_version`` above :data:`SCHEMA_VERSION` is refused (:class:`FitError`, hint: upgrade
  capplan); a missing, non-integer or < 1 version is refused as "not a serialized UslFit";
* every version from 1 up to :data:`SCHEMA_VERSION` is read.  The reload keys ``cov``, ``n_data``
  and ``x_data`` were added to version 1 without a bump (additive; no reader existed), so a version
  1 document written by an older capplan may lack them: it still loads, with ``cov = ()`` and empty
  data, so coefficients, derived values and the throughput, latency and efficiency forms work,
  ``predict()`` raises :class:`FitError` and ``residuals``/``measured_efficiency()`` are empty;
* unknown keys are ignored (``capplan usl --json`` adds ``predictions``); a missing required key or
  a value of the wrong type or shape raises :class:`FitError` naming the key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from capplan.errors import FitError

SCHEMA_VERSION = 1
PARAMS = ("sigma", "kappa", "lambda")
MODELS = ("usl", "amdahl")
_REQUIRED = ("sigma", "kappa", "lambda", "stderr", "ci95", "n_peak", "n_peak_ci95", "x_peak",
             "x_peak_ci95", "x_ceiling", "n_points", "rse", "df", "warnings", "model",
             "bounds_policy", "x_ceiling_ci95", "n_levels", "n_max_tested", "r_squared")
_HINT = "pass the object parsed from UslFit.to_dict() or `capplan usl --json`, or refit"


def num(v):
    """A JSON-safe float: ``None`` for missing or non-finite values."""
    if v is None:
        return None
    v = float(v)
    return v if math.isfinite(v) else None


def fit_to_dict(fit) -> dict:
    """The JSON object of ``capplan usl --json`` (contract keys first, then extras)."""
    pair = lambda p: [num(p[0]), num(p[1])] if p else [None, None]  # noqa: E731
    return {
        "sigma": num(fit.sigma), "kappa": num(fit.kappa), "lambda": num(fit.lam),
        "stderr": {k: num(fit.stderr[k]) for k in PARAMS},
        "ci95": {k: pair(fit.ci95[k]) for k in PARAMS},
        "n_peak": num(fit.n_peak), "n_peak_ci95": pair(fit.n_peak_ci95),
        "x_peak": num(fit.x_peak), "x_peak_ci95": pair(fit.x_peak_ci95),
        "x_ceiling": num(fit.x_ceiling), "n_points": int(fit.n_points),
        "rse": num(fit.rse), "df": int(fit.df), "warnings": list(fit.warnings),
        "schema_version": SCHEMA_VERSION, "model": fit.model,
        "bounds_policy": fit.bounds_policy, "x_ceiling_ci95": pair(fit.x_ceiling_ci95),
        "n_levels": int(fit.n_levels), "n_max_tested": num(fit.n_max_tested),
        "r_squared": num(fit.r_squared),
        "cov": [[num(v) for v in row] for row in fit.cov],
        "n_data": [float(v) for v in fit.n_data], "x_data": [float(v) for v in fit.x_data],
    }


def _bad(key: str, why: str, value) -> FitError:
    # the kind of value, never the value: the document may come from any file
    kind = {dict: "an object", list: "a list", tuple: "a list", str: "a string", bool: "a boolean",
            type(None): "null", int: "an integer", float: "a number"}.get(type(value), "a value")
    if isinstance(value, float) and not math.isfinite(value):
        kind = "a non-finite number"
    elif isinstance(value, (list, tuple)):
        kind = f"a list of {len(value)}"
    return FitError(f"serialized UslFit: key '{key}' {why}, got {kind}", hint=_HINT)


def _float(v, key: str, *, optional: bool = False, finite: bool = False):
    if v is None and optional:
        return None
    if v is None and not finite:
        return math.nan
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise _bad(key, "must be a " + ("finite number" if finite else "number")
                   + (" or null" if optional else ""), v)
    if finite and not math.isfinite(v):
        raise _bad(key, "must be a finite number", v)
    return float(v)


def _is_int(v) -> bool:
    return (isinstance(v, int) and not isinstance(v, bool)) or (isinstance(v, float)
                                                                and v.is_integer())


def _int(v, key: str, minimum: int):
    if not _is_int(v) or v < minimum:
        raise _bad(key, f"must be an integer >= {minimum}", v)
    return int(v)


def _pair(v, key: str) -> tuple:
    if not isinstance(v, (list, tuple)) or len(v) != 2:
        raise _bad(key, "must be a [low, high] pair", v)
    return (_float(v[0], key, optional=True), _float(v[1], key, optional=True))


def _floats(v, key: str) -> tuple:
    if not isinstance(v, (list, tuple)):
        raise _bad(key, "must be a list of numbers", v)
    return tuple(_float(x, key, finite=True) for x in v)


def _version(d) -> int:
    v = d.get("schema_version")
    if not _is_int(v) or v < 1:
        got = "missing" if v is None else "not an integer from 1 up"
        raise FitError(f"not a serialized UslFit: 'schema_version' is {got}, expected an "
                       f"integer from 1 to {SCHEMA_VERSION}", hint=_HINT)
    if v > SCHEMA_VERSION:
        raise FitError(f"serialized UslFit has schema_version {int(v)}, newer than this capplan "
                       f"reads (up to {SCHEMA_VERSION})",
                       hint="upgrade capplan to load it, or refit from the load points")
    return int(v)


def fit_from_dict(cls, d, *, bounds_policies: tuple):
    """Rebuild a ``cls`` (UslFit) from :func:`fit_to_dict` output; policy in the module docstring.

    Raises FitError (newer or missing schema_version, missing key, wrong type or shape).
    """
    if not isinstance(d, Mapping):
        raise FitError(f"not a serialized UslFit: expected a dict, got {type(d).__name__}",
                       hint=_HINT)
    version = _version(d)
    missing = [k for k in _REQUIRED if k not in d]
    if missing:
        raise FitError(f"serialized UslFit (schema_version {version}) lacks key(s) "
                       f"{', '.join(missing)}", hint=_HINT)
    model, policy = d["model"], d["bounds_policy"]
    if model not in MODELS:
        raise _bad("model", f"must be one of {', '.join(MODELS)}", model)
    if policy not in bounds_policies:
        raise _bad("bounds_policy", f"must be one of {', '.join(bounds_policies)}", policy)
    for key in ("stderr", "ci95"):
        if not isinstance(d[key], Mapping) or set(PARAMS) - set(d[key]):
            raise _bad(key, f"must map each of {', '.join(PARAMS)}", d[key])
    if not isinstance(d["warnings"], (list, tuple)) or not all(isinstance(w, str)
                                                               for w in d["warnings"]):
        raise _bad("warnings", "must be a list of strings", d["warnings"])
    sigma, kappa, lam = (_float(d[k], k, finite=True) for k in PARAMS)
    if model == "amdahl" and kappa != 0.0:
        raise _bad("kappa", "must be 0 for model 'amdahl'", kappa)
    n_points = _int(d["n_points"], "n_points", 1)

    cov = d.get("cov") or ()
    if cov:
        p = 2 if model == "amdahl" else 3
        if not (isinstance(cov, (list, tuple)) and len(cov) == p
                and all(isinstance(r, (list, tuple)) and len(r) == p for r in cov)):
            raise _bad("cov", f"must be a {p}x{p} nested list for model '{model}'", cov)
        cov = tuple(tuple(_float(v, "cov") for v in row) for row in cov)
    n_data = _floats(d.get("n_data") or (), "n_data")
    x_data = _floats(d.get("x_data") or (), "x_data")
    if (n_data or x_data) and not len(n_data) == len(x_data) == n_points:
        raise FitError(f"serialized UslFit: n_data has {len(n_data)} values, x_data "
                       f"{len(x_data)}, n_points is {n_points}; they must agree", hint=_HINT)

    return cls(
        sigma=sigma, kappa=kappa, lam=lam,
        stderr={k: _float(d["stderr"][k], f"stderr.{k}") for k in PARAMS},
        ci95={k: _pair(d["ci95"][k], f"ci95.{k}") for k in PARAMS},
        df=_int(d["df"], "df", 1), rse=_float(d["rse"], "rse"), n_points=n_points,
        n_levels=_int(d["n_levels"], "n_levels", 1),
        n_max_tested=_float(d["n_max_tested"], "n_max_tested", finite=True),
        n_peak=_float(d["n_peak"], "n_peak", optional=True),
        n_peak_ci95=_pair(d["n_peak_ci95"], "n_peak_ci95"),
        x_peak=_float(d["x_peak"], "x_peak", optional=True),
        x_peak_ci95=_pair(d["x_peak_ci95"], "x_peak_ci95"),
        x_ceiling=_float(d["x_ceiling"], "x_ceiling", optional=True),
        x_ceiling_ci95=_pair(d["x_ceiling_ci95"], "x_ceiling_ci95"),
        r_squared=_float(d["r_squared"], "r_squared"), warnings=tuple(d["warnings"]),
        model=model, bounds_policy=policy, cov=cov, n_data=n_data, x_data=x_data,
    )
