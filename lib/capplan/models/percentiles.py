"""Distribution-free confidence intervals for percentiles (binomial order statistics).

Used by :mod:`capplan.analysis.targets` (is p95 within its target?) and :mod:`capplan.models.regression`
(how many samples a percentile needs before a change in it can be judged).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy import special  # special, not stats: a much lighter import

__all__ = ["PercentileInterval", "percentile_min_samples", "percentile_interval",
           "nearest_rank"]


def nearest_rank(sorted_x: np.ndarray, q: float) -> float:
    """The nearest-rank percentile ``x(ceil(q n))`` of an ascending array (numpy "inverted_cdf")."""
    n = sorted_x.size
    return float(sorted_x[min(n, max(1, math.ceil(q * n - 1e-9))) - 1])


@dataclass(frozen=True)
class PercentileInterval:
    """A sample percentile (nearest rank) with its distribution-free order-statistic interval.

    ``lo``/``hi`` are None when the sample is too small for the percentile: ``min_n`` is the
    least sample size for which both ends exist.
    """

    q: float
    estimate: float | None
    lo: float | None
    hi: float | None
    n: int
    conf: float
    min_n: int

    @property
    def sufficient(self) -> bool:
        return self.lo is not None and self.hi is not None

    def to_dict(self) -> dict:
        return {"q": self.q, "value": self.estimate, "interval": [self.lo, self.hi],
                "n": self.n, "conf": self.conf, "min_n": self.min_n,
                "method": "binomial order statistics"}


def percentile_min_samples(q: float, conf: float = 0.95) -> int:
    """Least n for which the order-statistic ``conf`` interval of the ``q`` percentile exists.

    Both ends exist when ``q**n <= a`` and ``(1-q)**n < a`` with ``a = (1-conf)/2``: e.g. 6 for
    the median, 72 for p95 and 368 for p99 at 95 %.
    """
    if not 0 < q < 1:
        raise ValueError(f"q must be in (0, 1), got {q!r}")
    a = (1 - conf) / 2
    n_hi = math.ceil(math.log(a) / math.log(q) - 1e-12)
    n_lo = math.floor(math.log(a) / math.log(1 - q)) + 1
    return max(1, n_hi, n_lo)


def _binom_ppf(p: float, n: int, q: float) -> int:
    """Smallest ``k`` with ``P(Binomial(n, q) <= k) >= p`` (scipy's ``binom.ppf``; -1 for p <= 0)."""
    if p <= 0:
        return -1
    cdf = special.bdtr(np.arange(n + 1), n, q)
    k = int(np.searchsorted(cdf, p * (1 - 1e-12), side="left"))  # tolerance as scipy's ppf
    return min(k, n)


def percentile_interval(samples: Iterable[float], q: float, conf: float = 0.95
                        ) -> PercentileInterval:
    """Percentile ``q`` (0-1) of ``samples`` with its binomial order-statistic interval.

    The number of samples at or below the true percentile is Binomial(n, q), so with
    ``l = F⁻¹(a)`` and ``u = F⁻¹(1-a) + 1`` (a = (1-conf)/2, 1-based ranks) the interval
    ``[x(l), x(u)]`` covers it with probability >= conf for any continuous distribution
    (Hahn & Meeker, *Statistical Intervals*, 1991, ch. 5; conservative for discrete n).  The
    estimate is the nearest-rank percentile ``x(ceil(q n))``.  NaNs are dropped.
    """
    x = np.sort(np.asarray(list(samples) if not isinstance(samples, np.ndarray) else samples,
                           dtype=float))
    x = x[np.isfinite(x)]
    n = int(x.size)
    if not 0 < conf < 1:
        raise ValueError(f"conf must be in (0, 1), got {conf!r}")
    min_n = percentile_min_samples(q, conf)
    if n == 0:
        return PercentileInterval(q, None, None, None, 0, conf, min_n)
    est = nearest_rank(x, q)
    a = (1 - conf) / 2
    lo_rank = _binom_ppf(a, n, q)
    hi_rank = _binom_ppf(1 - a, n, q) + 1
    lo = float(x[lo_rank - 1]) if lo_rank >= 1 else None
    hi = float(x[hi_rank - 1]) if hi_rank <= n else None
    if lo is None or hi is None:
        lo = hi = None
    return PercentileInterval(q, est, lo, hi, n, conf, min_n)


