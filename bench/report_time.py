"""How long the demo report takes, against the floor of a bare papermill run.

Runs ``params/demo.yaml`` through :func:`capplan.runner.run.run_report` three times (median), and a
one-cell notebook through papermill three times (the floor: kernel start + one cell + save).
Prints per-notebook medians and their ratio to the floor; the last line is one JSON object
``{"total_s", "floor_s", "max_ratio_per_notebook", ...}``.
Targets (issue 2): total <= 40 s after set-up, every notebook <= 4x the floor.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import papermill as pm

from capplan.runner.run import run_report

ROOT = Path(__file__).resolve().parents[1]
REPEATS = 3


def floor_once(tmp: Path) -> float:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    src = tmp / "floor.ipynb"
    nbformat.write(nb, src)
    t0 = time.perf_counter()
    pm.execute_notebook(str(src), str(tmp / "floor-out.ipynb"), kernel_name="python3",
                        progress_bar=False)
    return time.perf_counter() - t0


def main() -> int:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        floor_once(tmp)  # warm the file cache
        floors = [floor_once(tmp) for _ in range(REPEATS)]
        totals, per_nb = [], {}
        for i in range(REPEATS):
            t0 = time.perf_counter()
            res = run_report(ROOT / "params" / "demo.yaml", outputs=tmp / "out")
            totals.append(time.perf_counter() - t0)
            if res.status != "ok":
                print(f"run {i} failed: {res.notebooks}", file=sys.stderr)
                return 1
            for nb in res.notebooks:
                per_nb.setdefault(nb["notebook"], []).append(nb["duration_s"])
    floor = statistics.median(floors)
    total = statistics.median(totals)
    print(f"floor (one-cell notebook via papermill): {floor:6.2f} s  runs: "
          + ", ".join(f"{x:.2f}" for x in floors))
    ratios = {}
    for name, xs in per_nb.items():
        m = statistics.median(xs)
        ratios[name] = m / floor
        print(f"{name:<20} median {m:6.2f} s  ({m / floor:4.2f} x floor)  runs: "
              + ", ".join(f"{x:.2f}" for x in xs))
    print(f"total (capplan run params/demo.yaml): median {total:6.2f} s  runs: "
          + ", ".join(f"{x:.2f}" for x in totals))
    print(json.dumps({"total_s": round(total, 2), "floor_s": round(floor, 2),
                      "max_ratio_per_notebook": round(max(ratios.values()), 2),
                      "per_notebook_s": {k: round(statistics.median(v), 2) for k, v in per_nb.items()}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
