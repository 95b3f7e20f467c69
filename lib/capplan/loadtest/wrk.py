"""wrk's human-readable report (wrk 4.x) as one load point.

wrk prints values with unit suffixes (time ``us``/``ms``/``s``/``m``/``h``, counts ``k``/``M``/
``G``, sizes ``KB``/``MB``/``GB``).  The ``Socket errors:`` and ``Non-2xx or 3xx responses:``
lines appear only when their counts are non-zero, and ``Latency Distribution`` (50/75/90/99 %)
only with ``--latency``, so p95 is always NaN.  wrk is closed-loop: its latencies suffer from
coordinated omission.  Source: wg/wrk README and ``src/wrk.c``; REFERENCE.md section 0 item 26.
"""

from __future__ import annotations

import os
import re

import pandas as pd

from capplan.errors import ParseError
from capplan.loadtest._io import NAN, check_duration, number, read_text, run_id_for, to_utc
from capplan.loadtest.points import file_start_time, make_points

__all__ = ["parse_wrk", "read_wrk", "wrk_time_s", "wrk_count"]

_TIME = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
_COUNT = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9}
_TIME_RE = re.compile(r"^(?P<v>[\d.]+)(?P<u>us|ms|s|m|h)$")
_COUNT_RE = re.compile(r"^(?P<v>[\d.]+)(?P<u>[kMG]?)$")


def wrk_time_s(text: str, *, path="<wrk>", line: int | None = None) -> float:
    """A wrk time such as ``783.00us``, ``1.33ms``, ``2.10s`` or ``1.00m`` in seconds."""
    m = _TIME_RE.match(text.strip())
    if not m:
        raise ParseError("expected a wrk time like '1.33ms'", path=str(path), line=line)
    return number(m.group("v"), path=path, line=line, what="wrk time") * _TIME[m.group("u")]


def wrk_count(text: str, *, path="<wrk>", line: int | None = None) -> float:
    """A wrk count such as ``4.12k`` or ``86.22`` as a float."""
    m = _COUNT_RE.match(text.strip())
    if not m:
        raise ParseError("expected a wrk count like '4.12k'", path=str(path), line=line)
    return number(m.group("v"), path=path, line=line, what="wrk count") * _COUNT[m.group("u")]


_RUNNING = re.compile(r"^Running (?P<d>\S+) test @ (?P<url>\S+)")
_THREADS = re.compile(r"^(?P<t>\d+) threads and (?P<c>\d+) connections$")
_LAT = re.compile(r"^Latency\s+(?P<avg>\S+)\s+(?P<sd>\S+)\s+(?P<max>\S+)\s+(?P<pm>\S+)$")
_DIST = re.compile(r"^(?P<p>\d+(?:\.\d+)?)%\s+(?P<v>\S+)$")
_REQS = re.compile(r"^(?P<n>\d+) requests in (?P<d>\S+), (?P<bytes>\S+) read$")
_SOCK = re.compile(r"^Socket errors: connect (?P<c>\d+), read (?P<r>\d+), write (?P<w>\d+), "
                   r"timeout (?P<t>\d+)$")
_NON2XX = re.compile(r"^Non-2xx or 3xx responses: (?P<n>\d+)$")
_RPS = re.compile(r"^Requests/sec:\s+(?P<v>\S+)$")


def parse_wrk(text: str, *, path: str | os.PathLike = "<stdout>", run_id: str = "",
              started_at=None) -> pd.DataFrame:
    """One load point from wrk's report ``text``.

    concurrency = connections; throughput = ``Requests/sec``; latency_mean_s = the Latency
    ``Avg``; p50/p99 from ``Latency Distribution`` when present; requests and duration_s from
    ``N requests in T``; errors = socket errors (connect + read + write + timeout) + non-2xx/3xx
    responses; scenario = the URL.  Raises ParseError (file, line) when a line does not parse or
    the report is truncated (no ``Requests/sec:`` line).
    """
    f: dict = {"errors": 0.0}
    lines = text.splitlines()
    for i, raw in enumerate(lines, start=1):
        line = raw.strip()
        if m := _RUNNING.match(line):
            f["url"] = m.group("url")
        elif m := _THREADS.match(line):
            f["connections"] = float(m.group("c"))
        elif line.startswith("Latency ") and "Distribution" not in line:
            m = _LAT.match(line)
            if not m:
                raise ParseError("unrecognised Latency line", path=str(path), line=i,
                                 hint="expected 'Latency  AVG  STDEV  MAX  +/-STDEV%'")
            f["lat_avg"] = wrk_time_s(m.group("avg"), path=path, line=i)
        elif m := _DIST.match(line):
            f[f"p{m.group('p')}"] = wrk_time_s(m.group("v"), path=path, line=i)
        elif m := _REQS.match(line):
            f["requests"] = number(m.group("n"), path=path, line=i, what="requests")
            f["duration"] = check_duration(wrk_time_s(m.group("d"), path=path, line=i),
                                           path=path, line=i, what="wrk run time")
        elif line.startswith("Socket errors:"):
            m = _SOCK.match(line)
            if not m:
                raise ParseError("unrecognised Socket errors line", path=str(path), line=i,
                                 hint="expected 'Socket errors: connect N, read N, write N, "
                                      "timeout N'")
            f["errors"] += sum(number(m.group(k), path=path, line=i, what="socket errors")
                               for k in "crwt")
        elif m := _NON2XX.match(line):
            f["errors"] += number(m.group("n"), path=path, line=i, what="non-2xx responses")
        elif line.startswith("Requests/sec:"):
            m = _RPS.match(line)
            if not m:
                raise ParseError("unrecognised Requests/sec line", path=str(path), line=i,
                                 hint="expected 'Requests/sec:  1234.56'")
            f["rps"] = number(m.group("v"), path=path, line=i, what="Requests/sec")
    end = max(len(lines), 1)
    if "connections" not in f:
        raise ParseError("no 'N threads and C connections' line: not wrk output?", path=str(path),
                         line=end)
    if "rps" not in f or "requests" not in f:
        raise ParseError("no 'N requests in T' / 'Requests/sec:' line: the wrk report is "
                         "truncated", path=str(path), line=end)
    return make_points([{
        "run_id": run_id, "tool": "wrk", "scenario": f.get("url", ""),
        "concurrency": f["connections"], "throughput_per_s": f["rps"],
        "latency_mean_s": f.get("lat_avg", NAN), "latency_p50_s": f.get("p50", NAN),
        "latency_p99_s": f.get("p99", NAN), "errors": f["errors"], "requests": f["requests"],
        "duration_s": f["duration"], "started_at": started_at,
    }])


def read_wrk(path: str | os.PathLike, *, run_id: str | None = None,
             started_at=None) -> pd.DataFrame:
    """:func:`parse_wrk` on a file; ``started_at`` defaults to its mtime minus the duration."""
    pts = parse_wrk(read_text(path), path=path, run_id=run_id or run_id_for(path))
    pts["started_at"] = to_utc(started_at if started_at is not None
                               else file_start_time(path, pts["duration_s"].iloc[0]))
    return pts
