"""Small helpers shared by the redis and postgres collectors (not public API)."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from capplan.errors import ConfigError
from capplan.core.frame import COLUMNS, labels_key

#: One sample before it becomes a frame row: (metric, labels, value, kind, unit).
Row = tuple[str, Mapping[str, object] | None, float, str, str]


def build_frame(ts_epoch: float, source: str, rows: Iterable[Row]) -> pd.DataFrame:
    """A contract frame for one read of one source (all rows share ``ts_epoch``, seconds UTC).

    Built column-wise rather than through :func:`capplan.core.frame.make_frame` because snapshots are
    on the collection hot path (bench/collect_cost.py); the tests validate every frame.
    Values are converted with ``float()`` so a stray ``Decimal``/``int`` never reaches a frame.
    """
    rows = list(rows)
    n = len(rows)
    values = np.empty(n, dtype="float64")
    for i, r in enumerate(rows):
        v = r[2]
        values[i] = math.nan if v is None else float(v)
    ts = pd.Timestamp(ts_epoch, unit="s", tz="UTC")
    df = pd.DataFrame({
        "timestamp": pd.DatetimeIndex([ts] * n).astype("datetime64[ns, UTC]"),
        "source": np.full(n, source, dtype=object),
        "metric": np.array([r[0] for r in rows], dtype=object),
        "labels": np.array([labels_key(r[1]) for r in rows], dtype=object),
        "value": values,
        "kind": np.array([r[3] for r in rows], dtype=object),
        "unit": np.array([r[4] for r in rows], dtype=object),
    }, columns=list(COLUMNS))
    return df


def check_keys(section: Mapping[str, object], allowed: Iterable[str], *, where: str) -> None:
    """Raise :class:`ConfigError` naming any key of a params section that is not ``allowed``."""
    allowed = set(allowed)
    unknown = sorted(str(k) for k in section if k not in allowed)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)}", key=where,
                          hint=f"allowed keys: {', '.join(sorted(allowed))}")


def positive_float(value: object, *, key: str) -> float:
    """``value`` as a float > 0, else :class:`ConfigError` on ``key``."""
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"must be a number, got {value!r}", key=key) from None
    if not out > 0 or math.isinf(out):
        raise ConfigError(f"must be a positive number, got {value!r}", key=key)
    return out
