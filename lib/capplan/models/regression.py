"""Regression detection between two windows or two runs (baseline vs current).

Three comparisons, each returning frozen results with ``to_dict()`` and a generated ``reason``:

* :func:`compare_samples` — raw samples (request latencies): per statistic (p50, p95, p99, mean
  ...) the difference and ratio current/baseline with percentile-bootstrap intervals, baseline
  and current resampled independently.  Percentiles are nearest-rank (``x(ceil(q n))``) and are
  bootstrapped exactly in O(n_boot): the k-th order statistic of a resample of ``x`` is
  ``x(ceil(n U))`` with ``U ~ Beta(k, n + 1 - k)`` (the k-th of n uniforms).  The mean is
  resampled directly while ``n * n_boot <= 1e6`` and otherwise drawn from its normal limit
  ``N(mean, s²/n)`` (s with ddof 0: the exact bootstrap variance of the mean).
* :func:`compare_rates` — event counts over durations (throughput): the Poisson rate ratio with
  its exact conditional interval (the current count given the total is binomial; Clopper-Pearson
  on that proportion, mapped to the ratio).  Request streams are often burstier than Poisson, so
  this interval is optimistic; the minimum practical effect guards against over-reading it.
* :func:`compare_summaries` — two summary.json figures carrying value, interval and n: the
  difference interval by MOVER (Zou & Donner 2008, "Construction of confidence limits about
  effect measures"; Newcombe 1998 when both are Wilson intervals), ratio by MOVER on logs.  It
  assumes the two intervals are independent, at the same confidence, and recovers each side's
  spread from its own limits; it is an approximation, not a test on the raw data.

Verdict (:data:`VERDICTS`): "worse" / "better" when the interval of the change excludes zero
AND the point change is at least the minimum practical effect (default :data:`MIN_EFFECT`, 5 %
of the baseline); "no detectable change" otherwise; "insufficient data" (never an exception)
when a side has fewer samples than the statistic needs, stated in the reason: percentiles need
at least as many as their distribution-free 95 % interval needs
(:func:`capplan.models.percentiles.percentile_min_samples`: 6 for p50, 72 for p95, 368 for p99)
and at least :data:`MIN_SAMPLES`; rates need :data:`MIN_EVENTS` events a side.  A figure whose
good direction is unknown gets "increased" / "decreased" instead of worse / better.

:func:`compare_samples` judges several statistics at once, so by default its intervals are
Bonferroni-adjusted: each at ``1 - (1 - conf) / k`` for ``k`` statistics (98.75 % for the
default four), which keeps the chance of any false verdict on identical distributions at or
below ``1 - conf`` (unadjusted, four 95 % intervals gave 8-14 % false alarms in simulation).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special  # special, not stats: a much lighter import

from capplan.core.numfmt import fmt_count, fmt_value
from capplan.models.percentiles import nearest_rank, percentile_min_samples

__all__ = [
    "VERDICTS",
    "MIN_EFFECT",
    "MIN_SAMPLES",
    "MIN_EVENTS",
    "Comparison",
    "RegressionResult",
    "compare_samples",
    "compare_rates",
    "compare_summaries",
    "min_samples",
]

WORSE, BETTER, UP, DOWN = "worse", "better", "increased", "decreased"
SAME, INSUFFICIENT = "no detectable change", "insufficient data"
#: Every verdict, most notable first.
VERDICTS: tuple[str, ...] = (WORSE, BETTER, UP, DOWN, SAME, INSUFFICIENT)
#: Default minimum practical effect: a change smaller than 5 % of the baseline is not reported.
MIN_EFFECT = 0.05
#: Least samples a side for any statistic of raw samples (the mean's CLT needs this many too).
MIN_SAMPLES = 30
#: Least events a side for a rate comparison.
MIN_EVENTS = 10
_EXACT_MEAN_CELLS = 1_000_000


def _fmt_change(x: float | None) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x * 100:+.1f}%".replace("-", "−")


@dataclass(frozen=True)
class Comparison:
    """Baseline vs current for one statistic.  ``ratio`` = current / baseline; ``diff`` =
    current - baseline (in ``unit``); intervals at ``conf``; None where undefined."""

    statistic: str
    unit: str
    baseline: float | None
    current: float | None
    diff: float | None
    diff_lo: float | None
    diff_hi: float | None
    ratio: float | None
    ratio_lo: float | None
    ratio_hi: float | None
    n_baseline: float | None
    n_current: float | None
    verdict: str
    reason: str
    method: str
    min_n: float | None
    conf: float = 0.95
    min_effect: float = MIN_EFFECT
    higher_is_worse: bool | None = True
    name: str | None = None

    @property
    def change(self) -> float | None:
        """Relative change ``ratio - 1`` (``+0.30`` = 30 % higher than baseline)."""
        return None if self.ratio is None else self.ratio - 1.0

    def to_dict(self) -> dict:
        ch = lambda r: None if r is None else r - 1.0  # noqa: E731
        return {"name": self.name, "statistic": self.statistic, "unit": self.unit,
                "baseline": self.baseline, "current": self.current,
                "diff": self.diff, "diff_interval": [self.diff_lo, self.diff_hi],
                "ratio": self.ratio, "ratio_interval": [self.ratio_lo, self.ratio_hi],
                "change": self.change, "change_interval": [ch(self.ratio_lo), ch(self.ratio_hi)],
                "n": [self.n_baseline, self.n_current], "min_n": self.min_n,
                "conf": self.conf, "min_effect": self.min_effect,
                "higher_is_worse": self.higher_is_worse, "verdict": self.verdict,
                "method": self.method, "reason": self.reason}


def _overall(verdicts: Sequence[str]) -> str:
    for v in VERDICTS:
        if v in verdicts and v != INSUFFICIENT:
            return v
    return INSUFFICIENT


@dataclass(frozen=True)
class RegressionResult:
    """Every statistic of :func:`compare_samples`; ``verdict`` is the most notable of theirs
    (worse > better > no detectable change; "insufficient data" only when all are).  ``conf``
    is the family level; each comparison carries the (Bonferroni-adjusted) level it used."""

    comparisons: tuple[Comparison, ...]
    verdict: str
    n_baseline: int
    n_current: int
    n_boot: int
    seed: int
    conf: float
    min_effect: float
    name: str | None = None

    def __getitem__(self, statistic: str) -> Comparison:
        for c in self.comparisons:
            if c.statistic == statistic:
                return c
        raise KeyError(f"no statistic {statistic!r}; have "
                       + ", ".join(c.statistic for c in self.comparisons))

    @property
    def worse(self) -> tuple[Comparison, ...]:
        return tuple(c for c in self.comparisons if c.verdict == WORSE)

    @property
    def reason(self) -> str:
        notable = [c for c in self.comparisons if c.verdict in (WORSE, BETTER)]
        who = f"{self.name}: " if self.name else ""
        if notable:
            return who + "; ".join(c.reason for c in notable)
        if self.verdict == INSUFFICIENT:
            return who + "; ".join(c.reason for c in self.comparisons)
        return (who + f"no detectable change in {', '.join(c.statistic for c in self.comparisons)}"
                f" (n={fmt_count(self.n_baseline)} vs {fmt_count(self.n_current)})")

    def to_dict(self) -> dict:
        return {"name": self.name, "verdict": self.verdict, "reason": self.reason,
                "n": [self.n_baseline, self.n_current], "n_boot": self.n_boot,
                "seed": self.seed, "conf": self.conf, "min_effect": self.min_effect,
                "comparisons": [c.to_dict() for c in self.comparisons]}


# ------------------------------------------------------------------------------------ verdicts


def _verdict(diff_lo, diff_hi, change, min_effect, higher_is_worse) -> str:
    if diff_lo is None or diff_hi is None or change is None:
        return SAME
    if not (diff_lo > 0 or diff_hi < 0) or abs(change) < min_effect:
        return SAME
    up = change > 0
    if higher_is_worse is None:
        return UP if up else DOWN
    return WORSE if up == higher_is_worse else BETTER


def _pp(x: float) -> str:
    return f"{x * 100:+.1f}".replace("-", "−")


def _reason(label, unit, base, cur, change, r_lo, r_hi, n_b, n_c, conf, verdict, diff_lo,
            diff_hi, min_effect, note="") -> str:
    pct = f"{round(conf * 100, 2):g}% CI"
    if unit == "ratio" and diff_lo is not None:      # shares: differences in percentage points
        ch, ci = f"{_pp(cur - base)} pp", f"{pct} {_pp(diff_lo)} to {_pp(diff_hi)} pp"
    elif r_lo is not None and r_hi is not None:
        ch, ci = _fmt_change(change), f"{pct} {_fmt_change(r_lo - 1)} to {_fmt_change(r_hi - 1)}"
    else:
        ch, ci = _fmt_change(change), \
            f"{pct} {fmt_value(diff_lo, unit)} to {fmt_value(diff_hi, unit)}"
    ns = "" if n_b is None and n_c is None else f"; n={fmt_count(n_b)} vs {fmt_count(n_c)}"
    text = (f"{label} {fmt_value(base, unit)} → {fmt_value(cur, unit)} ({ch}, {ci}{ns}{note}): "
            f"{verdict}")
    if verdict == SAME and diff_lo is not None and (diff_lo > 0 or diff_hi < 0):
        text += f" (below the {min_effect * 100:g}% minimum practical effect)"
    return text


def _insufficient(statistic, unit, n_b, n_c, need, conf, min_effect, higher_is_worse, name,
                  method, what="samples", base=None, cur=None) -> Comparison:
    reason = (f"{name or statistic}: too few {what} to judge a change (have {fmt_count(n_b)} and "
              f"{fmt_count(n_c)}, need at least {fmt_count(need)} a side)")
    return Comparison(statistic=statistic, unit=unit, baseline=base, current=cur, diff=None,
                      diff_lo=None, diff_hi=None, ratio=None, ratio_lo=None, ratio_hi=None,
                      n_baseline=n_b, n_current=n_c, verdict=INSUFFICIENT, reason=reason,
                      method=method, min_n=need, conf=conf, min_effect=min_effect,
                      higher_is_worse=higher_is_worse, name=name)


# ------------------------------------------------------------------------------- raw samples


def _quantile_of(statistic: str) -> float | None:
    if statistic.startswith("p"):
        try:
            q = float(statistic[1:]) / 100
        except ValueError:
            return None
        return q if 0 < q < 1 else None
    return None


def min_samples(statistic: str, conf: float = 0.95) -> int:
    """Least samples a side :func:`compare_samples` needs for ``statistic`` (``p95``, ``mean``)."""
    q = _quantile_of(statistic)
    if q is not None:
        return max(MIN_SAMPLES, percentile_min_samples(q, conf))
    if statistic == "mean":
        return MIN_SAMPLES
    raise ValueError(f"unknown statistic {statistic!r}: use 'mean' or a percentile such as "
                     "'p50', 'p95', 'p99.9'")


def _boot(x: np.ndarray, statistic: str, n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """``n_boot`` bootstrap replicates of ``statistic`` of the sorted sample ``x``."""
    n = x.size
    q = _quantile_of(statistic)
    if q is not None:
        k = min(n, max(1, math.ceil(q * n - 1e-9)))
        u = rng.beta(k, n + 1 - k, size=n_boot)
        j = np.clip(np.ceil(u * n).astype(np.int64), 1, n)
        return x[j - 1]
    if n * n_boot <= _EXACT_MEAN_CELLS:
        return x[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    return rng.normal(x.mean(), x.std() / math.sqrt(n), size=n_boot)


def _point(x: np.ndarray, statistic: str) -> float:
    q = _quantile_of(statistic)
    return nearest_rank(x, q) if q is not None else float(x.mean())


def _clean(a, side: str) -> np.ndarray:
    x = np.asarray(a, dtype=float).ravel()
    if np.isinf(x).any():
        raise ValueError(f"{side} samples contain infinities")
    return np.sort(x[~np.isnan(x)])


def compare_samples(baseline: Iterable[float], current: Iterable[float], *,
                    stats: Sequence[str] = ("p50", "p95", "p99", "mean"), n_boot: int = 2000,
                    seed: int = 0, conf: float = 0.95, min_effect: float = MIN_EFFECT,
                    higher_is_worse: bool | None = True, unit: str = "seconds",
                    name: str | None = None, adjust: bool = True) -> RegressionResult:
    """Compare samples (latencies in ``unit``, default seconds) of a baseline and a current run.

    For each statistic: point values, difference and ratio with percentile-bootstrap intervals
    (``n_boot`` replicates, reproducible with ``seed``), and a verdict (module docstring).
    ``conf`` is the family level: with ``adjust`` each of the ``k`` intervals is at
    ``1 - (1 - conf) / k`` (Bonferroni; the level used is each comparison's ``conf``).  NaNs
    are dropped.  Raises ValueError for an unknown statistic, infinities, ``n_boot < 100`` or
    ``conf`` outside (0, 1).
    """
    if not 0 < conf < 1:
        raise ValueError(f"conf must be in (0, 1), got {conf!r}")
    if n_boot < 100:
        raise ValueError(f"n_boot must be at least 100 for a {conf:.0%} interval, got {n_boot}")
    b, c = _clean(list(baseline) if not isinstance(baseline, np.ndarray) else baseline,
                  "baseline"), _clean(list(current) if not isinstance(current, np.ndarray)
                                      else current, "current")
    rng = np.random.default_rng(seed)
    each = 1 - (1 - conf) / len(stats) if adjust and len(stats) > 1 else conf
    a = (1 - each) / 2
    out = []
    for statistic in stats:
        need = min_samples(statistic)
        method = ("bootstrap (order statistics)" if _quantile_of(statistic) is not None
                  else "bootstrap")
        if b.size < need or c.size < need:
            out.append(_insufficient(statistic, unit, b.size, c.size, need, each, min_effect,
                                     higher_is_worse, name, method,
                                     base=_point(b, statistic) if b.size else None,
                                     cur=_point(c, statistic) if c.size else None))
            continue
        pb, pc = _point(b, statistic), _point(c, statistic)
        rb, rc = _boot(b, statistic, n_boot, rng), _boot(c, statistic, n_boot, rng)
        d = rc - rb
        d_lo, d_hi = (float(v) for v in np.quantile(d, [a, 1 - a]))
        ratio = r_lo = r_hi = change = None
        if pb > 0 and (rb > 0).all():
            ratio = pc / pb
            r_lo, r_hi = (float(v) for v in np.quantile(rc / rb, [a, 1 - a]))
            change = ratio - 1
        verdict = _verdict(d_lo, d_hi, change, min_effect, higher_is_worse)
        label = f"{name} {statistic}" if name else statistic
        reason = _reason(label, unit, pb, pc, change, r_lo, r_hi, b.size, c.size, each, verdict,
                         d_lo, d_hi, min_effect)
        out.append(Comparison(statistic=statistic, unit=unit, baseline=pb, current=pc,
                              diff=pc - pb, diff_lo=d_lo, diff_hi=d_hi, ratio=ratio,
                              ratio_lo=r_lo, ratio_hi=r_hi, n_baseline=b.size,
                              n_current=c.size, verdict=verdict, reason=reason, method=method,
                              min_n=need, conf=each, min_effect=min_effect,
                              higher_is_worse=higher_is_worse, name=name))
    return RegressionResult(comparisons=tuple(out), verdict=_overall([x.verdict for x in out]),
                            n_baseline=int(b.size), n_current=int(c.size), n_boot=n_boot,
                            seed=seed, conf=conf, min_effect=min_effect, name=name)


# ------------------------------------------------------------------------------------- rates


def compare_rates(baseline_count: float, baseline_seconds: float, current_count: float,
                  current_seconds: float, *, conf: float = 0.95, min_effect: float = MIN_EFFECT,
                  higher_is_worse: bool | None = False, unit: str = "requests_per_second",
                  name: str | None = "throughput") -> Comparison:
    """Compare two event rates (``count / seconds``), e.g. requests served by two runs.

    Ratio interval: exact conditional (Clopper-Pearson) on ``current / (baseline + current)``
    counts, mapped through ``R = p / (1 - p) * baseline_seconds / current_seconds``.  Difference
    interval: normal, ``sqrt(c_b / t_b² + c_c / t_c²)``.  Higher throughput is better unless
    ``higher_is_worse`` (error rates).  Raises ValueError for negative counts or non-positive
    durations.
    """
    for v, what in ((baseline_count, "baseline_count"), (current_count, "current_count")):
        if not math.isfinite(v) or v < 0:
            raise ValueError(f"{what} must be a non-negative count, got {v!r}")
    for v, what in ((baseline_seconds, "baseline_seconds"), (current_seconds, "current_seconds")):
        if not math.isfinite(v) or v <= 0:
            raise ValueError(f"{what} must be a positive duration in seconds, got {v!r}")
    if not 0 < conf < 1:
        raise ValueError(f"conf must be in (0, 1), got {conf!r}")
    cb, tb, cc, tc = float(baseline_count), float(baseline_seconds), float(current_count), \
        float(current_seconds)
    method = "Poisson rate ratio (exact conditional)"
    rb, rc = cb / tb, cc / tc
    if cb < MIN_EVENTS or cc < MIN_EVENTS:
        return _insufficient("rate", unit, cb, cc, MIN_EVENTS, conf, min_effect, higher_is_worse,
                             name, method, what="events", base=rb, cur=rc)
    a = (1 - conf) / 2
    p_lo = special.betaincinv(cc, cb + 1, a)          # beta quantile
    p_hi = special.betaincinv(cc + 1, cb, 1 - a)
    r_lo, r_hi = (float(p / (1 - p) * tb / tc) for p in (p_lo, p_hi))
    half = float(special.ndtri(1 - a)) * math.sqrt(cb / tb ** 2 + cc / tc ** 2)
    d = rc - rb
    ratio = rc / rb
    verdict = _verdict(r_lo - 1, r_hi - 1, ratio - 1, min_effect, higher_is_worse)
    reason = _reason(name or "rate", unit, rb, rc, ratio - 1, r_lo, r_hi, cb, cc, conf, verdict,
                     r_lo - 1, r_hi - 1, min_effect, note=" events")
    return Comparison(statistic="rate", unit=unit, baseline=rb, current=rc, diff=d,
                      diff_lo=d - half, diff_hi=d + half, ratio=ratio, ratio_lo=r_lo,
                      ratio_hi=r_hi, n_baseline=cb, n_current=cc, verdict=verdict, reason=reason,
                      method=method, min_n=MIN_EVENTS, conf=conf, min_effect=min_effect,
                      higher_is_worse=higher_is_worse, name=name)


# ------------------------------------------------------------------------- summary figures


def _figure(fig: Mapping, side: str) -> tuple:
    if not isinstance(fig, Mapping):
        raise ValueError(f"{side} figure must be a mapping with 'value', got {type(fig).__name__}")
    num = lambda x: None if x is None or isinstance(x, bool) or not math.isfinite(float(x)) \
        else float(x)  # noqa: E731
    value = num(fig.get("value"))
    interval = fig.get("interval")
    lo, hi = (interval if isinstance(interval, (list, tuple)) and len(interval) == 2
              else (fig.get("lo"), fig.get("hi")))
    lo, hi = num(lo), num(hi)
    if value is not None and (lo is None or hi is None):
        lo = hi = None
    n = fig.get("n")
    return value, lo, hi, (None if n is None else float(n)), fig.get("unit"), fig.get("conf")


def _direction(fig: Mapping) -> bool | None:
    extra = fig.get("extra") if isinstance(fig.get("extra"), Mapping) else {}
    for src in (fig, extra):
        if isinstance(src.get("higher_is_worse"), bool):
            return src["higher_is_worse"]
        target = src.get("target")
        direction = target.get("direction") if isinstance(target, Mapping) else \
            src.get("direction")
        if direction in ("min", "max"):
            return direction == "max"
    unit = fig.get("unit")
    if unit in ("seconds", "errors"):
        return True
    if isinstance(unit, str) and unit.endswith("per_second"):
        return False
    return None


def _mover(b, lb, ub, c, lc, uc) -> tuple[float, float]:
    """MOVER limits of ``c - b`` from each estimate's own limits (Zou & Donner 2008, eq. 6)."""
    d = c - b
    return (d - math.sqrt((c - lc) ** 2 + (ub - b) ** 2),
            d + math.sqrt((uc - c) ** 2 + (b - lb) ** 2))


def compare_summaries(baseline: Mapping, current: Mapping, *, name: str | None = None,
                      higher_is_worse: bool | None = None, min_effect: float = MIN_EFFECT
                      ) -> Comparison:
    """Compare one figure of a previous run's summary.json with the same figure now.

    Each figure is a mapping with ``value``, ``interval`` ``[lo, hi]`` (or ``lo``/``hi``), ``n``,
    ``unit`` and optionally ``conf`` (default 0.95), ``name`` (or ``label``/``id``, as in a
    :class:`capplan.analysis.findings.Finding`) and ``target.direction`` / ``higher_is_worse`` (also looked
    up under ``extra``).  Good direction: the argument, else the figure's, else its unit
    (seconds, errors: higher is worse; rates: higher is better), else unknown ("increased" /
    "decreased").  A figure without an interval is a reading taken as exact (said in the
    reason).  Missing value or ``n == 0`` on either side gives "insufficient data".  Raises
    ValueError when units or confidence levels differ.
    """
    vb, lb, ub, nb, unit_b, conf_b = _figure(baseline, "baseline")
    vc, lc, uc, nc, unit_c, conf_c = _figure(current, "current")
    if unit_b != unit_c:
        raise ValueError(f"units differ: baseline {unit_b!r}, current {unit_c!r}")
    conf_b, conf_c = conf_b or 0.95, conf_c or 0.95
    if abs(conf_b - conf_c) > 1e-9:
        raise ValueError(f"confidence levels differ: {conf_b} vs {conf_c}")
    unit = unit_b or ""
    name = name or next((f.get(k) for k in ("name", "label", "id") for f in (current, baseline)
                         if f.get(k)), None)
    if higher_is_worse is None:
        higher_is_worse = _direction(current) if _direction(current) is not None \
            else _direction(baseline)
    method = "MOVER (interval limits)"
    if vb is None or vc is None or nb == 0 or nc == 0:
        return _insufficient("value", unit, nb, nc, 1, conf_b, min_effect,
                             higher_is_worse, name, method, what="data", base=vb, cur=vc)
    exact = [side for side, lo in (("baseline", lb), ("current", lc)) if lo is None]
    lb, ub = (vb, vb) if lb is None else (lb, ub)
    lc, uc = (vc, vc) if lc is None else (lc, uc)
    d_lo, d_hi = _mover(vb, lb, ub, vc, lc, uc)
    ratio = r_lo = r_hi = change = None
    if vb > 0 and vc > 0 and lb > 0 and lc > 0:
        ratio = vc / vb
        lr = _mover(math.log(vb), math.log(lb), math.log(ub), math.log(vc), math.log(lc),
                    math.log(uc))
        r_lo, r_hi = math.exp(lr[0]), math.exp(lr[1])
        change = ratio - 1
    elif vb != 0:
        change = (vc - vb) / abs(vb)
    verdict = _verdict(d_lo, d_hi, change, min_effect, higher_is_worse)
    note = f"; no interval on {' and '.join(exact)}: taken as exact" if exact else ""
    reason = _reason(name or "value", unit, vb, vc, change, r_lo, r_hi, nb, nc,
                     conf_b, verdict, d_lo, d_hi, min_effect, note=note)
    return Comparison(statistic="value", unit=unit, baseline=vb, current=vc, diff=vc - vb,
                      diff_lo=d_lo, diff_hi=d_hi, ratio=ratio, ratio_lo=r_lo, ratio_hi=r_hi,
                      n_baseline=nb, n_current=nc, verdict=verdict, reason=reason,
                      method=method if not exact else method + ", exact where no interval",
                      min_n=1, conf=conf_b, min_effect=min_effect,
                      higher_is_worse=higher_is_worse, name=name)
