"""Speed of the USL fit: 1,000 fits of 12-point datasets WITH intervals (fit_usl defaults:
coefficient standard errors and t intervals, profile-likelihood intervals of N*, X(N*) and
lambda/sigma).  Target: <= 10 s on 2 cores.  Fits are split over ``--processes`` worker
processes (default 2, one per core); the wall time of the whole batch is reported, together with
the CPU time per fit measured in one process.

Usage: python bench/usl_speed.py [--fits 1000] [--seed 1] [--processes 2]
Last line: one JSON object {"fits_1000_s": ..., ...}.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import time

import numpy as np

from capplan.errors import CapplanError
from capplan.models.usl import fit_usl

LEVELS = np.array([1, 2, 4, 8, 12, 16, 24, 32, 48, 64, 96, 128], dtype=float)


def datasets(count: int, seed: int):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        sigma = rng.uniform(0.005, 0.1)
        kappa = 10 ** rng.uniform(-5, -3)
        lam = 10 ** rng.uniform(1, 3.5)
        x = lam * LEVELS / (1 + sigma * (LEVELS - 1) + kappa * LEVELS * (LEVELS - 1))
        yield LEVELS, x * rng.normal(1.0, 0.03, LEVELS.size)


def fit_batch(batch) -> tuple[int, list[float]]:
    """Fit every dataset of ``batch``; returns (failures, per-fit CPU seconds)."""
    failures, cpu = 0, []
    for n, x in batch:
        t = time.process_time()
        try:
            fit_usl(n, x)
        except CapplanError:
            failures += 1
        cpu.append(time.process_time() - t)
    return failures, cpu


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fits", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--processes", type=int, default=2)
    args = ap.parse_args()
    data = list(datasets(args.fits, args.seed))
    fit_usl(*data[0])  # warm-up (imports, caches) before forking
    batches = [data[i::args.processes] for i in range(args.processes)]
    t0 = time.perf_counter()
    if args.processes > 1:
        with multiprocessing.get_context("fork").Pool(args.processes) as pool:
            results = pool.map(fit_batch, batches)
    else:
        results = [fit_batch(batches[0])]
    wall = time.perf_counter() - t0
    failures = sum(r[0] for r in results)
    cpu_ms = np.concatenate([r[1] for r in results]) * 1e3
    scale = 1000 / args.fits
    print(f"{args.fits} fits of {LEVELS.size}-point datasets with intervals in {args.processes} "
          f"process(es): {wall:.2f} s wall; CPU per fit median {np.median(cpu_ms):.2f} ms, "
          f"p95 {np.percentile(cpu_ms, 95):.2f} ms, total {cpu_ms.sum() / 1e3:.2f} s; "
          f"failures {failures}; cpus available {len(os.sched_getaffinity(0))}, "
          f"load average {os.getloadavg()[0]:.1f}")
    print(json.dumps({"fits_1000_s": round(wall * scale, 3), "fits": args.fits,
                      "points_per_fit": int(LEVELS.size), "processes": args.processes,
                      "cpu_s_per_1000_fits": round(float(cpu_ms.sum()) / 1e3 * scale, 3),
                      "failures": failures, "target_s": 10.0}))


if __name__ == "__main__":
    main()
