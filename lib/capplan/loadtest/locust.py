"""Locust ``--csv PREFIX`` results: ``PREFIX_stats.csv`` and ``PREFIX_stats_history.csv``.

Columns are read by header name; older Locust versions wrote ``# requests`` / ``# failures`` /
``Median response time`` (and ``Method``, and a ``Total`` instead of an ``Aggregated`` row),
which are accepted as aliases.  Response times are in ms (rounded into buckets by Locust before
percentiles are taken); ``N/A`` (no requests yet) becomes NaN.

Which numbers are windowed (locust ``stats.py``, ``StatsCSV._stats_history_data_rows``;
REFERENCE.md section 0 item 23):

* ``_stats.csv``: everything covers the whole run (``Requests/s`` is the run average).
* ``_stats_history.csv``: ``Requests/s`` is a ~10 s sliding window; the ``Total ...`` columns
  are cumulative since the start; the **percentile columns are cumulative** unless Locust ran
  with ``--csv-full-history`` (then they are windowed, and per-endpoint rows appear, which is
  how this module tells the two apart).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from capplan.errors import ParseError
from capplan.loadtest._io import (NAN, check_duration, csv_rows, epoch_utc, number, read_text,
                                  run_id_for, to_utc)
from capplan.loadtest.points import file_start_time, make_points

__all__ = ["read_locust_stats", "read_locust_history"]

_AGGREGATE_NAMES = ("Aggregated", "Total")
_STATS_ALIASES = {
    "Type": ("Method",),
    "Request Count": ("# requests", "# Requests"),
    "Failure Count": ("# failures", "# Failures"),
    "Median Response Time": ("Median response time",),
    "Average Response Time": ("Average response time",),
}
_HISTORY_ALIASES = {
    "Type": ("Method",),
    "Total Request Count": ("# requests", "# Requests"),
    "Total Failure Count": ("# failures", "# Failures"),
    "Total Average Response Time": ("Average Response Time", "Average response time"),
}
_PCTS = (("latency_p50_s", "50%"), ("latency_p95_s", "95%"), ("latency_p99_s", "99%"))


def _ms(row: dict, col: str, path, line) -> float:
    return number(row.get(col), path=path, line=line, what=col, allow_na=True) / 1e3 \
        if col in row else NAN


def _history_for(stats_path: Path) -> Path | None:
    if stats_path.name.endswith("_stats.csv"):
        cand = stats_path.with_name(stats_path.name[: -len("_stats.csv")] + "_stats_history.csv")
        if cand.is_file():
            return cand
    return None


def read_locust_stats(path: str | os.PathLike, *, concurrency: float | None = None,
                      include_endpoints: bool = False, run_id: str | None = None,
                      started_at=None) -> pd.DataFrame:
    """Load point(s) from a Locust ``_stats.csv`` (whole-run figures).

    Returns the ``Aggregated`` row (``scenario`` ``""``), plus one row per endpoint
    (``scenario`` = ``"<Type> <Name>"``) when ``include_endpoints``.  throughput = ``Requests/s``;
    latency mean / p50 / p95 / p99 from ``Average Response Time`` / ``50%`` (else the median) /
    ``95%`` / ``99%``; errors = ``Failure Count``; duration_s = requests / throughput.
    The user count is not in this file: ``concurrency`` defaults to the maximum ``User Count`` of
    the sibling ``_stats_history.csv`` when there is one (else NaN), and ``started_at`` to its
    first timestamp (else file mtime minus duration).  Raises ParseError (file, line).
    """
    p = Path(path)
    text = read_text(p)
    rid = run_id or run_id_for(p).removesuffix("_stats")
    records = []
    seen_total = False
    for ln, r in csv_rows(text, p, required=("Name", "Request Count", "Failure Count",
                                             "Requests/s"), aliases=_STATS_ALIASES):
        is_total = r["Name"] in _AGGREGATE_NAMES and r.get("Type", "").strip() in ("", "None")
        seen_total |= is_total
        if not is_total and not include_endpoints:
            continue
        n = number(r["Request Count"], path=p, line=ln, what="Request Count")
        rps = number(r["Requests/s"], path=p, line=ln, what="Requests/s", allow_na=True)
        rec = {"run_id": rid, "tool": "locust",
               "scenario": "" if is_total else f"{r.get('Type', '').strip()} {r['Name']}".strip(),
               "throughput_per_s": rps, "requests": n,
               "errors": number(r["Failure Count"], path=p, line=ln, what="Failure Count"),
               "latency_mean_s": _ms(r, "Average Response Time", p, ln),
               "duration_s": check_duration(n / rps if rps and rps > 0 else NAN, path=p,
                                            line=ln, what="Request Count / Requests/s")}
        for out, col in _PCTS:
            rec[out] = _ms(r, col, p, ln)
        if not np.isfinite(rec["latency_p50_s"]):
            rec["latency_p50_s"] = _ms(r, "Median Response Time", p, ln)
        records.append(rec)
    if not seen_total:
        raise ParseError("no 'Aggregated' row: truncated Locust stats file?", path=str(p),
                         line=len(text.splitlines()),
                         hint="Locust rewrites _stats.csv every second; copy it after the run")
    hist = _history_for(p)
    hist_rows = None
    if hist is not None and (concurrency is None or started_at is None):
        hist_rows = [(ln, r) for ln, r in csv_rows(read_text(hist), hist,
                                                    required=("Timestamp", "User Count"),
                                                    aliases=_HISTORY_ALIASES)]
    if concurrency is None and hist_rows:
        concurrency = max(number(r["User Count"], path=hist, line=ln, what="User Count")
                          for ln, r in hist_rows)
    pts = make_points([{**rec, "concurrency": concurrency} for rec in records])
    if started_at is None:
        if hist_rows:
            ln, first = hist_rows[0]
            started_at = epoch_utc(number(first["Timestamp"], path=hist, line=ln,
                                          what="Timestamp"), path=hist, line=ln, what="Timestamp")
        else:
            started_at = file_start_time(p, pts["duration_s"].iloc[0])
    pts["started_at"] = to_utc(started_at)
    return pts


def read_locust_history(path: str | os.PathLike, *, run_id: str | None = None,
                        include_endpoints: bool = False) -> pd.DataFrame:
    """Load points from a Locust ``_stats_history.csv``: one per step of constant user count.

    Rows are grouped into consecutive runs of equal ``User Count`` (rows with 0 users only serve
    as baselines).  Each step is measured from the row before it (or its own first row) to its
    last row, from the cumulative ``Total`` columns, which is exact: requests and errors are the
    increase of ``Total Request Count`` / ``Total Failure Count``, duration_s the time between
    the rows, throughput = requests / duration_s, and latency_mean_s the increase of
    ``Total Average Response Time × Total Request Count`` divided by requests.

    Percentiles: with ``--csv-full-history`` (windowed over ~10 s) the step's last row is used
    (NaN when every percentile reads 0, i.e. the window had no data yet); without it they are
    cumulative since the start, so they are used only for a step that starts from zero requests
    and are NaN otherwise.  Per-endpoint steps (``include_endpoints``) need a full-history file.
    Raises ParseError (file, line) on a truncated or malformed file.
    """
    p = Path(path)
    text = read_text(p)
    rid = run_id or run_id_for(p).removesuffix("_stats_history")
    parsed = []
    for ln, r in csv_rows(text, p, required=("Timestamp", "User Count", "Name",
                                             "Total Request Count", "Total Failure Count"),
                          aliases=_HISTORY_ALIASES):
        row = {"line": ln, "name": r["Name"], "type": r.get("Type", "").strip(),
               "t": number(r["Timestamp"], path=p, line=ln, what="Timestamp"),
               "users": number(r["User Count"], path=p, line=ln, what="User Count"),
               "total": number(r["Total Request Count"], path=p, line=ln,
                               what="Total Request Count"),
               "fails": number(r["Total Failure Count"], path=p, line=ln,
                               what="Total Failure Count"),
               "avg": number(r.get("Total Average Response Time"), path=p, line=ln,
                             what="Total Average Response Time", allow_na=True)}
        for out, col in _PCTS:
            row[out] = _ms(r, col, p, ln)
        epoch_utc(row["t"], path=p, line=ln, what="Timestamp")  # a plausible clock
        parsed.append(row)
    if not parsed:
        raise ParseError("no rows after the header", path=str(p), line=1)
    full_history = any(r["name"] not in _AGGREGATE_NAMES for r in parsed)
    if include_endpoints and not full_history:
        raise ParseError("per-endpoint history needs a file written with --csv-full-history",
                         path=str(p), line=1)
    keys = sorted({(r["type"], r["name"]) for r in parsed},
                  key=lambda k: (k[1] in _AGGREGATE_NAMES, k))
    records = []
    for typ, name in keys:
        is_total = name in _AGGREGATE_NAMES and typ in ("", "None")
        if not is_total and not include_endpoints:
            continue
        rows = sorted((r for r in parsed if (r["type"], r["name"]) == (typ, name)),
                      key=lambda r: r["t"])
        records += _steps(rows, rid, "" if is_total else f"{typ} {name}".strip(), full_history)
    return make_points(records)


def _steps(rows: list[dict], rid: str, scenario: str, windowed: bool) -> list[dict]:
    out = []
    i = 0
    while i < len(rows):
        j = i
        while j + 1 < len(rows) and rows[j + 1]["users"] == rows[i]["users"]:
            j += 1
        if rows[i]["users"] > 0:
            base = rows[i - 1] if i > 0 else rows[i]
            last = rows[j]
            n = last["total"] - base["total"]
            dur = last["t"] - base["t"]
            if dur > 0 and base is not last:
                rt_sum = (np.nan_to_num(last["avg"]) * last["total"]
                          - np.nan_to_num(base["avg"]) * base["total"])
                rec = {"run_id": rid, "tool": "locust", "scenario": scenario,
                       "concurrency": rows[i]["users"], "throughput_per_s": n / dur,
                       "latency_mean_s": rt_sum / n / 1e3 if n > 0 else NAN,
                       "errors": last["fails"] - base["fails"], "requests": n,
                       "duration_s": dur,
                       "started_at": pd.Timestamp(base["t"], unit="s", tz="UTC")}
                pct = {k: last[k] for k, _c in _PCTS}
                usable = (windowed and any(v > 0 for v in pct.values())) or \
                    (not windowed and base["total"] == 0)
                rec.update(pct if usable else {k: NAN for k in pct})
                out.append(rec)
        i = j + 1
    return out
