"""The handoff document, built only from summary.json (this module computes no number).

Sections, in the order of the best handoff documents: executive summary; what changed since the
previous phase; current baseline (Metric | Baseline | Current | Target | Status); capacity
runway; scaling headroom; known issues and risks; recommendations; next-phase targets; appendix
(provenance: sources, windows, sample counts, model choices, backtest accuracy).
"""

from __future__ import annotations

import os
from pathlib import Path

from capplan.analysis.findings import fmt_date, read_summary
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


def build_document(summary: dict) -> list[tuple]:
    """Blocks (see :mod:`capplan.report.render`) for a summary.json dict."""
    s = summary
    secs = s.get("sections", {})
    frm, to = s.get("from_phase") or "current phase", s.get("to_phase") or "next phase"
    win = s.get("data_window") or [None, None]
    sub = (f"{s.get('service') or 'service'} · data {fmt_date(win[0])} – {fmt_date(win[1])} (UTC) · "
           f"generated {fmt_date(s.get('generated_at'))} · run {s.get('run_id')}")
    b: list[tuple] = [("title", f"Capacity handoff: {frm} → {to}", sub)]
    if s.get("synthetic"):
        b.append(("banner", SYNTHETIC))
    if s.get("degraded"):
        b.append(("banner", "Degraded data: some sources failed during collection; see the appendix."))

    b.append(("h2", SECTION_TITLES[0]))
    stm = s.get("statements", [])
    b.append(("status_list", [(x["severity"], x["text"]) for x in stm]) if stm else
             ("p", "No findings: the run produced no runway, target or scaling results."))

    b.append(("h2", SECTION_TITLES[1]))
    ch = secs.get("changes", [])
    if s.get("previous") is None:
        b.append(("p", "No previous phase summary was given (params: previous_summary), so there "
                       "is nothing to compare with."))
    elif not ch:
        b.append(("p", f"Previous run {s['previous'].get('run_id')}: no figure present in both runs."))
    else:
        b.append(("p", f"Compared with run {s['previous'].get('run_id')} "
                       f"({fmt_date(s['previous'].get('generated_at'))})."))
        b.append(("table", ["Metric", "Previous", "Current", "Verdict", "Evidence"],
                  [[f["label"], _d(f, "previous"), _d(f, "current"), f.get("status") or "n/a",
                    f.get("detail") or ""] for f in ch], None))

    b.append(("h2", SECTION_TITLES[2]))
    tg = secs.get("targets", [])
    w = s.get("windows", {})
    if tg:
        b.append(("table", ["Metric", "Baseline", "Current", "Target", "Status", "n"],
                  [[f["label"], _d(f, "baseline"), _with_interval(f), _d(f, "target"),
                    f.get("status") or "n/a", _d(f, "n")] for f in tg],
                  f"Baseline: {fmt_date((w.get('baseline') or [None])[0])} – "
                  f"{fmt_date((w.get('baseline') or [None, None])[1])}; current: "
                  f"{fmt_date((w.get('current') or [None])[0])} – "
                  f"{fmt_date((w.get('current') or [None, None])[1])}. Intervals are 95%."))
        b.append(("ul", [f"{f['label']}: {f.get('detail')}" for f in tg if f.get("detail")]))
        for f in tg:
            fig = f.get("extra", {}).get("figure")
            if fig:
                what = ("error budget remaining over the SLO window" if f.get("extra", {}).get("kind") == "slo"
                        else "distribution in the baseline and current windows, with the target")
                b.append(("figure", fig, f"{f['label']}: {what}"))
    else:
        b.append(("p", "No targets in params (key: targets)."))

    b.append(("h2", SECTION_TITLES[3]))
    rw = secs.get("runway", [])
    if rw:
        b.append(("table", ["Resource", "Current", "Limit", "Utilisation",
                            "Projected crossing (95% interval)", "P(cross in horizon)",
                            "Model (backtest 95% coverage)"],
                  [[f["label"], _d(f, "value"), _d(f, "limit"), _d(f, "utilisation"),
                    _d(f, "crossing", f.get("status") or "n/a"), _d(f, "p_cross"),
                    f"{f.get('extra', {}).get('model', 'n/a')} ({_d(f, 'coverage95')})"]
                   for f in rw], "Current: peak of the last 7 days for peak-limited resources, "
                                 "else mean of the last 24 h. Crossing dates are UTC."))
        for f in rw:
            fig = f.get("extra", {}).get("figure")
            if fig:
                b.append(("figure", fig, f"{f['label']}: history, forecast with 80% and 95% "
                                         "intervals, limit and crossing range"))
    else:
        b.append(("p", "No capacity entries in params (key: capacity)."))

    b.append(("h2", SECTION_TITLES[4]))
    sc = secs.get("scaling", [])
    if sc:
        b.append(("table", ["Quantity", "Value (95% interval)", "n"],
                  [[f["label"], _with_interval(f), _d(f, "n")] for f in sc], None))
        figp = s.get("figures", {}).get("03-scaling:usl")
        if figp:
            b.append(("figure", figp, "Universal Scalability Law fit over the measured load points "
                                      "with its 95% prediction band"))
        for n in s.get("notes", {}).get("03-scaling", []):
            b.append(("p", f"Note: {n}"))
    else:
        b.append(("p", "; ".join(s.get("notes", {}).get("03-scaling", []))
                  or "No load test results were given."))

    b += worker_pool_blocks(secs.get("workers", []))

    b.append(("h2", SECTION_TITLES[5]))
    risks = [x for x in stm if x["severity"] not in ("meets", "not within horizon", "info", "better",
                                                     "no detectable change")]
    b.append(("ul", [x["text"] for x in risks]) if risks else ("p", "None found by the checks run."))

    b.append(("h2", SECTION_TITLES[6]))
    rec = s.get("recommendations", [])
    b.append(("ul", [f"{r['text']} (finding: {', '.join(r['refs'])})" for r in rec]) if rec else
             ("p", "No action needed by the rules applied."))

    b.append(("h2", SECTION_TITLES[7]))
    nt = s.get("next_phase_targets", [])
    b.append(("ul", [r["text"] for r in nt]) if nt else ("p", "Insufficient data to propose targets."))

    b.append(("h2", SECTION_TITLES[8]))
    data = secs.get("data", [])
    if data:
        b.append(("table", ["Source", "Series", "Samples", "Window (UTC)"],
                  [[f["label"], str(f.get("extra", {}).get("series", "n/a")), _d(f, "n"),
                    _d(f, "window")] for f in data], None))
    for nb, items in s.get("notes", {}).items():
        if nb != "03-scaling":
            b.append(("ul", [f"{nb}: {n}" for n in items]))
    if rw:
        b.append(("table", ["Resource", "Metric", "How", "Model", "Backtest MASE", "95% coverage",
                            "Samples", "Window"],
                  [[f["label"], f.get("metric") or "", f.get("extra", {}).get("how", ""),
                    f.get("extra", {}).get("model", "n/a"), _d(f, "mase"), _d(f, "coverage95"),
                    _d(f, "n"), _d(f, "window")] for f in rw], None))
    b.append(("p", "Every number in this document is read from summary.json in the same folder, "
                   "which records each figure with its unit, interval, sample count, window and "
                   "source."))
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
