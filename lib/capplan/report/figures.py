"""Figures a reviewer wants to look at, in one consistent style.

Every function takes already-computed data (a fitted model's frame, a history series), draws one
figure, saves it as PNG under the run's ``figures/`` folder and returns the relative path.  Units
on every axis; a "SYNTHETIC DEMO DATA" stamp when the data is synthetic.  The Agg backend is used
so scheduled runs need no display.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # noqa: E402  (no display in scheduled runs)
import matplotlib.dates as mdates  # noqa: E402
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.ticker import FuncFormatter  # noqa: E402

__all__ = ["STYLE", "axis_formatter", "forecast_figure", "usl_figure", "slo_figure",
           "latency_distribution_figure", "save"]

STYLE = {
    "figure.figsize": (8.0, 3.6),
    "figure.constrained_layout.use": True,  # one layout pass; savefig need not draw twice
    "figure.dpi": 100,
    "axes.grid": True,
    "grid.alpha": 0.3,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "font.size": 9.5,
    "axes.titlesize": 11,
    "axes.titleweight": "bold",
    "legend.fontsize": 8.5,
    "legend.frameon": False,
}
HISTORY, FORECAST, BAND80, BAND95, LIMIT, CROSS = "#3b5b92", "#d9822b", "#f2b880", "#fbe3c8", "#b3261e", "#b3261e"
_UNIT_LABEL = {"bytes": "GiB", "ratio": "%", "seconds": "ms", "per_second": "per second",
               "connections": "connections", "clients": "clients", "tuples": "tuples"}


def axis_formatter(unit: str | None):
    """(formatter, axis label) for a unit: bytes shown in GiB/MiB, ratios in %, seconds in ms."""
    if unit == "bytes":
        return FuncFormatter(lambda v, _: f"{v / 2 ** 20:,.0f}"), "MiB"
    if unit in ("MiB", "GiB"):  # already scaled by forecast_figure
        return FuncFormatter(lambda v, _: f"{v:,.4g}"), unit
    if unit == "ratio":
        return FuncFormatter(lambda v, _: f"{v * 100:.1f}"), "%"
    if unit == "seconds":
        return FuncFormatter(lambda v, _: f"{v * 1000:,.0f}"), "ms"
    return FuncFormatter(lambda v, _: f"{v:,.4g}"), _UNIT_LABEL.get(unit or "", unit or "")


def _stamp(fig, synthetic: bool) -> None:
    if synthetic:
        fig.text(0.995, 0.01, "SYNTHETIC DEMO DATA", ha="right", va="bottom", fontsize=8,
                 color="#8a1c1c", alpha=0.85, weight="bold")


def save(fig, run_dir: str | Path, name: str) -> str:
    """Save ``fig`` as ``figures/<name>.png`` under ``run_dir``; returns the relative path."""
    rel = f"figures/{name}.png"
    path = Path(run_dir) / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return rel


def _byte_scale(values: list) -> tuple[float, str]:
    top = max((float(np.nanmax(np.abs(v))) for v in values if v is not None and len(v)), default=0.0)
    return (2 ** 30, "GiB") if top >= 2 * 2 ** 30 else (2 ** 20, "MiB")


def forecast_figure(history: pd.Series, forecast: pd.DataFrame | None, *, title: str, unit: str,
                    limit: float | None = None, crossing: tuple | None = None,
                    synthetic: bool = False, history_days: int = 60):
    """History, forecast mean, 80 % and 95 % bands, the limit line and the crossing range."""
    if unit == "bytes":  # plot in MiB/GiB so that ticks fall on round numbers of the shown unit
        scale, label = _byte_scale([history.to_numpy(), None if forecast is None else
                                    forecast["hi95"].to_numpy()])
        history = history / scale
        forecast = None if forecast is None else forecast / scale
        limit = None if limit is None else limit / scale
        unit = label
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots()
        h = history
        if len(h) and history_days:
            h = h[h.index >= h.index.max() - pd.Timedelta(days=history_days)]
        ax.plot(h.index, h.to_numpy(), color=HISTORY, lw=0.8, label="history")
        if forecast is not None and len(forecast):
            ax.fill_between(forecast.index, forecast["lo95"], forecast["hi95"], color=BAND95,
                            label="95% interval", lw=0)
            ax.fill_between(forecast.index, forecast["lo80"], forecast["hi80"], color=BAND80,
                            label="80% interval", lw=0)
            ax.plot(forecast.index, forecast["mean"], color=FORECAST, lw=1.4, label="forecast")
        if limit is not None and np.isfinite(limit):
            ax.axhline(limit, color=LIMIT, lw=1.2, ls="--", label="limit")
        if crossing and crossing[0] is not None:
            lo = crossing[1] or crossing[0]
            hi = crossing[2] or crossing[0]
            ax.axvspan(lo, hi, color=CROSS, alpha=0.12, label="crossing (interval)")
            ax.axvline(crossing[0], color=CROSS, lw=0.9)
        fmtr, label = axis_formatter(unit)
        ax.yaxis.set_major_formatter(fmtr)
        ax.set_ylabel(label)
        ax.set_xlabel("date (UTC)")
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %d"))
        ax.set_title(title, loc="left")
        ax.legend(loc="upper left", ncol=3)
        _stamp(fig, synthetic)
        return fig


def usl_figure(n: np.ndarray, x: np.ndarray, curve: pd.DataFrame, *, title: str,
               unit_label: str = "throughput (per second)", n_peak: float | None = None,
               synthetic: bool = False):
    """Measured load points, the fitted USL curve with its 95 % band, and N*."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots()
        ax.fill_between(curve["n"], curve["x_lo95"], curve["x_hi95"], color=BAND95, lw=0,
                        label="95% prediction band")
        ax.plot(curve["n"], curve["x"], color=FORECAST, lw=1.4, label="USL fit")
        ax.scatter(n, x, s=16, color=HISTORY, zorder=3, label="measured")
        if n_peak is not None and np.isfinite(n_peak) and n_peak <= curve["n"].max():
            ax.axvline(n_peak, color=LIMIT, ls="--", lw=1, label=f"N* = {n_peak:.0f}")
        ax.set_xlabel("concurrency (clients)")
        ax.set_ylabel(unit_label)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.set_title(title, loc="left")
        ax.legend(loc="lower right")
        _stamp(fig, synthetic)
        return fig


def slo_figure(budget: pd.Series, *, title: str, synthetic: bool = False):
    """Error budget remaining over the SLO window (fraction, 1 = untouched)."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots()
        ax.plot(budget.index, budget.to_numpy() * 100, color=HISTORY, lw=1.2,
                label="error budget remaining")
        ax.axhline(0, color=LIMIT, ls="--", lw=1, label="budget exhausted")
        ax.set_ylabel("% of budget")
        ax.set_xlabel("date (UTC)")
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%b %d"))
        ax.set_title(title, loc="left")
        ax.legend(loc="lower left")
        _stamp(fig, synthetic)
        return fig


def latency_distribution_figure(baseline: np.ndarray, current: np.ndarray, *, title: str,
                                labels: tuple[str, str] = ("baseline", "current"),
                                synthetic: bool = False, target: float | None = None):
    """Before/after latency distributions (empirical CDFs, milliseconds), with the target."""
    with plt.rc_context(STYLE):
        fig, ax = plt.subplots()
        for data, lab, col in ((baseline, labels[0], HISTORY), (current, labels[1], FORECAST)):
            d = np.sort(np.asarray(data, dtype=float) * 1000)
            if len(d):
                ax.step(d, np.arange(1, len(d) + 1) / len(d), where="post", color=col, label=lab)
        if target is not None:
            ax.axvline(target * 1000, color=LIMIT, ls="--", lw=1, label="target")
        ax.set_xlabel("latency (ms)")
        ax.set_ylabel("fraction ≤ x")
        ax.set_title(title, loc="left")
        ax.legend(loc="lower right")
        _stamp(fig, synthetic)
        return fig


class FigureWriter:
    """Draws a run's figures into ``<run_dir>/figures`` and returns their relative paths.

    The analysis layer receives one of these (as ``plots``) from the runner and never imports this
    module, so analysis stays below the report in the layering: it hands data over, the report
    draws it.
    """

    def __init__(self, run_dir: str | Path, *, synthetic: bool = False):
        self.run_dir = Path(run_dir)
        self.synthetic = synthetic

    def forecast(self, name: str, history: pd.Series, forecast: pd.DataFrame | None, **kw) -> str:
        return save(forecast_figure(history, forecast, synthetic=self.synthetic, **kw), self.run_dir, name)

    def usl(self, name: str, n: np.ndarray, x: np.ndarray, curve: pd.DataFrame, **kw) -> str:
        # load points are measured (the demo's too: a real recorded sweep), never synthetic
        return save(usl_figure(n, x, curve, **kw), self.run_dir, name)

    def slo(self, name: str, budget: pd.Series, **kw) -> str:
        return save(slo_figure(budget, synthetic=self.synthetic, **kw), self.run_dir, name)

    def latency(self, name: str, baseline: np.ndarray, current: np.ndarray, **kw) -> str:
        return save(latency_distribution_figure(baseline, current, synthetic=self.synthetic, **kw),
                    self.run_dir, name)
