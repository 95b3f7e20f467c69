"""Fleet speed and memory on Dask (issue 7 and issue 16 item 3, "Must show").

1. The speed-up from one worker to two on ``--small`` series (default 1,000).
2. ``--series`` hourly 90-day series (2,160 points; default 10,000) through a LocalCluster of 2
   worker processes (1 thread each): :func:`capplan.runner.fleet_series.fit_series_fleet`, i.e.
   ``fit_forecast`` + ``time_to_limit`` (horizon 168 h) per series, ``--chunk`` series per task
   (default 100), at most 2 chunks per worker in flight, rows streamed to ``series.csv``.
3. Peak RSS (client process and the largest worker) for ``--rss-series`` series (default
   100,000; the same path).  Memory is bounded by the chunk: compare it with the peak of run 2.

Series are synthetic server-like metrics generated *on the worker* from (seed, index): level,
linear growth of random sign, daily and weekly profile, AR(1) noise, a level step in a third of
them and a gap in a tenth.  Cluster start-up and worker warm-up (imports) are not timed.

The fits are the per-series model (not vectorised across series: see docs/fleet.md).  The machine
is shared: the load average before and after each run is printed and put in the JSON; a speed-up
below 2 on a loaded machine says as much about the load as about the code.

Usage: ``python bench/fleet_speed.py [--series N] [--small N] [--rss-series N] [--chunk N]``
(``--rss-series 0`` skips part 3).  Targets: ``fleet_10000_s`` <= 120, ``speedup_1_to_2`` >= 1.6
on an idle machine.  The last line is one JSON object with ``fleet_10000_s``, ``speedup_1_to_2``,
``peak_rss_mb`` (and the load averages, the series counts and the per-process peaks).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import tempfile

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


def load_synthetic(keys: list, seed: int = SEED) -> dict:
    """The ``load`` of fit_series_fleet: series ``i`` and a limit 15 % above its peak."""
    out = {}
    for i in keys:
        y = make_series(i, seed)
        out[i] = (y, float(y.max()) * 1.15)
    return out


def _load() -> float:
    return os.getloadavg()[0]


def run(n_series: int, chunk: int, workers: int, out_dir: str) -> dict:
    from capplan.runner.fleet import dask_client
    from capplan.runner.fleet_series import fit_series_fleet

    with dask_client("", workers=workers) as client:
        # warm-up: import capplan and numpy on every worker before the clock starts
        client.run(lambda: __import__("capplan.models.growth"))
        load0 = _load()
        res = fit_series_fleet(client, functools.partial(load_synthetic, seed=SEED),
                               range(n_series), out_dir=out_dir, chunk=chunk, horizon=HORIZON,
                               progress=sys.stderr.isatty())
    res["load_before"], res["load_after"] = round(load0, 2), round(_load(), 2)
    with open(os.path.join(out_dir, "series.csv"), encoding="utf-8") as fh:
        rows = sum(1 for _ in fh) - 1
    assert rows == n_series == res["series"], (rows, n_series, res["series"])
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--series", type=int, default=10_000)
    ap.add_argument("--small", type=int, default=1_000)
    ap.add_argument("--rss-series", type=int, default=100_000)
    ap.add_argument("--chunk", type=int, default=100)
    a = ap.parse_args()
    print(f"cores: {os.cpu_count()}; {N_POINTS} hourly points per series, horizon {HORIZON} h, "
          f"{a.chunk} series per task; /proc/loadavg before start: "
          f"{open('/proc/loadavg').read().strip()} (shared machine: other processes on these "
          "cores lower the speed-up)", flush=True)
    tmp = tempfile.mkdtemp(prefix="capplan-fleet-bench-")
    r1 = run(a.small, a.chunk, 1, os.path.join(tmp, "small-1"))
    print(f"{a.small} series, 1 worker : {r1['wall_s']:7.1f} s  ({r1['counts']}; load "
          f"{r1['load_before']} -> {r1['load_after']})", flush=True)
    r2 = run(a.small, a.chunk, 2, os.path.join(tmp, "small-2"))
    speedup = r1["wall_s"] / r2["wall_s"]
    print(f"{a.small} series, 2 workers: {r2['wall_s']:7.1f} s  speed-up {speedup:.2f}x (load "
          f"{r2['load_before']} -> {r2['load_after']}; peak RSS client "
          f"{r2['client_peak_rss_mb']} MiB, largest worker {r2['worker_peak_rss_mb']} MiB)",
          flush=True)
    rb = run(a.series, a.chunk, 2, os.path.join(tmp, "big"))
    print(f"{a.series} series, 2 workers: {rb['wall_s']:7.1f} s  ({rb['counts']}; "
          f"{rb['cpu_s']:.0f} CPU-s in fits, {1000 * rb['cpu_s'] / max(rb['series'], 1):.1f} ms "
          f"per series; peak RSS client {rb['client_peak_rss_mb']} MiB, worker "
          f"{rb['worker_peak_rss_mb']} MiB; load {rb['load_before']} -> {rb['load_after']})",
          flush=True)
    rr = None
    if a.rss_series:
        rr = run(a.rss_series, a.chunk, 2, os.path.join(tmp, "rss"))
        print(f"{a.rss_series} series, 2 workers: {rr['wall_s']:7.1f} s; peak RSS client "
              f"{rr['client_peak_rss_mb']} MiB, largest worker {rr['worker_peak_rss_mb']} MiB "
              f"(load {rr['load_before']} -> {rr['load_after']})", flush=True)
    print(f"/proc/loadavg at the end: {open('/proc/loadavg').read().strip()}; rows in {tmp}")
    if a.series == 10_000:
        print(f"target: 10,000 series <= 120 s -> {'met' if rb['wall_s'] <= 120 else 'MISSED'}")
    peak = rr or rb
    print(json.dumps({
        "fleet_10000_s": round(rb["wall_s"], 1) if a.series == 10_000 else None,
        "speedup_1_to_2": round(speedup, 2),
        "peak_rss_mb": round(max(peak["client_peak_rss_mb"], peak["worker_peak_rss_mb"]), 1),
        "peak_rss_series": peak["series"],
        "client_peak_rss_mb": peak["client_peak_rss_mb"],
        "worker_peak_rss_mb": peak["worker_peak_rss_mb"],
        "series": a.series, "series_s": round(rb["wall_s"], 1),
        "series_per_s": round(a.series / rb["wall_s"], 1),
        "ms_cpu_per_series": round(1000 * rb["cpu_s"] / max(rb["series"], 1), 1),
        "small": a.small, "chunk": a.chunk,
        "load_1min": [r1["load_before"], r2["load_before"], rb["load_before"],
                      rr["load_before"] if rr else None]}))


if __name__ == "__main__":
    main()
