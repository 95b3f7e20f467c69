"""pgbench results: the end-of-run summary, ``-P`` progress lines and aggregate logs.

* **Summary** (stdout): ``number of clients``, ``duration`` or ``number of transactions per
  client``, ``number of transactions actually processed`` (``N`` or ``N/M``), ``number of failed
  transactions`` (PG15+), ``latency average``, and the ``tps =`` line, whose wording changed:
  PG14+ ``tps = X (without initial connection time)``; before PG14 two lines
  ``(including connections establishing)`` / ``(excluding connections establishing)`` (the
  *excluding* one is used, as it is comparable with the PG14+ figure); with ``-C``
  ``tps = X (including reconnection times)``.  pgbench prints no latency percentiles.
* **Progress** (``-P SEC``, on **stderr**): ``progress: 1.0 s, 1343.8 tps, lat 2.944 ms stddev
  1.675, 0 failed`` (``failed`` from PG15; ``, lag X ms`` with ``--rate``).  One point per line.
* **Aggregate logs** (``-l --aggregate-interval=SEC``): one file per thread
  (``pgbench_log.<pid>[.<n>]``), times in µs, merged here by ``interval_start``.  Field count by
  version: 6 (basic), 10 (``--rate``), 11 (``--rate --latency-limit``), 15 (PG15+: lag fields,
  skipped, retried, retries, serialization and deadlock failures always written).

Source: PostgreSQL pgbench documentation ("Typical output", "Aggregated Logging"); REFERENCE.md
section 0 item 24 and section 3.4.  Every malformed or truncated input raises
:class:`~capplan.errors.ParseError` naming the file and line.
"""

from __future__ import annotations

import glob
import os
import re
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from capplan.errors import ParseError
from capplan.loadtest._io import (NAN, check_duration, epoch_utc, number, read_text, run_id_for,
                                  to_utc)
from capplan.loadtest.points import file_start_time, make_points

__all__ = [
    "parse_pgbench_summary",
    "read_pgbench_summary",
    "read_pgbench_progress",
    "read_pgbench_aggregate",
    "pgbench_summary_fields",
]

_KV = re.compile(r"^(?P<key>[a-z][a-z ]*[a-z])\s*[:=]\s*(?P<val>.*)$")
_TPS = re.compile(r"^tps = (?P<val>\S+)(?: \((?P<how>[^)]*)\))?\s*$")
_MS = re.compile(r"^(?P<val>\S+) ms\b")
_PROGRESS = re.compile(
    r"^progress: (?P<t>[\d.]+) s, (?P<tps>[\d.]+|nan|inf|-?nan) tps, "
    r"lat (?P<lat>[\d.]+|nan|-?nan) ms stddev (?P<sd>[\d.]+|nan|-?nan|NaN)"
    r"(?:, (?:in queue \d+ )?(?P<failed>\d+) failed)?(?:, (?P<retried>\d+) retried, \d+ retries)?"
    r"(?:, lag (?P<lag>[\d.]+) ms)?(?:, (?P<skipped>\d+) skipped)?\s*$")


def pgbench_summary_fields(text: str, path: str | os.PathLike = "<stdout>") -> dict:
    """The summary's fields as a dict (keys below), from pgbench stdout ``text``.

    Keys: ``version``, ``transaction_type``, ``clients``, ``threads``, ``duration_s`` (``-T``
    runs), ``transactions_per_client`` (``-t`` runs), ``processed``, ``failed``,
    ``latency_mean_ms``, ``latency_stddev_ms``, ``connection_time_ms``, ``tps``, ``tps_wording``
    (``without initial connection time`` ...).  Raises ParseError (file, line) on a malformed
    value, and at the last line when the clients or ``tps =`` line is missing (truncated).
    """
    out: dict = {}
    tps_lines: dict[str, float] = {}
    lines = text.splitlines()
    for i, raw in enumerate(lines, start=1):
        line = raw.rstrip("\r")
        if line.startswith("pgbench ("):
            out["version"] = line[len("pgbench ("):].rstrip(")")
            continue
        m = _TPS.match(line)
        if m:
            how = (m.group("how") or "").strip()
            tps_lines[how] = number(m.group("val"), path=path, line=i, what="tps")
            continue
        m = _KV.match(line)
        if not m:
            continue
        key, val = m.group("key"), m.group("val").strip()
        if key == "transaction type":
            out["transaction_type"] = val.removeprefix("<builtin: ").removesuffix(">")
        elif key == "number of clients":
            out["clients"] = number(val, path=path, line=i, what=key)
        elif key == "number of threads":
            out["threads"] = number(val, path=path, line=i, what=key)
        elif key == "duration":
            out["duration_s"] = number(val.removesuffix(" s"), path=path, line=i, what=key)
        elif key == "number of transactions per client":
            out["transactions_per_client"] = number(val, path=path, line=i, what=key)
        elif key == "number of transactions actually processed":
            out["processed"] = number(val.split("/")[0], path=path, line=i, what=key)
        elif key == "number of failed transactions":
            out["failed"] = number(val.split(" ")[0], path=path, line=i, what=key)
        elif key in ("latency average", "latency stddev", "initial connection time",
                     "average connection time"):
            ms = _MS.match(val)
            if not ms:
                raise ParseError(f"{key}: expected '<number> ms'", path=str(path), line=i)
            v = number(ms.group("val"), path=path, line=i, what=key)
            name = {"latency average": "latency_mean_ms", "latency stddev": "latency_stddev_ms"
                    }.get(key, "connection_time_ms")
            out[name] = v
    end = max(len(lines), 1)
    if "clients" not in out:
        raise ParseError("no 'number of clients' line: not a pgbench summary, or truncated",
                         path=str(path), line=end,
                         hint="pass pgbench's stdout (the summary), not its stderr")
    if not tps_lines:
        raise ParseError("no 'tps =' line: the pgbench summary is truncated", path=str(path),
                         line=end, hint="did pgbench finish? its summary ends with 'tps = ...'")
    for how in ("without initial connection time", "excluding connections establishing",
                "including reconnection times", "including connections establishing"):
        if how in tps_lines:
            out["tps"], out["tps_wording"] = tps_lines[how], how
            break
    else:
        how, val = next(iter(tps_lines.items()))
        out["tps"], out["tps_wording"] = val, how
    return out


def parse_pgbench_summary(text: str, *, path: str | os.PathLike = "<stdout>", run_id: str = "",
                          started_at=None) -> pd.DataFrame:
    """One load point from pgbench summary ``text`` (see :func:`pgbench_summary_fields`).

    concurrency = clients; throughput = tps; latency_mean_s = latency average; errors = failed
    transactions (0 before PG15, which could not fail a transaction); requests = processed;
    duration_s = ``duration`` (``-T``) or processed / tps (``-t``).  Percentiles are NaN.
    """
    f = pgbench_summary_fields(text, path)
    processed = f.get("processed", NAN)
    duration = f.get("duration_s")
    if duration is None:
        duration = processed / f["tps"] if f["tps"] > 0 else NAN
    duration = check_duration(duration, path=path, line=None, what="pgbench run duration")
    return make_points([{
        "run_id": run_id, "tool": "pgbench", "scenario": f.get("transaction_type", ""),
        "concurrency": f["clients"], "throughput_per_s": f["tps"],
        "latency_mean_s": f.get("latency_mean_ms", NAN) / 1e3,
        "errors": f.get("failed", 0.0), "requests": processed, "duration_s": duration,
        "started_at": started_at,
    }])


def read_pgbench_summary(path: str | os.PathLike, *, run_id: str | None = None,
                         started_at=None) -> pd.DataFrame:
    """One load point from a file holding pgbench's summary (stdout; stderr mixed in is fine).

    ``started_at`` defaults to the file's modification time minus the run's duration.
    """
    text = read_text(path)
    pts = parse_pgbench_summary(text, path=path, run_id=run_id or run_id_for(path))
    if started_at is None:
        started_at = file_start_time(path, pts["duration_s"].iloc[0])
    pts["started_at"] = to_utc(started_at)
    return pts


def read_pgbench_progress(path: str | os.PathLike, *, concurrency: float | None = None,
                          run_id: str | None = None, started_at=None) -> pd.DataFrame:
    """One load point per ``progress:`` line of pgbench's stderr (``-P SEC``).

    Progress lines do not say how many clients ran: pass ``concurrency`` (else NaN).  Each
    point covers the time since the previous line; requests = tps × interval (rounded);
    errors = the ``failed`` count (PG15+, else 0).  ``started_at`` is the run start (default:
    file mtime minus the last progress time).  Other lines (``starting vacuum...``) are skipped;
    a ``progress:`` line that does not parse, or no such line at all, raises ParseError.
    """
    text = read_text(path)
    rid = run_id or run_id_for(path)
    rows = []
    prev_t = 0.0
    for i, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip("\r")
        if not line.startswith("progress:"):
            continue
        m = _PROGRESS.match(line)
        if not m:
            raise ParseError("unrecognised pgbench progress line", path=str(path), line=i,
                             hint="expected 'progress: 1.0 s, 123.4 tps, lat 1.2 ms "
                             "stddev 0.3[, 0 failed]'")
        t = check_duration(number(m.group("t"), path=path, line=i, what="progress time"),
                           path=path, line=i, what="progress time")
        tps = number(m.group("tps"), path=path, line=i, what="tps", allow_na=True)
        lat = number(m.group("lat"), path=path, line=i, what="lat", allow_na=True)
        interval = t - prev_t
        n_req = tps * interval
        rows.append({"run_id": rid, "tool": "pgbench", "concurrency": concurrency,
                     "throughput_per_s": tps, "latency_mean_s": lat / 1e3,
                     "errors": number(m.group("failed") or "0", path=path, line=i, what="failed"),
                     "requests": round(n_req) if np.isfinite(n_req) else NAN,
                     "duration_s": interval, "_offset": prev_t})
        prev_t = t
    if not rows:
        raise ParseError("no 'progress:' lines (pgbench -P writes them to stderr)",
                         path=str(path), line=max(len(text.splitlines()), 1))
    base = to_utc(started_at if started_at is not None else file_start_time(path, prev_t))
    for r in rows:
        r["started_at"] = base + pd.Timedelta(seconds=r.pop("_offset"))
    return make_points(rows)


_AGG_FIELDS = {
    6: ("interval_start", "num_transactions", "sum_latency", "sum_latency_2", "min_latency",
        "max_latency"),
}
_AGG_FIELDS[10] = _AGG_FIELDS[6] + ("sum_lag", "sum_lag_2", "min_lag", "max_lag")
_AGG_FIELDS[11] = _AGG_FIELDS[10] + ("skipped",)
_AGG_FIELDS[15] = _AGG_FIELDS[11] + ("retried", "retries", "serialization_failures",
                                     "deadlock_failures")


def _agg_files(paths) -> list[Path]:
    if isinstance(paths, (str, os.PathLike)):
        p = Path(paths)
        if p.is_dir():
            files = sorted(p.glob("pgbench_log.*"))
            if not files:
                raise ParseError("no pgbench_log.* files in this directory", path=str(p))
            return files
        if any(ch in str(paths) for ch in "*?["):
            return [Path(x) for x in sorted(glob.glob(str(paths)))]
        return [p]
    return [Path(x) for x in paths]


def _read_agg_file(path: Path) -> pd.DataFrame:
    text = read_text(path)
    rows = []
    width = None
    for i, raw in enumerate(text.splitlines(), start=1):
        parts = raw.split()
        if not parts:
            continue
        if len(parts) not in _AGG_FIELDS:
            raise ParseError(f"aggregate log line has {len(parts)} fields; expected 6, 10, 11 or "
                             "15 (truncated or not an --aggregate-interval log?)", path=str(path),
                             line=i)
        if width is not None and len(parts) != width:
            raise ParseError(f"line has {len(parts)} fields, earlier lines have {width}",
                             path=str(path), line=i)
        width = len(parts)
        vals = [number(x, path=path, line=i, what=name)
                for x, name in zip(parts, _AGG_FIELDS[width])]
        epoch_utc(vals[0], path=path, line=i, what="interval_start")  # a plausible clock
        rows.append(dict(zip(_AGG_FIELDS[width], vals)))
    if not rows:
        raise ParseError("empty aggregate log", path=str(path), line=1)
    return pd.DataFrame(rows)


def read_pgbench_aggregate(paths: str | os.PathLike | Sequence[str | os.PathLike], *,
                           interval_s: float | None = None, concurrency: float | None = None,
                           run_id: str | None = None) -> pd.DataFrame:
    """Load points from pgbench aggregate logs, one per interval, all threads merged.

    ``paths`` is a directory (all ``pgbench_log.*`` in it), a glob, one file or a list of the
    per-thread files of ONE run.  Threads are merged by ``interval_start``: transactions and
    latency sums add, so latency_mean_s = Σ sum_latency / Σ num_transactions (µs → s).
    errors = serialization + deadlock failures (PG15 15-field logs; else 0); throughput =
    transactions / ``interval_s`` (default: the smallest step between interval starts; the last
    interval may be partial).  Percentiles are NaN.  ``concurrency`` is not in the logs: pass it.
    """
    files = _agg_files(paths)
    if not files:
        raise ParseError("no aggregate log files matched", path=str(paths))
    frames = [_read_agg_file(f) for f in files]
    df = pd.concat(frames, ignore_index=True)
    for col in ("serialization_failures", "deadlock_failures"):
        if col not in df.columns:
            df[col] = 0.0
    g = df.groupby("interval_start").agg(
        n=("num_transactions", "sum"), lat=("sum_latency", "sum"),
        ser=("serialization_failures", "sum"), dead=("deadlock_failures", "sum"),
    ).sort_index()
    if interval_s is None:
        starts = g.index.to_numpy(dtype=float)
        steps = np.diff(starts)
        if not len(steps):
            raise ParseError("one interval only: cannot infer the aggregate interval",
                             path=str(files[0]), hint="pass interval_s= (pgbench's "
                             "--aggregate-interval)")
        interval_s = float(steps.min())
    # pgbench_log.<pid>[.<thread>]: the run is named by the main file
    rid = run_id or ".".join(Path(files[0]).name.split(".")[:2])
    out = pd.DataFrame({
        "run_id": rid, "tool": "pgbench", "concurrency": concurrency,
        "throughput_per_s": g["n"].to_numpy() / interval_s,
        "latency_mean_s": np.where(g["n"] > 0, g["lat"] / g["n"].where(g["n"] > 0, 1), NAN) / 1e6,
        "errors": (g["ser"] + g["dead"]).to_numpy(), "requests": g["n"].to_numpy(),
        "duration_s": interval_s,
        "started_at": [datetime.fromtimestamp(float(t), tz=timezone.utc) for t in g.index],
    })
    return make_points(out)
