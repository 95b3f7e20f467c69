"""The load-point table: one row per (run, concurrency level[, scenario]) of a load test.

Every parser in :mod:`capplan.loadtest` returns this table, and :func:`run_sweep` produces it.

================= ======================= ====================================================
column            dtype                   meaning
================= ======================= ====================================================
run_id            str                     one load-test run (file stem, or the sweep's id)
tool              str                     ``k6``, ``locust``, ``pgbench``, ``redis-benchmark``,
                                          ``wrk``
scenario          str                     what was measured inside the run: a redis-benchmark
                                          test (``GET``), a Locust endpoint (``GET /``), ``""``
                                          for the run as a whole
concurrency       float64                 clients / VUs / users / connections (the ``N`` of
                                          USL); NaN when neither the file nor the caller says
throughput_per_s  float64                 completed requests (transactions) per second
latency_mean_s    float64                 mean latency, seconds
latency_p50_s     float64                 median latency, seconds
latency_p95_s     float64                 95th percentile, seconds
latency_p99_s     float64                 99th percentile, seconds
errors            float64                 failed requests (transactions) in the point
requests          float64                 all requests (transactions) in the point
duration_s        float64                 measured duration of the point, seconds
started_at        datetime64[ns, UTC]     start of the point (NaT when unknown)
================= ======================= ====================================================

Statistics a tool did not report are NaN, never 0: k6 has no p99 unless run with
``--summary-trend-stats``, pgbench reports no percentiles in its summary, wrk has no p95.

:func:`points_to_frame` turns the table into the metrics contract (:mod:`capplan.core.frame`) for the
store; :func:`frame_to_points` reads it back.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from capplan.errors import DataContractError, ParseError
from capplan.core.frame import make_frame, parse_labels, to_utc

__all__ = [
    "POINT_COLUMNS",
    "NUMERIC_COLUMNS",
    "POINT_METRICS",
    "make_points",
    "empty_points",
    "points_to_frame",
    "frame_to_points",
]

POINT_COLUMNS: tuple[str, ...] = (
    "run_id", "tool", "scenario", "concurrency", "throughput_per_s", "latency_mean_s",
    "latency_p50_s", "latency_p95_s", "latency_p99_s", "errors", "requests", "duration_s",
    "started_at",
)
NUMERIC_COLUMNS: tuple[str, ...] = POINT_COLUMNS[3:12]

#: point column -> (contract metric name, unit); all are gauges (one reading per load point).
POINT_METRICS: dict[str, tuple[str, str]] = {
    "throughput_per_s": ("loadtest_throughput_per_s", "per_second"),
    "latency_mean_s": ("loadtest_latency_mean_seconds", "seconds"),
    "latency_p50_s": ("loadtest_latency_p50_seconds", "seconds"),
    "latency_p95_s": ("loadtest_latency_p95_seconds", "seconds"),
    "latency_p99_s": ("loadtest_latency_p99_seconds", "seconds"),
    "errors": ("loadtest_errors", "errors"),
    "requests": ("loadtest_requests", "requests"),
    "duration_s": ("loadtest_duration_seconds", "seconds"),
}
_METRIC_TO_COLUMN = {m: c for c, (m, _u) in POINT_METRICS.items()}


def empty_points() -> pd.DataFrame:
    """A load-point table with no rows (the documented columns and dtypes)."""
    return make_points([])


def make_points(records: Iterable[Mapping[str, object]] | pd.DataFrame) -> pd.DataFrame:
    """Build a load-point table from dicts (missing keys become NaN / ``""`` / NaT).

    ``started_at`` may be a datetime (naive is taken as UTC), an ISO string or epoch seconds.
    """
    if isinstance(records, pd.DataFrame):
        df = records.copy()
    else:
        df = pd.DataFrame.from_records(list(records))
    for col in POINT_COLUMNS:
        if col not in df.columns:
            df[col] = np.nan if col in NUMERIC_COLUMNS else (pd.NaT if col == "started_at" else "")
    df = df[list(POINT_COLUMNS)].copy()
    for col in ("run_id", "tool", "scenario"):
        df[col] = df[col].map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v))
                              else str(v)).astype(object)
    for col in NUMERIC_COLUMNS:
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    df["started_at"] = to_utc(df["started_at"])
    return df.reset_index(drop=True)


def file_start_time(path: str | os.PathLike, duration_s: float | None) -> datetime:
    """Fallback start of a run whose file has no clock: file mtime minus the run's duration.

    Raises ParseError naming the file when the duration reaches back before 1970 or past the
    year 2200 (corrupt figures, e.g. ``processed: 1e300``): no plausible start exists.
    """
    try:
        mtime = os.stat(path).st_mtime
    except OSError as exc:
        raise ParseError(f"cannot stat load-test result: {exc.strerror or exc}",
                         path=str(path)) from exc
    if duration_s is not None and np.isfinite(duration_s):
        start = mtime - float(duration_s)
        if not 0.0 <= start <= 7_258_118_400.0:
            raise ParseError(f"the run's duration ({float(duration_s):.3g} s, derived from the "
                             "file's figures) puts its start outside 1970..2200", path=str(path),
                             hint="the file's counts or rates are corrupt; pass started_at= if "
                                  "the figures are right")
        mtime = start
    return datetime.fromtimestamp(mtime, tz=timezone.utc)


def _fmt_concurrency(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))


def points_to_frame(points: pd.DataFrame) -> pd.DataFrame:
    """Load points as a metrics-contract frame (long format, one row per reported statistic).

    * ``source`` is ``loadtest:<tool>``; ``timestamp`` is ``started_at``;
    * ``metric`` is from :data:`POINT_METRICS` (``loadtest_throughput_per_s``,
      ``loadtest_latency_p95_seconds`` ...), all gauges;
    * ``labels`` hold ``run_id``, ``concurrency`` (when known) and ``scenario`` (when not empty).

    NaN statistics (not reported by the tool) are left out.  Raises
    :class:`~capplan.errors.DataContractError` when a point has no ``started_at`` or no tool.
    """
    pts = make_points(points)
    problems = []
    if pts["started_at"].isna().any():
        problems.append({"column": "started_at", "reason": f"{int(pts['started_at'].isna().sum())} "
                         "load point(s) without a start time", "examples": None})
    if (pts["tool"] == "").any():
        problems.append({"column": "tool", "reason": "load point(s) without a tool",
                         "examples": None})
    if problems:
        raise DataContractError(problems, where="load points")
    records = []
    for row in pts.itertuples(index=False):
        labels = {"run_id": row.run_id}
        if np.isfinite(row.concurrency):
            labels["concurrency"] = _fmt_concurrency(row.concurrency)
        if row.scenario:
            labels["scenario"] = row.scenario
        for col, (metric, unit) in POINT_METRICS.items():
            value = getattr(row, col)
            if not np.isfinite(value):
                continue
            records.append({"timestamp": row.started_at, "source": f"loadtest:{row.tool}",
                            "metric": metric, "labels": labels, "value": float(value),
                            "kind": "gauge", "unit": unit})
    return make_frame(records)


def frame_to_points(frame: pd.DataFrame) -> pd.DataFrame:
    """Inverse of :func:`points_to_frame`: rows of ``loadtest:*`` sources back to load points.

    Rows of other sources and metrics are ignored; statistics absent from the frame are NaN.
    Sorted by run, scenario, concurrency and start time.
    """
    if frame is None or not len(frame):
        return empty_points()
    df = frame[frame["source"].astype(str).str.startswith("loadtest:")
               & frame["metric"].isin(list(_METRIC_TO_COLUMN))]
    if df.empty:
        return empty_points()
    rows: dict[tuple, dict] = {}
    for r in df.itertuples(index=False):
        labels = parse_labels(r.labels)
        key = (r.source, r.labels, r.timestamp)
        rec = rows.get(key)
        if rec is None:
            conc = labels.get("concurrency")
            rec = rows[key] = {"run_id": labels.get("run_id", ""),
                               "tool": str(r.source).split(":", 1)[1],
                               "scenario": labels.get("scenario", ""),
                               "concurrency": float(conc) if conc not in (None, "") else np.nan,
                               "started_at": r.timestamp}
        rec[_METRIC_TO_COLUMN[r.metric]] = r.value
    out = make_points(list(rows.values()))
    return out.sort_values(["run_id", "scenario", "concurrency", "started_at"],
                           kind="stable").reset_index(drop=True)
