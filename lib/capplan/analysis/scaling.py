"""Scaling headroom from load tests (behind the 03-scaling step).

Load points (one row per concurrency level and run, :mod:`capplan.loadtest.points`) are fitted
with the Universal Scalability Law (:func:`capplan.models.usl.fit_usl`).  The step reports the
peak throughput and the concurrency where it occurs (with 95 % intervals), the Amdahl ceiling,
the concurrency and throughput at the latency target (Little's law), and how many instances a
target load needs — the target load being ``load_multiplier`` × today's peak of the live quantity
the load test stands for (``load_metric``, e.g. ``pg_xact_commit_per_second``), read from the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from capplan.errors import CapplanError, InsufficientData
from capplan.analysis.findings import Finding, fmt

__all__ = ["ScalingOutcome", "load_points", "analyse_scaling"]


@dataclass
class ScalingOutcome:
    points: pd.DataFrame
    capacity: pd.DataFrame
    findings: list[Finding]
    figures: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    meta: dict = field(default_factory=dict)
    figure_ids: dict = field(default_factory=dict)


def load_points(loadtest_file: str, tool: str = "") -> tuple[pd.DataFrame, str]:
    """Load points from ``demo`` (the packaged pgbench sweep) or a result file; (points, origin)."""
    from capplan.loadtest import read_loadtest
    from capplan.loadtest.demo import demo_pgbench_sweep, demo_pgbench_sweep_info

    if loadtest_file == "demo":
        info = demo_pgbench_sweep_info()
        when = str(info.get("recorded_start_utc") or "")[:10]
        return demo_pgbench_sweep(), f"recorded pgbench sweep{' of ' + when if when else ''}"
    p = Path(loadtest_file)
    return read_loadtest(p, tool=tool or None), str(p.name)


def _peak_today(store, metric: str) -> tuple[float | None, dict]:
    from capplan.analysis.evidence import load_series
    from capplan.analysis.evidence import data_end

    end = data_end(store)
    start = None if end is None else end - pd.Timedelta(days=7)
    ev = load_series(store, metric, start=start, end=end, grain="5min", statistic="max")
    s = ev.series.dropna()
    if s.empty:
        return None, {}
    return float(s.max()), {"window": ev.window(), "n": ev.n_samples, "source": ev.source,
                            "unit": ev.unit}


def analyse_scaling(points: pd.DataFrame, origin: str, *, store=None, load_metric: str = "",
                    load_multiplier: float = 10.0, latency_target_s: float = 0.0,
                    plots=None) -> ScalingOutcome:
    """Fit USL to the load points; findings, a table and notes (``store``: an open store, needed
    for ``load_metric``; ``plots``: a :class:`capplan.report.figures.FigureWriter`)."""
    from capplan.models.usl import fit_usl

    pts = points.dropna(subset=["concurrency", "throughput_per_s"])
    tools = ",".join(sorted(set(pts["tool"].astype(str)))) if "tool" in pts else "load test"
    src = f"loadtest:{tools}"
    window = (pts["started_at"].min(), pts["started_at"].max()) if "started_at" in pts and \
        pts["started_at"].notna().any() else None
    workload = _workload(pts, origin, src, window)
    try:
        fit = fit_usl(pts["concurrency"].to_numpy(float), pts["throughput_per_s"].to_numpy(float))
    except InsufficientData as exc:
        f = Finding("scaling.fit", "scaling", "USL fit", status="insufficient data",
                    detail=exc.message, n=float(len(pts)), source=src)
        return ScalingOutcome(points, pd.DataFrame(), [workload, f, _points_table(pts, src, exc.message)],
                              [], [exc.message])
    n = float(fit.n_points)
    n_max = float(pts["concurrency"].max())
    base = dict(section="scaling", n=n, window=window, source=src)
    unit = "per_second"
    fs = [
        Finding("scaling.x_peak", label="Peak throughput X(N*)", value=fit.x_peak, unit=unit,
                interval=tuple(fit.x_peak_ci95) if fit.x_peak_ci95 else None, status="info",
                metric="throughput", **base),
        Finding("scaling.n_peak", label="Concurrency at peak N*", value=fit.n_peak, unit="count",
                interval=tuple(fit.n_peak_ci95) if fit.n_peak_ci95 else None, status="info", **base),
        Finding("scaling.x_ceiling", label="Amdahl ceiling λ/σ", value=fit.x_ceiling, unit=unit,
                interval=tuple(fit.x_ceiling_ci95) if fit.x_ceiling_ci95 else None, status="info", **base),
        Finding("scaling.sigma", label="Contention σ", value=fit.sigma, unit="count",
                interval=tuple(fit.ci95["sigma"]), status="info", **base),
        Finding("scaling.kappa", label="Coherency κ", value=fit.kappa, unit="count",
                interval=tuple(fit.ci95["kappa"]), status="info", **base),
        Finding("scaling.lambda", label="Single-client throughput λ", value=fit.lam, unit=unit,
                interval=tuple(fit.ci95["lambda"]), status="info", **base),
    ]
    rows = [{"quantity": f.label, "value": fmt(f.value, f.unit),
             "95% interval": f.to_dict()["display"].get("interval") or "n/a"} for f in fs]
    warnings = list(fit.warnings)
    if latency_target_s and latency_target_s > 0:
        n_at = fit.concurrency_at_latency(latency_target_s)
        x_at = fit.throughput_at_latency(latency_target_s)
        why = ("Little's law R(N) = N / X(N) gives the MEAN latency; since p95 >= mean this is an "
               "upper bound for the p95 target")
        f = Finding("scaling.n_at_latency", label=f"Concurrency where mean latency reaches "
                    f"{fmt(latency_target_s, 'seconds')}", value=n_at, unit="count",
                    status="info" if n_at else "insufficient data", detail=why, **base)
        g = Finding("scaling.x_at_latency", label=f"Throughput where mean latency reaches "
                    f"{fmt(latency_target_s, 'seconds')}", value=x_at, unit=unit,
                    status="info" if x_at else "insufficient data", detail=why, **base)
        if n_at is not None and n_at > EXTRAPOLATION_FACTOR * n_max:
            f, g = _extrapolated(f, n_max), _extrapolated(g, n_max)
        fs += [f, g]
        rows += [{"quantity": f.label, "value": fmt(n_at, "count"), "95% interval": "n/a"},
                 {"quantity": g.label, "value": fmt(x_at, unit), "95% interval": "n/a"}]
    if load_metric:
        try:
            with_store = _instances_for_target(fit, store, load_metric, load_multiplier,
                                               latency_target_s)
        except CapplanError as exc:
            warnings.append(f"target load not computed: {exc.message}")
            with_store = []
        with_store = [_extrapolated(f, n_max) if f.id == "scaling.instances_needed" and
                      (f.extra.get("plan") or {}).get("concurrency_per_instance", 0) >
                      EXTRAPOLATION_FACTOR * n_max else f for f in with_store]
        fs += with_store
        rows += [{"quantity": f.label, "value": f.to_dict()["display"]["value"],
                  "95% interval": f.to_dict()["display"].get("interval") or "n/a"} for f in with_store]
    curve_n = np.linspace(1, max(float(pts["concurrency"].max()) * 1.5, 2), 120)
    curve = fit.predict(curve_n)
    fig_path = None if plots is None else plots.usl(
        "scaling_usl", pts["concurrency"].to_numpy(float), pts["throughput_per_s"].to_numpy(float),
        curve, title=f"Scalability: {origin}", unit_label="throughput (per second)",
        n_peak=fit.n_peak)
    meta = {"origin": origin, "fit": fit.to_dict(), "figure": fig_path,
            "points": pts[[c for c in ("concurrency", "throughput_per_s", "latency_mean_s",
                                       "latency_p95_s", "errors") if c in pts]].to_dict("records")}
    meta["workload"] = workload.extra.get("workload")
    return ScalingOutcome(points, pd.DataFrame(rows), [workload] + fs,
                          [fig_path] if fig_path else [], warnings,
                          meta=meta, figure_ids={"usl": fig_path} if fig_path else {})


#: A quantity at a concurrency beyond this multiple of the largest tested level is extrapolated.
EXTRAPOLATION_FACTOR = 2.0


def _extrapolated(f: Finding, n_max: float) -> Finding:
    """The finding marked extrapolated: the executive summary shows no point estimate for it."""
    from dataclasses import replace

    text = (f"extrapolated beyond {EXTRAPOLATION_FACTOR:g}× the largest tested level "
            f"({fmt(n_max, 'count')} clients): no point estimate")
    disp = {**f.extra.get("display", {}), "extrapolated": text}
    return replace(f, status="insufficient evidence",
                   detail=(f.detail + "; " if f.detail else "") + text,
                   extra={**f.extra, "extrapolated": True, "tested_max": n_max, "display": disp})


def _placement(pts: pd.DataFrame, origin: str) -> str:
    from capplan.loadtest.demo import demo_pgbench_sweep_info

    if origin.startswith("recorded pgbench sweep"):
        cmd = str(demo_pgbench_sweep_info().get("pgbench_command_per_level", ""))
        if "127.0.0.1" in cmd or "localhost" in cmd:
            return "clients on the database host (loopback)"
    for col in ("client_host", "placement"):
        if col in pts and pts[col].notna().any():
            return f"clients on {pts[col].dropna().astype(str).iloc[0]}"
    return "client placement not recorded in the file"


def _workload(pts: pd.DataFrame, origin: str, src: str, window) -> Finding:
    """The conditions of the load test: tool, script or scenario, client placement, duration per
    level and the tested concurrency range (the scaling figures hold only for them)."""
    col = lambda c: sorted(set(pts[c].dropna().astype(str))) if c in pts else []  # noqa: E731
    tool = ", ".join(col("tool")) or "unknown tool"
    scen = ", ".join(col("scenario")) or "scenario not recorded"
    dur = pts["duration_s"].dropna() if "duration_s" in pts else pd.Series(dtype=float)
    dur_text = ("duration per level not recorded" if dur.empty else
                f"{fmt(float(dur.median()), 'seconds')} per level")
    c = pts["concurrency"].dropna()
    levels = int(c.nunique())
    rng = (f"{fmt(float(c.min()), 'count')}–{fmt(float(c.max()), 'count')} concurrent clients "
           f"({levels} level{'s' if levels != 1 else ''}, {len(c)} point{'s' if len(c) != 1 else ''})"
           if len(c) else "no concurrency levels")
    placement = _placement(pts, origin)
    text = f"{tool}, {scen}, {placement}, {dur_text}, {rng}; from {origin}"
    wl = {"tool": tool, "scenario": scen, "placement": placement,
          "duration_per_level_s": None if dur.empty else float(dur.median()),
          "concurrency_min": None if c.empty else float(c.min()),
          "concurrency_max": None if c.empty else float(c.max()), "levels": levels,
          "points": int(len(c)), "origin": origin}
    return Finding("scaling.workload", "scaling", "Load-test workload", status="info",
                   detail=text, n=float(len(c)), window=window, source=src,
                   extra={"workload": wl, "display": {"value": text}})


def _points_table(pts: pd.DataFrame, src: str, why: str) -> Finding:
    """The parsed load points as a table (shown when there are too few for a fit)."""
    cols = [("concurrency", "Concurrency", "count"), ("throughput_per_s", "Throughput", "per_second"),
            ("latency_mean_s", "Mean latency", "seconds"), ("latency_p95_s", "p95 latency", "seconds"),
            ("errors", "Errors", "count"), ("duration_s", "Duration", "seconds")]
    cols = [c for c in cols if c[0] in pts and pts[c[0]].notna().any()]
    rows = [[fmt(r[c], u) if pd.notna(r[c]) else "n/a" for c, _h, u in cols]
            for _i, r in pts.iterrows()]
    raw = pts[[c for c, _h, _u in cols]].to_dict("records")
    return Finding("scaling.points", "scaling", "Load points", status="info",
                   detail=f"The {len(rows)} parsed load point(s) ({why})", n=float(len(rows)),
                   source=src, extra={"points": raw, "display_columns": [h for _c, h, _u in cols],
                                      "display_rows": rows})


def _instances_for_target(fit, st, load_metric, multiplier, latency_target_s):
    from capplan.models.queueing import instances_needed

    if not latency_target_s:
        raise InsufficientData("latency_target_s is needed to size instances",
                               hint="set latency_target_s (p95 target, seconds) in params")
    if st is None:
        raise InsufficientData(f"no store to read {load_metric} from",
                               hint="run 01-collect first, or drop load_metric")
    peak, info = _peak_today(st, load_metric)
    if peak is None:
        raise InsufficientData(f"no samples of {load_metric} in the last 7 days",
                               hint="collect it, or set load_metric to a stored quantity")
    target = peak * multiplier
    plan = instances_needed(target, latency_target_s, fit)
    # the evidence behind today's peak: the store's last 7 days of load_metric
    ev = dict(section="scaling", window=tuple(info["window"]), source=info["source"], n=info["n"],
              metric=load_metric, status="info")
    return [
        Finding("scaling.peak_today", label=f"Today's peak {load_metric} (last 7 days)",
                value=peak, unit="per_second", **ev),
        Finding("scaling.target_load", label=f"Target load ({multiplier:g}× today's peak)",
                value=target, unit="per_second", **ev),
        Finding("scaling.instances_needed", label=f"Instances needed for {multiplier:g}× today's peak",
                value=float(plan.instances), unit="count",
                detail=f"{plan.method}: {plan.concurrency_per_instance} concurrent per instance at "
                       f"{plan.utilization * 100:.0f}% utilisation, p95 response "
                       f"{fmt(plan.response_target_quantile_s, 'seconds')} against the "
                       f"{fmt(latency_target_s, 'seconds')} target",
                extra={"multiplier": multiplier, "latency_target_s": latency_target_s,
                       "plan": plan.to_dict()}, **ev),
    ]
