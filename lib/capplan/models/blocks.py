"""Intervals from the variation between time blocks (batch means, block bootstrap).

Readings of a service over time are not independent trials: lookups within one minute share the
same cache contents, latencies within one hour share the same load.  An interval that counts every
lookup as a Bernoulli trial (Wilson) says how well the window's own ratio is measured, not how the
service behaves from one hour to the next.  Here the window is cut into time blocks (hours or
days) and the interval comes from how much the blocks differ; counting noise is part of that
variation, so nothing is lost.

* :func:`block_ratio`: ratio of sums ``R = Σs / Σt`` over blocks with the batch-means (ratio
  estimator) standard error ``se² = Σ (t_i / t̄)² (r_i - R)² / (k (k - 1))`` and a Student-t
  quantile with ``k - 1`` degrees of freedom (Law & Kelton, *Simulation Modeling and Analysis*,
  batch means; Cochran, *Sampling Techniques*, 6.9 for the ratio estimator).
* :func:`block_mean`: batch means of readings, ``se = sd(block means) / √k``, t with ``k - 1`` df.
* Both standard errors are widened by ``√((1 + ρ) / (1 - ρ))`` when neighbouring blocks are
  positively correlated (lag-1 autocorrelation ρ of the block residuals, clipped to [0, 0.8]);
  ``bench/block_intervals.py`` measures the coverage this gives.
* :func:`block_quantile`: a percentile of the pooled readings with a (moving-free, whole-block)
  block bootstrap interval: blocks resampled with replacement (Künsch 1989; Politis & Romano
  1994), percentile interval, fixed seed so a report is reproducible.

Too few blocks give no interval (``sufficient`` False) and say why, e.g. "3 hourly blocks; at
least 8 are needed".  Pure: arrays in, a frozen :class:`BlockEstimate` out.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special

__all__ = ["MIN_BLOCKS", "BlockEstimate", "block_ratio", "block_mean", "block_quantile",
           "blocks_text"]

#: Fewest blocks behind an interval: with k - 1 = 7 degrees of freedom the t quantile is 2.36,
#: and a spread read from fewer blocks is itself too uncertain to support a status.
MIN_BLOCKS = 8

_UNIT_WORD = {"hour": "hourly", "day": "daily", "5min": "5-minute", "minute": "minute"}


def blocks_text(k: int, block: str) -> str:
    """``"3 hourly blocks"``, ``"1 daily block"``."""
    return f"{k} {_UNIT_WORD.get(block, block)} block{'' if k == 1 else 's'}"


@dataclass(frozen=True)
class BlockEstimate:
    """An estimate over a window with its interval from between-block variation.

    ``lo``/``hi`` are None when ``sufficient`` is False (``reason`` says why).  ``block_values``
    holds each block's own value (a ratio, a mean or a percentile), in time order.
    """

    estimate: float | None
    lo: float | None
    hi: float | None
    n_blocks: int
    min_blocks: int
    block: str
    method: str
    block_values: tuple[float, ...]
    conf: float = 0.95
    reason: str | None = None

    @property
    def sufficient(self) -> bool:
        return self.lo is not None and self.hi is not None

    @property
    def lowest(self) -> float | None:
        return min(self.block_values) if self.block_values else None

    @property
    def highest(self) -> float | None:
        return max(self.block_values) if self.block_values else None

    def count_good(self, bound: float, direction: str) -> int:
        """How many blocks are on the good side of ``bound`` (``direction`` min: at or above)."""
        v = np.asarray(self.block_values, float)
        return int((v >= bound).sum() if direction == "min" else (v <= bound).sum())

    def to_dict(self) -> dict:
        return {"estimate": self.estimate, "interval": [self.lo, self.hi], "conf": self.conf,
                "blocks": self.n_blocks, "min_blocks": self.min_blocks, "block": self.block,
                "method": self.method, "lowest": self.lowest, "highest": self.highest,
                "reason": self.reason}


def _check(conf: float, min_blocks: int) -> None:
    if not 0 < conf < 1:
        raise ValueError(f"conf must be in (0, 1), got {conf!r}")
    if min_blocks < 2:
        raise ValueError(f"min_blocks must be at least 2, got {min_blocks!r}")


def _too_few(k: int, min_blocks: int, block: str) -> str:
    return f"{blocks_text(k, block)}; at least {min_blocks} are needed"


def _t(k: int, conf: float) -> float:
    return float(special.stdtrit(k - 1, 0.5 + conf / 2))


def block_ratio(successes, totals, *, block: str = "hour", conf: float = 0.95,
                min_blocks: int = MIN_BLOCKS) -> BlockEstimate:
    """Ratio of sums over blocks (one entry per block: successes, total events) with the
    batch-means interval of the ratio estimator (module doc).  Blocks with no events are dropped.
    """
    _check(conf, min_blocks)
    s = np.asarray(successes, float)
    t = np.asarray(totals, float)
    if s.shape != t.shape:
        raise ValueError(f"successes and totals differ in length ({s.size} vs {t.size})")
    keep = np.isfinite(s) & np.isfinite(t) & (t > 0)
    s, t = s[keep], t[keep]
    k = int(t.size)
    if k == 0:
        return BlockEstimate(None, None, None, 0, min_blocks, block, "batch means", (), conf,
                             "no events in the window")
    r_i = s / t
    est = float(s.sum() / t.sum())
    vals = tuple(float(x) for x in r_i)
    if k < min_blocks:
        return BlockEstimate(est, None, None, k, min_blocks, block, "batch means", vals, conf,
                             _too_few(k, min_blocks, block))
    w = t / t.mean()
    resid = w * (r_i - est)
    se = math.sqrt(float(np.sum(resid ** 2)) / (k * (k - 1)) * _ar1_inflation(resid))
    half = _t(k, conf) * se
    return BlockEstimate(est, max(0.0, est - half), min(1.0, est + half), k, min_blocks, block,
                         "batch means", vals, conf)


def block_mean(values, blocks, *, block: str = "hour", conf: float = 0.95,
               min_blocks: int = MIN_BLOCKS) -> BlockEstimate:
    """Mean of readings with the batch-means interval; ``blocks`` labels each reading's block."""
    _check(conf, min_blocks)
    x, b = _pairs(values, blocks)
    if x.size == 0:
        return BlockEstimate(None, None, None, 0, min_blocks, block, "batch means", (), conf,
                             "no samples in the window")
    labels, inv = np.unique(b, return_inverse=True)
    k = int(labels.size)
    means = np.bincount(inv, weights=x) / np.bincount(inv)
    est = float(x.mean())
    vals = tuple(float(m) for m in means)
    if k < min_blocks:
        return BlockEstimate(est, None, None, k, min_blocks, block, "batch means", vals, conf,
                             _too_few(k, min_blocks, block))
    half = _t(k, conf) * float(means.std(ddof=1)) / math.sqrt(k) * \
        math.sqrt(_ar1_inflation(means - means.mean()))
    return BlockEstimate(est, est - half, est + half, k, min_blocks, block, "batch means", vals,
                         conf)


def block_quantile(values, blocks, q: float, *, block: str = "hour", conf: float = 0.95,
                   min_blocks: int = MIN_BLOCKS, n_boot: int = 400, seed: int = 0) -> BlockEstimate:
    """Percentile ``q`` (0-1) of the pooled readings; block bootstrap percentile interval."""
    _check(conf, min_blocks)
    if not 0 < q < 1:
        raise ValueError(f"q must be in (0, 1), got {q!r}")
    x, b = _pairs(values, blocks)
    if x.size == 0:
        return BlockEstimate(None, None, None, 0, min_blocks, block, "block bootstrap", (), conf,
                             "no samples in the window")
    order = np.argsort(b, kind="stable")
    x, b = x[order], b[order]
    labels, starts, counts = np.unique(b, return_index=True, return_counts=True)
    k = int(labels.size)
    est = float(np.quantile(x, q))
    vals = tuple(float(np.quantile(x[s:s + c], q)) for s, c in zip(starts, counts))
    if k < min_blocks:
        return BlockEstimate(est, None, None, k, min_blocks, block, "block bootstrap", vals, conf,
                             _too_few(k, min_blocks, block))
    rng = np.random.default_rng(seed)
    pieces = [x[s:s + c] for s, c in zip(starts, counts)]
    boots = np.empty(n_boot)
    for i in range(n_boot):
        pick = rng.integers(0, k, size=k)
        boots[i] = np.quantile(np.concatenate([pieces[j] for j in pick]), q)
    a = (1 - conf) / 2
    lo, hi = np.quantile(boots, [a, 1 - a])
    return BlockEstimate(est, float(min(lo, est)), float(max(hi, est)), k, min_blocks, block,
                         "block bootstrap", vals, conf)


def _ar1_inflation(resid: np.ndarray) -> float:
    """Variance factor ``(1 + ρ) / (1 - ρ)`` for positively correlated neighbouring blocks
    (lag-1 autocorrelation ρ of the block residuals, clipped to [0, 0.8]): adjacent hours of a
    service are alike, and batch means that ignore it under-cover."""
    if resid.size < 3:
        return 1.0
    den = float(np.sum(resid ** 2))
    rho = float(np.sum(resid[1:] * resid[:-1]) / den) if den > 0 else 0.0
    rho = min(max(rho, 0.0), 0.8)
    return (1 + rho) / (1 - rho)


def _pairs(values, blocks) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(values, float)
    b = np.asarray(blocks)
    if x.shape != b.shape:
        raise ValueError(f"values and blocks differ in length ({x.size} vs {b.size})")
    keep = np.isfinite(x)
    return x[keep], b[keep]
