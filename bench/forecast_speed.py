"""Forecast speed (issue 5, "Accuracy and speed").

1. Median wall time of ``fit_forecast`` (fit + selection backtest + forecast + calibrated
   intervals) *plus* ``time_to_limit`` at the last 14 days' peak (1,000 joint sample paths, first
   passages; issue 12) on 2,000-point hourly series, horizon 168 h, measured one at a time in this
   process over 200 series.
2. CPU time per series of ``fit_forecast`` and of ``fit_forecast`` + ``time_to_limit`` on the
   fleet bench's synthetic series (``bench/fleet_speed.py: make_series(i)``: 2,160 hourly points,
   bounds (0, None), limit 15 % above the peak, horizon 168 h), the target of issue 16 item 3
   (<= 20 ms for fit + runway, so that 10,000 series take <= 120 s on 2 cores); median over
   ``FLEET_SERIES`` series of the first run, and of the least of ``REPEATS`` runs of each series
   (what the code costs rather than what other users of a shared machine cost it).
3. Wall time of ``fit_many`` on 10,000 such series with 2 worker processes.

Series: 2,000-hour windows of the NAB real server metrics (``../shared/data/nab``, hourly means)
where long enough, otherwise synthetic server-like series (daily + weekly profile, trend, a level
step, spikes and a gap), seeded.  Usage: ``python bench/forecast_speed.py [N_SERIES]``.
The last line is one JSON object ``{"median_fit_ms": ..., "median_fit_cpu_ms": ...,
"series_10000_s": ..., "fit_ms_median": ..., "fit_runway_ms_median": ...,
"fit_runway_ms_median_least_of_3": ..., "load_1min": ...}``
(CPU time: the figure that does not depend on other users' load; ``fit_*_ms_median`` are part 2).
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from capplan.models.growth import fit_forecast, fit_many, time_to_limit
from capplan.collect.files import read_series_csv

N_POINTS = 2000
HORIZON = 168
FLEET_SERIES = 100
REPEATS = 3     # runs per fleet series (the key names say "least_of_3")


def synthetic(i: int) -> pd.Series:
    rng = np.random.default_rng(i)
    t = np.arange(N_POINTS)
    y = (100 + rng.uniform(-50, 50) + rng.uniform(0, 0.05) * t
         + rng.uniform(0, 20) * np.sin(2 * np.pi * t / 24)
         + rng.uniform(0, 10) * np.sin(2 * np.pi * t / 168)
         + rng.normal(0, rng.uniform(1, 5), N_POINTS))
    k = rng.integers(200, N_POINTS - 50)
    y[k:] += rng.uniform(-30, 30)
    spikes = rng.integers(0, N_POINTS, 10)
    y[spikes] += rng.uniform(20, 80, 10)
    g = rng.integers(0, N_POINTS - 30)
    y[g:g + rng.integers(1, 30)] = np.nan
    idx = pd.date_range("2024-01-01", periods=N_POINTS, freq="1h", tz="UTC")
    return pd.Series(y, index=idx, name=f"synthetic_{i}")


def real_windows() -> list[pd.Series]:
    root = Path(__file__).resolve().parents[1]
    out = []
    for f in sorted((root.parent / "shared" / "data" / "nab").glob("*.csv")):
        y = read_series_csv(f).resample("1h").mean()
        for start in range(0, len(y) - N_POINTS + 1, 500):
            out.append(y.iloc[start:start + N_POINTS].rename(f"{f.stem}@{start}"))
    return out


def fleet_cpu_ms() -> dict:
    """Median CPU ms per fleet series of fit_forecast and of fit_forecast + time_to_limit: first
    run, and least of REPEATS runs."""
    from fleet_speed import make_series

    runs = []                                   # (series, repeat, [fit, fit + runway])
    for i in range(FLEET_SERIES):
        y = make_series(i)
        limit = float(y.max()) * 1.15
        per = []
        for _ in range(REPEATS):
            c0 = time.process_time()
            fc = fit_forecast(y, horizon=HORIZON, bounds=(0, None))
            c1 = time.process_time()
            time_to_limit(fc, limit)
            c2 = time.process_time()
            per.append([c1 - c0, c2 - c0])
        runs.append(per)
    a = 1000 * np.array(runs)
    return {"fit_ms_median": float(np.median(a[:, 0, 0])),
            "fit_runway_ms_median": float(np.median(a[:, 0, 1])),
            "fit_ms_median_least_of_3": float(np.median(a[:, :, 0].min(axis=1))),
            "fit_runway_ms_median_least_of_3": float(np.median(a[:, :, 1].min(axis=1)))}


def main(argv: list[str]) -> int:
    n_many = int(argv[1]) if len(argv) > 1 else 10_000
    pool = real_windows()
    pool += [synthetic(i) for i in range(max(0, 200 - len(pool)))]
    fit_forecast(pool[0], horizon=HORIZON)          # warm-up (imports, caches)
    times, cpu = [], []
    for y in pool[:200]:
        limit = float(np.nanmax(y.to_numpy()[-14 * 24:]))
        t0, c0 = time.perf_counter(), time.process_time()
        time_to_limit(fit_forecast(y, horizon=HORIZON), limit)
        times.append(1000 * (time.perf_counter() - t0))
        cpu.append(1000 * (time.process_time() - c0))
    times = np.array(times)
    load0 = os.getloadavg()[0]
    fleet = fleet_cpu_ms()
    print(f"fleet series ({FLEET_SERIES} x 2,160 hourly points, bounds (0, None), horizon {HORIZON}), "
          f"CPU per series, median over the series: fit_forecast {fleet['fit_ms_median']:.1f} ms, "
          f"fit_forecast + time_to_limit {fleet['fit_runway_ms_median']:.1f} ms (least of {REPEATS} "
          f"runs: {fleet['fit_ms_median_least_of_3']:.1f} / "
          f"{fleet['fit_runway_ms_median_least_of_3']:.1f} ms); target <= 20 ms for fit + runway; "
          f"load average {load0:.1f} -> {os.getloadavg()[0]:.1f} on {os.cpu_count()} cpus")
    print(f"single-series fit+forecast+intervals+runway, {N_POINTS} hourly points, horizon {HORIZON}: "
          f"median {np.median(times):.1f} ms, p90 {np.percentile(times, 90):.1f} ms, "
          f"max {times.max():.1f} ms over {times.size} series ({len(real_windows())} real windows); "
          f"CPU time median {np.median(cpu):.1f} ms (wall time is inflated when the machine is "
          f"shared: load average {os.getloadavg()[0]:.1f})")
    series = {i: pool[i % len(pool)] if i % 2 else synthetic(i) for i in range(n_many)}
    cpu0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    out = fit_many(series, processes=2, horizon=HORIZON)
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    child_cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    errors = sum(1 for v in out.values() if isinstance(v, Exception))
    print(f"fit_many: {n_many} series on 2 processes in {wall:.1f} s "
          f"({errors} typed errors); load average {os.getloadavg()[0]:.2f} on "
          f"{os.cpu_count()} cpus")
    print(f"worker CPU time {child_cpu:.1f} s: on 2 otherwise idle cores the run would take about "
          f"{child_cpu / 2:.1f} s (other users' load inflates the wall time above)")
    if n_many != 10_000:
        print(f"note: {n_many} series measured, series_10000_s extrapolated linearly")
    print(json.dumps({"median_fit_ms": round(float(np.median(times)), 2),
                      "median_fit_cpu_ms": round(float(np.median(cpu)), 2),
                      "series_10000_s": round(wall * 10_000 / n_many, 1),
                      **{k: round(v, 2) for k, v in fleet.items()},
                      "load_1min": round(load0, 2)}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
