"""Fleet speed on Dask (issue 7, "Must show").

1. Growth fits (``fit_forecast`` + ``time_to_limit``, horizon 168 h) for 10,000 hourly series of
   90 days (2,160 points) through a Dask LocalCluster of 2 worker processes (1 thread each), the
   same client code as ``capplan fleet`` (:func:`capplan.runner.fleet.dask_client`,
   :func:`capplan.runner.fleet.map_tasks`).  Series are batched 100 per task: per-series tasks would
   spend more time in scheduler overhead than in fitting.
2. The speed-up from one worker to two on a 1,000-series subset (same chunks).

Series are synthetic server-like metrics generated *on the worker* from (seed, index), so the
benchmark measures fitting and scheduling, not shipping 170 MB of input over the network:
level, linear growth of random sign, daily and weekly profile, AR(1) noise, a level step in a
third of them and a gap in a tenth.  Cluster start-up and worker warm-up (imports) are not timed.

Usage: ``python bench/fleet_speed.py [N_SERIES] [CHUNK]``.  Target: <= 300 s for 10,000 on 2 cores.
The last line is one JSON object ``{"fleet_10000_s": ..., "speedup_1_to_2": ...}``.
"""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import pandas as pd
from scipy.signal import lfilter

N_POINTS = 90 * 24
HORIZON = 168
SEED = 20261123


def make_series(i: int, seed: int = SEED) -> pd.Series:
    """Synthetic hourly server metric number ``i`` (deterministic)."""
    rng = np.random.default_rng([seed, i])
    t = np.arange(N_POINTS)
    level = rng.uniform(50, 500)
    trend = rng.normal(0, 0.15) * level / N_POINTS
    day = level * rng.uniform(0.05, 0.3) * np.sin(2 * np.pi * (t - rng.uniform(0, 24)) / 24)
    week = np.where((t // 24) % 7 >= 5, -level * rng.uniform(0, 0.2), 0.0)
    noise = lfilter([1.0], [1.0, -0.7], rng.normal(0, level * 0.02, N_POINTS))   # AR(1)
    y = level + trend * t + day + week + noise
    if i % 3 == 0:
        y[rng.integers(N_POINTS // 3, N_POINTS - 200):] += level * rng.uniform(-0.1, 0.2)
    if i % 10 == 0:
        g = rng.integers(100, N_POINTS - 100)
        y[g:g + 12] = np.nan
    idx = pd.date_range("2026-08-03", periods=N_POINTS, freq="h", tz="UTC")
    return pd.Series(np.maximum(y, 0), index=idx, name=f"s{i}")


def fit_chunk(bounds: tuple[int, int]) -> dict:
    """Fit series ``[lo, hi)`` on a worker; returns counts and the slowest fit (small result)."""
    from capplan.errors import CapplanError
    from capplan.models.growth import fit_many, time_to_limit

    lo, hi = bounds
    series = {i: make_series(i) for i in range(lo, hi)}
    t0 = time.process_time()
    fits = fit_many(series, processes=1, horizon=HORIZON, grain="1h", bounds=(0, None))
    out = {"n": 0, "errors": 0, "crosses": 0, "cpu_s": 0.0}
    for i, fc in fits.items():
        if isinstance(fc, CapplanError):
            out["errors"] += 1
            continue
        rw = time_to_limit(fc, float(series[i].max()) * 1.15)
        out["n"] += 1
        out["crosses"] += rw.status == "crosses"
    out["cpu_s"] = time.process_time() - t0
    return out


def run(n_series: int, chunk: int, workers: int, progress: bool = True) -> tuple[float, dict]:
    from capplan.runner.fleet import dask_client, map_tasks

    chunks = [(lo, min(lo + chunk, n_series)) for lo in range(0, n_series, chunk)]
    with dask_client("", workers=workers) as client:
        # warm-up: import capplan and numpy on every worker before the clock starts
        client.run(lambda: __import__("capplan.models.growth"))
        t0 = time.perf_counter()
        res = map_tasks(client, fit_chunk, chunks, progress=progress,
                        desc=f"{n_series} series, {workers} worker(s)")
        wall = time.perf_counter() - t0
    total = {k: sum(r[k] for r in res) for k in res[0]}
    return wall, total


def main() -> None:
    n_big = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    chunk = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    n_small = min(1_000, n_big)
    print(f"cores: {os.cpu_count()}; {N_POINTS} hourly points per series, horizon {HORIZON} h, "
          f"{chunk} series per task; load average before start {os.getloadavg()[0]:.2f} "
          "(other processes on these cores lower the speed-up)", flush=True)
    w1, t1 = run(n_small, chunk, 1)
    print(f"{n_small} series, 1 worker : {w1:7.1f} s  ({t1['n']} fitted, {t1['errors']} refused)",
          flush=True)
    w2, t2 = run(n_small, chunk, 2)
    print(f"{n_small} series, 2 workers: {w2:7.1f} s  speed-up {w1 / w2:.2f}x", flush=True)
    wb, tb = run(n_big, chunk, 2)
    print(f"{n_big} series, 2 workers: {wb:7.1f} s  ({tb['n']} fitted, {tb['errors']} refused, "
          f"{tb['crosses']} crossing a limit 15% above their peak; {tb['cpu_s']:.0f} CPU-s in fits, "
          f"{1000 * tb['cpu_s'] / max(tb['n'], 1):.1f} ms per series)", flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    print(f"target: 10,000 series <= 300 s -> {'met' if wb <= 300 or n_big != 10_000 else 'MISSED'}")
    print(json.dumps({"fleet_10000_s": round(wb, 1) if n_big == 10_000 else None,
                      "speedup_1_to_2": round(w1 / w2, 2), "series": n_big, "chunk": chunk,
                      "series_per_s": round(n_big / wb, 1)}))


if __name__ == "__main__":
    main()
