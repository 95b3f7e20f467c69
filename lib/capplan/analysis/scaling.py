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
    try:
        fit = fit_usl(pts["concurrency"].to_numpy(float), pts["throughput_per_s"].to_numpy(float))
    except InsufficientData as exc:
        f = Finding("scaling.fit", "scaling", "USL fit", status="insufficient data",
                    detail=exc.message, n=float(len(pts)), source=src)
        return ScalingOutcome(points, pd.DataFrame(), [f], [], [exc.message])
    n = float(fit.n_points)
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
    return ScalingOutcome(points, pd.DataFrame(rows), fs, [fig_path] if fig_path else [], warnings,
                          meta=meta, figure_ids={"usl": fig_path} if fig_path else {})


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
