"""Cost of one collection round: a Redis snapshot plus a PostgreSQL snapshot, back to back.

Target: median <= 20 ms on loopback with default collector params.  Reads the servers named
by REDIS_URL and the libpq variables (defaults redis://127.0.0.1:6379/0 and host=127.0.0.1
port=5432 user=postgres dbname=test); only reads, so it is safe against shared servers.
Prints figures; the last line is one JSON object ``{"snapshot_ms_median": ...}``.

    python bench/collect_cost.py [--rounds 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

from capplan.collect import create

TARGET_MS = 20.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=200)
    args = ap.parse_args()
    os.environ.setdefault("PGHOST", "127.0.0.1")
    os.environ.setdefault("PGUSER", "postgres")
    os.environ.setdefault("PGDATABASE", "test")
    redis_c = create("redis", name="bench")
    pg_c = create("postgres", name="bench")
    both, r_ms, p_ms, rows = [], [], [], 0
    try:
        for _ in range(5):   # connect and warm up
            redis_c.snapshot()
            pg_c.snapshot()
        for _ in range(args.rounds):
            t0 = time.perf_counter()
            a = redis_c.snapshot()
            t1 = time.perf_counter()
            b = pg_c.snapshot()
            t2 = time.perf_counter()
            r_ms.append((t1 - t0) * 1e3)
            p_ms.append((t2 - t1) * 1e3)
            both.append((t2 - t0) * 1e3)
            rows = len(a) + len(b)
    finally:
        redis_c.close()
        pg_c.close()

    def p95(xs):
        return sorted(xs)[int(0.95 * (len(xs) - 1))]

    med = statistics.median(both)
    print(f"rounds: {args.rounds}, samples per round: {rows}")
    print(f"redis snapshot   median {statistics.median(r_ms):7.2f} ms  p95 {p95(r_ms):7.2f} ms")
    print(f"postgres snapshot median {statistics.median(p_ms):7.2f} ms  p95 {p95(p_ms):7.2f} ms")
    print(f"redis + postgres median {med:7.2f} ms  p95 {p95(both):7.2f} ms  "
          f"(target <= {TARGET_MS:g} ms: {'met' if med <= TARGET_MS else 'NOT met'})")
    print(json.dumps({"snapshot_ms_median": round(med, 3), "snapshot_ms_p95": round(p95(both), 3),
                      "redis_ms_median": round(statistics.median(r_ms), 3),
                      "postgres_ms_median": round(statistics.median(p_ms), 3),
                      "samples_per_round": rows, "rounds": args.rounds,
                      "target_ms": TARGET_MS, "met": med <= TARGET_MS}))
    return 0 if med <= TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
