"""Regression detection between two load-test runs from time buckets (block bootstrap).

Per-request latencies of a load test are not independent trials: a checkpoint, a GC pause or a
noisy neighbour slows every request of the same second.  Resampling requests one by one (an
i.i.d. bootstrap, :func:`capplan.models.regression.compare_samples`) then gives intervals far
too narrow, and two runs of the same configuration "differ".  Here each run is cut into time
buckets (per second by default, :func:`bucketize`) and whole buckets are resampled in circular
blocks of ``L`` consecutive buckets (Politis & Romano 1992, "A circular block-resampling
procedure for stationary data"), ``L`` at least ``ceil(K ** (1/3))`` for ``K`` buckets (Hall,
Horowitz & Jing 1995) and at least twice the integrated autocorrelation time of the per-bucket
throughput and mean latency (at most ``K / 4``), so variation *between* seconds, the variation that actually separates two runs, is
what the interval measures.  Every statistic is a ratio of bucket sums, so one resample is a
weight vector ``w`` over buckets (how often each bucket was drawn):

* throughput   = ``w·requests / w·seconds``
* mean latency = ``w·latency_sum / w·latency_n``
* error rate   = ``w·errors / w·requests``
* percentile q = the q-quantile of ``w·H``, ``H`` the per-bucket latency histograms on a shared
  logarithmic grid (bins 0.5 % wide, far below any practical effect); point values are exact
  (nearest rank on the raw latencies).

Interval: ``log r ± t(df) · se`` for the ratio candidate/baseline (the difference, for the
error rate).  ``se² = f_b v_b + f_c v_c`` from each side's bootstrap variance of the log
statistic, ``f = R / (R - 1)`` for a side of ``R`` runs (resampling R units with replacement
shrinks their variance by (R - 1) / R); ``df`` by Welch-Satterthwaite from each side's own
degrees of freedom: ``R - 1`` runs, or ``K / L - 1`` blocks for a single run (as in batch
means).  With few
buckets this is markedly wider than the normal interval, which is the point.

Verdicts (the :mod:`capplan.models.regression` vocabulary): "worse" / "better" when the
interval excludes no change AND the point change is at least the metric's minimum practical
effect (:data:`DEFAULT_MIN_EFFECT`: relative for throughput and latencies, absolute, as a
fraction of requests, for the error rate); "no detectable change" otherwise; "insufficient
data" when a side has fewer than :data:`MIN_BUCKETS` buckets, fewer latencies than the
percentile needs (:func:`capplan.models.regression.min_samples`), fewer than
:data:`~capplan.models.regression.MIN_EVENTS` requests, or lacks the data altogether.  Zero
errors on both sides: "no detectable change" with the rule-of-three interval
``[-3 / n_baseline, 3 / n_candidate]``.  The intervals of the metrics judged together are
Bonferroni-adjusted by default (family level ``conf``; each at ``1 - (1 - conf) / k``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import special

from capplan.core.numfmt import fmt_count, fmt_value
from capplan.models.percentiles import nearest_rank
from capplan.models.regression import (BETTER, INSUFFICIENT, MIN_EVENTS, SAME, WORSE,
                                       Comparison, RegressionResult, min_samples)

__all__ = ["METRICS", "DEFAULT_MIN_EFFECT", "MIN_BUCKETS", "TimeBuckets", "bucketize",
           "compare_buckets", "compare_bucket_means", "compare_run_values", "pool_runs", "point_value",
           "block_length"]

#: metric -> (unit, higher_is_worse, statistic of the latency samples or None)
METRICS: dict[str, tuple[str, bool, str | None]] = {
    "throughput": ("requests_per_second", False, None),
    "latency_mean": ("seconds", True, "mean"),
    "latency_p50": ("seconds", True, "p50"),
    "latency_p95": ("seconds", True, "p95"),
    "latency_p99": ("seconds", True, "p99"),
    "error_rate": ("ratio", True, None),
}
#: Minimum practical effect per metric: relative change (0.05 = 5 %), except ``error_rate``,
#: an absolute change in the share of failed requests (0.001 = 0.1 percentage point).
DEFAULT_MIN_EFFECT: dict[str, float] = {
    "throughput": 0.05, "latency_mean": 0.05, "latency_p50": 0.05, "latency_p95": 0.10,
    "latency_p99": 0.10, "error_rate": 0.001,
}
#: Least time buckets a side: fewer blocks than this give no usable between-bucket variance.
MIN_BUCKETS = 10
_BIN_REL = 0.005


@dataclass(frozen=True)
class TimeBuckets:
    """One run cut into ``K`` consecutive time buckets (pure data, arrays of length ``K``).

    ``seconds``: each bucket's duration; ``requests``: completed requests (failed included);
    ``errors``: failed requests (None: the source does not say); ``latency_sum`` (seconds) and
    ``latency_n``: the latencies summed in the bucket (None: unknown); ``latencies`` (seconds)
    with ``latency_bucket`` (the bucket of each): raw per-request latencies, when the source
    has them.  ``width_s`` is the nominal bucket width.
    """

    seconds: np.ndarray
    requests: np.ndarray
    errors: np.ndarray | None = None
    latency_sum: np.ndarray | None = None
    latency_n: np.ndarray | None = None
    latencies: np.ndarray | None = None
    latency_bucket: np.ndarray | None = None
    width_s: float = 1.0
    run: np.ndarray | None = None

    @property
    def n_runs(self) -> int:
        """Independent runs pooled in these buckets (``run``: each bucket's run, 0-based)."""
        return 1 if self.run is None or not len(self.run) else int(np.max(self.run)) + 1

    @property
    def k(self) -> int:
        return int(len(self.seconds))

    @property
    def n_requests(self) -> float:
        return float(np.sum(self.requests))

    @property
    def duration_s(self) -> float:
        return float(np.sum(self.seconds))


def bucketize(t_s, latency_s=None, failed=None, *, width_s: float = 1.0) -> TimeBuckets:
    """Cut per-request records into full buckets of ``width_s`` seconds from the first record.

    ``t_s``: each request's completion time in seconds (any origin); ``latency_s``: its
    latency (NaN: unknown, e.g. a skipped transaction); ``failed``: truthy when it failed.
    Requests after the last full bucket are dropped (a partial bucket would weigh a fraction of
    a second like a whole one).  Empty seconds inside the run stay in as zero-request buckets:
    a stall is evidence.  Raises ValueError for a non-positive width or fewer than one bucket.
    """
    if not (width_s > 0 and math.isfinite(width_s)):
        raise ValueError(f"width_s must be a positive number of seconds, got {width_s!r}")
    t = np.asarray(t_s, dtype=float)
    if t.size == 0:
        raise ValueError("no requests to bucket")
    t0 = float(np.nanmin(t))
    k = int(math.floor((float(np.nanmax(t)) - t0) / width_s + 1e-9))
    if k < 1:
        raise ValueError(f"the run spans less than one {width_s:g} s bucket")
    idx = np.floor((t - t0) / width_s + 1e-9).astype(np.int64)
    keep = (idx >= 0) & (idx < k)
    idx = idx[keep]
    requests = np.bincount(idx, minlength=k).astype(float)
    errors = None
    if failed is not None:
        f = np.asarray(failed, dtype=bool)[keep]
        errors = np.bincount(idx, weights=f.astype(float), minlength=k)
    lat = lsum = ln = lb = None
    if latency_s is not None:
        lat_all = np.asarray(latency_s, dtype=float)[keep]
        ok = np.isfinite(lat_all)
        lat, lb = lat_all[ok], idx[ok]
        lsum = np.bincount(lb, weights=lat, minlength=k)
        ln = np.bincount(lb, minlength=k).astype(float)
    return TimeBuckets(seconds=np.full(k, float(width_s)), requests=requests, errors=errors,
                       latency_sum=lsum, latency_n=ln, latencies=lat, latency_bucket=lb,
                       width_s=float(width_s))


def block_length(k: int) -> int:
    """Least circular-block length for ``k`` buckets: ``ceil(k ** (1/3))`` (at least 1)."""
    return max(1, math.ceil(k ** (1 / 3) - 1e-9))


def _tau(x: np.ndarray) -> float:
    """Integrated autocorrelation time of a bucket series (Geyer's initial positive sequence,
    cut where the autocorrelation falls below its 2/sqrt(K) noise level)."""
    x = x[np.isfinite(x)]
    k = x.size
    if k < 8:
        return 1.0
    x = x - x.mean()
    v = float(x @ x)
    if v <= 0:
        return 1.0
    tau = 1.0
    for lag in range(1, k // 3):
        r = float(x[:-lag] @ x[lag:]) / v
        if r < 2 / math.sqrt(k):
            break
        tau += 2 * r
    return tau


def data_block_length(tb: "TimeBuckets") -> int:
    """Block length for one run: at least :func:`block_length`, and twice the integrated
    autocorrelation time of its per-bucket throughput and mean latency, so slowly wandering
    performance is resampled in blocks long enough to carry it; at most ``K / 4``."""
    with np.errstate(invalid="ignore", divide="ignore"):
        series = [tb.requests / tb.seconds]
        if tb.latency_sum is not None:
            series.append(tb.latency_sum / tb.latency_n)
    tau = max(_tau(np.asarray(s, dtype=float)) for s in series)
    return int(min(max(block_length(tb.k), math.ceil(2 * tau)), max(1, tb.k // 4)))


def pool_runs(runs: Sequence[TimeBuckets]) -> TimeBuckets:
    """Several independent runs of one configuration as one :class:`TimeBuckets` (``run`` set),
    so that :func:`compare_buckets` resamples runs first and blocks within each run second."""
    if not runs:
        raise ValueError("no runs to pool")
    if len(runs) == 1:
        return runs[0]
    offs = np.cumsum([0] + [tb.k for tb in runs[:-1]])
    def cat(attr):
        parts = [getattr(tb, attr) for tb in runs]
        return None if any(p is None for p in parts) else np.concatenate(parts)
    lb = None if any(tb.latencies is None for tb in runs) else \
        np.concatenate([tb.latency_bucket + o for tb, o in zip(runs, offs)])
    return TimeBuckets(seconds=cat("seconds"), requests=cat("requests"), errors=cat("errors"),
                       latency_sum=cat("latency_sum"), latency_n=cat("latency_n"),
                       latencies=cat("latencies"), latency_bucket=lb,
                       width_s=float(np.mean([tb.width_s for tb in runs])),
                       run=np.concatenate([np.full(tb.k, i) for i, tb in enumerate(runs)]))


def _side_weights(tb: TimeBuckets, n_boot: int, rng: np.random.Generator,
                  block: int | None) -> np.ndarray:
    """Two-stage resample: runs with replacement, then circular blocks inside each drawn run."""
    if tb.n_runs == 1:
        return _weights(tb.k, n_boot, block or data_block_length(tb), rng)
    r_n = tb.n_runs
    w = np.zeros((n_boot, tb.k))
    choice = rng.integers(0, r_n, size=(n_boot, r_n))
    for r in range(r_n):
        cols = np.flatnonzero(tb.run == r)
        cnt = (choice == r).sum(axis=1)
        most = int(cnt.max())
        if most == 0 or not len(cols):
            continue
        wr = _weights(len(cols), n_boot * most, block or data_block_length(_subset(tb, cols)),
                      rng)
        wr = wr.reshape(n_boot, most, len(cols))
        take = (np.arange(most)[None, :] < cnt[:, None]).astype(float)
        w[:, cols] = np.einsum("bm,bmk->bk", take, wr)
    return w


def _subset(tb: TimeBuckets, cols: np.ndarray) -> TimeBuckets:
    return TimeBuckets(seconds=tb.seconds[cols], requests=tb.requests[cols],
                       latency_sum=None if tb.latency_sum is None else tb.latency_sum[cols],
                       latency_n=None if tb.latency_n is None else tb.latency_n[cols])


def _weights(k: int, n_boot: int, block: int, rng: np.random.Generator) -> np.ndarray:
    """(n_boot, k) counts: how often each bucket is drawn by a circular block resample."""
    nblocks = math.ceil(k / block)
    starts = rng.integers(0, k, size=(n_boot, nblocks))
    idx = ((starts[:, :, None] + np.arange(block)) % k).reshape(n_boot, -1)[:, :k]
    flat = idx + (np.arange(n_boot) * k)[:, None]
    return np.bincount(flat.ravel(), minlength=n_boot * k).reshape(n_boot, k).astype(float)


def _hist(tb: TimeBuckets, edges: np.ndarray) -> np.ndarray:
    nb = len(edges) - 1
    j = np.clip(np.searchsorted(edges, tb.latencies, side="right") - 1, 0, nb - 1)
    flat = tb.latency_bucket * nb + j
    return np.bincount(flat, minlength=tb.k * nb).reshape(tb.k, nb).astype(np.float32)


def _boot_quantile(wh: np.ndarray, q: float, mids: np.ndarray) -> np.ndarray:
    cum = np.cumsum(wh, axis=1)
    target = q * cum[:, -1]
    j = (cum >= target[:, None] - 1e-6).argmax(axis=1)
    out = mids[j]
    out[cum[:, -1] <= 0] = np.nan
    return out


def _missing(tb: TimeBuckets, metric: str) -> str | None:
    if metric == "error_rate" and tb.errors is None:
        return "no per-request failure counts"
    if metric == "latency_mean" and tb.latency_sum is None:
        return "no latencies"
    if METRICS[metric][2] not in (None, "mean") and tb.latencies is None:
        return "no per-request latencies (percentiles need them)"
    return None


def point_value(tb: TimeBuckets, metric: str) -> float | None:
    if metric == "throughput":
        return tb.n_requests / tb.duration_s if tb.duration_s > 0 else None
    if metric == "error_rate":
        return float(np.sum(tb.errors)) / tb.n_requests if tb.errors is not None and \
            tb.n_requests > 0 else None
    if metric == "latency_mean":
        if tb.latency_sum is None or not np.sum(tb.latency_n):
            return None
        return float(np.sum(tb.latency_sum) / np.sum(tb.latency_n))
    if tb.latencies is None or not tb.latencies.size:
        return None
    return nearest_rank(np.sort(tb.latencies), float(METRICS[metric][2][1:]) / 100)


def _have(tb: TimeBuckets, metric: str) -> tuple[float, float, str]:
    """(have, need, what) for the insufficiency rule of ``metric`` on one side."""
    stat = METRICS[metric][2]
    if stat not in (None, "mean"):
        return float(tb.latencies.size), float(min_samples(stat)), "latencies"
    if stat == "mean":
        return float(np.sum(tb.latency_n)), float(min_samples("mean")), "latencies"
    return tb.n_requests, float(MIN_EVENTS), "requests"


def _fmt_change(metric: str, x: float) -> str:
    if metric == "error_rate":
        return f"{x * 100:+.2f} pp".replace("-", "−")
    if x >= 9:                       # +900 % and more read better as a factor
        return f"×{1 + x:.3g}"
    return f"{x * 100:+.1f}%".replace("-", "−")


def _verdict(lo: float, hi: float, change: float, min_effect: float,
             higher_is_worse: bool) -> str:
    if not (lo > 0 or hi < 0) or abs(change) < min_effect:
        return SAME
    return WORSE if (change > 0) == higher_is_worse else BETTER


def compare_buckets(baseline: TimeBuckets, candidate: TimeBuckets, *,
                    metrics: Sequence[str] = tuple(METRICS), conf: float = 0.95,
                    min_effect: Mapping[str, float] | None = None, n_boot: int = 1000,
                    seed: int = 0, adjust: bool = True, block: int | None = None,
                    name: str | None = None) -> RegressionResult:
    """Compare two runs' :class:`TimeBuckets` metric by metric (module docstring).

    Returns a :class:`~capplan.models.regression.RegressionResult` whose comparisons are named
    by metric (``throughput``, ``latency_p95`` ...), ``ratio`` = candidate / baseline (the
    error rate's ``diff`` interval is the one judged).  ``min_effect`` overrides
    :data:`DEFAULT_MIN_EFFECT` per metric; ``block`` forces the block length.  A metric the data
    cannot support is "insufficient data" with the reason, never an exception.  Raises
    ValueError for an unknown metric, ``conf`` outside (0, 1) or ``n_boot < 200``.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric(s) {unknown}: use {', '.join(METRICS)}")
    if not 0 < conf < 1:
        raise ValueError(f"conf must be in (0, 1), got {conf!r}")
    if n_boot < 200:
        raise ValueError(f"n_boot must be at least 200, got {n_boot}")
    eff = {**DEFAULT_MIN_EFFECT, **(min_effect or {})}
    rng = np.random.default_rng(seed)
    sides = (baseline, candidate)
    blocks = [block or data_block_length(tb) for tb in sides]
    # degrees of freedom a side: independent runs - 1, or (one run) independent blocks - 1
    nus = [float(tb.n_runs - 1) if tb.n_runs > 1 else max(1.0, tb.k / b - 1)
           for tb, b in zip(sides, blocks)]
    # resampling R runs with replacement has variance (R - 1) / R of the runs' own: undo it
    fix = [tb.n_runs / (tb.n_runs - 1) if tb.n_runs > 1 else 1.0 for tb in sides]

    def se_t(rep_b: np.ndarray, rep_c: np.ndarray) -> tuple[float, float, float]:
        vb, vc = (f * float(np.var(r, ddof=1)) for f, r in zip(fix, (rep_b, rep_c)))
        den = (vb ** 2 / nus[0] if vb else 0.0) + (vc ** 2 / nus[1] if vc else 0.0)
        nu = (vb + vc) ** 2 / den if den > 0 else sum(nus)
        nu = min(max(1.0, nu), sum(nus))          # Welch-Satterthwaite
        return math.sqrt(vb + vc), float(special.stdtrit(nu, 1 - (1 - each) / 2)), nu

    judged = [m for m in metrics if all(_missing(tb, m) is None for tb in sides)]
    each = 1 - (1 - conf) / len(judged) if adjust and len(judged) > 1 else conf
    few = [tb.k for tb in sides if tb.k < MIN_BUCKETS]
    weights = [_side_weights(tb, n_boot, rng, block) if tb.k >= 2 else None for tb in sides]
    edges = mids = None
    if any(METRICS[m][2] not in (None, "mean") for m in judged):
        pooled = np.concatenate([tb.latencies for tb in sides])
        pos = pooled[pooled > 0]
        lo = float(pos.min()) if pos.size else 1e-6
        hi = float(pooled.max()) if pooled.size else lo
        nb = max(1, math.ceil(math.log(max(hi, lo * 1.0001) / lo) / math.log1p(_BIN_REL))) + 1
        edges = lo * (1 + _BIN_REL) ** np.arange(-1, nb + 1)
        edges[0] = 0.0
        mids = np.sqrt(edges[:-1] * edges[1:])
        mids[0] = lo
    wh = [w @ _hist(tb, edges) if edges is not None and w is not None else None
          for tb, w in zip(sides, weights)]
    runs = f"{baseline.n_runs}/{candidate.n_runs} runs, " if max(
        baseline.n_runs, candidate.n_runs) > 1 else ""
    method = (f"{'runs then ' if runs else ''}circular blocks of "
              f"{fmt_value(baseline.width_s, 'seconds')} buckets resampled ({runs}"
              f"{baseline.k}/{candidate.k} buckets), bootstrap SE with Welch t")
    out = []
    for metric in metrics:
        unit, hiw, stat = METRICS[metric]
        pb, pc = (point_value(tb, metric) for tb in sides)
        label = f"{name} {metric}" if name else metric

        def insufficient(why: str, n=(None, None), need=None) -> Comparison:
            return Comparison(statistic=metric, unit=unit, baseline=pb, current=pc, diff=None,
                              diff_lo=None, diff_hi=None, ratio=None, ratio_lo=None,
                              ratio_hi=None, n_baseline=n[0], n_current=n[1],
                              verdict=INSUFFICIENT, reason=f"{label}: {why}", method=method,
                              min_n=need, conf=each, min_effect=eff[metric],
                              higher_is_worse=hiw, name=name)

        miss = [(side, _missing(tb, metric)) for side, tb in zip(("baseline", "candidate"), sides)]
        miss = [f"{side} has {why}" for side, why in miss if why]
        if miss:
            out.append(insufficient("; ".join(miss)))
            continue
        (hb, need, what), (hc, _n, _w) = _have(baseline, metric), _have(candidate, metric)
        if few:
            out.append(insufficient(f"too few time buckets to judge a change (have "
                                    f"{baseline.k} and {candidate.k} of "
                                    f"{fmt_value(baseline.width_s, 'seconds')}, need at least "
                                    f"{MIN_BUCKETS} a side)", (hb, hc), MIN_BUCKETS))
            continue
        if hb < need or hc < need:
            out.append(insufficient(f"too few {what} to judge a change (have {fmt_count(hb)} "
                                    f"and {fmt_count(hc)}, need at least {fmt_count(need)} a "
                                    "side)", (hb, hc), need))
            continue
        reps = []
        for tb, w, h in zip(sides, weights, wh):
            if metric == "throughput":
                reps.append((w @ tb.requests) / (w @ tb.seconds))
            elif metric == "error_rate":
                with np.errstate(invalid="ignore", divide="ignore"):
                    reps.append((w @ tb.errors) / (w @ tb.requests))
            elif metric == "latency_mean":
                with np.errstate(invalid="ignore", divide="ignore"):
                    reps.append((w @ tb.latency_sum) / (w @ tb.latency_n))
            else:
                reps.append(_boot_quantile(h, float(stat[1:]) / 100, mids))
        rb, rc = reps
        if metric == "error_rate":
            d_hat = pc - pb
            eb, ec = float(np.sum(baseline.errors)), float(np.sum(candidate.errors))
            if eb == 0 and ec == 0:
                d_lo, d_hi = -3 / baseline.n_requests, 3 / candidate.n_requests
                note = "; no errors on either side: rule-of-three interval"
            else:
                okd = np.isfinite(rb) & np.isfinite(rc)
                se, tcrit, nu = se_t(rb[okd], rc[okd])
                d_lo, d_hi = d_hat - tcrit * se, d_hat + tcrit * se
                note = ""
            verdict = _verdict(d_lo, d_hi, d_hat, eff[metric], hiw)
            ratio = r_lo = r_hi = None
            change_txt = _fmt_change(metric, d_hat)
            ci_txt = f"{_fmt_change(metric, d_lo)} to {_fmt_change(metric, d_hi)}"
        else:
            ok = np.isfinite(rb) & np.isfinite(rc) & (rb > 0) & (rc > 0)
            if pb is None or pc is None or pb <= 0 or pc <= 0 or ok.mean() < 0.9:
                out.append(insufficient("the bootstrap could not resample a positive value on "
                                        "both sides (too few non-empty buckets)", (hb, hc), need))
                continue
            se, tcrit, nu = se_t(np.log(rb[ok]), np.log(rc[ok]))
            center = math.log(pc / pb)
            ratio, r_lo, r_hi = pc / pb, math.exp(center - tcrit * se), \
                math.exp(center + tcrit * se)
            d_hat, d_lo, d_hi = pc - pb, pb * (r_lo - 1), pb * (r_hi - 1)
            verdict = _verdict(r_lo - 1, r_hi - 1, ratio - 1, eff[metric], hiw)
            change_txt = _fmt_change(metric, ratio - 1)
            ci_txt = f"{_fmt_change(metric, r_lo - 1)} to {_fmt_change(metric, r_hi - 1)}"
            note = ""
        text = (f"{label} {fmt_value(pb, unit)} → {fmt_value(pc, unit)} ({change_txt}, "
                f"{round(each * 100, 2):g}% CI {ci_txt}; n={fmt_count(hb)} vs {fmt_count(hc)}"
                f"{note}): {verdict}")
        if verdict == SAME and (d_lo > 0 or d_hi < 0):
            text += (f" (below the {_fmt_change(metric, eff[metric]).lstrip('+')} minimum "
                     "practical effect)")
        out.append(Comparison(statistic=metric, unit=unit, baseline=pb, current=pc, diff=d_hat,
                              diff_lo=d_lo, diff_hi=d_hi, ratio=ratio, ratio_lo=r_lo,
                              ratio_hi=r_hi, n_baseline=hb, n_current=hc, verdict=verdict,
                              reason=text, method=method, min_n=need, conf=each,
                              min_effect=eff[metric], higher_is_worse=hiw, name=name))
    verdicts = [c.verdict for c in out]
    overall = next((v for v in (WORSE, BETTER, SAME) if v in verdicts), INSUFFICIENT)
    return RegressionResult(comparisons=tuple(out), verdict=overall,
                            n_baseline=int(baseline.n_requests),
                            n_current=int(candidate.n_requests), n_boot=n_boot, seed=seed,
                            conf=conf, min_effect=eff.get("throughput", 0.05), name=name)


def compare_bucket_means(baseline, candidate, *, unit: str, higher_is_worse: bool | None,
                         conf: float = 0.95, min_effect: float = 0.05, n_boot: int = 1000,
                         seed: int = 0, name: str | None = None) -> Comparison:
    """Mean of a time series in two windows, each given as its per-bucket values in time order
    (e.g. one mean per minute of a gauge): circular block bootstrap of the buckets, bootstrap
    SE of the log ratio (of the difference when a mean is not positive), t(min K / L - 1).

    ``higher_is_worse`` None: verdicts "increased" / "decreased".  Fewer than
    :data:`MIN_BUCKETS` finite buckets a side is "insufficient data".  Raises ValueError for
    ``conf`` outside (0, 1).
    """
    from capplan.models.regression import DOWN, UP

    if not 0 < conf < 1:
        raise ValueError(f"conf must be in (0, 1), got {conf!r}")
    b, c = (np.asarray(x, dtype=float) for x in (baseline, candidate))
    b, c = b[np.isfinite(b)], c[np.isfinite(c)]
    pb = float(b.mean()) if b.size else None
    pc = float(c.mean()) if c.size else None
    method = "circular block bootstrap of bucket means, bootstrap SE with t"
    label = name or "mean"
    if b.size < MIN_BUCKETS or c.size < MIN_BUCKETS:
        return Comparison(statistic="mean", unit=unit, baseline=pb, current=pc, diff=None,
                          diff_lo=None, diff_hi=None, ratio=None, ratio_lo=None, ratio_hi=None,
                          n_baseline=float(b.size), n_current=float(c.size),
                          verdict=INSUFFICIENT,
                          reason=f"{label}: too few buckets to judge a change (have {b.size} "
                                 f"and {c.size}, need at least {MIN_BUCKETS} a side)",
                          method=method, min_n=MIN_BUCKETS, conf=conf, min_effect=min_effect,
                          higher_is_worse=higher_is_worse, name=name)
    rng = np.random.default_rng(seed)
    lb, lc = block_length(b.size), block_length(c.size)
    wb, wc = _weights(b.size, n_boot, lb, rng), _weights(c.size, n_boot, lc, rng)
    mb, mc = wb @ b / b.size, wc @ c / c.size
    df = max(1.0, min(b.size / lb, c.size / lc) - 1)
    t = float(special.stdtrit(df, 1 - (1 - conf) / 2))
    ratio = r_lo = r_hi = None
    if pb > 0 and pc > 0 and (mb > 0).all() and (mc > 0).all():
        se = float(np.std(np.log(mc) - np.log(mb), ddof=1))
        center = math.log(pc / pb)
        ratio, r_lo, r_hi = pc / pb, math.exp(center - t * se), math.exp(center + t * se)
        d_lo, d_hi = pb * (r_lo - 1), pb * (r_hi - 1)
        change = ratio - 1
    else:
        se = float(np.std(mc - mb, ddof=1))
        d_lo, d_hi = pc - pb - t * se, pc - pb + t * se
        change = (pc - pb) / abs(pb) if pb else 0.0
    sig = d_lo > 0 or d_hi < 0
    if not sig or abs(change) < min_effect:
        verdict = SAME
    elif higher_is_worse is None:
        verdict = UP if change > 0 else DOWN
    else:
        verdict = WORSE if (change > 0) == higher_is_worse else BETTER
    ci = (f"{_fmt_change('', r_lo - 1)} to {_fmt_change('', r_hi - 1)}" if r_lo is not None
          else f"{fmt_value(d_lo, unit)} to {fmt_value(d_hi, unit)}")
    reason = (f"{label} {fmt_value(pb, unit)} → {fmt_value(pc, unit)} "
              f"({_fmt_change('', change)}, {round(conf * 100, 2):g}% CI {ci}; "
              f"{b.size} vs {c.size} buckets): {verdict}")
    return Comparison(statistic="mean", unit=unit, baseline=pb, current=pc, diff=pc - pb,
                      diff_lo=d_lo, diff_hi=d_hi, ratio=ratio, ratio_lo=r_lo, ratio_hi=r_hi,
                      n_baseline=float(b.size), n_current=float(c.size), verdict=verdict,
                      reason=reason, method=f"{method}({df:.0f})", min_n=MIN_BUCKETS, conf=conf,
                      min_effect=min_effect, higher_is_worse=higher_is_worse, name=name)


def compare_run_values(baseline: Sequence[float], candidate: Sequence[float], *, unit: str,
                       higher_is_worse: bool | None, conf: float = 0.95,
                       min_effect: float = 0.05, name: str | None = None) -> Comparison:
    """One statistic reported once per run (a summary: wrk's mean latency, pgbench's tps), for
    several independent runs a side: Welch's t interval on the log of the per-run values
    (ratio of geometric means; Welch-Satterthwaite degrees of freedom).  Fewer than two runs a
    side, or a non-positive value, is "insufficient data": one summary holds no variation.
    """
    from capplan.models.regression import DOWN, UP

    b = np.asarray([x for x in baseline if x is not None and np.isfinite(x)], dtype=float)
    c = np.asarray([x for x in candidate if x is not None and np.isfinite(x)], dtype=float)
    pb = float(np.exp(np.mean(np.log(b)))) if b.size and (b > 0).all() else (
        float(b.mean()) if b.size else None)
    pc = float(np.exp(np.mean(np.log(c)))) if c.size and (c > 0).all() else (
        float(c.mean()) if c.size else None)
    label = name or "value"
    method = "Welch t on log per-run values"
    if b.size < 2 or c.size < 2 or not (b > 0).all() or not (c > 0).all():
        why = ("one summary a side holds no run-to-run variation (give at least 2 runs a side)"
               if b.size < 2 or c.size < 2 else "a per-run value is not positive")
        return Comparison(statistic="value", unit=unit, baseline=pb, current=pc, diff=None,
                          diff_lo=None, diff_hi=None, ratio=None, ratio_lo=None, ratio_hi=None,
                          n_baseline=float(b.size), n_current=float(c.size),
                          verdict=INSUFFICIENT, reason=f"{label}: {why}", method=method,
                          min_n=2, conf=conf, min_effect=min_effect,
                          higher_is_worse=higher_is_worse, name=name)
    lb, lc = np.log(b), np.log(c)
    vb, vc = lb.var(ddof=1) / b.size, lc.var(ddof=1) / c.size
    se = math.sqrt(vb + vc)
    df = (vb + vc) ** 2 / ((vb ** 2 / (b.size - 1) if vb else 0) + (vc ** 2 / (c.size - 1)
                                                                     if vc else 0) or 1e-300)
    df = max(1.0, min(df, b.size + c.size - 2.0))
    t = float(special.stdtrit(df, 1 - (1 - conf) / 2))
    center = lc.mean() - lb.mean()
    ratio, r_lo, r_hi = math.exp(center), math.exp(center - t * se), math.exp(center + t * se)
    change = ratio - 1
    if not (r_lo > 1 or r_hi < 1) or abs(change) < min_effect:
        verdict = SAME
    elif higher_is_worse is None:
        verdict = UP if change > 0 else DOWN
    else:
        verdict = WORSE if (change > 0) == higher_is_worse else BETTER
    reason = (f"{label} {fmt_value(pb, unit)} → {fmt_value(pc, unit)} ({_fmt_change('', change)}, "
              f"{round(conf * 100, 2):g}% CI {_fmt_change('', r_lo - 1)} to "
              f"{_fmt_change('', r_hi - 1)}; {b.size} vs {c.size} runs): {verdict}")
    return Comparison(statistic="value", unit=unit, baseline=pb, current=pc, diff=pc - pb,
                      diff_lo=pb * (r_lo - 1), diff_hi=pb * (r_hi - 1), ratio=ratio,
                      ratio_lo=r_lo, ratio_hi=r_hi, n_baseline=float(b.size),
                      n_current=float(c.size), verdict=verdict, reason=reason,
                      method=f"{method} (df {df:.1f})", min_n=2, conf=conf,
                      min_effect=min_effect, higher_is_worse=higher_is_worse, name=name)
