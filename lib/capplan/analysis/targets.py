"""Targets and SLOs from params, evaluated with their uncertainty.

A finding is only as good as the evidence behind it: "27 hits of 34 requests" is 79.4 %, but its
Wilson 95 % interval (63.2–89.6 %) lies on both sides of an 80 % minimum, so the honest status is
"insufficient evidence".  The same 79.4 % from 34,000 requests (interval 79.0–79.8 %) misses.

Params shape (a list under ``targets:``; names must be unique)::

    targets:
      - {name: Redis hit ratio, metric: redis_keyspace_hit_ratio, min: 0.80, warn: 0.85, crit: 0.75}
      - {name: API p95 latency, metric: http_request_duration_seconds, statistic: p95,
         max: 0.25, warn: 0.20}
      - {name: Availability, slo: availability, objective: 0.999, window: 30d,
         good_metric: http_requests_ok_total, total_metric: http_requests_total}
      - {name: Error rate, slo: error_rate, objective: 0.01, window: 7d,
         bad_metric: http_requests_failed_total, total_metric: http_requests_total}

* A **threshold target** has exactly one of ``min`` (the value must stay at or above it) or
  ``max`` (at or below).  ``warn`` lies on the good side of the target (a warning zone before the
  target is missed), ``crit`` on the bad side (a miss beyond it is critical).  ``statistic`` says
  which summary of the samples is compared: ``ratio`` (a proportion of counts, Wilson interval;
  the default for unit ``ratio``), ``pNN`` / ``pNN.N`` (a percentile, order-statistic interval),
  ``mean`` (Student-t interval; the default otherwise), ``last``, ``max`` or ``min`` (a reading,
  taken as exact).  ``unit`` defaults to the metric's suffix (``_seconds``, ``_ratio``, ...).
  A percentile of a metric stored as histogram buckets (``<metric>_bucket{le}``, no gauge of
  its own) is computed from the bucket counts (:mod:`capplan.analysis.latency`).
* An **SLO** has ``slo`` = ``availability`` or ``latency`` (``objective`` = the minimum fraction of
  good events, e.g. 0.999; ``good_metric`` or ``bad_metric`` with ``total_metric``; a latency SLO
  may state its ``threshold`` in seconds, or instead of the counters name a histogram in
  ``metric`` with ``threshold``: ``{slo: latency, metric: http_request_duration_seconds,
  threshold: 0.3, objective: 0.99}``, read from its ``_bucket`` counters, exact when the
  threshold is a bucket bound), or ``error_rate`` (``objective`` = the maximum fraction
  of bad events, e.g. 0.01; ``bad_metric`` or ``good_metric`` with ``total_metric``).  ``window``
  is a pandas duration (default ``30d``); ``warn`` is optional, in the units of ``objective``.

Status (:data:`STATUSES`, most severe first) for a value with a two-sided interval (95 % unless
``conf`` says otherwise):

* ``misses``: the whole interval is on the bad side of the target;
* ``at risk``: the whole interval meets the target, but its worse end lies past the warning
  threshold (the metric may already be in the warning zone);
* ``insufficient evidence``: the interval straddles the target, or there is no interval (no
  data, too few samples for the percentile);
* ``meets``: the whole interval is on the good side and clear of the warning threshold.

A miss whose whole interval lies past ``crit`` is flagged ``critical`` (sorted first).

SLOs are evaluated by :func:`capplan.analysis.slo.evaluate_slo_target` (error budget, burn rate);
percentile intervals come from :mod:`capplan.models.percentiles`.

Errors: :func:`parse_targets` raises :class:`~capplan.errors.ConfigError` naming the params file,
the entry (index and name) and the key, with the allowed keys.  The evaluate functions raise
:class:`ValueError` on impossible arguments (negative counts, successes > n, conf outside (0, 1)).
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import special  # special, not stats: a much lighter import

from capplan.errors import ConfigError
from capplan.core.frame import UNITS
from capplan.core.numfmt import fmt_count, fmt_interval, fmt_value, pct_digits
from capplan.models.percentiles import percentile_interval
from capplan.core.rates import wilson_interval

__all__ = [
    "STATUSES",
    "STATUS_RANK",
    "Target",
    "TargetStatus",
    "parse_targets",
    "evaluate_proportion",
    "evaluate_value",
    "evaluate_samples",
    "severity_key",
    "sort_findings",
    "evaluate_blocks",
    "evaluate_peak",
    "evaluate_reading",
    "evaluate_histogram_quantile",
    "STALE",
]

MEETS, AT_RISK, INSUFFICIENT, MISSES = "meets", "at risk", "insufficient evidence", "misses"
STALE = "stale"    # the source failed this run, or its newest sample is too old (never "meets")
#: Every status, most severe first (the wording of each: capplan.analysis.findings.STATUS_WORDS).
STATUSES: tuple[str, ...] = (MISSES, STALE, AT_RISK, INSUFFICIENT, MEETS)
#: Rank of a status for sorting (0 = most severe; cf. capplan.analysis.findings.SEVERITY, higher = worse).
STATUS_RANK: dict[str, int] = {s: i for i, s in enumerate(STATUSES)}

SLO_KINDS = ("availability", "latency", "error_rate")
_COMMON_KEYS = ("name", "metric", "unit", "description", "source")
_THRESHOLD_KEYS = _COMMON_KEYS + ("min", "max", "warn", "crit", "statistic")
_SLO_KEYS = _COMMON_KEYS + ("slo", "objective", "window", "warn", "good_metric", "bad_metric",
                            "total_metric", "threshold")
_STAT_RE = re.compile(r"^p(\d{1,2}(?:\.\d+)?)$")
_METRIC_RE = re.compile(r"^[a-z_][a-z0-9_]*$")


def z_for(conf: float) -> float:
    if not 0 < conf < 1:
        raise ValueError(f"conf must be in (0, 1), got {conf!r}")
    return float(special.ndtri(0.5 + conf / 2))  # normal quantile


# ---------------------------------------------------------------------------------------- targets


@dataclass(frozen=True)
class Target:
    """One target or SLO from params (see the module docstring for the params shape).

    ``direction`` is ``"min"`` or ``"max"``: which side of ``bound`` is good.  For SLOs ``bound``
    is ``objective`` as written (a good fraction for availability/latency, a bad fraction for
    error_rate); ``window`` is a :class:`pandas.Timedelta`.
    """

    name: str
    direction: str
    bound: float
    metric: str | None = None
    warn: float | None = None
    crit: float | None = None
    statistic: str = "mean"
    unit: str = ""
    description: str | None = None
    slo: str | None = None
    window: pd.Timedelta | None = None
    good_metric: str | None = None
    bad_metric: str | None = None
    total_metric: str | None = None
    threshold: float | None = None
    source: str | None = None   # one instance (e.g. "redis:cache") when the store holds several

    @property
    def is_slo(self) -> bool:
        return self.slo is not None

    @property
    def quantile(self) -> float | None:
        """The percentile asked for as a fraction (``p95 -> 0.95``), else None."""
        m = _STAT_RE.match(self.statistic)
        return float(m.group(1)) / 100 if m else None

    def to_dict(self) -> dict:
        d = {"name": self.name, "direction": self.direction, "target": self.bound,
             "warn": self.warn, "crit": self.crit, "metric": self.metric,
             "statistic": self.statistic, "unit": self.unit}
        if self.is_slo:
            d.update(slo=self.slo, window=timedelta_text(self.window), good_metric=self.good_metric,
                     bad_metric=self.bad_metric, total_metric=self.total_metric,
                     threshold=self.threshold)
        return d


def timedelta_text(td: pd.Timedelta | None) -> str | None:
    if td is None:
        return None
    days = td / pd.Timedelta("1D")
    return f"{days:g}d" if days == int(days) else f"{td.total_seconds():g}s"


def _unit_of(metric: str | None) -> str:
    if not metric:
        return ""
    for unit in sorted(UNITS, key=len, reverse=True):
        if metric.endswith("_" + unit):
            return unit
    return ""


class _Entry:
    """Validation context for one params entry: every error names file, index, name and key."""

    def __init__(self, raw: dict, index: int, path: str):
        self.raw, self.index, self.path = raw, index, path
        name = raw.get("name")
        self.label = f"targets[{index}]" + (f" ({name!r})" if isinstance(name, str) else "")

    def fail(self, key: str, message: str, hint: str | None = None) -> ConfigError:
        return ConfigError(f"{self.label}: {message}", path=self.path,
                           key=f"targets[{self.index}].{key}", hint=hint)

    def check_keys(self, allowed: Sequence[str]) -> None:
        for key in self.raw:
            if key not in allowed:
                close = difflib.get_close_matches(str(key), allowed, n=1)
                hint = (f"did you mean '{close[0]}'? " if close else "") + \
                    "allowed keys: " + ", ".join(allowed)
                raise self.fail(str(key), f"unknown key '{key}'", hint)

    def number(self, key: str, *, required: bool = False) -> float | None:
        v = self.raw.get(key)
        if v is None:
            if required:
                raise self.fail(key, f"'{key}' is required", f"give '{key}' as a number")
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.fail(key, f"'{key}' must be a finite number, got {v!r}")
        return float(v)

    def text(self, key: str, *, required: bool = False, metric: bool = False) -> str | None:
        v = self.raw.get(key)
        if v is None:
            if required:
                raise self.fail(key, f"'{key}' is required")
            return None
        if not isinstance(v, str) or not v.strip():
            raise self.fail(key, f"'{key}' must be a non-empty string, got {v!r}")
        if metric and not _METRIC_RE.match(v):
            raise self.fail(key, f"metric name {v!r} is not snake_case",
                            "metric names look like redis_keyspace_hit_ratio")
        return v.strip()


def _parse_threshold(e: _Entry, name: str) -> Target:
    e.check_keys(_THRESHOLD_KEYS)
    lo, hi = e.number("min"), e.number("max")
    if (lo is None) == (hi is None):
        raise e.fail("min" if lo is None else "max", "give exactly one of 'min' or 'max'",
                     "min: the value must stay at or above it; max: at or below it")
    direction, bound = ("min", lo) if lo is not None else ("max", hi)
    metric = e.text("metric", metric=True)
    unit = e.text("unit") or _unit_of(metric)
    if unit and unit not in UNITS:
        raise e.fail("unit", f"unknown unit {unit!r}", "one of: " + ", ".join(UNITS))
    # a size (disk, memory) is judged by its latest value: a mean understates a filling disk
    statistic = e.text("statistic") or ("ratio" if unit == "ratio" else
                                        "last" if unit == "bytes" else "mean")
    if statistic not in ("ratio", "mean", "last", "max", "min") and not _STAT_RE.match(statistic):
        raise e.fail("statistic", f"unknown statistic {statistic!r}",
                     "one of ratio, mean, last, max, min or a percentile such as p50, p95, p99.9")
    if statistic == "ratio" and not 0 <= bound <= 1:
        raise e.fail(direction, f"a ratio target must lie in [0, 1], got {bound:g}",
                     "write 80 % as 0.80")
    warn, crit = e.number("warn"), e.number("crit")
    _check_sides(e, direction, bound, warn, crit)
    return Target(name=name, direction=direction, bound=bound, metric=metric, warn=warn,
                  crit=crit, statistic=statistic, unit=unit, description=e.text("description"),
                  source=e.raw.get("source"))


def _check_sides(e: _Entry, direction: str, bound: float, warn, crit) -> None:
    good = (lambda x: x >= bound) if direction == "min" else (lambda x: x <= bound)
    side = "at or above" if direction == "min" else "at or below"
    other = "at or below" if direction == "min" else "at or above"
    if warn is not None and not good(warn):
        raise e.fail("warn", f"warn {warn:g} must be {side} the {direction} {bound:g}",
                     "warn marks a zone on the good side, before the target is missed")
    if crit is not None and good(crit) and crit != bound:
        raise e.fail("crit", f"crit {crit:g} must be {other} the {direction} {bound:g}",
                     "crit marks how far past the target a miss becomes critical")


def _parse_slo(e: _Entry, name: str) -> Target:
    e.check_keys(_SLO_KEYS)
    kind = e.text("slo")
    if kind not in SLO_KINDS:
        raise e.fail("slo", f"unknown SLO kind {kind!r}", "one of: " + ", ".join(SLO_KINDS))
    objective = e.number("objective", required=True)
    if not 0 < objective < 1:
        raise e.fail("objective", f"objective must lie strictly between 0 and 1, got {objective:g}",
                     "write 99.9 % as 0.999 (availability) or a 1 % error rate as 0.01")
    raw_window = e.raw.get("window", "30d")
    try:
        # "30d" is how people write it; pandas wants "30D" (lower-case d is deprecated)
        window = pd.Timedelta(re.sub(r"(?<=\d)\s*d\b", "D", str(raw_window)))
    except ValueError as exc:
        raise e.fail("window", f"cannot read window {raw_window!r} as a duration",
                     "write it like 30d, 7d or 28d") from exc
    if window <= pd.Timedelta(0):
        raise e.fail("window", f"window must be positive, got {raw_window!r}")
    good_m, bad_m = e.text("good_metric", metric=True), e.text("bad_metric", metric=True)
    total_m = e.text("total_metric", metric=True)
    histogram = (kind == "latency" and total_m is None and good_m is None and bad_m is None
                 and e.raw.get("metric") is not None)
    if histogram and e.number("threshold") is None:
        raise e.fail("threshold", "a latency SLO read from a histogram needs 'threshold' "
                                  "(seconds)", "e.g. threshold: 0.3 for 'under 300 ms'")
    if not histogram and (total_m is None or (good_m is None) == (bad_m is None)):
        key = "total_metric" if total_m is None else "good_metric"
        raise e.fail(key, "an SLO needs total_metric and exactly one of good_metric, bad_metric"
                          " (a latency SLO: or metric, a histogram, with threshold)",
                     "e.g. good_metric: http_requests_ok_total, total_metric: http_requests_total")
    direction = "max" if kind == "error_rate" else "min"
    warn = e.number("warn")
    _check_sides(e, direction, objective, warn, None)
    return Target(name=name, direction=direction, bound=objective,
                  metric=e.text("metric", metric=histogram),
                  warn=warn, statistic="ratio", unit="ratio", description=e.text("description"),
                  slo=kind, window=window, good_metric=good_m, bad_metric=bad_m,
                  total_metric=total_m, threshold=e.number("threshold"), source=e.raw.get("source"))


def parse_targets(raw: list[dict] | None, *, path: str) -> tuple[Target, ...]:
    """Validate the ``targets:`` list of a params file (``path`` is named in every error).

    Raises :class:`ConfigError` on the first bad entry: unknown key (with the allowed keys and
    the closest match), missing or contradictory bounds, warn/crit on the wrong side, unknown
    statistic, unit or SLO kind, unreadable window, duplicate names.
    """
    if raw is None:
        return ()
    if not isinstance(raw, list):
        raise ConfigError(f"'targets' must be a list of mappings, got {type(raw).__name__}",
                          path=path, key="targets", hint="write one '- name: ...' item per target")
    out: list[Target] = []
    seen: dict[str, int] = {}
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise ConfigError(f"targets[{i}] must be a mapping, got {type(item).__name__}",
                              path=path, key=f"targets[{i}]")
        e = _Entry(item, i, path)
        name = e.text("name", required=True)
        if name in seen:
            raise e.fail("name", f"duplicate target name {name!r} (also targets[{seen[name]}])",
                         "give every target a unique name")
        seen[name] = i
        out.append(_parse_slo(e, name) if "slo" in item else _parse_threshold(e, name))
    return tuple(out)


# --------------------------------------------------------------------------------- status logic


@dataclass(frozen=True)
class TargetStatus:
    """A target evaluated on data: estimate, interval, status and a generated reason.

    ``value``, ``lo``, ``hi`` are in ``unit``; ``lo``/``hi`` are None when no interval could be
    computed (then status is "insufficient evidence").  ``method`` names the interval method.
    """

    name: str
    status: str
    value: float | None
    lo: float | None
    hi: float | None
    n: float
    unit: str
    direction: str
    target: float
    warn: float | None
    crit: float | None
    reason: str
    method: str
    conf: float = 0.95
    critical: bool = False
    metric: str | None = None
    statistic: str | None = None
    successes: float | None = None
    evidence: dict | None = None     # estimand, requests / samples / blocks, spread (blocks)

    def to_dict(self) -> dict:
        return {"evidence": self.evidence,
                "name": self.name, "metric": self.metric, "statistic": self.statistic,
                "value": self.value, "unit": self.unit, "interval": [self.lo, self.hi],
                "conf": self.conf, "n": self.n, "successes": self.successes,
                "status": self.status, "critical": self.critical, "method": self.method,
                "target": {"direction": self.direction, "value": self.target},
                "thresholds": {"target": self.target, "warn": self.warn, "crit": self.crit},
                "reason": self.reason}


def classify_status(lo, hi, direction, bound, warn, crit) -> tuple[str, bool]:
    if lo is None or hi is None:
        return INSUFFICIENT, False
    sign = 1 if direction == "min" else -1          # sign * (x - bound) >= 0 is the good side
    worst, best = (lo, hi) if direction == "min" else (hi, lo)
    if sign * (worst - bound) >= 0:
        if warn is not None and sign * (worst - warn) < 0:
            return AT_RISK, False
        return MEETS, False
    if sign * (best - bound) < 0:
        return MISSES, crit is not None and sign * (best - crit) < 0
    return INSUFFICIENT, False


def status_clause(status, critical, direction, bound, warn, crit, unit, digits) -> str:
    if unit == "ratio":    # thresholds as written: "80%", "99.9%"
        digits = pct_digits(bound, *(x for x in (warn, crit) if x is not None))
    word = "minimum" if direction == "min" else "maximum"
    tgt = f"the {fmt_value(bound, unit, digits=digits)} {word}"
    good, bad = ("above", "below") if direction == "min" else ("below", "above")
    if status == MEETS:
        return f"interval {good} {tgt}"
    if status == AT_RISK:
        return (f"interval meets {tgt} but reaches the "
                f"{fmt_value(warn, unit, digits=digits)} warning threshold")
    if status == MISSES:
        extra = (f", past the {fmt_value(crit, unit, digits=digits)} critical threshold"
                 if critical else "")
        return f"interval {bad} {tgt}{extra}"
    return f"interval straddles {tgt}"


def _status(target: Target, *, value, lo, hi, n, method, conf, head, successes=None,
            none_reason=None, digits=None) -> TargetStatus:
    status, critical = classify_status(lo, hi, target.direction, target.bound, target.warn, target.crit)
    if lo is None or hi is None:
        reason = f"{head}: {none_reason or 'no interval'}"
    else:
        ci = fmt_interval(lo, hi, target.unit, digits=digits)
        reason = (f"{head} ({round(conf * 100, 2):g}% CI {ci}): "
                  + status_clause(status, critical, target.direction, target.bound, target.warn,
                            target.crit, target.unit, digits))
    return TargetStatus(name=target.name, status=status, value=value, lo=lo, hi=hi, n=n,
                        unit=target.unit, direction=target.direction, target=target.bound,
                        warn=target.warn, crit=target.crit, reason=reason, method=method,
                        conf=conf, critical=critical, metric=target.metric,
                        statistic=target.statistic, successes=successes)


def check_counts(successes: float, n: float) -> None:
    if not (math.isfinite(successes) and math.isfinite(n)) or n < 0 or successes < 0:
        raise ValueError(f"counts must be finite and non-negative, got {successes!r}/{n!r}")
    if successes > n * (1 + 1e-12):
        raise ValueError(f"successes ({successes:g}) exceed n ({n:g}): pass the total as n")


def evaluate_proportion(successes: float, n: float, target: Target, *,
                        conf: float = 0.95) -> TargetStatus:
    """Status of ``successes`` out of ``n`` (e.g. hits of hits+misses) with its Wilson interval.

    Counts may be non-integral (extrapolated counter increases).  ``n == 0`` is "insufficient
    evidence" (no traffic), never 0 % or 100 %.  Wilson (1927); Brown, Cai & DasGupta (2001).
    """
    check_counts(successes, n)
    digits = _digits_for(target)
    if n == 0:
        return _status(target, value=None, lo=None, hi=None, n=0, method="wilson", conf=conf,
                       head="no events", none_reason="no traffic in the window", successes=0)
    lo, hi = wilson_interval(successes, n, z=z_for(conf))
    p = successes / n
    head = f"{fmt_count(successes)}/{fmt_count(n)} = {fmt_value(p, 'ratio', digits=digits)}"
    return _status(target, value=p, lo=lo, hi=hi, n=n, method="wilson", conf=conf, head=head,
                   successes=successes, digits=digits)


def _digits_for(target: Target) -> int | None:
    """Decimals for measured percentages: one finer than the thresholds need (auto if whole)."""
    if target.unit != "ratio":
        return None
    d = pct_digits(target.bound, *(x for x in (target.warn, target.crit) if x is not None))
    return d + 1 if d >= 1 else None


def evaluate_value(estimate: float | None, lo: float | None, hi: float | None, n: float,
                   target: Target, *, method: str = "given", conf: float = 0.95,
                   none_reason: str | None = None) -> TargetStatus:
    """Status of a continuous estimate whose interval ``[lo, hi]`` was computed elsewhere.

    ``lo``/``hi`` None (or NaN) means no interval: "insufficient evidence" with ``none_reason``.
    A reading taken as exact passes ``lo == hi == estimate``.
    """
    nan = lambda x: None if x is None or not math.isfinite(x) else float(x)  # noqa: E731
    estimate, lo, hi = nan(estimate), nan(lo), nan(hi)
    if lo is not None and hi is not None and lo > hi:
        raise ValueError(f"interval is reversed: lo {lo!r} > hi {hi!r}")
    label = target.statistic if target.statistic not in ("ratio",) else "value"
    head = f"{label} = {fmt_value(estimate, target.unit, digits=_digits_for(target))}" + \
        (f", n={fmt_count(n)}" if n else "")
    return _status(target, value=estimate, lo=lo, hi=hi, n=n, method=method, conf=conf,
                   head=head, none_reason=none_reason, digits=_digits_for(target))


# ------------------------------------------------------------------------------------ samples


def evaluate_samples(samples: Iterable[float], target: Target, *,
                     conf: float = 0.95) -> TargetStatus:
    """Status of ``target.statistic`` computed from raw samples (latencies, readings).

    Percentiles use :func:`percentile_interval`; ``mean`` a Student-t interval (n >= 2; heavy
    tails make it optimistic for small n); ``last``/``max``/``min`` are readings taken as exact.
    ``ratio`` targets need counts: use :func:`evaluate_proportion`.
    """
    x = np.asarray(list(samples) if not isinstance(samples, np.ndarray) else samples, dtype=float)
    x = x[np.isfinite(x)]
    n = int(x.size)
    stat = target.statistic
    if stat == "ratio":
        raise ValueError(f"target {target.name!r} is a ratio of counts: use evaluate_proportion")
    if n == 0:
        return evaluate_value(None, None, None, 0, target, method="none", conf=conf,
                              none_reason="no samples")
    q = target.quantile
    if q is not None:
        pi = percentile_interval(x, q, conf)
        why = (f"too few samples for {stat} (have {n}, need at least {pi.min_n})"
               if not pi.sufficient else None)
        return evaluate_value(pi.estimate, pi.lo, pi.hi, n, target,
                              method="order statistics", conf=conf, none_reason=why)
    if stat == "mean":
        m = float(x.mean())
        if n < 2:
            return evaluate_value(m, None, None, n, target, method="t", conf=conf,
                                  none_reason="one sample has no interval (need at least 2)")
        half = float(special.stdtrit(n - 1, 0.5 + conf / 2) * x.std(ddof=1) / math.sqrt(n))
        return evaluate_value(m, m - half, m + half, n, target, method="t", conf=conf)
    v = float({"last": x[-1], "max": x.max(), "min": x.min()}[stat])
    return evaluate_value(v, v, v, n, target, method="exact reading", conf=conf)


# --------------------------------------------------------------------------------------- sorting


def severity_key(finding) -> tuple:
    """Sort key: misses (critical first) > at risk > insufficient evidence > meets, then name.

    Accepts :class:`TargetStatus`, :class:`SloStatus` or their ``to_dict()`` output.
    """
    get = finding.get if isinstance(finding, dict) else (lambda k, d=None: getattr(finding, k, d))
    status = get("status")
    return (STATUS_RANK.get(status, len(STATUS_RANK)), 0 if get("critical", False) else 1,
            str(get("name", "")))


def sort_findings(findings: Iterable) -> list:
    """``findings`` ordered most severe first (deterministic: ties broken by name)."""
    return sorted(findings, key=severity_key)


# ------------------------------------------------------------------------- time blocks, peaks

_BLOCK_PLURAL = {"hour": "hours", "day": "days"}


def _bound_text(target: Target, x: float | None, digits=None) -> str:
    if target.unit == "ratio":
        digits = pct_digits(target.bound, *(v for v in (target.warn, target.crit) if v is not None))
    return fmt_value(x, target.unit, digits=digits)


def block_spread(be, target: Target) -> str:
    """``21 of 24 hours above 90%; lowest 86.1%`` (the spread a reader acts on)."""
    if not be.block_values:
        return ""
    k = len(be.block_values)
    good = be.count_good(target.bound, target.direction)
    side = "at or above" if target.direction == "min" else "at or below"
    worst_word, worst = ("lowest", be.lowest) if target.direction == "min" else ("highest", be.highest)
    plural = _BLOCK_PLURAL.get(be.block, be.block + "s") if k != 1 else be.block
    return (f"{good} of {k} {plural} {side} {_bound_text(target, target.bound)}; "
            f"{worst_word} {fmt_value(worst, target.unit, digits=_digits_for(target))}")


def evaluate_blocks(be, target: Target, *, estimand: str, samples: int,
                    requests: float | None = None) -> TargetStatus:
    """Status of a :class:`capplan.models.blocks.BlockEstimate` against ``target``: the interval
    comes from between-block variation; too few blocks is "insufficient evidence" with why."""
    from capplan.models.blocks import blocks_text

    digits = _digits_for(target)
    counts = [blocks_text(be.n_blocks, be.block), f"{fmt_count(samples)} samples"]
    if requests is not None:
        counts.append(f"{requests:,.0f} requests")
    spread = block_spread(be, target)
    evidence = {"estimand": estimand, "blocks": be.n_blocks, "block": be.block,
                "min_blocks": be.min_blocks, "samples": samples, "requests": requests,
                "method": be.method, "spread": spread or None, "lowest": be.lowest,
                "highest": be.highest,
                "blocks_good": be.count_good(target.bound, target.direction) if be.block_values else None,
                "n_text": ", ".join(counts)}
    head = (f"{estimand} = {fmt_value(be.estimate, target.unit, digits=digits)} "
            f"({', '.join(counts)})")
    st = _status(target, value=be.estimate, lo=be.lo, hi=be.hi, n=be.n_blocks,
                 method=be.method, conf=be.conf, head=head, digits=digits,
                 none_reason=("insufficient evidence: " + be.reason) if be.reason else None,
                 successes=None)
    reason = st.reason + (f"; {spread}" if spread else "")
    return _replace(st, reason=reason, evidence=evidence)


def evaluate_peak(series: pd.Series, target: Target, *, sampling_s: float | None,
                  min_blocks: int, end=None) -> TargetStatus:
    """Status of a peak (``max``) or trough (``min``) target from raw readings at their own
    resolution.  A peak is a reading, never given a confidence interval: a reading past the
    bound is a miss; staying inside it is "meets" only with at least ``min_blocks`` days (or
    hours, on shorter data) observed.  Where several days exist the daily peaks are reported."""
    from capplan.core.numfmt import fmt_timedelta
    from capplan.models.blocks import blocks_text

    x = series.dropna()
    n = int(x.size)
    every = ("" if sampling_s is None
             else f"sampled every {fmt_timedelta(pd.Timedelta(seconds=sampling_s))}")
    if n == 0:
        return evaluate_value(None, None, None, 0, target, method="reading",
                              none_reason="no samples")
    peak_fn = "max" if target.statistic == "max" else "min"
    v = float(getattr(x, peak_fn)())
    end = x.index.max() if end is None else pd.Timestamp(end)
    back = end.value - x.index.asi8            # blocks counted back from the window end
    day, hour = pd.Timedelta("1D").value, pd.Timedelta("1h").value
    daily = getattr(x.groupby(back // day), peak_fn)()
    block = "day" if len(daily) >= min_blocks else "hour"
    per_block = daily if block == "day" else getattr(x.groupby(back // hour), peak_fn)()
    k = int(len(per_block))
    sign = 1 if target.direction == "min" else -1
    over = int((sign * (daily.to_numpy() - target.bound) < 0).sum())
    word = "peak" if peak_fn == "max" else "lowest reading"
    head = f"{word} {fmt_value(v, target.unit)}" + (f", {every}" if every else "") + \
        f" ({n:,} samples, {blocks_text(k, block)})"
    spread = None
    if len(daily) >= 2:
        side = "over" if target.direction == "max" else "under"
        spread = (f"daily {word}s {fmt_value(float(daily.min()), target.unit)} – "
                  f"{fmt_value(float(daily.max()), target.unit)}, median "
                  f"{fmt_value(float(daily.median()), target.unit)}; {over} of {len(daily)} days "
                  f"{side} {fmt_value(target.bound, target.unit)}")
    bad = sign * (v - target.bound) < 0
    if bad:
        critical = target.crit is not None and sign * (v - target.crit) < 0
        status, reason = MISSES, f"{head}: past the {fmt_value(target.bound, target.unit)} " + \
            ("maximum" if target.direction == "max" else "minimum") + \
            (f" and the {fmt_value(target.crit, target.unit)} critical threshold" if critical else "")
    elif k < min_blocks:
        critical = False
        status, reason = INSUFFICIENT, (f"{head}: insufficient evidence: {blocks_text(k, block)}; "
                                        f"at least {min_blocks} are needed to say the {word} "
                                        "stays inside the target")
    else:
        critical = False
        warned = target.warn is not None and sign * (v - target.warn) < 0
        status = AT_RISK if warned else MEETS
        reason = f"{head}: " + (f"within the target but past the "
                                f"{fmt_value(target.warn, target.unit)} warning threshold"
                                if warned else "within the target")
    if spread:
        reason += f"; {spread}"
    evidence = {"estimand": f"{word} of the raw readings", "blocks": k, "block": block,
                "min_blocks": min_blocks, "samples": n, "requests": None, "method": "reading",
                "sampling_s": sampling_s, "sampling": every or None, "spread": spread,
                "daily": [float(d) for d in daily.to_numpy()], "days_over": over,
                "days": int(len(daily)),
                "n_text": f"{n:,} samples, {blocks_text(k, block)}"}
    return TargetStatus(name=target.name, status=status, value=v, lo=None, hi=None, n=k,
                        unit=target.unit, direction=target.direction, target=target.bound,
                        warn=target.warn, crit=target.crit, reason=reason, method="reading",
                        critical=critical, metric=target.metric, statistic=target.statistic,
                        evidence=evidence)


def _replace(st: TargetStatus, **kw) -> TargetStatus:
    from dataclasses import replace

    return replace(st, **kw)


def evaluate_reading(series: pd.Series, target: Target, *, sampling_s: float | None) -> TargetStatus:
    """Status of the latest reading (``statistic: last``, the default for sizes in bytes): a
    reading is what it is, so no confidence interval; past the bound is a miss."""
    from capplan.core.numfmt import fmt_timedelta

    x = series.dropna()
    if x.empty:
        return evaluate_value(None, None, None, 0, target, method="reading",
                              none_reason="no samples")
    v, at = float(x.iloc[-1]), x.index[-1]
    sign = 1 if target.direction == "min" else -1
    every = "" if sampling_s is None else \
        f", sampled every {fmt_timedelta(pd.Timedelta(seconds=sampling_s))}"
    head = f"latest reading {fmt_value(v, target.unit)} at {at:%Y-%m-%d %H:%M} UTC{every}"
    word = "maximum" if target.direction == "max" else "minimum"
    if sign * (v - target.bound) < 0:
        critical = target.crit is not None and sign * (v - target.crit) < 0
        status, clause = MISSES, f"past the {fmt_value(target.bound, target.unit)} {word}"
    elif target.warn is not None and sign * (v - target.warn) < 0:
        critical, status = False, AT_RISK
        clause = f"within the target but past the {fmt_value(target.warn, target.unit)} warning threshold"
    else:
        critical, status, clause = False, MEETS, "within the target"
    evidence = {"estimand": "latest reading", "blocks": None, "block": None, "samples": int(x.size),
                "requests": None, "method": "reading", "sampling_s": sampling_s,
                "n_text": f"1 reading (latest of {x.size:,} samples)"}
    return TargetStatus(name=target.name, status=status, value=v, lo=None, hi=None, n=1,
                        unit=target.unit, direction=target.direction, target=target.bound,
                        warn=target.warn, crit=target.crit, reason=f"{head}: {clause}",
                        method="reading", critical=critical, metric=target.metric,
                        statistic=target.statistic, evidence=evidence)


def evaluate_histogram_quantile(be, whole, target: Target, *, metric: str, samples: int,
                                observations: float, top_bound: float) -> TargetStatus:
    """Status of a percentile target read from histogram buckets: ``be`` from
    :func:`capplan.analysis.latency.block_histogram_quantile` (interval widened to bucket
    bounds), ``whole`` the window's :class:`capplan.models.histogram.HistogramQuantile`.  A
    quantile in the ``+Inf`` bucket has only a lower limit: a miss when that limit is already
    past a maximum, else "insufficient evidence"; the reason says which bounds limit precision."""
    from dataclasses import replace

    open_hi = be.hi is not None and math.isinf(be.hi)
    if open_hi:
        be = replace(be, hi=None, reason=f"in some blocks the {target.statistic} lies above the "
                                         f"highest finite bucket bound ({fmt_value(top_bound, target.unit or 'seconds')}"
                                         "): only a lower limit is known")
    st = evaluate_blocks(be, target, estimand=f"{target.statistic} of the observations "
                                              f"(buckets of {metric})",
                         samples=samples, requests=observations)
    if open_hi and be.lo is not None:
        sign = 1 if target.direction == "min" else -1
        if sign * (be.lo - target.bound) < 0:
            st = _replace(st, status=MISSES, reason=st.reason.replace(
                "insufficient evidence: ", "misses: lower limit past the target; "))
    note = whole.precision_note()
    ev = dict(st.evidence or {})
    ev["histogram"] = {"metric": metric, **whole.to_dict(),
                       "interval_lower_limit_only": open_hi}
    return _replace(st, reason=f"{st.reason}; {note}", evidence=ev,
                    lo=be.lo, hi=be.hi if not open_hi else None)

