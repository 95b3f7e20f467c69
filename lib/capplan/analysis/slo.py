"""Service level objectives: status, error budget and burn rate, with uncertainty.

Definitions from the Google SRE Workbook (Beyer et al., 2018), ch. 2 "Implementing SLOs" and
ch. 5 "Alerting on SLOs":

* SLI = good events / total events over the window (availability; for a latency SLO, requests
  faster than the threshold; for an error-rate SLO, 1 - bad / total);
* error budget = ``1 - objective`` of the events in the window;
* burn rate = observed error rate / ``(1 - objective)``: at burn rate 1 the budget is used up
  exactly at the end of the window, at 2 halfway through.

Counts seen over the first ``elapsed`` of a ``window`` are projected over the whole window at
the same traffic (``total * window / elapsed``) to size the budget in events, so
``consumed_fraction = burn_rate * elapsed / window``.  Status uses the Wilson interval of the
SLI as for any target (:mod:`capplan.analysis.targets`); the burn-rate interval is the same interval
mapped through ``(1 - sli) / (1 - objective)``.

The projected exhaustion treats the errors already counted as staying in the window (a
calendar-window view); for a rolling window that is conservative.  It is reported only when it
falls inside the current window: at burn rate < 1 over a full window the budget lasts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from capplan.core.numfmt import fmt_count, fmt_interval, fmt_timedelta, fmt_value, pct_digits
from capplan.core.rates import wilson_interval
from capplan.analysis.targets import (INSUFFICIENT, SLO_KINDS, Target, check_counts, classify_status,
                             status_clause, timedelta_text, z_for)

__all__ = ["SloStatus", "evaluate_slo", "evaluate_slo_target"]


@dataclass(frozen=True)
class SloStatus:
    """An SLO evaluated over the part of its window seen so far (SRE Workbook definitions).

    Availability = good / total with its Wilson interval.  Error budget: ``budget_fraction`` =
    1 - objective of the events; ``budget_events`` = that fraction of the events projected over
    the whole window (``total * window / elapsed``).  ``burn_rate`` = error rate /
    budget_fraction; ``consumed_fraction`` = burn_rate * elapsed / window.
    ``time_to_exhaustion`` is remaining budget / burn rate (0 when exhausted, None when nothing
    burns); ``exhaustion_at`` = ``as_of`` + that, only when it falls inside the window.
    """

    name: str
    slo: str
    status: str
    objective: float
    warn: float | None
    good: float
    total: float
    availability: float | None
    lo: float | None
    hi: float | None
    window: pd.Timedelta
    elapsed: pd.Timedelta
    budget_fraction: float
    budget_events: float | None
    consumed_events: float
    remaining_events: float | None
    consumed_fraction: float | None
    burn_rate: float | None
    burn_rate_lo: float | None
    burn_rate_hi: float | None
    time_to_exhaustion: pd.Timedelta | None
    exhaustion_at: pd.Timestamp | None
    exhausted: bool
    reason: str
    conf: float = 0.95
    as_of: pd.Timestamp | None = field(default=None)

    @property
    def remaining_fraction(self) -> float | None:
        return None if self.consumed_fraction is None else 1.0 - self.consumed_fraction

    @property
    def value(self) -> float | None:
        """The SLI in the objective's terms: availability, or the error rate for error_rate SLOs."""
        return self._in_terms()[0]

    @property
    def interval(self) -> tuple[float | None, float | None]:
        """The ``conf`` interval of :attr:`value` (lo, hi)."""
        return self._in_terms()[1:]

    def _in_terms(self) -> tuple:
        if self.slo != "error_rate":
            return self.availability, self.lo, self.hi
        flip = lambda x: None if x is None else 1.0 - x  # noqa: E731
        return flip(self.availability), flip(self.hi), flip(self.lo)

    def to_dict(self) -> dict:
        err = self.slo == "error_rate"
        value, (lo, hi) = self.value, self.interval
        tte = self.time_to_exhaustion
        return {"name": self.name, "slo": self.slo, "statistic": "error_rate" if err
                else "availability", "value": value, "unit": "ratio", "interval": [lo, hi],
                "conf": self.conf, "n": self.total, "good": self.good,
                "bad": self.consumed_events, "status": self.status,
                "target": {"direction": "max" if err else "min", "value": self.objective},
                "thresholds": {"target": self.objective, "warn": self.warn, "crit": None},
                "window": timedelta_text(self.window), "elapsed_seconds": self.elapsed.total_seconds(),
                "error_budget": {"fraction": self.budget_fraction, "events": self.budget_events,
                                 "consumed_events": self.consumed_events,
                                 "remaining_events": self.remaining_events,
                                 "consumed_fraction": self.consumed_fraction,
                                 "remaining_fraction": self.remaining_fraction},
                "burn_rate": self.burn_rate,
                "burn_rate_interval": [self.burn_rate_lo, self.burn_rate_hi],
                "time_to_exhaustion_seconds": None if tte is None else tte.total_seconds(),
                "exhaustion_at": None if self.exhaustion_at is None
                else self.exhaustion_at.isoformat(),
                "exhausted": self.exhausted,
                "as_of": None if self.as_of is None else self.as_of.isoformat(),
                "reason": self.reason}


def evaluate_slo(good: float, total: float, objective: float, window: pd.Timedelta,
                 elapsed: pd.Timedelta, *, name: str = "SLO", slo: str = "availability",
                 warn: float | None = None, as_of: pd.Timestamp | None = None,
                 conf: float = 0.95, blocks=None) -> SloStatus:
    """Evaluate an SLO from ``good`` of ``total`` events seen over ``elapsed`` of its ``window``.

    ``objective`` is the minimum good fraction (availability, latency SLOs) or, with
    ``slo="error_rate"``, the maximum bad fraction; ``warn`` is in the same terms.  ``as_of`` (the
    time the counts were taken) turns the time to exhaustion into a date.  Raises ValueError when
    counts are impossible or ``elapsed`` is not within (0, window] (pass the last window only).

    ``blocks`` (a :class:`capplan.models.blocks.BlockEstimate` of the good fraction per time
    block) replaces the Wilson interval, which treats every event as an independent trial, by
    the between-block interval; too few blocks make the status "insufficient evidence".
    """
    check_counts(good, total)
    if slo not in SLO_KINDS:
        raise ValueError(f"slo must be one of {SLO_KINDS}, got {slo!r}")
    if not 0 < objective < 1:
        raise ValueError(f"objective must lie strictly between 0 and 1, got {objective!r}")
    window, elapsed = pd.Timedelta(window), pd.Timedelta(elapsed)
    if window <= pd.Timedelta(0) or not pd.Timedelta(0) < elapsed <= window:
        raise ValueError(f"elapsed ({elapsed}) must lie in (0, window={window}]: "
                         "pass the counts of the last window only")
    err = slo == "error_rate"
    avail_obj = 1 - objective if err else objective
    avail_warn = None if warn is None else (1 - warn if err else warn)
    budget = round(1 - avail_obj, 12)       # 1 - 0.999 without the float noise
    bad = max(0.0, total - good)
    frac = elapsed / window
    digits = pct_digits(avail_obj, extra=1)     # 99.9% objective -> availabilities as 99.95%
    if total == 0:
        avail = lo = hi = burn = b_lo = b_hi = budget_events = remaining = consumed = None
        status = INSUFFICIENT
        reason = f"{name}: no events in the window"
    else:
        avail = good / total
        if blocks is None:
            lo, hi = wilson_interval(good, total, z=z_for(conf))
        else:
            lo, hi = blocks.lo, blocks.hi
        burn = (bad / total) / budget
        b_lo, b_hi = (None, None) if lo is None else ((1 - hi) / budget, (1 - lo) / budget)
        budget_events = budget * total / frac
        remaining = budget_events - bad
        consumed = burn * frac
        status, _ = classify_status(lo, hi, "min", avail_obj, avail_warn, None)
        if lo is None:
            reason = (f"{fmt_count(good)}/{fmt_count(total)} good = "
                      f"{fmt_value(avail, 'ratio', digits=digits)}: insufficient evidence: "
                      f"{blocks.reason}; burn rate {burn:.2f}")
        else:
            reason = _slo_reason(err, good, total, bad, avail, lo, hi, objective, warn, status,
                                 burn, consumed, conf, digits)
            if blocks is not None:
                from capplan.models.blocks import blocks_text

                reason += f" ({blocks.method} over {blocks_text(blocks.n_blocks, blocks.block)})"
    tte = at = None
    exhausted = consumed is not None and consumed >= 1 - 1e-12
    if exhausted:
        tte = pd.Timedelta(0)
    elif burn:
        tte = pd.Timedelta(seconds=round((1 - consumed) * window.total_seconds() / burn))
    if tte is not None and as_of is not None and elapsed + tte <= window + pd.Timedelta("1s"):
        at = pd.Timestamp(as_of) + tte
    if exhausted:
        reason += "; the error budget is exhausted"
    elif at is not None:
        reason += f"; at this burn rate the budget runs out in {fmt_timedelta(tte)}"
    return SloStatus(name=name, slo=slo, status=status, objective=objective, warn=warn,
                     good=good, total=total, availability=avail, lo=lo, hi=hi, window=window,
                     elapsed=elapsed, budget_fraction=budget, budget_events=budget_events,
                     consumed_events=bad, remaining_events=remaining, consumed_fraction=consumed,
                     burn_rate=burn, burn_rate_lo=b_lo, burn_rate_hi=b_hi,
                     time_to_exhaustion=tte, exhaustion_at=at, exhausted=exhausted,
                     reason=reason, conf=conf, as_of=None if as_of is None else pd.Timestamp(as_of))


def _slo_reason(err, good, total, bad, avail, lo, hi, objective, warn, status, burn, consumed,
                conf, digits) -> str:
    pct = f"{round(conf * 100, 2):g}%"
    if err:
        head = (f"{fmt_count(bad)}/{fmt_count(total)} errors = "
                f"{fmt_value(1 - avail, 'ratio', digits=digits)} "
                f"({pct} CI {fmt_interval(1 - hi, 1 - lo, 'ratio', digits=digits)})")
        clause = status_clause(status, False, "max", objective, warn, None, "ratio", digits)
    else:
        head = (f"{fmt_count(good)}/{fmt_count(total)} good = "
                f"{fmt_value(avail, 'ratio', digits=digits)} "
                f"({pct} CI {fmt_interval(lo, hi, 'ratio', digits=digits)})")
        clause = status_clause(status, False, "min", objective, warn, None, "ratio", digits)
    return (f"{head}: {clause}; burn rate {burn:.2f}, "
            f"{fmt_value(consumed, 'ratio', digits=0)} of the error budget used")


def evaluate_slo_target(target: Target, good: float, total: float, elapsed: pd.Timedelta, *,
                        as_of: pd.Timestamp | None = None, conf: float = 0.95,
                        blocks=None) -> SloStatus:
    """:func:`evaluate_slo` with objective, window, kind and warn taken from an SLO ``target``."""
    if not target.is_slo:
        raise ValueError(f"target {target.name!r} is not an SLO")
    return evaluate_slo(good, total, target.bound, target.window, elapsed, name=target.name,
                        slo=target.slo, warn=target.warn, as_of=as_of, conf=conf, blocks=blocks)


