"""Shared helpers of the load-test parsers: reading files, numbers and CSV by header name."""

from __future__ import annotations

import csv
import io
import math
import os
from pathlib import Path

import pandas as pd

from capplan.errors import ParseError

NAN = math.nan


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
    """``text`` as a float; ``N/A`` / empty gives NaN when ``allow_na``; else a ParseError."""
    t = (text or "").strip().strip('"')
    if allow_na and t in ("", "N/A", "NaN", "nan"):
        return NAN
    try:
        return float(t)
    except ValueError as exc:
        raise ParseError(f"{what}: expected a number, got {text!r}", path=str(path),
                         line=line) from exc


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
    except csv.Error as exc:
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
        raise ParseError(f"missing column(s) {missing}; header is {header[:12]}", path=str(path),
                         line=1, hint="is this the right kind of file for this parser?")
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
