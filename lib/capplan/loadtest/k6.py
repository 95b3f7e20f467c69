"""k6 results: the two end-of-test JSON summaries and the NDJSON / CSV sample streams.

The summaries' shapes differ (verified with k6 v1.1.0; REFERENCE.md section 0 item 21, 3.1):

================ ========================================== ====================================
                 ``--summary-export`` (legacy)              ``handleSummary(data)``
================ ========================================== ====================================
trend            flat ``metrics.m["p(95)"]`` (ms)           ``metrics.m.values["p(95)"]``
threshold        ``{"p(95)<500": false}``, **true = FAILED** ``{"p(95)<500": {"ok": true}}``
rate             ``{"passes","fails","value"}``             ``values: {"rate","passes","fails"}``
duration         not written (``http_reqs`` count / rate)   ``state.testRunDurationMs``
================ ========================================== ====================================

In ``http_req_failed`` a *pass* is a **failed request** (the rate metric counts ``true``
samples).  The default trend stats are ``avg, min, med, max, p(90), p(95)``: p99 is NaN unless
the run used ``--summary-trend-stats`` with ``p(99)``.

Streams: ``--out json=FILE`` writes NDJSON (``{"type":"Metric",...}`` and
``{"type":"Point","data":{"time","value","tags"}}``), ``--out csv=FILE`` a CSV whose columns
vary by version (read by name: ``metric_name``, ``timestamp``, ``metric_value``); its timestamp
is unix seconds by default (``K6_CSV_TIME_FORMAT`` may make it ms/µs/ns or RFC 3339).  ``.gz``
files are read transparently.
"""

from __future__ import annotations

import gzip
import os
import zlib

import numpy as np
import pandas as pd

from capplan.errors import ParseError
from capplan.loadtest._io import (EPOCH_MAX_S, EPOCH_MIN_S, NAN, check_duration, csv_rows,
                                  iso_times, json_loads, json_number, number, read_text,
                                  run_id_for, to_utc)
from capplan.loadtest.points import file_start_time, make_points

__all__ = ["read_k6_summary", "k6_thresholds", "read_k6_json_stream", "read_k6_csv_stream",
           "k6_summary_format"]


def _load_json(path) -> dict:
    obj = json_loads(read_text(path), path, None, "truncated or not a k6 summary")
    if not isinstance(obj, dict) or not isinstance(obj.get("metrics"), dict):
        raise ParseError("no 'metrics' object: not a k6 end-of-test summary", path=str(path),
                         line=1, hint="use k6 --summary-export=FILE or a handleSummary script")
    return obj


def k6_summary_format(obj: dict) -> str:
    """``"handleSummary"`` when metrics carry ``values`` and ``type``, else ``"summary-export"``."""
    for m in obj.get("metrics", {}).values():
        if isinstance(m, dict) and isinstance(m.get("values"), dict) and "type" in m:
            return "handleSummary"
    return "summary-export"


def _values(obj: dict, fmt: str, name: str) -> dict:
    m = obj["metrics"].get(name)
    if not isinstance(m, dict):
        return {}
    v = m.get("values", {}) if fmt == "handleSummary" else m
    return v if isinstance(v, dict) else {}


def read_k6_summary(path: str | os.PathLike, *, run_id: str | None = None,
                    started_at=None) -> pd.DataFrame:
    """One load point from a k6 ``--summary-export`` or ``handleSummary`` JSON file.

    concurrency = ``vus_max`` max (else ``vus`` max); requests and throughput = ``http_reqs``
    count and rate (``iterations`` when the test made no HTTP requests); latencies from
    ``http_req_duration`` (``iteration_duration`` without HTTP) avg / med / p(95) / p(99), ms → s;
    errors = ``http_req_failed`` passes; duration_s = ``state.testRunDurationMs`` (handleSummary)
    or count / rate.  ``started_at`` defaults to file mtime minus duration.
    Raises ParseError (file, line) on invalid or truncated JSON and on a summary without
    ``http_reqs`` or ``iterations``.
    """
    obj = _load_json(path)
    fmt = k6_summary_format(obj)
    reqs = _values(obj, fmt, "http_reqs")
    trend = _values(obj, fmt, "http_req_duration")
    if not reqs:
        reqs = _values(obj, fmt, "iterations")
        trend = _values(obj, fmt, "iteration_duration")
    if not reqs:
        raise ParseError("summary has neither 'http_reqs' nor 'iterations'", path=str(path),
                         line=1)

    def val(d: dict, key: str, what: str) -> float:
        return json_number(d[key], path=path, line=None, what=what) if key in d else NAN

    count = val(reqs, "count", "http_reqs.count")
    rate = val(reqs, "rate", "http_reqs.rate")
    failed = _values(obj, fmt, "http_req_failed")
    vus = _values(obj, fmt, "vus_max") or _values(obj, fmt, "vus")
    duration = NAN
    state = obj.get("state")
    if fmt == "handleSummary" and isinstance(state, dict) and "testRunDurationMs" in state:
        duration = val(state, "testRunDurationMs", "state.testRunDurationMs") / 1e3
    elif rate > 0:
        duration = count / rate
    duration = check_duration(duration, path=path, line=None, what="k6 summary duration")
    pts = make_points([{
        "run_id": run_id or run_id_for(path), "tool": "k6", "scenario": "",
        "concurrency": val(vus, "max", "vus_max.max"), "throughput_per_s": rate,
        "latency_mean_s": val(trend, "avg", "avg") / 1e3,
        "latency_p50_s": val(trend, "med", "med") / 1e3,
        "latency_p95_s": val(trend, "p(95)", "p(95)") / 1e3,
        "latency_p99_s": val(trend, "p(99)", "p(99)") / 1e3,
        "errors": val(failed, "passes", "http_req_failed.passes") if failed else 0.0,
        "requests": count, "duration_s": duration,
    }])
    pts["started_at"] = to_utc(started_at if started_at is not None
                               else file_start_time(path, duration))
    return pts


def k6_thresholds(path: str | os.PathLike) -> dict[str, dict[str, bool]]:
    """Thresholds of a k6 summary as ``{metric: {expression: ok}}`` with ``ok`` True = passed.

    Normalises ``--summary-export``'s inverted boolean (``true`` there means the threshold
    FAILED, grafana/k6#1498) and ``handleSummary``'s ``{"ok": bool}``.
    """
    obj = _load_json(path)
    fmt = k6_summary_format(obj)
    out: dict[str, dict[str, bool]] = {}
    for name, m in obj["metrics"].items():
        th = m.get("thresholds") if isinstance(m, dict) else None
        if not th:
            continue
        if not isinstance(th, dict):
            raise ParseError("a metric's 'thresholds' is not an object", path=str(path),
                             line=None)
        if fmt == "handleSummary":
            out[name] = {expr: bool(v.get("ok")) if isinstance(v, dict) else False
                         for expr, v in th.items()}
        else:
            out[name] = {expr: not bool(v) for expr, v in th.items()}
    return out


def _open_text(path) -> str:
    if str(path).endswith(".gz"):
        try:
            with gzip.open(path, "rt", encoding="utf-8") as fh:
                return fh.read()
        except (OSError, EOFError, UnicodeDecodeError, zlib.error) as exc:
            # the reason's class, not its text: a decoding error's text carries raw bytes
            raise ParseError(f"cannot read gzipped k6 output ({type(exc).__name__})",
                             path=str(path)) from None
    return read_text(path)


def _stream_point(samples: dict[str, list], times: pd.Series, resolution_s: float, *,
                  run_id: str, concurrency, started_at) -> pd.DataFrame:
    """One load point from collected stream samples ``{metric: [values]}`` and all sample times."""
    dur = np.asarray(samples.get("http_req_duration", []), dtype=float)
    if not len(dur):
        dur = np.asarray(samples.get("iteration_duration", []), dtype=float)
    reqs = float(np.sum(samples.get("http_reqs", []))) if samples.get("http_reqs") \
        else float(len(dur))
    failed = float(np.sum(samples.get("http_req_failed", [])))
    vus = samples.get("vus", [])
    if concurrency is None:
        concurrency = float(max(vus)) if vus else NAN
    span = (times.max() - times.min()).total_seconds() + resolution_s if len(times) else NAN
    pct = (lambda q: float(np.percentile(dur, q)) / 1e3) if len(dur) else (lambda q: NAN)
    return make_points([{
        "run_id": run_id, "tool": "k6", "concurrency": concurrency,
        "throughput_per_s": reqs / span if span and span > 0 else NAN,
        "latency_mean_s": float(dur.mean()) / 1e3 if len(dur) else NAN,
        "latency_p50_s": pct(50), "latency_p95_s": pct(95), "latency_p99_s": pct(99),
        "errors": failed, "requests": reqs, "duration_s": span,
        "started_at": started_at if started_at is not None else
        (times.min() if len(times) else pd.NaT),
    }])


_STREAM_DOC = """
    The stream is reduced to ONE load point for the run: percentiles are computed exactly from
    the ``http_req_duration`` samples (so p99 is available), requests = Σ ``http_reqs``, errors =
    Σ ``http_req_failed`` (1 = failed), concurrency = max ``vus`` sample (or ``concurrency=``),
    duration_s = last − first sample time (+ the timestamp resolution), an approximation that
    misses the time before the first sample; throughput = requests / duration_s.
"""


def read_k6_json_stream(path: str | os.PathLike, *, run_id: str | None = None,
                        concurrency: float | None = None, started_at=None) -> pd.DataFrame:
    """One load point from k6 ``--out json=FILE`` NDJSON (``.gz`` too).

    Raises ParseError naming the line of a malformed or truncated JSON line, or when there
    are no ``Point`` lines.
    """
    text = _open_text(path)
    samples: dict[str, list] = {}
    times: list[str] = []
    lines: list[int] = []
    for i, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        obj = json_loads(line, path, i, "truncated k6 NDJSON?")
        if not isinstance(obj, dict) or "type" not in obj:
            raise ParseError("not a k6 NDJSON record (no 'type')", path=str(path), line=i)
        if obj["type"] != "Point":
            continue
        data = obj.get("data")
        if not isinstance(data, dict) or "time" not in data or "value" not in data:
            raise ParseError("Point without a data object holding time and value",
                             path=str(path), line=i)
        metric = obj.get("metric", "")
        if not isinstance(metric, str) or not isinstance(data["time"], str):
            raise ParseError("Point whose metric or data.time is not a string", path=str(path),
                             line=i)
        samples.setdefault(metric, []).append(
            json_number(data["value"], path=path, line=i, what="data.value"))
        times.append(data["time"])
        lines.append(i)
    if not times:
        raise ParseError("no Point lines in the k6 JSON stream", path=str(path),
                         line=max(len(text.splitlines()), 1))
    ts = iso_times(times, lines, path, "data.time")
    return _stream_point(samples, ts, 0.0, run_id=run_id or run_id_for(path),
                         concurrency=concurrency, started_at=started_at)


def _csv_times(raw: list[str], lines: list[int], path) -> tuple[pd.Series, float]:
    try:
        nums = np.asarray([float(x) for x in raw])
    except ValueError:  # RFC 3339 times (K6_CSV_TIME_FORMAT=rfc3339); parsed outside the
        nums = None     # handler so no chained error carries the text
    if nums is None:
        return iso_times(raw, lines, path, "timestamp"), 0.0
    finite = np.isfinite(nums)
    mag = float(np.max(np.abs(nums[finite]))) if finite.any() else 0.0
    # K6_CSV_TIME_FORMAT=unix (default) / unix_milli / unix_micro / unix_nano, told by magnitude
    unit, res = ("s", 1.0) if mag < 1e11 else ("ms", 1e-3) if mag < 1e14 else \
        ("us", 1e-6) if mag < 1e17 else ("ns", 1e-9)
    secs = nums * res
    bad = ~np.isfinite(secs) | (secs < EPOCH_MIN_S) | (secs > EPOCH_MAX_S)
    if bad.any():
        raise ParseError("timestamp: not a plausible unix time (1970 to 2200, in s, ms, us or ns)",
                         path=str(path), line=lines[int(np.flatnonzero(bad)[0])])
    return pd.Series(pd.to_datetime(nums, unit=unit, utc=True)), res


def read_k6_csv_stream(path: str | os.PathLike, *, run_id: str | None = None,
                       concurrency: float | None = None, started_at=None) -> pd.DataFrame:
    """One load point from k6 ``--out csv=FILE`` (``.gz`` too), columns read by name.

    Raises ParseError naming the line of a truncated row or a non-numeric value.
    """
    text = _open_text(path)
    samples: dict[str, list] = {}
    raw_times: list[str] = []
    lines: list[int] = []
    for ln, r in csv_rows(text, path, required=("metric_name", "timestamp", "metric_value")):
        samples.setdefault(r["metric_name"], []).append(
            number(r["metric_value"], path=path, line=ln, what="metric_value"))
        raw_times.append(r["timestamp"])
        lines.append(ln)
    if not raw_times:
        raise ParseError("no samples after the header", path=str(path), line=1)
    ts, res = _csv_times(raw_times, lines, path)
    return _stream_point(samples, ts, res, run_id=run_id or run_id_for(path),
                         concurrency=concurrency, started_at=started_at)


read_k6_json_stream.__doc__ += _STREAM_DOC
read_k6_csv_stream.__doc__ += _STREAM_DOC
