"""Load-test results at the finest grain the file holds, for comparing two runs.

The other readers of :mod:`capplan.loadtest` reduce a run to load points; a comparison needs the
variation inside the run, so :func:`read_run_records` returns one of three kinds:

* ``requests``: one record per request, completion time, latency and failure:
  pgbench ``-l`` per-transaction logs (``client_id transaction_no time_us script_no epoch_s
  epoch_us [schedule_lag] [retries]``, time_us ``skipped`` / ``failed`` / ``serialization`` /
  ``deadlock`` for transactions without a latency; a directory or the per-thread files of one
  run), k6 ``--out json=`` NDJSON and ``--out csv=`` streams (``http_req_duration`` points in
  ms; failures from ``http_req_failed``);
* ``buckets``: per-interval totals: pgbench ``--aggregate-interval`` logs and ``-P`` progress,
  Locust ``_stats_history.csv`` (the increase of the cumulative ``Total`` columns between rows);
* ``summary``: one figure per statistic and nothing about time (pgbench stdout, wrk,
  redis-benchmark, k6 end-of-test summaries, Locust ``_stats.csv``).  wrk's ``Req/Sec`` line
  (mean and standard deviation of per-thread request rates sampled every 100 ms, wrk's
  ``RECORD_INTERVAL_MS``) is kept, as it is the one spread a summary carries.

Every malformed input raises :class:`~capplan.errors.ParseError` naming the file and line.
"""

from __future__ import annotations

import gzip
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from capplan.errors import ParseError
from capplan.loadtest import detect_format, read_loadtest
from capplan.loadtest._io import (csv_rows, iso_times, json_loads, json_number, number,
                                  read_text)
from capplan.loadtest.pgbench import read_pgbench_aggregate, read_pgbench_progress
from capplan.loadtest.wrk import wrk_count

__all__ = ["RunRecords", "read_run_records", "read_pgbench_transactions", "RAW_FORMATS"]

#: formats whose files hold per-request records or per-interval totals
RAW_FORMATS = ("pgbench-log", "k6-json", "k6-csv", "pgbench-aggregate", "pgbench-progress",
               "locust-history")
_NO_LATENCY = {"skipped", "failed", "serialization", "deadlock"}


@dataclass(frozen=True)
class RunRecords:
    """One run's records.  ``kind`` is ``requests``, ``buckets`` or ``summary`` (module doc).

    requests: ``t_s`` (completion, epoch seconds), ``latency_s`` (NaN when none), ``failed``.
    buckets: ``start_s``, ``seconds``, ``requests``, ``errors`` (None: unknown),
    ``latency_sum`` / ``latency_n`` (None: unknown).
    summary: ``points``, the load points (dicts of :data:`~capplan.loadtest.POINT_COLUMNS`;
    one per scenario, e.g. redis-benchmark tests), and ``spread`` (wrk: ``rps_thread_mean``, ``rps_thread_sd``, ``threads``).
    """

    path: str
    format: str
    tool: str
    kind: str
    t_s: np.ndarray | None = None
    latency_s: np.ndarray | None = None
    failed: np.ndarray | None = None
    start_s: np.ndarray | None = None
    seconds: np.ndarray | None = None
    requests: np.ndarray | None = None
    errors: np.ndarray | None = None
    latency_sum: np.ndarray | None = None
    latency_n: np.ndarray | None = None
    points: tuple[dict, ...] = ()
    spread: dict = field(default_factory=dict)

    @property
    def n_requests(self) -> float:
        if self.kind == "requests":
            return float(len(self.t_s))
        if self.kind == "buckets":
            return float(np.sum(self.requests))
        return float(sum(p.get("requests") or 0 for p in self.points))


def _pgbench_log_line(parts: list[str]) -> bool:
    """Does a line look like a per-transaction log line (not an aggregate one)?"""
    if len(parts) not in (6, 7, 8) or not all(p.isdigit() for p in parts[:2] + parts[3:6]):
        return False
    if not (parts[2].isdigit() or parts[2] in _NO_LATENCY):
        return False
    return int(parts[4]) > 1e8 and int(parts[5]) < 1_000_000 and int(parts[0]) < 1e8


def _first_line(path: Path) -> list[str]:
    with open(path, "rb") as fh:
        for raw in fh:
            s = raw.decode("utf-8", errors="replace").split()
            if s:
                return s
    return []


def _is_pgbench_log(path: Path) -> bool:
    files = sorted(path.glob("pgbench_log.*")) if path.is_dir() else [path]
    try:
        return bool(files) and _pgbench_log_line(_first_line(files[0]))
    except OSError:
        return False


def read_pgbench_transactions(path: str | os.PathLike) -> RunRecords:
    """Per-transaction records from pgbench ``-l`` logs (a directory, one file of them).

    A directory holds one run's per-thread files ``pgbench_log.<pid>[.<n>]``.  time_us (µs)
    becomes ``latency_s``; ``skipped`` (``--latency-limit``) has no latency and is not failed;
    ``failed`` / ``serialization`` / ``deadlock`` (PG15 ``--failures-detailed``) count as
    failed without a latency.  Raises ParseError (file, line) on a malformed line.
    """
    p = Path(path)
    files = sorted(p.glob("pgbench_log.*")) if p.is_dir() else [p]
    if not files:
        raise ParseError("no pgbench_log.* files in this directory", path=str(p))
    ts, lat, fail = [], [], []
    for f in files:
        text = read_text(f)
        for i, raw in enumerate(text.splitlines(), start=1):
            parts = raw.split()
            if not parts:
                continue
            if not _pgbench_log_line(parts):
                raise ParseError("not a pgbench per-transaction log line (expected 'client_id "
                                 "transaction_no time_us script_no epoch_s epoch_us')",
                                 path=str(f), line=i,
                                 hint="run pgbench with -l (without --aggregate-interval)")
            ts.append(int(parts[4]) + int(parts[5]) / 1e6)
            if parts[2] in _NO_LATENCY:
                lat.append(np.nan)
                fail.append(parts[2] != "skipped")
            else:
                lat.append(int(parts[2]) / 1e6)
                fail.append(False)
    if not ts:
        raise ParseError("empty pgbench log", path=str(files[0]), line=1)
    order = np.argsort(np.asarray(ts), kind="stable")
    return RunRecords(path=str(p), format="pgbench-log", tool="pgbench", kind="requests",
                      t_s=np.asarray(ts)[order], latency_s=np.asarray(lat)[order],
                      failed=np.asarray(fail, dtype=bool)[order])


def _open_text(path: Path) -> str:
    if str(path).endswith(".gz"):
        try:
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                return fh.read()
        except (OSError, EOFError, UnicodeDecodeError):
            raise ParseError("cannot read gzipped k6 output", path=str(path)) from None
    return read_text(path)


def _k6_json(path: Path) -> RunRecords:
    text = _open_text(path)
    dur_t, dur_v, fail_t, fail_v, dur_l, fail_l = [], [], [], [], [], []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        obj = json_loads(line, path, i, "truncated k6 NDJSON?")
        if not isinstance(obj, dict) or obj.get("type") != "Point":
            continue
        data = obj.get("data")
        metric = obj.get("metric")
        if metric not in ("http_req_duration", "http_req_failed"):
            continue
        if not isinstance(data, dict) or "time" not in data or "value" not in data \
                or not isinstance(data["time"], str):
            raise ParseError("Point without a data object holding a time string and a value",
                             path=str(path), line=i)
        v = json_number(data["value"], path=path, line=i, what="data.value")
        dur = metric == "http_req_duration"
        (dur_t if dur else fail_t).append(data["time"])
        (dur_v if dur else fail_v).append(v)
        (dur_l if dur else fail_l).append(i)
    conv = lambda xs, ls: (iso_times(xs, ls, path, "data.time")  # noqa: E731
                           .astype("int64").to_numpy() / 1e9) if xs else np.zeros(0)
    return _k6_records(path, "k6-json", conv(dur_t, dur_l), dur_v, conv(fail_t, fail_l), fail_v)


def _k6_csv(path: Path) -> RunRecords:
    text = _open_text(path)
    rows = {"http_req_duration": ([], []), "http_req_failed": ([], [])}
    for ln, r in csv_rows(text, path, required=("metric_name", "timestamp", "metric_value")):
        if r["metric_name"] in rows:
            rows[r["metric_name"]][0].append(r["timestamp"])
            rows[r["metric_name"]][1].append(
                number(r["metric_value"], path=path, line=ln, what="metric_value"))

    def conv(raw):
        if not raw:
            return np.zeros(0)
        try:
            nums = np.asarray([float(x) for x in raw])
        except ValueError:
            ts = pd.to_datetime(pd.Series(raw, dtype=object), utc=True, format="ISO8601",
                                errors="coerce")
            if ts.isna().any():
                raise ParseError("unparseable timestamp in k6 CSV", path=str(path)) from None
            return ts.astype("int64").to_numpy() / 1e9
        mag = float(np.nanmax(nums))
        # K6_CSV_TIME_FORMAT unix (default) / unix_milli / unix_micro / unix_nano, by magnitude
        return nums / (1.0 if mag < 1e11 else 1e3 if mag < 1e14 else 1e6 if mag < 1e17 else 1e9)

    (dt, dv), (ft, fv) = rows["http_req_duration"], rows["http_req_failed"]
    return _k6_records(path, "k6-csv", conv(dt), dv, conv(ft), fv)


def _k6_records(path, fmt, dur_t, dur_v, fail_t, fail_v) -> RunRecords:
    if not len(dur_t):
        raise ParseError("no http_req_duration points in the k6 stream", path=str(path),
                         hint="record with k6 run --out json=FILE (HTTP tests)")
    o = np.argsort(dur_t, kind="stable")
    t, lat = np.asarray(dur_t)[o], np.asarray(dur_v, dtype=float)[o] / 1e3
    failed = None
    if len(fail_t) == len(t):    # k6 writes one http_req_failed point per request, same time
        fo = np.argsort(fail_t, kind="stable")
        failed = np.asarray(fail_v, dtype=float)[fo] > 0
    return RunRecords(path=str(path), format=fmt, tool="k6", kind="requests", t_s=t,
                      latency_s=lat, failed=failed)


def _points_buckets(path: Path, fmt: str, pts: pd.DataFrame, errors_known: bool) -> RunRecords:
    pts = pts.sort_values("started_at")
    n = pts["requests"].to_numpy(float)
    return RunRecords(path=str(path), format=fmt, tool=str(pts["tool"].iloc[0]), kind="buckets",
                      start_s=pts["started_at"].astype("int64").to_numpy() / 1e9,
                      seconds=pts["duration_s"].to_numpy(float), requests=n,
                      errors=pts["errors"].to_numpy(float) if errors_known else None,
                      latency_sum=np.nan_to_num(pts["latency_mean_s"].to_numpy(float)) * n,
                      latency_n=n.copy())


def _locust_history(path: Path) -> RunRecords:
    text = read_text(path)
    rows = []
    for ln, r in csv_rows(text, path, required=("Timestamp", "User Count", "Name",
                                                "Total Request Count", "Total Failure Count")):
        if r["Name"] not in ("Aggregated", "Total") or r.get("Type", "").strip() not in ("",
                                                                                      "None"):
            continue
        rows.append((number(r["Timestamp"], path=path, line=ln, what="Timestamp"),
                     number(r["Total Request Count"], path=path, line=ln,
                            what="Total Request Count"),
                     number(r["Total Failure Count"], path=path, line=ln,
                            what="Total Failure Count"),
                     number(r.get("Total Average Response Time"), path=path, line=ln,
                            what="Total Average Response Time", allow_na=True)))
    if len(rows) < 2:
        raise ParseError("fewer than two Aggregated rows: no interval to measure", path=str(path),
                         line=max(len(text.splitlines()), 1))
    a = np.asarray(rows, dtype=float)
    t, total, fails, avg = a[:, 0], a[:, 1], a[:, 2], np.nan_to_num(a[:, 3])
    sec = np.diff(t)
    keep = sec > 0
    req, err = np.diff(total), np.diff(fails)
    lsum = np.diff(avg * total) / 1e3
    if (req < 0).any():
        raise ParseError("Total Request Count goes down: two runs in one history file?",
                         path=str(path))
    return RunRecords(path=str(path), format="locust-history", tool="locust", kind="buckets",
                      start_s=t[:-1][keep], seconds=sec[keep], requests=req[keep],
                      errors=err[keep], latency_sum=lsum[keep], latency_n=req[keep].copy())


_REQSEC = re.compile(r"^\s*Req/Sec\s+(?P<avg>\S+)\s+(?P<sd>\S+)\s+(?P<max>\S+)\s+\S+\s*$", re.M)
_THREADS = re.compile(r"^\s*(?P<t>\d+) threads and \d+ connections\s*$", re.M)


def read_run_records(path: str | os.PathLike, tool: str | None = None) -> RunRecords:
    """The finest records ``path`` holds (``tool``: a :data:`capplan.loadtest.READERS` key,
    ``pgbench-log``, or None to sniff the content).  Raises ParseError / ConfigError."""
    p = Path(path)
    if not p.exists():
        raise ParseError("no such file or directory", path=str(p),
                         hint="check the path of the load-test result")
    if tool in (None, "pgbench", "pgbench-log") and _is_pgbench_log(p):
        return read_pgbench_transactions(p)
    if tool == "pgbench-log":
        raise ParseError("not a pgbench per-transaction log", path=str(p), line=1)
    fmt = tool if tool and "-" in tool else detect_format(p)
    if fmt == "k6-json":
        return _k6_json(p)
    if fmt == "k6-csv":
        return _k6_csv(p)
    if fmt == "locust-history":
        return _locust_history(p)
    if fmt == "pgbench-aggregate":
        pts = read_pgbench_aggregate(p)
        # the 15-field PG15 logs carry failures; older layouts cannot fail a transaction
        width = len(_first_line(sorted(p.glob("pgbench_log.*"))[0] if p.is_dir() else p))
        return _points_buckets(p, fmt, pts, errors_known=width == 15)
    if fmt == "pgbench-progress":
        pts = read_pgbench_progress(p)
        text = read_text(p)
        return _points_buckets(p, fmt, pts, errors_known=" failed" in text)
    pts = read_loadtest(p, tool=tool)
    points = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in rec.items()}
              for rec in pts.to_dict(orient="records")]
    spread = {}
    if fmt == "wrk":
        text = read_text(p)
        m, th = _REQSEC.search(text), _THREADS.search(text)
        if m and th:
            spread = {"rps_thread_mean": wrk_count(m.group("avg"), path=p),
                      "rps_thread_sd": wrk_count(m.group("sd"), path=p),
                      "threads": float(th.group("t")), "sample_interval_s": 0.1}
    return RunRecords(path=str(p), format=fmt, tool=str(points[0].get("tool") or fmt),
                      kind="summary", points=tuple(points), spread=spread)
