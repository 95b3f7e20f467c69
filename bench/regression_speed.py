"""Speed and calibration of regression detection (:mod:`capplan.models.regression`).

Measures, on log-normal latencies (median 100 ms):
  * median wall time of ``compare_samples`` (p50, p95, p99, mean; 2,000 bootstrap replicates)
    for 1,000, 10,000 and 1,000,000 samples a side;
  * the false-alarm rate on identical distributions (any statistic judged worse/better) over
    200 pairs of 2,000 samples, and the detection rate of a x1.1 shift over 200 pairs.

Targets (checked here, never in tests): compare_samples on 1,000,000 samples a side <= 1 s;
false alarms <= 5 % (the Bonferroni-adjusted family level).  Ends with ONE JSON line:
``{"median_ms_1k": ..., "median_ms_10k": ..., "median_ms_1m": ..., "false_alarm_rate": ...,
"power_x1_1": ...}``.

Usage: ``python bench/regression_speed.py``
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import numpy as np

from capplan.models.regression import compare_samples


def latencies(n: int, rng: np.random.Generator, scale: float = 1.0) -> np.ndarray:
    return rng.lognormal(np.log(0.1), 0.6, n) * scale


def timed(n: int, repeats: int) -> float:
    rng = np.random.default_rng(n)
    b, c = latencies(n, rng), latencies(n, rng, 1.05)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        compare_samples(b, c)
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def rate(scale: float, pairs: int = 200, n: int = 2000) -> float:
    rng = np.random.default_rng(42)
    hits = 0
    for s in range(pairs):
        r = compare_samples(latencies(n, rng), latencies(n, rng, scale), seed=s, n_boot=1000)
        hits += r.verdict in ("worse", "better")
    return hits / pairs


def main() -> int:
    out = {"median_ms_1k": round(timed(1_000, 15), 2),
           "median_ms_10k": round(timed(10_000, 15), 2),
           "median_ms_1m": round(timed(1_000_000, 3), 1)}
    for k, v in out.items():
        print(f"{k:>16}: {v} ms")
    out["false_alarm_rate"] = rate(1.0)
    out["power_x1_1"] = rate(1.1)
    print(f"false alarms on identical distributions: {out['false_alarm_rate']:.1%} (target <= 5%)")
    print(f"detection of a x1.1 latency shift (n=2,000 a side): {out['power_x1_1']:.1%}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
