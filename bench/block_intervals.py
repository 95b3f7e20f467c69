"""Coverage of ratio intervals on autocorrelated hourly data: Wilson (every lookup an independent
trial) against batch means over hourly blocks (capplan.models.blocks), and the cost of
evaluating the demo targets.

A "day" is 24 hourly blocks of ~400,000 lookups whose hourly hit ratio follows an AR(1) around a
true long-run ratio of 0.90 (sd 2 points, phi 0.3).  The interval should cover 0.90 about 95 % of
the time.  Prints figures and ends with ONE JSON object on the last line.

    .venv/bin/python bench/block_intervals.py
"""
from __future__ import annotations

import json
import time

import numpy as np

from capplan.core.rates import wilson_interval
from capplan.models.blocks import block_ratio


def main(trials: int = 2000, seed: int = 11) -> dict:
    rng = np.random.default_rng(seed)
    cover_w = cover_b = 0
    width_w, width_b = [], []
    for _ in range(trials):
        e = np.empty(24)
        e[0] = rng.normal(0, 0.02)
        for i in range(1, 24):
            e[i] = 0.3 * e[i - 1] + rng.normal(0, 0.02)
        t = rng.uniform(3e5, 5e5, 24).round()
        s = rng.binomial(t.astype(np.int64), np.clip(0.9 + e, 0, 1)).astype(float)
        lo, hi = wilson_interval(s.sum(), t.sum())
        cover_w += lo <= 0.9 <= hi
        width_w.append(hi - lo)
        b = block_ratio(s, t)
        cover_b += b.lo <= 0.9 <= b.hi
        width_b.append(b.hi - b.lo)
    res = {"trials": trials, "wilson_coverage": cover_w / trials,
           "blocks_coverage": cover_b / trials,
           "wilson_median_width_pts": float(np.median(width_w) * 100),
           "blocks_median_width_pts": float(np.median(width_b) * 100)}
    print(f"Wilson (lookups as trials): coverage {res['wilson_coverage']:.1%}, "
          f"median width {res['wilson_median_width_pts']:.3f} points")
    print(f"batch means (24 hourly blocks): coverage {res['blocks_coverage']:.1%}, "
          f"median width {res['blocks_median_width_pts']:.2f} points")
    res.update(_demo_targets())
    return res


def _demo_targets() -> dict:
    import tempfile
    from pathlib import Path

    import pandas as pd
    import yaml

    from capplan.analysis.summary import evaluate_targets
    from capplan.analysis.targets import parse_targets
    from capplan.collect.demo import generate_demo
    from capplan.store import open_store

    root = Path(__file__).resolve().parents[1]
    targets = parse_targets(yaml.safe_load((root / "params" / "demo.yaml").read_text())["targets"],
                            path="params/demo.yaml")
    with tempfile.TemporaryDirectory() as d, open_store(Path(d) / "m.sqlite") as st:
        st.append(generate_demo(days=90))
        ser = st.series()
        start, end = pd.Timestamp(ser["first"].min()), pd.Timestamp(ser["last"].max())
        t0 = time.perf_counter()
        fs = evaluate_targets(st, targets, start=start, end=end, baseline_days=7, current_days=7)
        dt = time.perf_counter() - t0
    print(f"demo targets (90 days, {len(fs)} targets): evaluated in {dt:.2f} s")
    return {"demo_targets_s": round(dt, 3), "demo_statuses": {f.label: f.status for f in fs}}


if __name__ == "__main__":
    print(json.dumps(main()))
