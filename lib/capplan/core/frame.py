"""The metrics contract: one tidy long frame for every source, store and model.

Columns (in this order), one row per sample:

=========== ============================== ===================================================
column      dtype                          meaning
=========== ============================== ===================================================
timestamp   datetime64[ns, UTC]            when the sample was taken (tz-aware, UTC)
source      str                            where it came from: ``redis:cache``, ``postgres:app``,
                                           ``demo``, ``prometheus``, ``loadtest:pgbench`` ...
metric      str                            snake_case name with the unit as suffix where it has
                                           one: ``redis_used_memory_bytes``
labels      str                            canonical JSON object of str → str, ``{}`` if none
value       float64                        the reading; NaN means "no value at this time"
kind        str                            ``gauge`` (a level) or ``counter`` (monotonic total,
                                           may reset); counters stay raw, rates are derived on
                                           read by :mod:`capplan.core.rates`
unit        str                            one of :data:`UNITS`
=========== ============================== ===================================================

A *series* is one ``(source, metric, labels)`` triple.  :func:`validate_frame` reports every
violation at once (column, reason, examples), in the manner of pandera's lazy validation.
This module depends on nothing in capplan but :mod:`capplan.errors`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from capplan.errors import DataContractError

__all__ = [
    "COLUMNS",
    "KINDS",
    "UNITS",
    "SERIES_KEY",
    "labels_key",
    "parse_labels",
    "make_frame",
    "empty_frame",
    "validate_frame",
    "concat_frames",
    "to_utc",
    "select",
    "series",
]

COLUMNS: tuple[str, ...] = ("timestamp", "source", "metric", "labels", "value", "kind", "unit")
SERIES_KEY: tuple[str, ...] = ("source", "metric", "labels")
KINDS: frozenset[str] = frozenset({"gauge", "counter"})

#: Units a sample may carry, with the word used when rendering a value.
UNITS: dict[str, str] = {
    "bytes": "B",
    "seconds": "s",
    "ratio": "",
    "count": "",
    "connections": "connections",
    "clients": "clients",
    "keys": "keys",
    "tuples": "tuples",
    "requests": "requests",
    "commands": "commands",
    "blocks": "blocks",
    "transactions": "transactions",
    "operations": "operations",
    "errors": "errors",
    "jobs": "jobs",
    "per_second": "/s",
    "requests_per_second": "req/s",
    "transactions_per_second": "tx/s",
    "commands_per_second": "cmd/s",
    "jobs_per_second": "jobs/s",
    "percent": "%",
    "boolean": "",
    "timestamp_seconds": "s since epoch",
    "info": "",
}

_METRIC_RE = re.compile(r"^[a-z_][a-z0-9_]*$")


def labels_key(labels: Mapping[str, object] | str | None) -> str:
    """Canonical text of a label set: compact JSON with sorted keys, all values as strings.

    >>> labels_key({"db": 0, "instance": "cache"})
    '{"db":"0","instance":"cache"}'
    """
    if labels is None:
        return "{}"
    if isinstance(labels, str):
        return labels_key(parse_labels(labels))
    return json.dumps({str(k): str(v) for k, v in labels.items()}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False)


def parse_labels(text: str) -> dict[str, str]:
    """Inverse of :func:`labels_key`; raises :class:`ValueError` on text that is not a JSON object."""
    if not text:
        return {}
    obj = json.loads(text)
    if not isinstance(obj, dict):
        raise ValueError(f"labels must be a JSON object, got {text!r}")
    return {str(k): str(v) for k, v in obj.items()}


def to_utc(ts: pd.Series) -> pd.Series:
    """Timestamps as ``datetime64[ns, UTC]``: epoch seconds, ISO text or datetimes (naive = UTC);
    unparseable values become NaT (which :func:`validate_frame` reports)."""
    if len(ts) and pd.api.types.is_numeric_dtype(ts):
        out = pd.to_datetime(ts, unit="s", utc=True)
    elif len(ts):
        out = pd.to_datetime(ts, utc=True, errors="coerce", format="mixed")
    else:
        out = pd.to_datetime(ts, utc=True)
    return out.astype("datetime64[ns, UTC]")


def empty_frame() -> pd.DataFrame:
    """A frame with the contract's columns and dtypes and no rows."""
    return make_frame([])


def make_frame(records: Iterable[Mapping[str, object]] | pd.DataFrame, *,
               validate: bool = True) -> pd.DataFrame:
    """Build a contract frame from records (dicts) or a DataFrame with the contract's columns.

    ``labels`` may be a dict or canonical text; ``timestamp`` may be naive (taken as UTC),
    tz-aware, an ISO string or epoch seconds (float).  Raises :class:`DataContractError`
    listing every violation when ``validate`` is true.
    """
    if isinstance(records, pd.DataFrame):
        df = records.copy()
    else:
        df = pd.DataFrame.from_records(list(records), columns=list(COLUMNS))
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing:
        raise DataContractError([{"column": c, "reason": "missing column", "examples": None}
                                 for c in missing])
    df = df[list(COLUMNS)]
    df["timestamp"] = to_utc(df["timestamp"])
    if len(df):
        is_text = df["labels"].map(type).eq(str).to_numpy()
        if not is_text.all():
            df["labels"] = [x if ok else labels_key(x) for x, ok in zip(df["labels"], is_text)]
    df["value"] = pd.to_numeric(df["value"], errors="coerce").astype("float64")
    for col in ("source", "metric", "labels", "kind", "unit"):
        df[col] = df[col].astype(object)
    df = df.reset_index(drop=True)
    if validate:
        validate_frame(df)
    return df


def _examples(values: pd.Series, n: int = 3) -> list:
    return [v if not isinstance(v, float) else float(v) for v in values.head(n).tolist()]


def validate_frame(df: pd.DataFrame, *, where: str = "frame") -> pd.DataFrame:
    """Check ``df`` against the contract and return it unchanged.

    Every violation is collected before raising one :class:`DataContractError` whose
    ``violations`` is a list of ``{"column", "reason", "examples"}``.
    """
    problems: list[dict] = []
    if not isinstance(df, pd.DataFrame):
        raise DataContractError([{"column": "*", "reason": f"not a DataFrame: {type(df).__name__}",
                                  "examples": None}], where=where)
    missing = [c for c in COLUMNS if c not in df.columns]
    for c in missing:
        problems.append({"column": c, "reason": "missing column", "examples": None})
    extra = [c for c in df.columns if c not in COLUMNS]
    if extra:
        problems.append({"column": ",".join(map(str, extra)), "reason": "unexpected column",
                         "examples": None})
    if "timestamp" in df.columns:
        ts = df["timestamp"]
        if not isinstance(ts.dtype, pd.DatetimeTZDtype):
            problems.append({"column": "timestamp", "reason": f"must be tz-aware UTC datetimes, "
                             f"got dtype {ts.dtype}", "examples": _examples(ts.astype(str))})
        else:
            if str(ts.dt.tz) != "UTC":
                problems.append({"column": "timestamp", "reason": f"timezone must be UTC, got "
                                 f"{ts.dt.tz}", "examples": None})
            if ts.isna().any():
                problems.append({"column": "timestamp", "reason": f"{int(ts.isna().sum())} "
                                 "missing or unparseable timestamp(s)", "examples": None})
    # Each string column is checked once per distinct value (frames have few distinct names and
    # many rows), on numpy arrays: a 20-row scrape validates in well under a millisecond.
    codes: dict[str, np.ndarray] = {}
    uniq: dict[str, np.ndarray] = {}
    for col in ("source", "metric", "labels", "kind", "unit"):
        if col not in df.columns:
            continue
        c, u = pd.factorize(df[col].to_numpy(dtype=object), use_na_sentinel=False)
        codes[col], uniq[col] = c, u
        bad_u = [i for i, x in enumerate(u) if not (isinstance(x, str) and x != "")]
        if bad_u:
            bad = df[col][np.isin(c, bad_u)]
            problems.append({"column": col, "reason": f"{len(bad)} value(s) not a non-empty string",
                             "examples": _examples(bad.astype(str))})
    if "metric" in uniq:
        bad = [str(x) for x in uniq["metric"] if not _METRIC_RE.match(str(x))]
        if bad:
            problems.append({"column": "metric", "reason": "names must be snake_case "
                             "[a-z_][a-z0-9_]*", "examples": _examples(pd.Series(bad))})
    if "labels" in uniq:
        def _bad_label(text: str) -> bool:
            try:
                return labels_key(parse_labels(text)) != text
            except (ValueError, TypeError):
                return True
        bad = [str(x) for x in uniq["labels"] if _bad_label(str(x))]
        if bad:
            problems.append({"column": "labels", "reason": "not canonical label JSON (use "
                             "capplan.core.frame.labels_key)", "examples": _examples(pd.Series(bad))})
    if "kind" in uniq:
        bad = [str(x) for x in uniq["kind"] if not isinstance(x, str) or x not in KINDS]
        if bad:
            problems.append({"column": "kind", "reason": f"must be one of {sorted(KINDS)}",
                             "examples": _examples(pd.Series(bad))})
    if "unit" in uniq:
        bad = [str(x) for x in uniq["unit"] if not isinstance(x, str) or x not in UNITS]
        if bad:
            problems.append({"column": "unit", "reason": "unknown unit (see capplan.core.frame.UNITS)",
                             "examples": _examples(pd.Series(bad))})
    if "value" in df.columns:
        v = df["value"]
        if not pd.api.types.is_float_dtype(v):
            problems.append({"column": "value", "reason": f"must be float64, got {v.dtype}",
                             "examples": _examples(v.astype(str))})
        else:
            arr = v.to_numpy()
            inf = np.isinf(arr)
            if inf.any():
                problems.append({"column": "value", "reason": f"{int(inf.sum())} infinite "
                                 "value(s); store NaN for 'no value'", "examples": None})
            if "kind" in uniq:
                counter_codes = [i for i, x in enumerate(uniq["kind"]) if x == "counter"]
                is_counter = np.isin(codes["kind"], counter_codes)
                neg = is_counter & ((arr < 0) | np.isnan(arr))
                if neg.any():
                    problems.append({"column": "value", "reason": f"{int(neg.sum())} counter "
                                     "value(s) negative or NaN", "examples": _examples(v[neg])})
    if not problems and len(df) and all(c in uniq for c in SERIES_KEY) and \
            "kind" in uniq and "unit" in uniq:
        # one kind and one unit per series: distinct (series, kind, unit) == distinct series
        key = np.zeros(len(df), dtype=np.int64)
        for col in SERIES_KEY:
            key = key * (len(uniq[col]) + 1) + codes[col]
        series = np.unique(key)
        ku = key * ((len(uniq["kind"]) + 1) * (len(uniq["unit"]) + 1)) + \
            codes["kind"] * (len(uniq["unit"]) + 1) + codes["unit"]
        if len(np.unique(ku)) != len(series):
            g = df.groupby(list(SERIES_KEY), sort=False)[["kind", "unit"]].nunique()
            bad = g[(g["kind"] > 1) | (g["unit"] > 1)]
            problems.append({"column": "kind/unit", "reason": "a series mixes kinds or units",
                             "examples": [list(i) for i in bad.index[:3]]})
    if problems:
        raise DataContractError(problems, where=where)
    return df


def concat_frames(frames: Iterable[pd.DataFrame]) -> pd.DataFrame:
    """Concatenate contract frames (empty input gives an empty frame)."""
    frames = [f for f in frames if f is not None and len(f)]
    if not frames:
        return empty_frame()
    return pd.concat(frames, ignore_index=True)[list(COLUMNS)]


def select(df: pd.DataFrame, metric: str | None = None, *, source: str | None = None,
           labels: Mapping[str, object] | None = None) -> pd.DataFrame:
    """Rows of ``df`` for ``metric`` (and optionally ``source`` and a label subset)."""
    mask = pd.Series(True, index=df.index)
    if metric is not None:
        mask &= df["metric"] == metric
    if source is not None:
        mask &= df["source"] == source
    out = df[mask]
    if labels:
        want = {str(k): str(v) for k, v in labels.items()}
        keep = out["labels"].map(lambda t: all(parse_labels(t).get(k) == v for k, v in want.items()))
        out = out[keep]
    return out


def series(df: pd.DataFrame, metric: str, *, source: str | None = None,
           labels: Mapping[str, object] | None = None) -> pd.Series:
    """One metric as a float Series indexed by timestamp (sorted), summed over nothing.

    Raises :class:`KeyError` naming the metric when no row matches, and :class:`ValueError`
    when the selection still spans several series (narrow it with ``source`` or ``labels``).
    """
    rows = select(df, metric, source=source, labels=labels)
    if rows.empty:
        raise KeyError(f"no samples for metric {metric!r}"
                       + (f" from source {source!r}" if source else "")
                       + (f" with labels {dict(labels)}" if labels else ""))
    keys = rows[list(SERIES_KEY)].drop_duplicates()
    if len(keys) > 1:
        raise ValueError(f"metric {metric!r} matches {len(keys)} series; pass source= or labels= "
                         f"to pick one: {keys.head(3).values.tolist()}")
    s = rows.set_index("timestamp")["value"].sort_index()
    s.name = metric
    return s
