"""Shared helpers of the load-test parsers: reading files, numbers, times and CSV by header name.

Error messages name the file, the line and what was expected, never the text found there: a
load-test path may point at any file (a credentials file, a key), and its content must not reach
stderr, a notebook or a report.  For the same reason third-party exceptions whose message quotes
the input are not chained (``from None``).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from capplan.errors import ParseError

NAN = math.nan

#: plausible load-test clock: 1970-01-01 .. 2200-01-01 UTC (epoch seconds).
EPOCH_MIN_S, EPOCH_MAX_S = 0.0, 7_258_118_400.0
#: longest plausible run or interval, seconds (about 31 years; pandas' limit is 292 years).
MAX_DURATION_S = 1e9


def read_text(path: str | os.PathLike) -> str:
    """The file's text (UTF-8, BOM tolerated); an unreadable file is a ParseError naming it."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ParseError(f"cannot read load-test result: {exc.strerror or exc}", path=str(p),
                         hint="check the path and permissions") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise ParseError("not UTF-8 text (is this a binary or gzipped file?)", path=str(p),
                         line=line, hint="decompress .gz outputs first") from exc


def to_utc(value) -> "pd.Timestamp":
    """``value`` (datetime, ISO text, Timestamp) as a tz-aware UTC Timestamp; naive means UTC."""
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def run_id_for(path: str | os.PathLike) -> str:
    """Default run id: the file name without its extension(s)."""
    name = Path(path).name
    for suffix in (".ndjson", ".jsonl", ".json", ".csv", ".txt", ".log", ".out"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def number(text: str | None, *, path, line: int | None, what: str, allow_na: bool = False) -> float:
    """``text`` as a float; ``N/A`` / empty gives NaN when ``allow_na``; else a ParseError.

    An infinite value (``inf``, or a number beyond the float range such as ``1e400``) is NaN
    when ``allow_na`` (pgbench prints ``inf tps`` for an empty interval), else a ParseError.
    """
    t = (text or "").strip().strip('"')
    if allow_na and t in ("", "N/A", "NaN", "nan", "-nan"):
        return NAN
    try:
        v = float(t)
    except ValueError:
        raise ParseError(f"{what}: expected a number", path=str(path), line=line,
                         hint="the file may be truncated, edited, or of another kind") from None
    if math.isinf(v):
        if allow_na:
            return NAN
        raise ParseError(f"{what}: the number is infinite or beyond the float range",
                         path=str(path), line=line)
    return v


def json_number(value, *, path, line: int | None, what: str) -> float:
    """A number taken from parsed JSON (int, float or numeric string) as a finite float or NaN.

    Booleans, objects, lists and integers beyond the float range are ParseErrors.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ParseError(f"{what}: expected a number, found a JSON {_json_kind(value)}",
                         path=str(path), line=line)
    if isinstance(value, str):
        return number(value, path=path, line=line, what=what)
    try:
        v = float(value)
    except OverflowError:
        raise ParseError(f"{what}: the number is beyond the float range", path=str(path),
                         line=line) from None
    if math.isinf(v):
        raise ParseError(f"{what}: the number is infinite", path=str(path), line=line)
    return v


def _json_kind(value) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean",
            type(None): "null"}.get(type(value), type(value).__name__)


def check_duration(seconds: float, *, path, line: int | None, what: str) -> float:
    """``seconds`` unchanged when NaN or within +/- :data:`MAX_DURATION_S`; else a ParseError."""
    if math.isfinite(seconds) and abs(seconds) <= MAX_DURATION_S or math.isnan(seconds):
        return seconds
    raise ParseError(f"{what}: a duration of {seconds:.3g} s is not plausible (more than "
                     f"{MAX_DURATION_S:.0e} s)", path=str(path), line=line,
                     hint="the file's figures are corrupt; fix or re-run the load test")


def epoch_utc(seconds: float, *, path, line: int | None, what: str) -> "pd.Timestamp":
    """Unix epoch ``seconds`` as a UTC Timestamp; outside 1970..2200 (or NaN) a ParseError."""
    if not (math.isfinite(seconds) and EPOCH_MIN_S <= seconds <= EPOCH_MAX_S):
        raise ParseError(f"{what}: not a plausible unix time (1970 to 2200)", path=str(path),
                         line=line, hint="the file's clock values are corrupt")
    return pd.Timestamp(seconds, unit="s", tz="UTC")


def in_clock_range(ts: "pd.Timestamp") -> bool:
    """Whether ``ts`` (tz-aware) lies in the plausible load-test clock, 1970..2200."""
    return EPOCH_MIN_S <= ts.timestamp() <= EPOCH_MAX_S


def csv_rows(text: str, path, *, required: tuple[str, ...] = (), aliases: dict | None = None):
    """Parse CSV ``text`` with a header row; yield ``(line_no, row_dict)`` keyed by header name.

    ``aliases`` maps a canonical column name to other header spellings (older tool versions);
    rows are re-keyed to the canonical name.  Missing ``required`` columns, or a row whose field
    count differs from the header's (a truncated write), raise a ParseError with the line.
    """
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        raise ParseError("empty file (no CSV header)", path=str(path), line=1) from None
    except csv.Error as exc:  # csv's messages name the problem, never the field's text
        raise ParseError(f"unreadable CSV header: {exc}", path=str(path), line=1) from exc
    header = [h.strip() for h in header]
    rename = {}
    for canon, others in (aliases or {}).items():
        for o in others:
            if o in header and canon not in header:
                rename[o] = canon
    header = [rename.get(h, h) for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        raise ParseError(f"missing column(s) {missing} in the header ({len(header)} column(s))",
                         path=str(path), line=1,
                         hint="is this the right kind of file for this parser?")
    line_no = 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ParseError(f"malformed CSV: {exc}", path=str(path), line=reader.line_num) from exc
        line_no = reader.line_num
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(header):
            raise ParseError(f"row has {len(row)} fields, header has {len(header)} "
                             "(truncated or malformed file)", path=str(path), line=line_no)
        yield line_no, dict(zip(header, row))


def json_loads(text: str, path, line: int | None, what: str):
    """``json.loads`` with every failure a ParseError (never quoting the text)."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParseError(f"invalid JSON ({exc.msg}, column {exc.colno}): {what}", path=str(path),
                         line=(line or 1) + exc.lineno - 1) from None
    except RecursionError:
        raise ParseError(f"JSON nested too deeply: {what}", path=str(path), line=line) from None
    except ValueError:  # e.g. an integer of more than 4300 digits
        raise ParseError(f"a JSON number is too long to read: {what}", path=str(path),
                         line=line) from None


def iso_times(raw: list[str], lines: list[int], path, what: str) -> pd.Series:
    """ISO 8601 texts as UTC Timestamps; the first unparseable or implausible one (outside
    1970..2200) is a ParseError naming its line."""
    ts = pd.Series(pd.to_datetime(pd.Series(raw, dtype=object), utc=True, format="ISO8601",
                                  errors="coerce"))
    bad = ts.isna().to_numpy()
    if not bad.any():
        lo, hi = ts.min(), ts.max()
        if not (in_clock_range(lo) and in_clock_range(hi)):
            bad = ((ts < pd.Timestamp(EPOCH_MIN_S, unit="s", tz="UTC"))
                   | (ts > pd.Timestamp(EPOCH_MAX_S, unit="s", tz="UTC"))).to_numpy()
    if bad.any():
        raise ParseError(f"{what}: not an ISO 8601 time between 1970 and 2200", path=str(path),
                         line=lines[int(np.flatnonzero(bad)[0])])
    return ts
