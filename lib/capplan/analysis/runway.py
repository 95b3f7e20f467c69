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

"Current" (issue 13, peaks and levels): the peak of the last 7 days for ``statistic: max``; for a
*size-type* resource (a stored gauge whose name ends ``_bytes``: disk, memory) the latest reading,
summed over its series (a disk that is filling is understated by a day's mean); otherwise the mean
of the last 24 h.  The runway table's "Model" column is :func:`describe_model` (words); the
forecast's internal name stays in ``extra["model"]`` for the appendix.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import pandas as pd

from capplan.errors import CapplanError, ConfigError, InsufficientData
from capplan.analysis.evidence import load_series
from capplan.analysis.findings import slug, Finding, fmt, fmt_date

__all__ = ["CapacitySpec", "parse_capacity", "analyse_capacity", "RunwayOutcome", "describe_model",
           "is_size_type"]

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



_SEASON_WORDS = {"none": "no daily or weekly cycle", "day": "daily cycle", "week": "daily and weekly cycle"}
_TREND_WORDS = {"none": "no trend", "damped": "damped trend", "linear": "linear trend"}
_MEMBER = re.compile(r"^(?:(?P<tr>log|logit) )?level=(?P<level>ewm\(a=(?P<a>[0-9.eE+-]+)\)|median\(1 block\))"
                     r" trend=(?P<trend>\w+) season=(?P<season>\w+)$")


def _span_words(seconds: float) -> str:
    hours = seconds / 3600
    if hours >= 48:
        return f"{round(hours / 24):.0f} days"
    if hours >= 1.5:
        return f"{round(hours):.0f} hours"
    if hours >= 1:
        return "1 hour"
    return f"{max(1, round(seconds / 60)):.0f} minutes"


def _join_or(words: list[str]) -> str:
    words = list(dict.fromkeys(words))
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def describe_model(model: str, grain: str = "1h", n_history: int | None = None) -> str:
    """The forecast's ensemble in words, from its structural name (``Forecast.model``, e.g.
    ``mean of [log level=ewm(a=0.05) trend=linear season=week + ...]``): seasonality, trend, how
    far back the level looks (an exponential smoother with weight a remembers about 1/a steps;
    the median level is that of the last block, a day when the history holds 6 days), the scale
    and how many models are averaged.  A name it cannot read gives "see the appendix"."""
    text = str(model or "").strip()
    if text.startswith("mean of [") and text.endswith("]"):
        text = text[len("mean of ["):-1]
    members = [m.strip() for m in text.split(" + ") if m.strip()]
    parsed = [_MEMBER.match(m) for m in members]
    if not members or not all(parsed):
        return "see the appendix"
    step_s = pd.Timedelta(grain).total_seconds()
    seasons = [_SEASON_WORDS.get(m["season"], f"{m['season']} cycle") for m in parsed]
    kinds_t = list(dict.fromkeys(m["trend"] for m in parsed))
    trends = ([f"{_join_or(kinds_t)} trend"] if "none" not in kinds_t else
              [_TREND_WORDS.get(k, f"{k} trend") for k in kinds_t])
    levels = []
    day_steps = 86400 / step_s
    for m in parsed:
        if m["a"] is not None:
            levels.append((step_s / float(m["a"]), f"smoothed over about the last "
                                                    f"{_span_words(step_s / float(m['a']))}"))
        elif day_steps >= 2 and float(day_steps).is_integer() and (n_history or 0) >= 6 * day_steps:
            levels.append((86400.0, "median of the last day"))
        else:
            levels.append((math.inf, "median of the most recent block"))
    level_words = [w for _x, w in levels]
    smoothed = sorted({x for (x, w) in levels if w.startswith("smoothed")})
    if len(smoothed) > 1:
        a, b = _span_words(smoothed[0]), _span_words(smoothed[-1])
        if a.split()[-1] == b.split()[-1]:
            a = a.split()[0]
        rng = f"smoothed over about the last {a} to {b}"
        level_words = [rng if w.startswith("smoothed") else w for w in level_words]
    parts = [_join_or(seasons), _join_or(trends), "level " + _join_or(level_words)]
    scales = [m["tr"] for m in parsed if m["tr"]]
    if scales:
        kinds = {"log": "growth in proportion (log scale)", "logit": "bounded (logit scale)"}
        sc = _join_or([kinds[k] for k in scales])
        parts.append(sc if len(scales) == len(parsed) else f"{sc} in {len(scales)} of {len(parsed)}")
    n = len(parsed)
    return ", ".join(parts) + ("; one model" if n == 1 else f"; average of {n} models")


def is_size_type(spec: "CapacitySpec") -> bool:
    """A size-type resource (disk, memory: a stored gauge in bytes) reports its latest value."""
    from capplan.analysis.evidence import RATIOS

    return spec.metric.endswith("_bytes") and spec.statistic == "mean" and spec.metric not in RATIOS


def _latest(store, spec: "CapacitySpec", ev, end) -> tuple[float, pd.Timestamp] | None:
    """The newest reading of a size-type metric up to ``end`` (end sample included), summed over
    its series (each series' last sample within the final day, so a series that stopped
    reporting is not counted)."""
    from capplan.analysis.evidence import inclusive
    from capplan.core.frame import SERIES_KEY

    last = pd.Timestamp(end) if end is not None else ev.end
    if last is None:
        return None
    raw = store.query(spec.metric, source=spec.source, start=last - pd.Timedelta(days=1),
                      end=inclusive(last))
    if raw.empty:
        return None
    tail = raw.sort_values("timestamp").groupby(list(SERIES_KEY), sort=False).tail(1)
    return float(tail["value"].sum()), pd.Timestamp(tail["timestamp"].max())


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
    fid = f"runway.{slug(spec.name)}"
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
    latest = _latest(store, spec, ev, end) if is_size_type(spec) else None
    if latest is not None:
        current = latest[0]
    try:
        limit, limit_from = _limit_value(store, spec, start, end)
    except InsufficientData as exc:
        return RunwayOutcome(Finding(fid, "runway", spec.name, metric=spec.metric, value=current,
                                     unit=ev.unit, n=ev.n_samples, window=(ev.start, ev.end),
                                     source=ev.source, status="insufficient data",
                                     detail=f"no limit: {exc.message}"), None, None)
    base = dict(id=fid, section="runway", label=spec.name, metric=spec.metric, value=current,
                unit=ev.unit, n=ev.n_samples,
                window=(ev.start, max(ev.end, latest[1]) if latest else ev.end), source=ev.source)
    extra = {"limit": limit, "limit_source": limit_from, "statistic": spec.statistic,
             "grain": grain, "how": ev.how, "horizon_days": horizon_days,
             "current_definition": ("peak of the last 7 days" if spec.statistic == "max"
                                    else f"latest reading ({latest[1].isoformat()})" if latest
                                    else "mean of the last 24 h")}
    # the runway table's caption sends the reader to the appendix's How column for "Current"
    extra["how"] = f"{ev.how}; current: {extra['current_definition']}"
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
                        "mase": "n/a" if bt.mase is None else f"{bt.mase:.2f}",
                        "model": describe_model(fc.model, grain, len(fc.history))}
    figure = None
    if plots is not None:
        figure = plots.forecast(f"runway_{slug(spec.name)}", y, fc.frame,
                                title=f"{spec.name}: history and forecast", unit=ev.unit, limit=limit,
                                crossing=(rw.crossing, rw.crossing_lo, rw.crossing_hi))
        extra["figure"] = figure
    return RunwayOutcome(Finding(**base, interval=None, status=rw.status, extra=extra,
                                 detail=f"model {fc.model}; {bt.folds} backtest folds"),
                         figure, fc.frame)
