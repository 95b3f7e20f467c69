"""The steps the notebooks call: collect → growth → scaling → report.

Each step is one call from one notebook.  It reads the store, calls models, saves its findings to
``findings/<notebook>.json`` in the run folder and returns a small outcome whose tables and
figures the notebook displays.  Notebooks hold the narrative and the parameters; this module holds
the logic (no ``def`` in notebooks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from capplan.errors import ConfigError, InsufficientData
from capplan.analysis.evidence import data_end  # re-exported: the report's "now"
from capplan.analysis.findings import Finding, save_findings
from capplan.runner.params import project_root

__all__ = ["run_folder", "store_location", "open_run_store", "data_end", "collect_step",
           "growth_step", "scaling_step", "workers_step", "report_step", "require_collected",
           "rerun_capacity", "report_display"]


def run_folder(run_dir: str) -> Path:
    """The run folder given by ``capplan run``, or ``outputs/_lab`` for interactive use
    (``CAPPLAN_LAB_DIR`` moves the latter, e.g. for tests)."""
    import os

    lab = os.environ.get("CAPPLAN_LAB_DIR") or project_root() / "outputs" / "_lab"
    folder = Path(run_dir) if run_dir else Path(lab)
    (folder / "figures").mkdir(parents=True, exist_ok=True)
    (folder / "findings").mkdir(parents=True, exist_ok=True)
    return folder


def store_location(store: str, run_dir: Path) -> str:
    """``store`` param → what :func:`capplan.store.open_store` takes ('' = run folder file)."""
    if not store:
        return str(Path(run_dir) / "metrics.sqlite")
    if store.startswith("env:"):
        return store
    p = Path(store).expanduser()
    return str(p if p.is_absolute() else project_root() / p)


def open_run_store(store: str, run_dir: Path):
    from capplan.store import open_store

    return open_store(store_location(store, run_dir))




# --- 01-collect --------------------------------------------------------------------------------

@dataclass
class CollectOutcome:
    mode: str
    synthetic: bool
    inventory: pd.DataFrame
    notes: list[str] = field(default_factory=list)
    degraded: bool = False


def collect_step(*, mode: str, store: str, run_dir: Path, seed: int = 7, demo_days: int = 90,
                 demo_latency_factor: float = 1.0, sources: list | None = None,
                 duration_s: float = 60.0, interval_s: float = 5.0,
                 prometheus: dict | None = None, files: list | None = None) -> CollectOutcome:
    """Fill the store (demo history, live sampling, or nothing) and record what it holds."""
    from capplan.analysis.evidence import describe_store

    notes: list[str] = []
    meta: dict = {"mode": mode, "synthetic": mode == "demo"}
    degraded = False
    if mode not in ("demo", "live", "prometheus", "store", "files"):
        raise ConfigError(f"mode must be demo, live, prometheus, files or store, got {mode!r}",
                          key="mode",
                          hint="demo needs no server; live samples `sources`")
    with open_run_store(store, run_dir) as st:
        if mode == "demo":
            from capplan.collect.demo import DEMO_LABEL, describe_demo, generate_demo

            # the demo history ends at the run's date (midnight UTC: deterministic for a day)
            demo_end = pd.Timestamp.now(tz="UTC").floor("1D")
            frame = generate_demo(seed=seed, days=demo_days, end=demo_end)
            if demo_latency_factor != 1.0:
                m = frame["metric"] == "http_request_duration_p95_seconds"
                frame.loc[m, "value"] = frame.loc[m, "value"] * demo_latency_factor
                notes.append(f"API latency multiplied by {demo_latency_factor:g} "
                             "(demo_latency_factor: a rehearsed regression)")
            from capplan.collect.demo import generate_demo_jobs   # the demo's worker pool

            frame = pd.concat([frame, generate_demo_jobs(seed=seed, days=demo_days, end=demo_end)],
                              ignore_index=True)
            st.append(frame)
            meta["demo"] = describe_demo(seed=seed, days=demo_days, end=demo_end)
            meta["produced_samples"] = int(len(frame))
            meta["demo"]["latency_factor"] = demo_latency_factor
            notes.insert(0, f"{DEMO_LABEL}: generated from seed {seed}, {demo_days} days at 5-minute "
                            "resolution; no server was contacted.")
        elif mode == "live":
            from capplan.collect.loop import build_collectors, collect

            collectors = build_collectors(sources, path="params")
            before = _samples_by_source(st)
            try:
                from capplan.runner.progress import collection_bar

                res = collect(collectors, st, duration_s=duration_s, interval_s=interval_s,
                              progress=collection_bar)   # a bar in Lab; `capplan run` shows it
            finally:
                for c in collectors:
                    c.close()
            meta["collection"] = res.to_dict()
            after = _samples_by_source(st)
            produced = {src: after.get(src, 0) - before.get(src, 0) for src in res.sources}
            meta["produced_samples"] = int(sum(produced.values()))
            meta["as_of"] = res.ended_at.isoformat()
            meta["stale_after_s"] = 2 * float(interval_s)
            meta["failed_sources"] = _failed_sources(res, produced)
            for text in [*res.notes, *(n for c in collectors for n in (getattr(c, "notes", []) or []))]:
                if text not in notes:            # each note once
                    notes.append(text)
            if res.degraded:
                degraded = True
                for f in meta["failed_sources"]:
                    notes.append(f"{f['source']}: {f['failed']} failed read(s) of "
                                 f"{f['failed'] + f['ok']}: {f['error']}"
                                 + (f" (how to fix: {f['hint']})" if f.get("hint") else ""))
        elif mode == "files":    # CSV/Parquet exports (capplan.collect.exports)
            from capplan.collect.exports import read_exports

            frame, info = read_exports(files, base=project_root())
            st.append(frame)
            meta["files"] = info
            meta["produced_samples"] = int(len(frame))
            notes.append(f"history from {len(info['files'])} exported file(s): "
                         + ", ".join(f"{f['path']} ({f['rows']:,} rows)" for f in info["files"]))
        elif mode == "prometheus":
            frame, info = _prometheus_history(prometheus or {})
            st.append(frame)
            meta["prometheus"] = info
            meta["produced_samples"] = int(len(frame))
            meta["as_of"] = info.get("end")
            meta["stale_after_s"] = info.get("step_s")
            notes.append(f"history from Prometheus: {info['days']} days at a {info['step_s']:g} s step, "
                         f"{len(frame):,} samples")
            if info["missing_metrics"]:
                notes.append("no data in Prometheus for: " + ", ".join(info["missing_metrics"]))
            if info.get("empty_queries"):
                notes.append("PromQL queries that returned no series: "
                             + ", ".join(info["empty_queries"]))
        inv = describe_store(st)
    findings = [Finding(id=f"data.{row.source}", section="data", label=str(row.source),
                        value=float(row.samples), unit="count", n=float(row.samples),
                        window=(row.first, row.last), source=str(row.source), status="info",
                        extra={"series": int(row.series)})
                for row in inv.itertuples()]
    findings += [Finding(id=f"failure.{f['source']}", section="data", label=f["source"],
                         value=float(f["failed"]), unit="count", source=f["source"],
                         status="failed" if not f["produced"] else "info", detail=f["error"],
                         extra={"hint": f.get("hint"), "ok": f["ok"], "failed": f["failed"],
                                "display": {"error": f["error"], "hint": f.get("hint") or ""}})
                 for f in meta.get("failed_sources", [])]
    if mode == "store":
        meta["produced_samples"] = int(inv["samples"].sum()) if not inv.empty else 0
    meta["degraded"] = degraded
    save_findings(run_dir, "01-collect", findings, notes=notes, meta=meta)
    if inv.empty:     # after saving: the runner reads failed_sources / produced_samples
        raise InsufficientData("the store holds no samples",
                               hint="use mode: demo, or collect first (mode: live)")
    return CollectOutcome(mode, mode == "demo", inv, notes, degraded)


def _samples_by_source(st) -> dict:
    s = st.series()
    return {} if s.empty else {str(k): int(v) for k, v in s.groupby("source")["n"].sum().items()}


def _failed_sources(res, produced: dict) -> list[dict]:
    """``[{"source", "error", "hint", "failed", "ok", "produced"}]``: each source with a failed
    read this run, its first error and fix hint (``produced``: samples it still wrote)."""
    out = []
    for src, counts in sorted(res.sources.items()):
        if not counts.get("failed"):
            continue
        first = next((f for f in res.failures if f.get("source") == src), {})
        text = str(first.get("error") or "read failed")
        error, _, hint = text.partition("\n  how to fix: ")
        out.append({"source": src, "error": error.strip(), "hint": hint.strip() or None,
                    "failed": int(counts.get("failed", 0)), "ok": int(counts.get("ok", 0)),
                    "produced": int(produced.get(src, 0))})
    return out


def _prometheus_history(cfg: dict) -> tuple[pd.DataFrame, dict]:
    """History from Prometheus (params ``prometheus``): the exporter mapping plus any PromQL
    ``queries`` and ``presets`` (see :mod:`capplan.collect.promql`)."""
    from capplan.collect.promql import history

    return history(cfg)


# --- 02-growth ---------------------------------------------------------------------------------

@dataclass
class GrowthOutcome:
    table: pd.DataFrame
    figures: list[str]
    findings: list[Finding]


def _synthetic(run_dir: Path) -> bool:
    from capplan.analysis.findings import load_findings

    meta = load_findings(run_dir).get("01-collect", {}).get("meta", {})
    return bool(meta.get("synthetic"))


def growth_step(*, store: str, run_dir: Path, capacity: list, grain: str = "1h",
                horizon_days: int = 90, lookback_days: int = 90) -> GrowthOutcome:
    """Forecast every capacity entry and compute its runway (see :mod:`capplan.analysis.runway`)."""
    from capplan.analysis.findings import runway_status
    from capplan.analysis.runway import analyse_capacity, parse_capacity

    from capplan.report.figures import FigureWriter

    from capplan.runner.progress import collection_bar

    specs = parse_capacity(capacity)
    plots = FigureWriter(run_dir, synthetic=_synthetic(run_dir))
    findings, figs, rows = [], [], []
    with open_run_store(store, run_dir) as st:
        end = data_end(st)
        require_collected(end, store, run_dir, "02-growth")
        bar = collection_bar(len(specs), desc="forecast", unit="resource")
        for spec in specs:
            out = analyse_capacity(st, spec, end=end, lookback_days=lookback_days, grain=grain,
                                   horizon_days=horizon_days, plots=plots)
            bar.update(1)
            f = out.finding
            findings.append(f)
            if out.figure:
                figs.append(out.figure)
            d = f.to_dict()["display"]
            rows.append({"resource": f.label, "current": d.get("value"), "limit": d.get("limit"),
                         "utilisation": d.get("utilisation"), "crossing (95% interval)": d.get("crossing"),
                         "P(cross in horizon)": d.get("p_cross", "n/a"),
                         "status": runway_status(f.status, f.extra.get("p_cross_within_horizon"))})
        bar.close()
    save_findings(run_dir, "02-growth", findings, figures={f"runway_{i}": p for i, p in enumerate(figs)},
                  meta={"grain": grain, "horizon_days": horizon_days, "lookback_days": lookback_days})
    return GrowthOutcome(pd.DataFrame(rows), figs, findings)


def require_collected(end, store: str, run_dir: Path, notebook: str) -> None:
    """Stop a notebook whose input is missing with the name of the one to run first.

    ``end`` is :func:`data_end` of the run's store (None: nothing collected yet)."""
    if end is None:
        raise InsufficientData(
            f"{notebook}: the store {store_location(store, Path(run_dir))} holds no samples yet",
            hint="run 01-collect first (in JupyterLab: open notebooks/01-collect.ipynb and run "
                 "all cells; `capplan run PARAMS` runs every notebook in order)")


def rerun_capacity(name: str, *, capacity: list, run_dir: Path, store: str = "",
                   grain: str = "1h", horizon_days: int = 90, lookback_days: int = 90,
                   **changes) -> GrowthOutcome:
    """Re-run ONE capacity entry of 02-growth with other parameters (what-if, in JupyterLab)::

        what_if = pipeline.rerun_capacity("Redis memory", capacity=capacity, run_dir=folder,
                                          store=store, horizon_days=180, limit=8 * 2**30)
        what_if.table

    ``name`` is the entry's ``name``; ``changes`` replace keys of that entry (``limit``,
    ``limit_metric``, ``statistic``, ``metric``, ``source`` ...); ``grain``, ``horizon_days`` and
    ``lookback_days`` replace the notebook's.  Nothing of the run changes: no finding is saved
    and the figure goes to ``<run folder>/whatif/figures/`` (``figures`` holds absolute paths),
    so the report keeps the params' numbers.  Raises ConfigError for an unknown name or key.
    """
    from capplan.analysis.findings import runway_status
    from capplan.analysis.runway import analyse_capacity, parse_capacity
    from capplan.report.figures import FigureWriter

    entries = [dict(e) for e in (capacity or []) if isinstance(e, dict) and e.get("name") == name]
    if not entries:
        names = [str(e.get("name")) for e in capacity or [] if isinstance(e, dict)]
        raise ConfigError(f"no capacity entry named {name!r}", key="capacity",
                          hint=f"one of: {', '.join(names) or '(the capacity list is empty)'}")
    entry = {**entries[0], **changes}
    if "limit" in changes:
        entry.pop("limit_metric", None)
    elif "limit_metric" in changes:
        entry.pop("limit", None)
    (spec,) = parse_capacity([entry])
    whatif = Path(run_dir) / "whatif"
    with open_run_store(store, run_dir) as st:
        end = data_end(st)
        require_collected(end, store, run_dir, "02-growth")
        out = analyse_capacity(st, spec, end=end, lookback_days=lookback_days, grain=grain,
                               horizon_days=horizon_days,
                               plots=FigureWriter(whatif, synthetic=_synthetic(run_dir)))
    f = out.finding
    d = f.to_dict()["display"]
    row = {"resource": f.label, "current": d.get("value"), "limit": d.get("limit"),
           "utilisation": d.get("utilisation"), "crossing (95% interval)": d.get("crossing"),
           "P(cross in horizon)": d.get("p_cross", "n/a"),
           "status": runway_status(f.status, f.extra.get("p_cross_within_horizon"))}
    figs = [str(whatif / out.figure)] if out.figure else []
    return GrowthOutcome(pd.DataFrame([row]), figs, [f])


# --- 03-scaling --------------------------------------------------------------------------------

def scaling_step(*, run_dir: Path, store: str = "", loadtest_file: str = "demo",
                 loadtest_tool: str = "", load_metric: str = "", load_multiplier: float = 10.0,
                 latency_target_s: float = 0.0):
    """Fit USL to the load points and save the scaling findings (``findings/03-scaling.json``);
    see :mod:`capplan.analysis.scaling`."""
    import contextlib

    from capplan.analysis.scaling import ScalingOutcome, analyse_scaling, load_points
    from capplan.report.figures import FigureWriter

    if not loadtest_file:
        save_findings(run_dir, "03-scaling", [], notes=["No load test results were given "
                                                        "(params: loadtest_file)."])
        return ScalingOutcome(pd.DataFrame(), pd.DataFrame(), [], [], ["no load test"])
    points, origin = load_points(loadtest_file, loadtest_tool)
    with (open_run_store(store, run_dir) if load_metric else contextlib.nullcontext()) as st:
        out = analyse_scaling(points, origin, store=st, load_metric=load_metric,
                              load_multiplier=load_multiplier, latency_target_s=latency_target_s,
                              plots=FigureWriter(run_dir))
    save_findings(run_dir, "03-scaling", out.findings, notes=out.warnings, figures=out.figure_ids,
                  meta=out.meta or None)
    return out


def workers_step(*, run_dir: Path, store: str = "", worker_pools: list | None = None):
    """Worker-pool findings (``findings/03-workers.json``, section ``workers``); see
    :mod:`capplan.analysis.workers`.  No pools in params: the demo's pool on demo data, else none.
    Grain, horizon and lookback are the growth step's (02-growth)."""
    from capplan.analysis.findings import load_findings
    from capplan.analysis.workers import analyse_worker_pool, parse_worker_pools

    pools = list(worker_pools or [])
    if not pools and _synthetic(run_dir):
        from capplan.collect.demo import DEMO_WORKER_POOL

        pools = [DEMO_WORKER_POOL]
    specs = parse_worker_pools(pools)
    meta = load_findings(run_dir).get("02-growth", {}).get("meta", {}) or {}
    findings: list[Finding] = []
    with open_run_store(store, run_dir) as st:
        end = data_end(st)
        for spec in specs:
            findings += analyse_worker_pool(st, spec, end=end, grain=meta.get("grain", "1h"),
                                            horizon_days=int(meta.get("horizon_days", 90)),
                                            lookback_days=int(meta.get("lookback_days", 90)))
    save_findings(run_dir, "03-workers", findings,
                  notes=[] if specs else ["No worker pools in params (key: worker_pools)."])
    return pd.DataFrame([{"quantity": f.label, "value": f.to_dict()["display"].get("value"),
                          "status": f.status} for f in findings])


# --- 04-report ---------------------------------------------------------------------------------

@dataclass
class ReportOutcome:
    summary: dict
    markdown: Path
    html: Path


def report_step(*, run_dir: Path, store: str = "", service: str = "", from_phase: str = "",
                to_phase: str = "", targets: list | None = None, previous_summary: str = "",
                baseline_days: int = 7, current_days: int = 7, params_name: str = "",
                baseline_loadtest: str = "", candidate_loadtest: str = "",
                compare: dict | None = None) -> ReportOutcome:
    """Assemble summary.json (:func:`capplan.analysis.summary.build_summary`) and render the
    handoff document (:func:`capplan.report.document.render_report`)."""
    from capplan.analysis.findings import load_findings, read_summary, write_summary
    from capplan.analysis.summary import build_summary
    from capplan.report.document import render_report
    from capplan.report.figures import FigureWriter

    gathered = load_findings(run_dir)
    if "01-collect" not in gathered:
        require_collected(None, store, run_dir, "04-report")
    synthetic = bool(gathered.get("01-collect", {}).get("meta", {}).get("synthetic"))
    lt_changes, lt_info = _loadtest_comparison(baseline_loadtest, candidate_loadtest, compare)
    with open_run_store(store, run_dir) as st:
        summary = build_summary(
            st, gathered, run_id=Path(run_dir).name.lstrip(".").split(".partial")[0],
            service=service, from_phase=from_phase, to_phase=to_phase, targets=targets,
            previous_summary=previous_summary, baseline_days=baseline_days,
            current_days=current_days, params_name=params_name,
            plots=FigureWriter(run_dir, synthetic=synthetic),
            loadtest_changes=lt_changes, loadtest_comparison=lt_info)
    write_summary(run_dir, summary)
    md, html = render_report(run_dir)
    return ReportOutcome(read_summary(run_dir), md, html)


#: ``demo`` for baseline/candidate_loadtest: a real recorded pair shipped with capplan
DEMO_COMPARE = {
    "baseline": ("demo_compare/baseline", "pgbench -S -c 2 -j 1 -R 400 -T 2 -l, 3 runs (recorded)"),
    "candidate": ("demo_compare/candidate", "the same after dropping pgbench_accounts' primary key, "
                                            "3 runs (recorded)"),
}


def _loadtest_comparison(baseline: str, candidate: str, settings: dict | None):
    """The "What changed" load-test comparison (:mod:`capplan.analysis.compare`): findings and
    a description of both sides; ([], None) when params name no pair."""
    if not baseline or not candidate:
        return [], None
    from capplan.analysis.compare import compare_from_params
    from capplan.errors import CapplanError
    from capplan.runner.params import project_root

    data = Path(__file__).resolve().parents[1] / "data"
    sides, labels = {}, {}
    for side, value in (("baseline", baseline), ("candidate", candidate)):
        if value == "demo":
            rel, what = DEMO_COMPARE[side]
            sides[side], labels[side] = str(data / rel), f"demo: {what}"
        else:
            sides[side], labels[side] = value, Path(value).name or value
    info = {"baseline": labels["baseline"], "candidate": labels["candidate"]}
    try:
        cmp = compare_from_params({"baseline_loadtest": sides["baseline"],
                                   "candidate_loadtest": sides["candidate"],
                                   "compare": dict(settings or {})}, base_dir=project_root())
    except CapplanError as exc:
        return [Finding("change.loadtest", "changes", "Load-test comparison",
                        status="insufficient evidence", detail=exc.message).to_dict()], info
    fs = cmp.to_findings()
    for f in fs:   # name the sides in words, never by absolute path
        f["source"] = labels["candidate"]
        for side in ("baseline", "candidate"):
            if isinstance(f.get("extra", {}).get(side), dict):
                f["extra"][side]["path"] = labels[side]
                f["extra"][side].pop("files", None)
    info.update(verdict=cmp.verdict, notes=list(cmp.notes or []))
    return fs, info


def report_display(outcome: ReportOutcome) -> list:
    """The handoff document as notebook outputs: Markdown pieces with every figure embedded
    where the document places it.  (JupyterLab resolves an image link against the notebook's
    folder, not the run folder, so the document's ``figures/x.png`` links show as broken
    images; embedded PNGs always load.)  Use: ``display(*pipeline.report_display(outcome))``."""
    import re

    from IPython.display import Image, Markdown

    md = Path(outcome.markdown)
    text = md.read_text(encoding="utf-8")
    parts, pos = [], 0
    for m in re.finditer(r"!\[[^\]]*\]\(([^)\s]+\.png)\)", text):
        if text[pos:m.start()].strip():
            parts.append(Markdown(text[pos:m.start()]))
        fig = Path(m.group(1)) if Path(m.group(1)).is_absolute() else md.parent / m.group(1)
        parts.append(Image(filename=str(fig)) if fig.is_file() else Markdown(m.group(0)))
        pos = m.end()
    if text[pos:].strip():
        parts.append(Markdown(text[pos:]))
    return parts
