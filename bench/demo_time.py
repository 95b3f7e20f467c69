"""Wall time of the demo history: ``generate_demo()`` (90 days at 5 min, 22 series, validated).

Prints the median of 5 runs of the whole call, and of its parts (generation only, and
``validate_frame`` on the result), then one JSON object on the last line:
``{"generate_s", "generate_cpu_s", "validate_s", "validate_cpu_s", "rows", "series",
"target_s": 1.0}`` (seconds; wall and CPU time).
Usage: ``python bench/demo_time.py``.
"""

from __future__ import annotations

import json
import statistics
import time

from capplan.collect.demo import generate_demo
from capplan.core.frame import validate_frame

RUNS = 5


def _median(fn) -> tuple[float, float, object]:
    """Median wall and CPU seconds of ``RUNS`` calls (CPU time is less disturbed by a busy host)."""
    wall, cpu, out = [], [], None
    for _ in range(RUNS):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu), out


def main() -> None:
    generate_demo(days=1)                                   # warm imports and caches
    gen_s, gen_cpu, frame = _median(generate_demo)
    val_s, val_cpu, _ = _median(lambda: validate_frame(frame))
    n_series = frame.groupby(["source", "metric", "labels"]).ngroups
    print(f"generate_demo(): {gen_s:.3f} s wall, {gen_cpu:.3f} s CPU, median of {RUNS} "
          f"({len(frame)} rows, {n_series} series)")
    print(f"  of which validate_frame: {val_s:.3f} s wall, {val_cpu:.3f} s CPU")
    print(json.dumps({"generate_s": round(gen_s, 4), "generate_cpu_s": round(gen_cpu, 4),
                      "validate_s": round(val_s, 4), "validate_cpu_s": round(val_cpu, 4),
                      "rows": len(frame), "series": n_series, "target_s": 1.0}))


if __name__ == "__main__":
    main()
