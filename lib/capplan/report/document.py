"""The handoff document, built only from summary.json (this module computes no number).

Sections, in the order of the best handoff documents: executive summary; what changed since the
previous phase; current baseline (Metric | Baseline | Current | Target | Status); capacity
runway; scaling headroom; known issues and risks; recommendations; next-phase targets; appendix
(provenance: sources, windows, sample counts, model choices, backtest accuracy).
"""

from __future__ import annotations

import os
from pathlib import Path

from capplan.analysis.findings import fmt_date, fmt_window, read_summary
from capplan.report.render import to_html, to_markdown

__all__ = ["SECTION_TITLES", "build_document", "render_report"]

SECTION_TITLES = (
    "Executive summary",
    "What changed since the previous phase",
    "Current baseline",
    "Capacity runway",
    "Scaling headroom",
    "Known issues and risks",
    "Recommendations",
    "Next-phase targets",
    "Appendix: data and provenance",
)
SYNTHETIC = ("SYNTHETIC DEMO DATA: every figure in this document comes from capplan's generated demo "
             "history, not from a real service.")


def _d(f: dict, key: str, default: str = "n/a") -> str:
    v = f.get("display", {}).get(key)
    return default if v in (None, "") else str(v)


def _with_interval(f: dict) -> str:
    v = _d(f, "value")
    iv = f.get("display", {}).get("interval")
    return f"{v} ({iv})" if iv else v


def _window_text(w) -> str:
    if not w or w[0] is None:
        return "n/a"
    return fmt_window(w[0], w[1])


def _rows(fs: list[dict], cells) -> tuple[list, list]:
    """(rows, row_refs): one table row per finding, each row carrying the finding's id."""
    return [cells(f) for f in fs], [f["id"] for f in fs]


def _table(headers, fs, cells, caption=None, caption_refs=None) -> tuple:
    rows, refs = _rows(fs, cells)
    return ("table", headers, rows, caption, refs, caption_refs)


def build_document(summary: dict) -> list[tuple]:
    """Blocks (see :mod:`capplan.report.render`) for a summary.json dict.

    Every block that shows a number names the summary.json finding(s) it comes from; run-level
    figures (windows, dates, run id) refer to ``summary``, notes to ``notes.<notebook>``.
    """
    s = summary
    secs = s.get("sections", {})
    frm, to = s.get("from_phase") or "current phase", s.get("to_phase") or "next phase"
    win = s.get("data_window") or [None, None]
    sub = (f"{s.get('service') or 'service'} · data {_window_text(win)} (UTC) · "
           f"generated {fmt_date(s.get('generated_at'))} · run {s.get('run_id')}")
    b: list[tuple] = [("title", f"Capacity handoff: {frm} → {to}", sub, "summary")]
    if s.get("synthetic"):
        b.append(("banner", SYNTHETIC))
    failed = [f for f in secs.get("data", []) if f.get("status") == "failed"]
    if failed:
        b.append(("banner", "Failed sources: " + ", ".join(f["label"] for f in failed)
                  + " could not be read during this run; their findings are stale (see the "
                    "executive summary).", [f["id"] for f in failed]))
    elif s.get("degraded"):
        b.append(("banner", "Degraded data: some reads failed during collection; see the "
                            "appendix."))

    b.append(("h2", SECTION_TITLES[0]))
    stm = s.get("statements", [])
    b.append(("status_list", [(x["severity"], x["text"], x.get("refs")) for x in stm]) if stm else
             ("p", "No findings: the run produced no runway, target or scaling results."))

    b.append(("h2", SECTION_TITLES[1]))
    all_ch = secs.get("changes", [])
    lt = [f for f in all_ch if str(f.get("id", "")).startswith("change.loadtest")]
    ch = [f for f in all_ch if f not in lt]
    if s.get("loadtest_comparison"):
        info = s["loadtest_comparison"]
        b.append(("p", f"Load test, baseline: {info.get('baseline')}; candidate: "
                       f"{info.get('candidate')}.", "summary"))
        b.append(_table(["Metric", "Baseline", "Candidate", "Change (interval)", "Verdict", "Evidence"],
                        lt, lambda f: [f["label"], _d(f, "previous"), _d(f, "current"),
                                       _d(f, "change_interval"), f.get("status") or "n/a",
                                       f.get("detail") or ""]))
    if s.get("previous") is None:
        b.append(("p", "No previous phase summary was given (params: previous_summary), so there "
                       "is nothing to compare with."))
    elif not ch:
        b.append(("p", f"Previous run {s['previous'].get('run_id')}: no figure present in both runs.",
                  "summary"))
    else:
        b.append(("p", f"Compared with run {s['previous'].get('run_id')} "
                       f"({fmt_date(s['previous'].get('generated_at'))}).", "summary"))
        b.append(_table(["Metric", "Previous", "Current", "Verdict", "Evidence"], ch,
                        lambda f: [f["label"], _d(f, "previous"), _d(f, "current"),
                                   f.get("status") or "n/a", f.get("detail") or ""]))

    b.append(("h2", SECTION_TITLES[2]))
    tg = secs.get("targets", [])
    w = s.get("windows", {})
    if tg:
        base_txt = (_window_text(w.get("baseline")) if w.get("baseline")
                    else (w.get("baseline_why") or "none"))
        b.append(_table(
            ["Metric", "Baseline", "Current", "Target", "Status", "n", "Spread", "Data age"], tg,
            lambda f: [f["label"], _d(f, "baseline"), _with_interval(f), _d(f, "target"),
                       f.get("status") or "n/a", _d(f, "n"), _d(f, "spread", ""),
                       _d(f, "age")],
            f"Baseline: {base_txt}; current: {_window_text(w.get('current'))}. Intervals are 95%, "
            "from the variation between time blocks.", "summary"))
        b.append(("ul", [(f"{f['label']}: {f.get('detail')}", f["id"]) for f in tg
                         if f.get("detail")]))
        for f in tg:
            fig = f.get("extra", {}).get("figure")
            if fig:
                what = ("error budget remaining over the SLO window" if f.get("extra", {}).get("kind") == "slo"
                        else "distribution in the baseline and current windows, with the target")
                b.append(("figure", fig, f"{f['label']}: {what}", f["id"]))
    else:
        b.append(("p", "No targets in params (key: targets)."))

    b.append(("h2", SECTION_TITLES[3]))
    rw = secs.get("runway", [])
    if rw:
        b.append(_table(["Resource", "Current", "Limit", "Utilisation",
                         "Projected crossing (95% interval)", "P(cross in horizon)", "Model",
                         "Backtest 95% coverage"], rw,
                        lambda f: [f["label"], _d(f, "value"), _d(f, "limit"), _d(f, "utilisation"),
                                   _d(f, "crossing", f.get("status") or "n/a"), _d(f, "p_cross"),
                                   _d(f, "model", "see the appendix"), _d(f, "coverage95")],
                        "Current: as described under How in the appendix. Crossing dates are "
                        "UTC."))
        for f in rw:
            fig = f.get("extra", {}).get("figure")
            if fig:
                b.append(("figure", fig, f"{f['label']}: history, forecast with 80% and 95% "
                                         "intervals, limit and crossing range", f["id"]))
    else:
        b.append(("p", "No capacity entries in params (key: capacity)."))

    b.append(("h2", SECTION_TITLES[4]))
    sc = secs.get("scaling", [])
    notes03 = list(dict.fromkeys(s.get("notes", {}).get("03-scaling", [])))
    if sc:
        wl = [f for f in sc if f["id"] == "scaling.workload"]
        if wl:
            b.append(("p", f"Workload: {wl[0].get('detail')}.", wl[0]["id"]))
        figures = [f for f in sc if f["id"] not in ("scaling.workload", "scaling.points")]
        b.append(_table(["Quantity", "Value (95% interval)", "n"], figures,
                        lambda f: [f["label"] + (" (extrapolated)" if (f.get("extra") or {})
                                                 .get("extrapolated") else ""),
                                   _with_interval(f), _d(f, "n")]))
        pts = [f for f in sc if f["id"] == "scaling.points"]
        if pts:
            rows = (pts[0].get("extra") or {}).get("display_rows") or []
            cols = (pts[0].get("extra") or {}).get("display_columns") or []
            b.append(("table", cols, rows, pts[0].get("detail"), [pts[0]["id"]] * len(rows),
                      pts[0]["id"]))
        figp = s.get("figures", {}).get("03-scaling:usl")
        if figp:
            b.append(("figure", figp, "Universal Scalability Law fit over the measured load points "
                                      "with its 95% prediction band"))
        for n in notes03:
            b.append(("p", f"Note: {n}", "notes.03-scaling"))
    else:
        b.append(("p", "; ".join(notes03) or "No load test results were given.",
                  "notes.03-scaling"))

    b += worker_pool_blocks(secs.get("workers", []))

    b.append(("h2", SECTION_TITLES[5]))
    risks = [x for x in stm if x["severity"] not in ("meets", "not within horizon", "info", "better",
                                                     "no detectable change")]
    b.append(("ul", [(x["text"], x.get("refs")) for x in risks]) if risks else
             ("p", "None found by the checks run."))

    b.append(("h2", SECTION_TITLES[6]))
    rec = s.get("recommendations", [])
    b.append(("ul", [(f"{r['text']} (finding: {', '.join(r['refs'])})", r["refs"]) for r in rec])
             if rec else ("p", "No action needed by the rules applied."))

    b.append(("h2", SECTION_TITLES[7]))
    nt = s.get("next_phase_targets", [])
    b.append(("ul", [(r["text"], r.get("refs")) for r in nt]) if nt else
             ("p", "Insufficient data to propose targets."))

    b.append(("h2", SECTION_TITLES[8]))
    data = [f for f in secs.get("data", []) if not f["id"].startswith("failure.")]
    if data:
        b.append(_table(["Source", "Series", "Samples", "Window (UTC)"], data,
                        lambda f: [f["label"], str(f.get("extra", {}).get("series", "n/a")),
                                   _d(f, "n"), _d(f, "window")]))
    fails = [f for f in secs.get("data", []) if f["id"].startswith("failure.")]
    if fails:
        b.append(_table(["Source", "Failed reads", "Error", "How to fix"], fails,
                        lambda f: [f["label"], _d(f, "value"), _d(f, "error"),
                                   _d(f, "hint", "")]))
    seen: set[str] = set()
    for nb, items in s.get("notes", {}).items():
        if nb != "03-scaling":
            fresh = [n for n in dict.fromkeys(items) if n not in seen]
            seen.update(fresh)
            if fresh:
                b.append(("ul", [(f"{nb}: {n}", f"notes.{nb}") for n in fresh]))
    if rw:
        b.append(_table(["Resource", "Metric", "How", "Model", "Backtest MASE", "95% coverage",
                         "Samples", "Window"], rw,
                        lambda f: [f["label"], f.get("metric") or "", f.get("extra", {}).get("how", ""),
                                   str(f.get("extra", {}).get("model", "n/a")), _d(f, "mase"),
                                   _d(f, "coverage95"), _d(f, "n"), _d(f, "window")]))
    b.append(("p", "Every number in this document is read from summary.json in the same folder, "
                   "which records each figure with its unit, interval, sample count, window and "
                   "source; in report.html each element names its finding (data-finding)."))
    return b


def render_report(run_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.md`` and ``report.html`` from ``summary.json`` (atomic replace each)."""
    run_dir = Path(run_dir)
    summary = read_summary(run_dir)
    blocks = build_document(summary)
    title = blocks[0][1]
    md_path, html_path = run_dir / "report.md", run_dir / "report.html"
    for path, text in ((md_path, to_markdown(blocks)),
                       (html_path, to_html(blocks, run_dir=run_dir, title=title))):
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    return md_path, html_path


def worker_pool_blocks(findings: list[dict]) -> list[tuple]:
    """Blocks for the job worker pools (findings of section ``workers``, one group per pool,
    ids ``workers.<pool>.<quantity>``); empty when there are none.  Computes nothing."""
    if not findings:
        return []
    out: list[tuple] = [("h3", "Job worker pools")]
    pools: dict[str, list[dict]] = {}
    for f in findings:
        pools.setdefault(".".join(f["id"].split(".")[:2]), []).append(f)
    for _pool, fs in pools.items():
        name = fs[0]["label"].split(": ", 1)[0]
        rows = [[f["label"].split(": ", 1)[-1], (f.get("display") or {}).get("value") or "n/a",
                 f.get("status") or "n/a", f.get("detail") or ""] for f in fs]
        model = next(((f.get("extra") or {}).get("model") for f in fs
                      if (f.get("extra") or {}).get("model", "").startswith("M/M/c")), None)
        out.append(("table", ["Quantity", "Value", "Status", "How"], rows,
                    f"{name}. " + (f"Model: {model}; checked against the observed queue by "
                                   "Little's law (its own row)." if model else ""),
                    [f["id"] for f in fs], [f["id"] for f in fs]))
    return out
