"""How long the fuzz suite (tests/test_fuzz_*.py) takes and how many cases it runs (issue 10:
">= 5,000 generated cases per run, within 90 s in make test").

Runs the three fuzz modules in one pytest process, as `make test` does, and reads the case
counts they write to the terminal.  Prints the figures, then ONE JSON object on the last line.
Wall time depends on what else the machine runs; CPU time (user + system of the pytest
process) is the figure to compare between runs.

    .venv/bin/python bench/fuzz_suite.py
"""

from __future__ import annotations

import json
import re
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MODULES = ["tests/test_fuzz_cli.py", "tests/test_fuzz_loadtest.py", "tests/test_fuzz_usl.py"]
TARGET_S = 90.0
TARGET_CASES = 5000


def main() -> int:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "-W", "ignore", *MODULES], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    counts = {m.group(1): int(m.group(2)) for m in
              re.finditer(r"^(.+?): (\d+) generated cases, 0 tracebacks", res.stdout, re.M)}
    tail = res.stdout.strip().splitlines()[-1] if res.stdout.strip() else res.stderr[-300:]
    total = counts.get("fuzz suite total", 0) + counts.get("USL model fuzz", 0)
    for k, v in counts.items():
        print(f"{k}: {v} cases")
    print(f"pytest: {tail}")
    print(f"wall {wall:.1f} s, CPU {cpu:.1f} s (target: {TARGET_S:.0f} s), "
          f"{total} cases (target: >= {TARGET_CASES})")
    ok = res.returncode == 0 and total >= TARGET_CASES
    print(json.dumps({"bench": "fuzz_suite", "wall_s": round(wall, 1), "cpu_s": round(cpu, 1),
                      "cases": total, "counts": counts, "pytest_exit": res.returncode,
                      "target_s": TARGET_S, "target_cases": TARGET_CASES,
                      "within_target": ok and cpu <= TARGET_S}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
