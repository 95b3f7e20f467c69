"""Cost of the HTTP probe's bounded requests, and how exactly a trickling server is cut off.

1. Wall time per request of ``HttpProbe`` against a loopback server that answers at once
   (target: median <= 2 ms per request: the deadline machinery must not inflate latencies).
2. A server trickling its body one byte every 0.5 s, probed with ``timeout_s`` 1, ``budget_s``
   2.5: how long the snapshot takes (target: <= budget_s + 0.1 s; it used to take as long as
   the server pleased).

Loopback only; bounded in requests and time.  Prints figures; the last line is one JSON object.

    python bench/http_probe_cost.py [--requests 300]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from httpservers import LocalServer, TricklingServer  # noqa: E402

from capplan.collect.http import HttpProbe  # noqa: E402

TARGET_MS = 2.0
OVERRUN_TARGET_S = 0.1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=300)
    args = ap.parse_args()
    fast = LocalServer({"/h": lambda _r: (200, {"Content-Type": "text/plain"}, b"ok\n")})
    try:
        probe = HttpProbe("bench", urls=[fast.url("/h")], requests_per_url=args.requests,
                          timeout_s=2, budget_s=120)
        probe.snapshot()   # warm-up
        per_req = []
        for _ in range(5):
            t = time.perf_counter()
            probe.snapshot()
            per_req.append((time.perf_counter() - t) / args.requests * 1e3)
    finally:
        fast.close()
    slow = TricklingServer(mode="body", gap_s=0.5, n_bytes=60)
    try:
        probe = HttpProbe("trickle", urls=[slow.url("/x")], requests_per_url=5, timeout_s=1.0,
                          budget_s=2.5)
        t = time.monotonic()
        probe.snapshot()
        trickle_s = time.monotonic() - t
    finally:
        slow.close()
    med = statistics.median(per_req)
    overrun = trickle_s - 2.5
    print(f"probe request    median {med:6.3f} ms  (5 snapshots x {args.requests} requests; "
          f"target <= {TARGET_MS:g} ms: {'met' if med <= TARGET_MS else 'NOT met'})")
    print(f"trickling server snapshot {trickle_s:6.3f} s for budget_s 2.5 (overrun "
          f"{overrun:+.3f} s; target <= {OVERRUN_TARGET_S:g} s: "
          f"{'met' if overrun <= OVERRUN_TARGET_S else 'NOT met'})")
    print(json.dumps({"request_ms_median": round(med, 3), "trickle_snapshot_s": round(trickle_s, 3),
                      "budget_overrun_s": round(overrun, 3), "target_ms": TARGET_MS,
                      "met": med <= TARGET_MS and overrun <= OVERRUN_TARGET_S}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
