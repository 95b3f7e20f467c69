"""Capacity runway: for each capacity entry in params, when does it cross its limit?

A capacity entry (params key ``capacity``, a list)::

    - name: Redis memory                      # what the report calls it
      metric: redis_used_memory_bytes         # stored or derived quantity (capplan.analysis.evidence)
      limit_metric: redis_maxmemory_bytes     # the limit is another metric (its latest value) ...
      # limit: 268435456                      # ... or a constant in the metric's unit
      statistic: mean                         # per analysis bucket: mean (levels) or max (peaks)
      source: redis:cache                     # optional: one instance when the store holds several
      limit_source: "maxmemory (INFO)"        # optional: where a constant limit comes from

Each entry gives one finding (section ``runway``) carrying the current level, the limit, the
utilisation, the first crossing date with its interval and the probability of crossing within the
horizon, from :func:`capplan.models.growth.fit_forecast` and :func:`~capplan.models.growth.time_to_limit`.
A limit metric whose value is 0 (Redis ``maxmemory 0``) means *no limit*: no utilisation and no
crossing are computed for it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

from capplan.errors import CapplanError, ConfigError, InsufficientData
from capplan.analysis.evidence import load_series
from capplan.analysis.findings import Finding, fmt, fmt_date

__all__ = ["CapacitySpec", "parse_capacity", "analyse_capacity", "RunwayOutcome"]

_ALLOWED = {"name", "metric", "source", "limit", "limit_metric", "statistic", "limit_source",
            "bounds"}


@dataclass(frozen=True)
class CapacitySpec:
    name: str
    metric: str
    limit: float | None = None
    limit_metric: str | None = None
    statistic: str = "mean"
    limit_source: str | None = None
    bounds: tuple[float | None, float | None] = (0.0, None)
    source: str | None = None


def parse_capacity(raw: list, *, path: str = "params") -> tuple[CapacitySpec, ...]:
    """Check the ``capacity`` list; :class:`ConfigError` names the entry and the key."""
    out = []
    for i, item in enumerate(raw or []):
        key = f"capacity[{i}]"
        if not isinstance(item, dict):
            raise ConfigError("each capacity entry must be a mapping", path=path, key=key,
                              hint="e.g. {name: Redis memory, metric: redis_used_memory_bytes, "
                                   "limit_metric: redis_maxmemory_bytes}")
        bad = set(item) - _ALLOWED
        if bad:
            raise ConfigError(f"unknown key(s) {sorted(bad)}", path=path, key=key,
                              hint=f"allowed keys: {', '.join(sorted(_ALLOWED))}")
        for req in ("name", "metric"):
            if not item.get(req):
                raise ConfigError(f"'{req}' is required", path=path, key=key,
                                  hint="see the capacity entry in params/demo.yaml for the shape")
        if (item.get("limit") is None) == (item.get("limit_metric") is None):
            raise ConfigError("give exactly one of 'limit' (a constant) or 'limit_metric'",
                              path=path, key=f"{key}.{item.get('name')}",
                              hint="limit: 68719476736 (in the metric's unit) or "
                                   "limit_metric: redis_maxmemory_bytes")
        if item.get("limit") is not None and not isinstance(item["limit"], (int, float)):
            raise ConfigError(f"'limit' must be a number, got {item['limit']!r}", path=path, key=key,
                              hint="write it in the metric's unit, e.g. bytes: 68719476736")
        stat = item.get("statistic", "mean")
        if stat not in ("mean", "max"):
            raise ConfigError(f"'statistic' must be mean or max, got {stat!r}", path=path, key=key,
                              hint="max for peak-limited resources (connections, request rate)")
        b = item.get("bounds", [0, None])
        out.append(CapacitySpec(name=str(item["name"]), metric=str(item["metric"]),
                                limit=None if item.get("limit") is None else float(item["limit"]),
                                limit_metric=item.get("limit_metric"), statistic=stat,
                                limit_source=item.get("limit_source"),
                                bounds=(b[0], b[1]) if isinstance(b, (list, tuple)) else (0, None),
                                source=item.get("source")))
    return tuple(out)


@dataclass(frozen=True)
class RunwayOutcome:
    """Everything one capacity entry produced: its finding, and the figure path (if any)."""

    finding: Finding
    figure: str | None
    forecast_frame: pd.DataFrame | None


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _limit_value(store, spec: CapacitySpec, start, end) -> tuple[float | None, str]:
    if spec.limit is not None:
        return spec.limit, spec.limit_source or "params"
    ev = load_series(store, spec.limit_metric, start=start, end=end, grain="1h", source=spec.source)
    latest = float(ev.series.dropna().iloc[-1])
    return latest, f"{spec.limit_metric} (latest value)"


def analyse_capacity(store, spec: CapacitySpec, *, end: pd.Timestamp | None = None,
                     lookback_days: int = 90, grain: str = "1h", horizon_days: int = 90,
                     plots=None) -> RunwayOutcome:
    """Fit growth for one capacity entry and compute its runway; never raises for data reasons.

    Insufficient or unusable data gives a finding with status ``insufficient data`` and the
    reason in ``detail`` instead of a number.  ``plots`` (a
    :class:`capplan.report.figures.FigureWriter`, given by the runner) draws the forecast figure.
    """
    from capplan.models.growth import fit_forecast, time_to_limit
    fid = f"runway.{_slug(spec.name)}"
    start = None if end is None else end - pd.Timedelta(days=lookback_days)
    try:
        ev = load_series(store, spec.metric, start=start, end=end, grain=grain,
                         statistic=spec.statistic, source=spec.source)
    except InsufficientData as exc:
        return RunwayOutcome(Finding(fid, "runway", spec.name, metric=spec.metric,
                                     status="insufficient data", detail=str(exc.message)), None, None)
    y = ev.series
    last_day = y[y.index > y.index.max() - pd.Timedelta(days=7 if spec.statistic == "max" else 1)]
    current = float(last_day.max() if spec.statistic == "max" else last_day.mean())
    try:
        limit, limit_from = _limit_value(store, spec, start, end)
    except InsufficientData as exc:
        return RunwayOutcome(Finding(fid, "runway", spec.name, metric=spec.metric, value=current,
                                     unit=ev.unit, n=ev.n_samples, window=(ev.start, ev.end),
                                     source=ev.source, status="insufficient data",
                                     detail=f"no limit: {exc.message}"), None, None)
    base = dict(id=fid, section="runway", label=spec.name, metric=spec.metric, value=current,
                unit=ev.unit, n=ev.n_samples, window=(ev.start, ev.end), source=ev.source)
    extra = {"limit": limit, "limit_source": limit_from, "statistic": spec.statistic,
             "grain": grain, "how": ev.how, "horizon_days": horizon_days,
             "current_definition": ("peak of the last 7 days" if spec.statistic == "max"
                                    else "mean of the last 24 h")}
    if limit is None or limit <= 0 or not math.isfinite(limit):
        extra["display"] = {"limit": "no limit set", "utilisation": "n/a", "crossing": "n/a"}
        return RunwayOutcome(Finding(**base, status="no limit", extra=extra,
                                     detail=f"{limit_from} is 0 or unset: no limit to run out of"),
                             None, None)
    extra["utilisation"] = current / limit
    horizon = int(pd.Timedelta(days=horizon_days) / pd.Timedelta(grain))
    try:
        fc = fit_forecast(y, horizon=horizon, grain=grain, bounds=spec.bounds)
        rw = time_to_limit(fc, limit)
    except CapplanError as exc:
        extra["display"] = {"limit": fmt(limit, ev.unit), "utilisation": fmt(current / limit, "ratio"),
                            "crossing": "insufficient data"}
        return RunwayOutcome(Finding(**base, status="insufficient data", extra=extra,
                                     detail=exc.message), None, None)
    rwd = rw.to_dict()
    bt = fc.backtest
    extra.update({
        "crossing": rw.crossing, "crossing_lo": rw.crossing_lo, "crossing_hi": rw.crossing_hi,
        "p_cross_within_horizon": rw.p_cross_within_horizon, "model": fc.model,
        "backtest": {"mase": bt.mase, "coverage80": bt.coverage80, "coverage95": bt.coverage95,
                     "folds": bt.folds},
        "warnings": list(fc.warnings) + [w for w in rwd.get("warnings", []) if w not in fc.warnings],
        "changes": [pd.Timestamp(c.timestamp).isoformat() for c in fc.changes],
        "horizon_end": fc.frame.index.max(),
        "hi95_max_in_horizon": float(fc.frame["hi95"].max()),
    })
    # the same words as `capplan runway` (Runway.crossing_text): a date only when P >= 0.5
    cross_txt = rw.crossing_text(fmt_date)
    extra["display"] = {"limit": fmt(limit, ev.unit), "utilisation": fmt(current / limit, "ratio"),
                        "crossing": cross_txt,
                        "p_cross": f"{rw.p_cross_within_horizon * 100:.0f}%",
                        "horizon_end": fmt_date(fc.frame.index.max()),
                        "hi95_max_in_horizon": fmt(float(fc.frame["hi95"].max()), ev.unit),
                        "coverage95": "n/a" if bt.coverage95 is None else f"{bt.coverage95 * 100:.0f}%",
                        "mase": "n/a" if bt.mase is None else f"{bt.mase:.2f}"}
    figure = None
    if plots is not None:
        figure = plots.forecast(f"runway_{_slug(spec.name)}", y, fc.frame,
                                title=f"{spec.name}: history and forecast", unit=ev.unit, limit=limit,
                                crossing=(rw.crossing, rw.crossing_lo, rw.crossing_hi))
        extra["figure"] = figure
    return RunwayOutcome(Finding(**base, interval=None, status=rw.status, extra=extra,
                                 detail=f"model {fc.model}; {bt.folds} backtest folds"),
                         figure, fc.frame)
