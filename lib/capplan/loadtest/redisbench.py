"""redis-benchmark ``--csv`` results, old and new formats.

* **New** (Redis 6.2+; verified on 7.0.15): a header row
  ``"test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms","p95_latency_ms",
  "p99_latency_ms","max_latency_ms"`` then one quoted row per test.  Columns are read by name.
* **Old** (before 6.2): no header, two columns ``"SET","265252.00"`` (test, requests per second);
  the latency columns are NaN.

The CSV says neither the number of clients (``-c``) nor of requests (``-n``): pass
``concurrency`` and ``requests`` (the sweep does).  Source: REFERENCE.md section 0 item 25.
"""

from __future__ import annotations

import csv
import io
import os

import pandas as pd

from capplan.errors import ParseError
from capplan.loadtest._io import (NAN, check_duration, csv_rows, number, read_text, run_id_for,
                                  to_utc)
from capplan.loadtest.points import file_start_time, make_points

__all__ = ["parse_redisbench_csv", "read_redisbench_csv"]

_NEW_REQUIRED = ("test", "rps")


def parse_redisbench_csv(text: str, *, path: str | os.PathLike = "<stdout>", run_id: str = "",
                         concurrency: float | None = None, requests: float | None = None,
                         started_at=None) -> pd.DataFrame:
    """Load points (one per test; ``scenario`` = test name) from redis-benchmark ``--csv`` text.

    throughput = rps; latencies ms → s; errors = 0 (redis-benchmark does not count them; a
    failing server aborts the run); duration_s = requests / rps when ``requests`` is given.
    Raises ParseError (file, line) on an empty, truncated or malformed file.
    """
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise ParseError("empty redis-benchmark output", path=str(path), line=1)
    rows = []
    try:
        first = next(csv.reader(io.StringIO(lines[0])), [])
    except csv.Error as exc:  # csv's messages name the problem, never the field's text
        raise ParseError(f"malformed CSV: {exc}", path=str(path), line=1) from exc
    if {"test", "rps"} <= {c.strip() for c in first}:
        for ln, r in csv_rows(text, path, required=_NEW_REQUIRED):
            rows.append((ln, r["test"], number(r["rps"], path=path, line=ln, what="rps"),
                         *[number(r.get(c), path=path, line=ln, what=c, allow_na=True)
                           if c in r else NAN
                           for c in ("avg_latency_ms", "p50_latency_ms", "p95_latency_ms",
                                     "p99_latency_ms")]))
    else:
        reader = csv.reader(io.StringIO(text))
        while True:
            try:
                r = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise ParseError(f"malformed CSV: {exc}", path=str(path),
                                 line=reader.line_num) from exc
            ln = reader.line_num
            if not r or all(not c.strip() for c in r):
                continue
            if len(r) != 2:
                raise ParseError(f"old-format redis-benchmark CSV row must have 2 fields (test, "
                                 f"rps), got {len(r)}", path=str(path), line=ln,
                                 hint="new-format files start with a '\"test\",\"rps\",...' "
                                 "header")
            rows.append((ln, r[0], number(r[1], path=path, line=ln, what="rps"),
                         NAN, NAN, NAN, NAN))
    if not rows:
        raise ParseError("no test rows after the header (truncated?)", path=str(path),
                         line=len(text.splitlines()))
    n = float(requests) if requests is not None else NAN
    for ln, _test, rps, *_rest in rows:
        check_duration(n / rps if rps > 0 else NAN, path=path, line=ln, what="requests / rps")
    return make_points([{
        "run_id": run_id, "tool": "redis-benchmark", "scenario": test,
        "concurrency": concurrency, "throughput_per_s": rps, "latency_mean_s": avg / 1e3,
        "latency_p50_s": p50 / 1e3, "latency_p95_s": p95 / 1e3, "latency_p99_s": p99 / 1e3,
        "errors": 0.0, "requests": n, "duration_s": n / rps if rps > 0 else NAN,
        "started_at": started_at,
    } for _ln, test, rps, avg, p50, p95, p99 in rows])


def read_redisbench_csv(path: str | os.PathLike, *, concurrency: float | None = None,
                        requests: float | None = None, run_id: str | None = None,
                        started_at=None) -> pd.DataFrame:
    """:func:`parse_redisbench_csv` on a file; ``started_at`` defaults to its mtime."""
    pts = parse_redisbench_csv(read_text(path), path=path, run_id=run_id or run_id_for(path),
                               concurrency=concurrency, requests=requests)
    if started_at is None:
        total = pts["duration_s"].sum(min_count=1)
        started_at = file_start_time(path, total if pd.notna(total) else None)
    pts["started_at"] = to_utc(started_at)
    return pts
