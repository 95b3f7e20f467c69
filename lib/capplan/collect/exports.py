"""``mode: files``: history from CSV or Parquet exports (Grafana, CloudWatch, Datadog, anything).

Params key ``files``, a list; each entry is one file::

    files:
      # one series per file (Grafana "Series joined by time" / CloudWatch / Datadog CSV)
      - path: exports/api_rate.csv
        timestamp: Time                  # the time column
        value: Value                     # the value column ...
        metric: api_request_rate         # ... and the series it becomes
        unit: requests/s
        timezone: Europe/Berlin          # zone of timestamps written without one (default UTC)
      # several value columns in one file (a Grafana panel with three series)
      - path: exports/memory.csv
        timestamp: Time
        columns: {"redis-1": redis_used_memory_bytes, "redis-2": redis_used_memory_bytes}
        labels: {job: redis}             # constant labels; the column name is kept as `column`
        unit: bytes
      # long format: one row per (time, metric, labels)
      - path: exports/all.parquet
        layout: long
        timestamp: ts
        metric_column: metric            # the column naming the series
        value: value
        labels: [instance, queue]        # columns kept as labels
        kind: counter                    # counters must be raw (cumulative), not rates

Keys: ``path`` (relative to the project folder), ``format`` (``csv``, ``parquet`` or ``auto`` from
the suffix), ``layout`` (``wide``, default, or ``long``), ``timestamp``, ``value``, ``metric``,
``metric_column``, ``columns`` (wide: value column -> metric), ``labels`` (a mapping of constant
labels, or for long files a list of label columns), ``source`` (default ``file:<file stem>``),
``unit`` (a contract unit or an alias such as ``requests/s``; default ``count``), ``kind``
(``gauge`` or ``counter``) and ``timezone`` (an IANA name, the zone of naive timestamps).

Timestamps: ISO 8601 or any text pandas reads, or epoch numbers (seconds; milliseconds when
above 10^11, as Grafana writes them).  A timestamp with its own offset keeps it; one without is
read in ``timezone``.  An empty cell, ``NaN`` or ``null`` is a missing sample and is skipped.

Errors are :class:`~capplan.errors.ParseError` naming the file and the line (CSV: the 1-based
line in the file, header = line 1; Parquet: ``row N``), or :class:`~capplan.errors.ConfigError`
naming the entry's key (a column that is not in the file lists the columns that are).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from capplan.core.frame import UNITS, make_frame
from capplan.errors import ConfigError, ParseError

__all__ = ["read_export", "read_exports", "validate_files", "FILE_KEYS"]

FILE_KEYS = frozenset({"path", "format", "layout", "timestamp", "value", "metric",
                       "metric_column", "source", "labels", "unit", "kind", "timezone",
                       "columns"})
_METRIC_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
_MISSING = {"", "nan", "NaN", "NAN", "null", "NULL", "None", "none", "-"}


def _resolve(path: object, base: Path | None, key: str) -> Path:
    if not isinstance(path, str) or not path.strip():
        raise ConfigError("path is required", key=key, hint="e.g. path: exports/api_rate.csv")
    p = Path(path).expanduser()
    if not p.is_absolute() and base is not None:
        p = Path(base) / p
    return p


def _unit(value: object, key: str) -> str:
    from capplan.collect.promql import UNIT_ALIASES

    text = "count" if value is None else UNIT_ALIASES.get(str(value).strip(), str(value).strip())
    if text not in UNITS:
        raise ConfigError(f"unknown unit {value!r}", key=key,
                          hint=f"use one of {', '.join(sorted(UNITS))}")
    return text


def _metric(name: object, key: str) -> str:
    if not isinstance(name, str) or not _METRIC_RE.match(name):
        raise ConfigError(f"metric name {name!r} must be snake_case", key=key,
                          hint="e.g. api_request_rate; capacity and targets use this name")
    return name


def _check_entry(entry: object, key: str) -> dict:
    if not isinstance(entry, Mapping):
        raise ConfigError("each file entry must be a mapping", key=key,
                          hint="e.g. {path: exports/api.csv, timestamp: Time, value: Value, "
                               "metric: api_request_rate}")
    bad = sorted(set(entry) - FILE_KEYS)
    if bad:
        raise ConfigError(f"unknown key(s) {bad}", key=key,
                          hint=f"allowed keys: {', '.join(sorted(FILE_KEYS))}")
    e = dict(entry)
    layout = e.get("layout", "wide")
    if layout not in ("wide", "long"):
        raise ConfigError(f"layout must be wide or long, got {layout!r}", key=f"{key}.layout")
    if e.get("kind", "gauge") not in ("gauge", "counter"):
        raise ConfigError(f"kind must be gauge or counter, got {e.get('kind')!r}",
                          key=f"{key}.kind")
    if layout == "wide":
        if e.get("columns") is None and (e.get("metric") is None or e.get("value") is None):
            raise ConfigError("a wide file needs value and metric (one series), or columns "
                              "(value column -> metric)", key=key)
        if e.get("columns") is not None:
            if not isinstance(e["columns"], Mapping) or not e["columns"]:
                raise ConfigError("columns must map value columns to metric names",
                                  key=f"{key}.columns")
            for col, m in e["columns"].items():
                _metric(m, f"{key}.columns.{col}")
        else:
            _metric(e["metric"], f"{key}.metric")
        if isinstance(e.get("labels"), list):
            raise ConfigError("label columns (a list) need layout: long; a wide file takes "
                              "constant labels (a mapping)", key=f"{key}.labels")
    else:
        if e.get("value") is None or (e.get("metric_column") is None and e.get("metric") is None):
            raise ConfigError("a long file needs value and metric_column (or one metric)", key=key)
        if e.get("metric") is not None:
            _metric(e["metric"], f"{key}.metric")
    labels = e.get("labels")
    if labels is not None and not isinstance(labels, (Mapping, list)):
        raise ConfigError("labels must be a mapping (constant labels) or a list of columns",
                          key=f"{key}.labels")
    try:
        pd.Timestamp("2026-01-01").tz_localize(str(e.get("timezone", "UTC")))
    except Exception as exc:   # pytz/zoneinfo raise different types for an unknown zone
        raise ConfigError(f"unknown time zone {e.get('timezone')!r}", key=f"{key}.timezone",
                          hint="use an IANA name such as UTC, Europe/Berlin, America/New_York"
                          ) from exc
    e["unit"] = _unit(e.get("unit"), f"{key}.unit")
    return e


def _format(p: Path, fmt: str | None) -> str:
    fmt = (fmt or "auto").lower()
    if fmt == "auto":
        fmt = "parquet" if p.suffix.lower() in (".parquet", ".pq") else "csv"
    if fmt not in ("csv", "parquet"):
        raise ConfigError(f"format must be csv, parquet or auto, got {fmt!r}", key="format")
    return fmt


def _table(p: Path, fmt: str) -> tuple[pd.DataFrame, int, str]:
    """The file as text cells (CSV) or typed columns (Parquet); line offset; row word."""
    if not p.is_file():
        raise ParseError("file not found", path=str(p),
                         hint="paths are relative to the project folder (the one holding params/)")
    if fmt == "parquet":
        try:
            import pyarrow.parquet as pq
        except ImportError as exc:
            raise ConfigError("reading Parquet needs pyarrow", key="format",
                              hint="pip install pyarrow, or export CSV instead") from exc
        try:
            return pq.read_table(p).to_pandas(), 1, "row"
        except Exception as exc:   # pyarrow raises ArrowInvalid, OSError...
            raise ParseError(f"not a readable Parquet file: {exc}", path=str(p)) from exc
    try:
        df = pd.read_csv(p, dtype=str, keep_default_na=False, skipinitialspace=True,
                         comment=None, encoding="utf-8-sig")
    except (pd.errors.ParserError, UnicodeDecodeError) as exc:
        m = re.search(r"line (\d+)", str(exc))
        raise ParseError(f"not valid CSV: {exc}", path=str(p),
                         line=int(m.group(1)) if m else None,
                         hint="export as comma-separated values with one header line") from exc
    except pd.errors.EmptyDataError as exc:
        raise ParseError("the file is empty", path=str(p)) from exc
    return df, 2, "line"   # header is line 1


def _col(df: pd.DataFrame, name: object, key: str, p: Path) -> pd.Series:
    if name not in df.columns:
        raise ConfigError(f"{p.name} has no column {name!r} (columns: "
                          f"{', '.join(map(str, df.columns))})", key=key,
                          hint="name the column exactly as in the file's header")
    return df[name]


def _shape(text: str) -> str:
    """What a bad cell looks like, without quoting it (a cell may hold anything, secrets
    included): its length and which kinds of characters it has."""
    kinds = [name for name, test in (("digits", str.isdigit), ("letters", str.isalpha),
                                     ("spaces", str.isspace))
             if any(test(ch) for ch in text)]
    if any(not (ch.isalnum() or ch.isspace()) for ch in text):
        kinds.append("other characters")
    return f"a {len(text)}-character cell with {', '.join(kinds) or 'nothing'}"


def _where(p: Path, word: str, offset: int, i: int) -> dict:
    return ({"path": str(p), "line": offset + i} if word == "line"
            else {"path": f"{p} (row {i + 1})"})


def _timestamps(col: pd.Series, tz: str, p: Path, word: str, offset: int) -> pd.Series:
    if pd.api.types.is_datetime64_any_dtype(col):
        ts = pd.to_datetime(col)
        return ts.dt.tz_localize(tz).dt.tz_convert("UTC") if ts.dt.tz is None \
            else ts.dt.tz_convert("UTC")
    out = []
    for i, raw in enumerate(col.tolist()):
        text = str(raw).strip()
        try:
            num = float(text)
        except ValueError:
            num = None
        try:
            if num is not None and math.isfinite(num):
                ts = pd.Timestamp(num / 1000 if abs(num) > 1e11 else num, unit="s", tz="UTC")
            else:
                ts = pd.Timestamp(text)
                if ts is pd.NaT:
                    raise ValueError("empty")
                ts = ts.tz_localize(tz) if ts.tzinfo is None else ts
                ts = ts.tz_convert("UTC")
        except (ValueError, TypeError, OverflowError):
            raise ParseError(f"timestamp is not a time ({_shape(text)})",
                             **_where(p, word, offset, i),
                             hint="use ISO 8601 (2026-01-01T00:00:00Z) or epoch seconds/ms"
                             ) from None
        out.append(ts)
    return pd.Series(pd.DatetimeIndex(out), index=col.index)


def _values(col: pd.Series, p: Path, word: str, offset: int, kind: str) -> np.ndarray:
    if pd.api.types.is_numeric_dtype(col):
        v = col.to_numpy(dtype=float)
    else:
        v = np.empty(len(col))
        for i, raw in enumerate(col.tolist()):
            text = "" if raw is None else str(raw).strip()
            if text in _MISSING:
                v[i] = np.nan
                continue
            try:
                v[i] = float(text.replace(",", "")) if re.fullmatch(r"[-+]?\d{1,3}(,\d{3})+(\.\d*)?",
                                                                    text) else float(text)
            except ValueError:
                raise ParseError(f"value is not a number ({_shape(text)})",
                                 **_where(p, word, offset, i),
                                 hint="values must be plain numbers (units in params, not cells)"
                                 ) from None
    if kind == "counter":
        bad = np.flatnonzero(v < 0)
        if bad.size:
            i = int(bad[0])
            raise ParseError(f"counter value {v[i]:g} is negative", **_where(p, word, offset, i),
                             hint="a counter is cumulative and never negative; export the raw "
                                  "counter, or use kind: gauge for a rate")
    return v


def read_export(entry: Mapping, *, base: Path | None = None, key: str = "files[0]"
                ) -> pd.DataFrame:
    """One file entry as a contract frame (see the module docstring)."""
    e = _check_entry(entry, key)
    p = _resolve(e.get("path"), base, f"{key}.path")
    fmt = _format(p, e.get("format"))
    df, offset, word = _table(p, fmt)
    tz = str(e.get("timezone", "UTC"))
    kind = e.get("kind", "gauge")
    source = str(e.get("source") or f"file:{p.stem}")
    const = dict(e["labels"]) if isinstance(e.get("labels"), Mapping) else {}
    ts = _timestamps(_col(df, e.get("timestamp", "timestamp"), f"{key}.timestamp", p), tz, p,
                     word, offset)
    parts = []
    if e.get("layout", "wide") == "wide":
        cols = e.get("columns") or {e["value"]: e["metric"]}
        for col, metric in cols.items():
            v = _values(_col(df, col, f"{key}.columns" if e.get("columns") else f"{key}.value",
                             p), p, word, offset, kind)
            labels = {**const, **({"column": str(col)} if e.get("columns") else {})}
            parts.append(pd.DataFrame({"timestamp": ts, "metric": metric, "value": v,
                                       "labels": [labels] * len(df)}))
    else:
        v = _values(_col(df, e["value"], f"{key}.value", p), p, word, offset, kind)
        if e.get("metric_column") is not None:
            names = _col(df, e["metric_column"], f"{key}.metric_column", p).astype(str)
            for i, n in enumerate(names.tolist()):
                if not _METRIC_RE.match(n):
                    raise ParseError(f"metric name is not snake_case ({_shape(n)})",
                                     **_where(p, word, offset, i),
                                     hint="capplan metric names look like api_request_rate")
        else:
            names = pd.Series([e["metric"]] * len(df), index=df.index)
        lab_cols = e.get("labels") if isinstance(e.get("labels"), list) else []
        lab = [_col(df, c, f"{key}.labels", p).astype(str).tolist() for c in lab_cols]
        labels = [{**const, **{c: vals[i] for c, vals in zip(lab_cols, lab)}}
                  for i in range(len(df))]
        parts.append(pd.DataFrame({"timestamp": ts, "metric": names.to_numpy(), "value": v,
                                   "labels": labels}))
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    out = out[~np.isnan(out["value"].to_numpy(dtype=float))]
    recs = [{"timestamp": r.timestamp, "source": source, "metric": r.metric, "labels": r.labels,
             "value": float(r.value), "kind": kind, "unit": e["unit"]}
            for r in out.itertuples(index=False)]
    frame = make_frame(recs)
    frame.attrs["file"] = str(p)
    return frame


def read_exports(entries: object, *, base: Path | None = None) -> tuple[pd.DataFrame, dict]:
    """Every file entry; returns ``(frame, info)`` with rows and series per file."""
    from capplan.core.frame import concat_frames

    if not isinstance(entries, list) or not entries:
        raise ConfigError("mode: files needs a list of file entries", key="files",
                          hint="see docs/prometheus.md (section Files) for the shape")
    frames, info = [], {"files": []}
    for i, e in enumerate(entries):
        f = read_export(e, base=base, key=f"files[{i}]")
        frames.append(f)
        info["files"].append({"path": Path(f.attrs["file"]).name, "rows": int(len(f)),
                              "metrics": sorted(set(f["metric"])) if len(f) else []})
    return concat_frames(frames), info


def validate_files(entries: object, *, path: str | None = None, base: Path | None = None
                   ) -> None:
    """Read every file entry once (before any notebook runs); errors as :func:`read_export`,
    with the params file ``path`` named."""
    try:
        read_exports(entries, base=base)
    except ConfigError as exc:
        raise ConfigError(exc.message, path=path, key=exc.key, hint=exc.hint) from exc
