"""Findings: the plain data between the models and the report.

A :class:`Finding` is one figure with its evidence: value, unit, interval, sample count, window,
source, status, and the text the report shows for it (``display``), formatted once here.  Each
notebook saves its findings as ``findings/<notebook>.json`` in the run folder; the report
notebook gathers them into ``summary.json`` (schema below) and the report renders only what is in
it, so every number in the handoff document traces to summary.json by construction.

summary.json, schema_version 1::

    {"schema_version": 1, "generated_at": ISO, "name", "service", "from_phase", "to_phase",
     "synthetic": bool, "degraded": bool,
     "sections": {"<section>": [Finding, ...], ...},
     "statements": [{"severity", "text", "refs": [finding ids]}],   # executive summary
     "notes": {"<section>": [str, ...]}, "figures": {"<id>": "figures/<file>.png"}}

A Finding (all keys always present; null where not applicable)::

    {"id", "section", "label", "metric", "value", "unit", "interval": [lo, hi] | null,
     "n", "window": [start, end] | null, "source", "status", "detail",
     "display": {"value", "interval", ...}, "extra": {...}}
"""

from __future__ import annotations

import json
import math
import re
import os
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pandas as pd

__all__ = ["SUMMARY_SCHEMA", "slug", "Finding", "fmt", "fmt_interval", "fmt_date", "save_findings",
           "load_findings", "write_summary", "read_summary", "SEVERITY", "STATUS_WORDS",
           "P_CROSS_AT_RISK", "runway_status", "fmt_time", "fmt_window"]


def slug(text: str) -> str:
    """The file-name form of a name, used for finding ids and figure files: lower case, ``_``
    between words (``Redis memory`` and ``redis-memory`` are both ``redis_memory``)."""
    return re.sub(r"[^a-z0-9]+", "_", str(text).lower()).strip("_")

SUMMARY_SCHEMA = 1
#: status -> severity rank (higher is worse), used to order the executive summary
SEVERITY = {"failed": 5, "misses": 4, "critical": 4, "worse": 4, "already over limit": 4,
            "stale": 3, "crosses": 3, "at risk": 3,
            "insufficient evidence": 2, "insufficient data": 2, "not within horizon": 1,
            "regressed": 4, "changed": 1, "improved": 0, "no change": 0,
            "meets": 0, "better": 0, "no detectable change": 0, "increased": 0, "decreased": 0,
            "no limit": 0, "info": 0, None: 0}

#: THE status vocabulary of capplan: every status a finding, the notebook, the CLI or the report
#: shows, with what it means.  Other modules import these words instead of spelling them.
STATUS_WORDS: dict[str, str] = {
    "failed": "the source could not be read during this run",
    "misses": "the whole interval (or a reading) is on the bad side of the target",
    "critical": "a miss past the critical threshold",
    "stale": "the source failed this run or its newest sample is too old: no status is claimed",
    "at risk": "meets the target but reaches its warning zone; for a runway: the forecast stays "
               "below the limit but the calibrated paths cross it with probability >= 20%",
    "crosses": "the forecast reaches the limit within the horizon",
    "already over limit": "the current value is past the limit",
    "insufficient evidence": "the data cannot support a status (too few blocks, no interval)",
    "insufficient data": "too little history for a forecast or a fit",
    "not within horizon": "the forecast stays below the limit up to the horizon",
    "meets": "the whole interval is on the good side of the target",
    "no limit": "no limit is known for the resource",
    "worse": "a regression since the previous phase", "better": "an improvement",
    "no detectable change": "the change is within the noise",
    "increased": "went up (no good direction)", "decreased": "went down (no good direction)",
    "info": "a figure without a target",
}

#: A resource whose forecast stays under its limit is still "at risk" when the calibrated paths
#: cross it within the horizon with at least this probability.
P_CROSS_AT_RISK = 0.2


def runway_status(status: str | None, p_cross: float | None) -> str | None:
    """The one word for a runway finding: "not within horizon" becomes "at risk" when the
    calibrated paths cross the limit with probability >= :data:`P_CROSS_AT_RISK`."""
    if status == "not within horizon" and (p_cross or 0.0) >= P_CROSS_AT_RISK:
        return "at risk"
    return status

_BYTES = [("TiB", 2 ** 40), ("GiB", 2 ** 30), ("MiB", 2 ** 20), ("KiB", 2 ** 10)]


def _num(x: float, digits: int = 3) -> str:
    if x == 0:
        return "0"
    if float(x).is_integer():
        return f"{x:,.0f}"
    mag = abs(x)
    if mag >= 1000:
        return f"{x:,.0f}"
    decimals = max(0, digits - 1 - int(math.floor(math.log10(mag))))
    return f"{x:.{min(decimals, 6)}f}"


def fmt(value: Any, unit: str | None) -> str:
    """Human text for a value in a unit: bytes in IEC units, ratios as %, seconds in ms/s."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    if isinstance(value, (pd.Timestamp, datetime)):
        return fmt_date(value)
    v = float(value)
    if unit == "bytes":
        for name, size in _BYTES:
            if abs(v) >= size:
                return f"{_num(v / size)} {name}"
        return f"{v:.0f} B"
    if unit in ("ratio",):
        from capplan.core.numfmt import fmt_value

        return fmt_value(v, "ratio")
    if unit == "percent":
        return f"{v:.1f}%"
    if unit == "seconds":
        return f"{_num(v * 1000)} ms" if abs(v) < 1 else f"{_num(v)} s"
    suffix = {"per_second": "/s", "requests_per_second": " req/s",
              "transactions_per_second": " tx/s", "connections": " connections",
              "clients": " clients"}.get(unit or "", "")
    return f"{_num(v)}{suffix}"


def fmt_interval(lo: Any, hi: Any, unit: str | None) -> str | None:
    """``lo – hi``; ratios get as many decimals as it takes for the two ends to differ."""
    if lo is None or hi is None:
        return None
    if any(isinstance(x, float) and math.isnan(x) for x in (lo, hi)):
        return None
    if unit == "ratio":
        from capplan.core.numfmt import fmt_interval as _ratio_interval

        return _ratio_interval(float(lo), float(hi), "ratio")
    return f"{fmt(lo, unit)} – {fmt(hi, unit)}"


def fmt_date(ts: Any) -> str:
    if ts is None:
        return "n/a"
    return pd.Timestamp(ts).strftime("%Y-%m-%d")


def fmt_window(a: Any, b: Any) -> str:
    """Dates of a window as the data was seen; times too when it spans less than two days."""
    if a is None or b is None:
        return f"{fmt_date(a)} – {fmt_date(b)}"
    if pd.Timestamp(b) - pd.Timestamp(a) < pd.Timedelta(days=2):
        return f"{fmt_time(a)} – {fmt_time(b)}"
    return f"{fmt_date(a)} – {fmt_date(b)}"


def fmt_time(ts: Any) -> str:
    """``2026-12-01 20:43 UTC`` (for "no data since ...")."""
    if ts is None:
        return "never"
    return pd.Timestamp(ts).strftime("%Y-%m-%d %H:%M UTC")


def jsonable(obj: Any) -> Any:
    """JSON-safe: timestamps to ISO, NaN/inf to null, numpy scalars to Python."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, (pd.Timestamp, datetime)):
        return pd.Timestamp(obj).isoformat()
    if hasattr(obj, "item") and not isinstance(obj, (str, bytes)):
        try:
            obj = obj.item()
        except (ValueError, AttributeError):
            pass
    if isinstance(obj, float) and (math.isnan(obj) or math.isinf(obj)):
        return None
    return obj


@dataclass(frozen=True)
class Finding:
    """One figure of the report with its evidence (see the module docstring)."""

    id: str
    section: str
    label: str
    value: Any = None
    unit: str | None = None
    interval: tuple[Any, Any] | None = None
    n: float | None = None
    window: tuple[Any, Any] | None = None
    source: str | None = None
    status: str | None = None
    detail: str | None = None
    metric: str | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        d = asdict(self)
        disp = {"value": fmt(self.value, self.unit)}
        if self.interval is not None:
            disp["interval"] = fmt_interval(self.interval[0], self.interval[1], self.unit)
        if self.n is not None:
            disp["n"] = f"{float(self.n):,.0f}"
        if self.window is not None and self.window[0] is not None:
            disp["window"] = fmt_window(self.window[0], self.window[1])
        disp.update({k: v for k, v in self.extra.get("display", {}).items()})
        d["display"] = disp
        return jsonable(d)


def save_findings(run_dir: str | Path, notebook: str, findings: list[Finding], *,
                  notes: list[str] | None = None, figures: dict[str, str] | None = None,
                  meta: dict | None = None) -> Path:
    """Write ``findings/<notebook>.json`` atomically (temp file + rename)."""
    folder = Path(run_dir) / "findings"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{notebook}.json"
    payload = {"notebook": notebook, "findings": [f.to_dict() for f in findings],
               "notes": list(notes or []), "figures": dict(figures or {}), "meta": jsonable(meta or {})}
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def load_findings(run_dir: str | Path) -> dict[str, dict]:
    """All saved findings of a run folder, by notebook name (empty when none)."""
    folder = Path(run_dir) / "findings"
    out = {}
    if folder.is_dir():
        for p in sorted(folder.glob("*.json")):
            out[p.stem] = json.loads(p.read_text(encoding="utf-8"))
    return out


def write_summary(run_dir: str | Path, summary: dict) -> Path:
    """Write ``summary.json`` (strict JSON, schema_version set) atomically."""
    summary = jsonable({"schema_version": SUMMARY_SCHEMA,
                      "generated_at": datetime.now(timezone.utc).isoformat(), **summary})
    path = Path(run_dir) / "summary.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return path


def read_summary(path: str | Path) -> dict:
    """Read a summary.json (a run folder or the file); raises ValueError on a newer schema."""
    p = Path(path)
    if p.is_dir():
        p = p / "summary.json"
    data = json.loads(p.read_text(encoding="utf-8"))
    if int(data.get("schema_version", 0)) > SUMMARY_SCHEMA:
        raise ValueError(f"{p}: summary schema {data.get('schema_version')} is newer than this "
                         f"capplan ({SUMMARY_SCHEMA}); upgrade capplan")
    return data
