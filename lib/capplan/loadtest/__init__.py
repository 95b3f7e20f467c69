"""Load-test results: parsers for k6, Locust, pgbench, redis-benchmark and wrk, and the sweep.

Every reader returns the load-point table documented in :mod:`capplan.loadtest.points`.
:func:`read_loadtest` picks the reader from the file's content (or ``tool=``)::

    from capplan.loadtest import read_loadtest, points_to_frame
    points = read_loadtest("results/k6_summary.json")
    store.append(points_to_frame(points))

Formats (``tool=`` accepts the tool or the format name):

==================== ========================================= ===============================
format               file                                      reader
==================== ========================================= ===============================
k6-summary           ``--summary-export`` / handleSummary JSON :func:`read_k6_summary`
k6-json              ``--out json=`` NDJSON (``.gz`` too)      :func:`read_k6_json_stream`
k6-csv               ``--out csv=`` (``.gz`` too)              :func:`read_k6_csv_stream`
locust-stats         ``PREFIX_stats.csv``                      :func:`read_locust_stats`
locust-history       ``PREFIX_stats_history.csv``              :func:`read_locust_history`
pgbench-summary      pgbench stdout                            :func:`read_pgbench_summary`
pgbench-progress     pgbench ``-P`` stderr                     :func:`read_pgbench_progress`
pgbench-aggregate    ``--aggregate-interval`` logs (dir/files) :func:`read_pgbench_aggregate`
redis-benchmark      ``redis-benchmark --csv``                 :func:`read_redisbench_csv`
wrk                  wrk's text report                         :func:`read_wrk`
==================== ========================================= ===============================
"""

from __future__ import annotations

import gzip
import os
import re
import zlib
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from capplan.errors import ConfigError, ParseError
from capplan.loadtest._io import csv_rows, in_clock_range, number, read_text
from capplan.loadtest.demo import demo_pgbench_sweep, demo_pgbench_sweep_info
from capplan.loadtest.k6 import (k6_thresholds, read_k6_csv_stream, read_k6_json_stream,
                                 read_k6_summary)
from capplan.loadtest.locust import read_locust_history, read_locust_stats
from capplan.loadtest.pgbench import (parse_pgbench_summary, read_pgbench_aggregate,
                                      read_pgbench_progress, read_pgbench_summary)
from capplan.loadtest.points import (NUMERIC_COLUMNS, POINT_COLUMNS, POINT_METRICS, empty_points,
                                     frame_to_points, make_points, points_to_frame)
from capplan.loadtest.redisbench import parse_redisbench_csv, read_redisbench_csv
from capplan.loadtest.wrk import parse_wrk, read_wrk

__all__ = [
    "POINT_COLUMNS", "POINT_METRICS", "READERS", "make_points", "empty_points",
    "points_to_frame", "frame_to_points", "read_loadtest", "detect_format",
    "read_k6_summary", "k6_thresholds", "read_k6_json_stream", "read_k6_csv_stream",
    "read_locust_stats", "read_locust_history",
    "parse_pgbench_summary", "read_pgbench_summary", "read_pgbench_progress",
    "read_pgbench_aggregate", "parse_redisbench_csv", "read_redisbench_csv", "parse_wrk",
    "read_wrk", "run_sweep", "prepare_pgbench", "drop_pgbench_database",
    "demo_pgbench_sweep", "demo_pgbench_sweep_info",
]

#: format name -> reader(path, **kwargs) returning load points.
def read_points_csv(path: str | os.PathLike, **_ignored) -> pd.DataFrame:
    """A load-point table saved as CSV (``capplan sweep --csv``, or the packaged demo sweep).

    Columns by name (:data:`POINT_COLUMNS`); ``concurrency`` and ``throughput_per_s`` are required,
    others may be missing; ``#`` lines are comments.  Numbers may be empty or ``nan`` (not
    reported); ``started_at`` is ISO 8601 (or empty).  Raises ParseError naming the file and line
    of a missing column, a non-numeric value or an implausible time.
    """
    p = Path(path)
    text = "\n".join("" if ln.lstrip().startswith("#") else ln
                     for ln in read_text(p).splitlines())
    try:
        rows = list(csv_rows(text, p, required=("concurrency", "throughput_per_s")))
    except ParseError as exc:
        if exc.line == 1 and "missing column" in exc.message:
            raise ParseError(exc.message, path=str(p), line=1,
                             hint="write it with `capplan sweep --csv FILE`") from None
        raise
    records = []
    for ln, r in rows:
        rec: dict = {c: r.get(c, "") for c in ("run_id", "tool", "scenario")}
        for c in NUMERIC_COLUMNS:
            rec[c] = number(r.get(c), path=p, line=ln, what=c, allow_na=True)
        raw = (r.get("started_at") or "").strip()
        rec["started_at"] = pd.NaT
        if raw and raw.lower() not in ("nan", "nat"):
            ts = pd.to_datetime(pd.Series([raw], dtype=object), utc=True, errors="coerce",
                                format="ISO8601").iloc[0]
            if pd.isna(ts) or not in_clock_range(ts):
                raise ParseError("started_at: not an ISO 8601 time between 1970 and 2200",
                                 path=str(p), line=ln)
            rec["started_at"] = ts
        records.append(rec)
    return make_points(records)


READERS: dict[str, Callable[..., pd.DataFrame]] = {
    "points": read_points_csv,
    "k6-summary": read_k6_summary,
    "k6-json": read_k6_json_stream,
    "k6-csv": read_k6_csv_stream,
    "locust-stats": read_locust_stats,
    "locust-history": read_locust_history,
    "pgbench-summary": read_pgbench_summary,
    "pgbench-progress": read_pgbench_progress,
    "pgbench-aggregate": read_pgbench_aggregate,
    "redis-benchmark": read_redisbench_csv,
    "wrk": read_wrk,
}
_TOOLS = {"k6", "locust", "pgbench", "redis-benchmark", "wrk"}
_AGG_LINE = re.compile(r"^\d+( \d+){5}(( \d+){4}(( \d+)(( \d+){4})?)?)?$")


def _head(path: Path, n: int = 4096) -> str:
    opener = gzip.open if path.name.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            return fh.read(n).decode("utf-8-sig", errors="replace")
    except (OSError, EOFError, zlib.error) as exc:  # a truncated or corrupt .gz too
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else \
            type(exc).__name__
        raise ParseError(f"cannot read load-test result ({reason})", path=str(path)) from None


def detect_format(path: str | os.PathLike) -> str:
    """The :data:`READERS` key for ``path``, sniffed from its first bytes (never its name alone).

    Raises ParseError when the content matches no known format.
    """
    p = Path(path)
    if p.is_dir():
        if any(p.glob("pgbench_log.*")):
            return "pgbench-aggregate"
        raise ParseError("directory holds no pgbench_log.* files", path=str(p))
    head = _head(p)
    first = head.lstrip().splitlines()[0] if head.strip() else ""
    if first.startswith("{"):
        if '"type":"Metric"' in first.replace(" ", "") or '"type":"Point"' in \
                first.replace(" ", ""):
            return "k6-json"
        return "k6-summary"
    if first.startswith("metric_name,"):
        return "k6-csv"
    if first.startswith("run_id,tool,") and "throughput_per_s" in first:
        return "points"
    if first.startswith(('"test","rps"', "test,rps")):
        return "redis-benchmark"
    if "Timestamp" in first and "User Count" in first:
        return "locust-history"
    if "Name" in first and ("Request Count" in first or "# requests" in first):
        return "locust-stats"
    if re.match(r'^"[^"]+","[\d.]+"$', first):
        return "redis-benchmark"
    if first.startswith("Running ") and " test @ " in first:
        return "wrk"
    if "transaction type:" in head or "number of clients:" in head:
        return "pgbench-summary"
    if re.search(r"^progress: [\d.]+ s, ", head, re.M):
        return "pgbench-progress"
    if _AGG_LINE.match(first.strip()):
        return "pgbench-aggregate"
    raise ParseError("unrecognised load-test result format", path=str(p), line=1,
                     hint=f"pass tool= one of {sorted(READERS)}")


def read_loadtest(path: str | os.PathLike, tool: str | None = None, **kwargs) -> pd.DataFrame:
    """Read any supported load-test result into load points.

    ``tool`` is a format name from :data:`READERS` or a tool name (``k6``, ``pgbench`` ...; the
    format is then sniffed and must belong to that tool); ``kwargs`` go to the reader
    (``concurrency=``, ``run_id=``, ``requests=`` ...).  Raises ConfigError for an unknown
    tool or a file of another tool, ParseError for unreadable content.
    """
    if tool is not None and tool not in READERS and tool not in _TOOLS:
        raise ConfigError(f"unknown load-test tool {tool!r}", key="tool",
                          hint=f"use one of {sorted(_TOOLS | set(READERS))}")
    fmt = tool if tool in READERS else detect_format(path)
    if tool in _TOOLS and not fmt.startswith(tool):
        raise ConfigError(f"{path} looks like {fmt} output, not {tool}", key="tool",
                          hint=f"pass tool= one of {sorted(READERS)} to force a reader")
    return READERS[fmt](path, **kwargs)


def __getattr__(name: str):
    # the sweep imports subprocess/psycopg machinery: load it only when asked for
    if name in ("run_sweep", "prepare_pgbench", "drop_pgbench_database"):
        from capplan.loadtest import sweep
        return getattr(sweep, name)
    raise AttributeError(f"module 'capplan.loadtest' has no attribute {name!r}")
