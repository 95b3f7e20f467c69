"""Read a single time series from a ``timestamp,value`` CSV file (the ``forecast``/``runway`` input).

Format: a header line naming the columns ``timestamp`` and ``value`` (any order, other columns
ignored), then one row per sample.  Timestamps are anything ``pandas.to_datetime`` understands
(ISO 8601, ``2014-05-14 01:14:00``); a timestamp without a zone is taken as UTC.  An empty value,
``nan`` or ``NaN`` is a missing sample.  Rows need not be sorted; duplicate timestamps are averaged.

Timestamps must lie between 1970 and 2200, values within +/- 1e300 (a series beyond that overflows
every sum a forecast takes).

Raises :class:`capplan.errors.ParseError` naming the file and the 1-based line of the first bad row.
Messages never quote the file's text (a mistyped path may point at a credentials file): they name
the line, the column and what was expected.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd

from capplan.errors import ParseError

__all__ = ["read_series_csv"]

_HINT = "the file needs a header 'timestamp,value' and rows like '2024-01-01T00:00:00Z,42.0'"
_MAX_ABS_VALUE = 1e300
_EPOCH_MAX_S = 7_258_118_400.0  # 2200-01-01T00:00:00Z


def read_series_csv(path: str | Path) -> pd.Series:
    """Return the file as a float Series on a tz-aware UTC DatetimeIndex, sorted by time."""
    p = Path(path)
    try:
        fh = p.open(newline="", encoding="utf-8")
    except OSError as exc:
        raise ParseError(f"cannot open: {exc.strerror or exc}", path=str(p),
                         hint="check the path and permissions") from exc
    stamps: list[str] = []
    values: list[float] = []
    lines: list[int] = []
    with fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise ParseError("empty file", path=str(p), line=1, hint=_HINT) from None
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ParseError(f"unreadable header ({_reason(exc)})", path=str(p), line=1,
                             hint=_HINT) from None
        cols = [c.strip().lower() for c in header]
        if "timestamp" not in cols or "value" not in cols:
            raise ParseError(f"the header ({len(header)} column(s)) lacks 'timestamp' and "
                             "'value' columns", path=str(p), line=1, hint=_HINT)
        it, iv = cols.index("timestamp"), cols.index("value")
        need = max(it, iv) + 1
        try:
            for row in reader:
                line = reader.line_num
                if not row or all(not c.strip() for c in row):
                    continue
                if len(row) < need:
                    raise ParseError(f"expected at least {need} fields, found {len(row)}",
                                     path=str(p), line=line, hint=_HINT)
                raw = row[iv].strip()
                try:
                    val = float(raw) if raw else np.nan
                except ValueError:
                    raise ParseError("column 'value': not a number", path=str(p), line=line,
                                     hint=_HINT) from None
                if abs(val) > _MAX_ABS_VALUE:  # inf included; NaN compares False (missing)
                    what = "is infinite" if np.isinf(val) else f"is beyond +/- {_MAX_ABS_VALUE:g}"
                    raise ParseError(f"column 'value': the value {what}", path=str(p),
                                     line=line, hint=_HINT)
                stamps.append(row[it].strip())
                values.append(val)
                lines.append(line)
        except (csv.Error, UnicodeDecodeError) as exc:
            raise ParseError(f"malformed CSV ({_reason(exc)})", path=str(p),
                             line=reader.line_num, hint=_HINT) from None
    if not stamps:
        raise ParseError("no data rows after the header", path=str(p), line=2, hint=_HINT)
    idx = pd.to_datetime(pd.Series(stamps, dtype=object), errors="coerce", utc=True,
                         format="mixed")
    ok = (idx >= pd.Timestamp(0, unit="s", tz="UTC")) \
        & (idx <= pd.Timestamp(_EPOCH_MAX_S, unit="s", tz="UTC"))  # NaT compares False
    bad = np.flatnonzero(~ok.to_numpy())
    if bad.size:
        k = int(bad[0])
        raise ParseError("column 'timestamp': not a date/time between 1970 and 2200",
                         path=str(p), line=lines[k], hint=_HINT)
    s = pd.Series(values, index=pd.DatetimeIndex(idx), name="value",
                  dtype=float)
    s.index.name = "timestamp"
    s = s.sort_index()
    if s.index.has_duplicates:
        s = s.groupby(level=0).mean()
    return s


def _reason(exc: Exception) -> str:
    """Why a read failed, without the bytes or text that made it fail."""
    if isinstance(exc, UnicodeDecodeError):
        return f"not UTF-8 text at byte {exc.start}"
    return str(exc)  # csv.Error: 'field larger than field limit', 'line contains NUL' ...
