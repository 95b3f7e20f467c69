"""Number formatting for the short ``reason`` strings that findings carry.

Private to capplan's statistics (targets, regression): the reasons are generated from the same
numbers that ``to_dict()`` exposes, so the report never types a figure by hand.
"""

from __future__ import annotations

import math

from capplan.core.frame import UNITS

__all__ = ["pct_digits", "fmt_pct", "fmt_value", "fmt_count", "fmt_interval", "fmt_timedelta"]


def pct_digits(*fractions: float, extra: int = 0, cap: int = 4) -> int:
    """Decimals (of a percentage) needed to show every fraction in ``fractions`` exactly (<= cap).

    ``pct_digits(0.8) == 0`` ("80%"), ``pct_digits(0.999) == 1`` ("99.9%"); ``extra`` adds
    decimals, e.g. to show measured availabilities one digit finer than their objective.
    """
    need = 0
    for f in fractions:
        if f is None or not math.isfinite(f):
            continue
        for d in range(0, cap + 1):
            if abs(round(f * 100, d) - f * 100) < 1e-9:
                need = max(need, d)
                break
        else:
            need = cap
    return min(cap, need + extra)


def fmt_pct(x: float | None, digits: int | None = None) -> str:
    """``0.7941 -> '79.4%'``; ``digits`` decimals (default 1) at least, more where needed so a
    small share keeps a significant digit (``0.0005 -> '0.05%'``) and 99.97% never prints as
    100.0%."""
    if x is None or not math.isfinite(x):
        return "n/a"
    v = x * 100
    d = 1 if digits is None else digits
    if 0 < abs(v) < 1:
        d = max(d, -math.floor(math.log10(abs(v))))
    while d < 4 and 0 < x < 1 and round(v, d) in (0.0, 100.0):
        d += 1
    return f"{v:.{min(d, 6)}f}%"


def fmt_count(n: float | None) -> str:
    """``34000 -> '34,000'``; non-integral counts (extrapolated increases) keep one decimal."""
    if n is None or not math.isfinite(n):
        return "n/a"
    if abs(n - round(n)) < 1e-9:
        return f"{int(round(n)):,}"
    return f"{n:,.1f}"


def _num(x: float) -> str:
    if x == 0:
        return "0"
    ax = abs(x)
    if 1e-3 <= ax < 1e6:
        return f"{x:.4g}" if ax < 1000 else f"{x:,.0f}"
    return f"{x:.3g}"


def fmt_value(x: float | None, unit: str | None, *, digits: int | None = None) -> str:
    """A value with its unit word from :data:`capplan.core.frame.UNITS` (ratios as percentages)."""
    if x is None or not math.isfinite(x):
        return "n/a"
    if unit in ("ratio", "percent"):
        return fmt_pct(x if unit == "ratio" else x / 100, digits)
    if unit == "seconds" and 0 < abs(x) < 1:
        return f"{x * 1000:.4g} ms"
    if unit == "bytes" and abs(x) >= 1024:
        for prefix in ("KiB", "MiB", "GiB", "TiB", "PiB"):
            x /= 1024
            if abs(x) < 1024 or prefix == "PiB":
                return f"{x:.3g} {prefix}"
    word = UNITS.get(unit or "", unit or "")
    return f"{_num(x)} {word}".rstrip() if word and not word.startswith("/") else f"{_num(x)}{word}"


def fmt_interval(lo: float | None, hi: float | None, unit: str | None, *,
                 digits: int | None = None) -> str:
    """``'63.2–89.6%'`` for ratios, ``'210–250 ms'`` style otherwise (each end with its unit)."""
    if lo is None or hi is None:
        return "n/a"
    if unit in ("ratio", "percent"):
        scale = 1 if unit == "ratio" else 0.01
        digits = 1 if digits is None else digits
        # one more decimal until the two ends differ, so a narrow interval never reads "x–x"
        while digits < 4 and lo != hi and round(lo * scale * 100, digits) == round(
                hi * scale * 100, digits):
            digits += 1
        a, b = fmt_value(lo, unit, digits=digits), fmt_value(hi, unit, digits=digits)
        return f"{a[:-1]}–{b}"
    return f"{fmt_value(lo, unit)} – {fmt_value(hi, unit)}"


def fmt_timedelta(td) -> str:
    """A duration in the largest sensible unit: ``'3.5 d'``, ``'7.0 h'``, ``'12 min'``."""
    seconds = td.total_seconds()
    if seconds >= 2 * 86400:
        return f"{seconds / 86400:.1f} d"
    if seconds >= 2 * 3600:
        return f"{seconds / 3600:.1f} h"
    if seconds >= 120:
        return f"{seconds / 60:.0f} min"
    return f"{seconds:.0f} s"
