"""The summary of a run (behind the 04-report step): gather findings, evaluate targets and SLOs,
compare with the previous phase and derive statements; the runner writes it as ``summary.json``
and the report layer renders it.

Everything numeric is computed here or earlier (models, rates) and lands in summary.json; the
renderer (:mod:`capplan.report.document`) only arranges what summary.json holds.

Windows: *baseline* is the first ``baseline_days`` of the stored history, *current* the last
``current_days`` (both end at the newest sample, the report's "now").  Samples within a window
are autocorrelated (5-minute readings), so intervals for gauge statistics are optimistic; ratio
intervals count events (requests, lookups) and are exact in the Wilson sense.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from capplan.errors import CapplanError, InsufficientData
from capplan.analysis.findings import (SEVERITY, Finding, fmt, fmt_date, fmt_interval, load_findings,
                              read_summary, write_summary)

__all__ = ["build_summary", "evaluate_targets", "statements", "P_CROSS_AT_RISK"]

#: A resource whose forecast stays under its limit is still "at risk" when the calibrated paths
#: cross it within the horizon with at least this probability.
P_CROSS_AT_RISK = 0.2


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")


def _target_text(t) -> str:
    if t.is_slo:
        op = "≤" if t.slo == "error_rate" else "≥"
        return f"{op} {fmt(t.bound, 'ratio')} over {t.window.days}d"
    op = "≥" if t.direction == "min" else "≤"
    return f"{op} {fmt(t.bound, t.unit)}"


def _evaluate_window(st, t, start, end):
    """(TargetStatus, window, samples or None) of a threshold target on one window.

    Raises :class:`InsufficientData` when the window holds no samples of the metric.
    """
    from capplan.analysis.evidence import RATIOS, SUMS, load_ratio, load_series
    from capplan.analysis.targets import evaluate_proportion, evaluate_samples

    if t.metric in RATIOS or t.statistic == "ratio":
        est = load_ratio(st, t.metric, start=start, end=end, source=t.source)
        return evaluate_proportion(est.successes, est.n, t), (est.start, est.end), None
    if t.metric.endswith("_per_second") or t.metric in SUMS:
        samples = load_series(st, t.metric, start=start, end=end, grain="5min",
                              source=t.source).series.to_numpy()
    else:
        raw = st.query(t.metric, source=t.source, start=start, end=end)
        if raw.empty:
            raise InsufficientData(f"no samples of '{t.metric}' between {fmt_date(start)} and "
                                   f"{fmt_date(end)}", hint="check the metric name and the windows")
        samples = raw.sort_values("timestamp")["value"].to_numpy()
    return evaluate_samples(samples, t), (start, end), samples


def evaluate_targets(st, targets, *, start, end, baseline_days: int, current_days: int,
                     plots=None) -> list[Finding]:
    """One finding per target: current status (with interval, n) and the baseline beside it.

    ``plots`` (a :class:`capplan.report.figures.FigureWriter`) draws the SLO and latency figures.
    """
    from capplan.analysis.evidence import counter_increases
    from capplan.analysis.slo import evaluate_slo_target

    out: list[Finding] = []
    cur_start = end - pd.Timedelta(days=current_days)
    base_end = start + pd.Timedelta(days=baseline_days)
    for t in targets:
        fid = f"target.{_slug(t.name)}"
        try:
            if t.is_slo:
                span = min(t.window, end - start)
                w0 = end - span
                tot = counter_increases(st, t.total_metric, start=w0, end=end, source=t.source)
                part = counter_increases(st, t.bad_metric or t.good_metric, start=w0, end=end,
                                         source=t.source)
                total = tot.total
                good = total - part.total if t.bad_metric else part.total
                s = evaluate_slo_target(t, good, total, span, as_of=end)
                d = s.to_dict()
                fig = None
                if plots is not None and s.budget_fraction and total > 0:
                    cum_total = tot.cumulative()
                    cum_bad = part.cumulative() if t.bad_metric else cum_total - part.cumulative()
                    elapsed = (cum_total.index - w0) / t.window
                    allowed = s.budget_fraction * cum_total / np.maximum(elapsed, 1e-9)
                    remaining = (1 - cum_bad / allowed.replace(0, np.nan)).dropna()
                    fig = plots.slo(f"slo_{_slug(t.name)}", remaining,
                                    title=f"{t.name}: error budget")
                out.append(Finding(
                    fid, "targets", t.name, metric=t.total_metric, value=s.value,
                    unit="ratio", interval=s.interval, n=total, window=(w0, end),
                    source=None, status=s.status, detail=s.reason,
                    extra={"kind": "slo", "slo": d, "target": t.to_dict(), "figure": fig,
                           "display": {"target": _target_text(t), "baseline": "n/a",
                                       "burn_rate": "n/a" if s.burn_rate is None else f"{s.burn_rate:.2f}",
                                       "budget_remaining": "n/a" if s.consumed_fraction is None
                                       else f"{max(0.0, 1 - s.consumed_fraction) * 100:.0f}%"}}))
                continue
            cur, window, cur_samples = _evaluate_window(st, t, cur_start, end)
            try:
                base, _bw, base_samples = _evaluate_window(st, t, start, base_end)
            except InsufficientData:
                base, base_samples = None, None
            fig = None
            if plots is not None and t.unit == "seconds" and cur_samples is not None and base_samples is not None:
                fig = plots.latency(
                    f"latency_{_slug(t.name)}", base_samples, cur_samples,
                    title=f"{t.name}: baseline vs current",
                    labels=(f"baseline ({fmt_date(start)} – {fmt_date(base_end)})",
                            f"current ({fmt_date(cur_start)} – {fmt_date(end)})"),
                    target=t.bound)
            bd = base.to_dict() if base is not None else None
            base_disp = "n/a" if base is None else fmt(base.value, base.unit)
            if base is not None and base.lo is not None:
                base_disp += f" ({fmt_interval(base.lo, base.hi, base.unit)})"
            out.append(Finding(
                fid, "targets", t.name, metric=t.metric, value=cur.value, unit=cur.unit or None,
                interval=None if cur.lo is None else (cur.lo, cur.hi), n=cur.n, window=window,
                status=cur.status, detail=cur.reason,
                extra={"kind": "threshold", "current": cur.to_dict(), "baseline": bd,
                       "baseline_window": [start, base_end], "target": t.to_dict(),
                       "critical": cur.critical, "figure": fig,
                       "display": {"target": _target_text(t), "baseline": base_disp}}))
        except (CapplanError, ValueError) as exc:  # no data, or counts the SLO math refuses
            msg = getattr(exc, "message", None) or str(exc)
            out.append(Finding(fid, "targets", t.name, metric=t.metric, status="insufficient evidence",
                               detail=msg,
                               extra={"kind": "slo" if t.is_slo else "threshold",
                                      "target": t.to_dict(),
                                      "display": {"target": _target_text(t), "baseline": "n/a"}}))
    return out


def _compare_previous(prev: dict, current_sections: dict) -> list[Finding]:
    """Deltas against a previous run's summary.json, for figures present in both."""
    from capplan.models.regression import compare_summaries

    prev_by_id = {f["id"]: f for fs in prev.get("sections", {}).values() for f in fs}
    out = []
    for section in ("targets", "runway", "scaling"):
        for f in current_sections.get(section, []):
            p = prev_by_id.get(f["id"])
            if not p or p.get("value") is None or f.get("value") is None:
                continue
            res = compare_summaries(p, f)
            d = res.to_dict()
            out.append(Finding(f"change.{f['id']}", "changes", f["label"], metric=f.get("metric"),
                               value=f["value"], unit=f.get("unit"), interval=None,
                               n=f.get("n"), window=tuple(f["window"]) if f.get("window") else None,
                               source=f.get("source"), status=d.get("verdict"),
                               detail=d.get("reason"),
                               extra={"previous": p.get("value"), "previous_run": prev.get("run_id"),
                                      "comparison": d,
                                      "display": {"previous": p.get("display", {}).get("value", "n/a"),
                                                  "current": f.get("display", {}).get("value", "n/a")}}))
    return out


def _sev(status) -> int:
    return SEVERITY.get(status, 0)


def statements(sections: dict, *, horizon_days: int | None, from_phase: str) -> list[dict]:
    """Executive-summary sentences from the findings, most severe first."""
    out = []
    for f in sections.get("changes", []):
        if f["status"] == "worse":
            d = f["display"]
            out.append({"severity": "worse", "refs": [f["id"]],
                        "text": f"Regression since {from_phase}: {f['label']} went from "
                                f"{d.get('previous')} to {d.get('current')} ({f['detail']})."})
    for f in sections.get("targets", []):
        if f["status"] in ("misses", "at risk", "insufficient evidence"):
            out.append({"severity": f["status"], "refs": [f["id"]],
                        "text": f"{f['label']} — {f['status']}: {f['detail']}."})
    for f in sections.get("runway", []):
        d, x = f["display"], f.get("extra", {})
        if f["status"] == "crosses":
            out.append({"severity": "crosses", "refs": [f["id"]],
                        "text": f"{f['label']} is projected to reach its limit of {d.get('limit')} "
                                f"on {d.get('crossing')}; probability {d.get('p_cross')} within "
                                f"{x.get('horizon_days')} days (now {d.get('utilisation')} of the limit)."})
        elif f["status"] == "already over limit":
            out.append({"severity": "misses", "refs": [f["id"]],
                        "text": f"{f['label']} is already over its limit of {d.get('limit')}."})
        elif f["status"] == "insufficient data":
            out.append({"severity": "insufficient data", "refs": [f["id"]],
                        "text": f"{f['label']}: insufficient data for a runway ({f.get('detail')})."})
    for f in sections.get("targets", []):
        if f["status"] == "meets":
            out.append({"severity": "meets", "refs": [f["id"]],
                        "text": f"{f['label']} — meets: {f['detail']}."})
    for f in sections.get("runway", []):
        d = f["display"]
        if f["status"] == "not within horizon":
            # the central forecast stays below the limit, but the calibrated paths may not
            p = f.get("extra", {}).get("p_cross_within_horizon") or 0.0
            out.append({"severity": "at risk" if p >= P_CROSS_AT_RISK else "not within horizon",
                        "refs": [f["id"]],
                        "text": f"{f['label']}: the forecast does not cross {d.get('limit')} before "
                                f"{d.get('horizon_end')} (now {d.get('utilisation')} of the limit; "
                                f"probability of crossing within the horizon {d.get('p_cross')})."})
    sc = {f["id"]: f for f in sections.get("scaling", [])}
    if "scaling.x_peak" in sc:
        xp, npk = sc["scaling.x_peak"]["display"], sc["scaling.n_peak"]["display"]
        text = (f"Load test: throughput peaks at {xp['value']} (95% interval {xp.get('interval')}) "
                f"at about {npk['value']} concurrent clients")
        inst = sc.get("scaling.instances_needed")
        if inst and inst.get("value") is not None:
            text += f"; {inst['label'].lower()}: {inst['display']['value']}"
        out.append({"severity": "info", "refs": [k for k in ("scaling.x_peak", "scaling.n_peak",
                                                              "scaling.instances_needed") if k in sc],
                    "text": text + "."})
    out.sort(key=lambda s: -_sev(s["severity"]))
    return out


def _recommendations(sections: dict) -> list[dict]:
    advice = {
        "redis_used_memory_bytes": "raise maxmemory (and the container limit), shard the cache, "
                                   "or shorten TTLs; check maxmemory-policy so writes do not fail",
        "pg_client_backends_total": "put a pooler (PgBouncer, transaction mode) in front of "
                                    "PostgreSQL or lower application pool sizes before raising "
                                    "max_connections",
        "http_requests_per_second": "add API instances (see Scaling headroom) before the peak "
                                    "request rate reaches the tested capacity",
        "pg_database_size_bytes": "grow the volume or archive old data; plan the resize before "
                                  "the lower end of the crossing interval",
    }
    out = []
    for f in sections.get("runway", []):
        x = f.get("extra", {})
        if f["status"] in ("crosses", "already over limit"):
            what = advice.get(f.get("metric"), "raise the limit or reduce usage")
            out.append({"text": f"{f['label']}: act before {fmt_date(x.get('crossing_lo') or x.get('crossing'))}"
                                f" — {what}.", "refs": [f["id"]]})
        p = x.get("p_cross_within_horizon") or 0.0
        if f["status"] == "not within horizon" and p >= P_CROSS_AT_RISK:
            out.append({"text": f"{f['label']}: {f['display'].get('p_cross')} chance of reaching "
                                f"{f['display'].get('limit')} before {f['display'].get('horizon_end')}"
                                " although the forecast stays below it; plan the headroom now.",
                        "refs": [f["id"]]})
        bt = x.get("backtest") or {}
        if bt.get("coverage95") is not None and bt["coverage95"] < 0.9:
            out.append({"text": f"{f['label']}: read the runway with caution; its 95% interval "
                                f"covered {f['display'].get('coverage95')} of backtest points.",
                        "refs": [f["id"]]})
    for f in sections.get("targets", []):
        if f["status"] == "misses":
            out.append({"text": f"{f['label']}: fix before the next phase ({f['detail']}).",
                        "refs": [f["id"]]})
        elif f["status"] == "at risk":
            out.append({"text": f"{f['label']}: in the warning zone; watch it and add headroom.",
                        "refs": [f["id"]]})
        elif f["status"] == "insufficient evidence":
            out.append({"text": f"{f['label']}: collect more data before claiming the target "
                                f"(n = {f['display'].get('n', 'n/a')}).", "refs": [f["id"]]})
    for f in sections.get("changes", []):
        if f["status"] == "worse":
            out.append({"text": f"{f['label']}: investigate the regression since the previous "
                                "phase before raising load.", "refs": [f["id"]]})
    return out


def _next_targets(sections: dict) -> list[dict]:
    out = []
    for f in sections.get("runway", []):
        d = f["display"]
        if f.get("extra", {}).get("hi95_max_in_horizon") is not None:
            out.append({"text": f"{f['label']}: provision at least {d.get('hi95_max_in_horizon')} "
                                f"(highest upper 95% forecast up to {d.get('horizon_end')}); limit "
                                f"today {d.get('limit')}.", "refs": [f["id"]]})
    sc = {f["id"]: f for f in sections.get("scaling", [])}
    inst = sc.get("scaling.instances_needed")
    if inst and inst.get("value") is not None:
        tl = sc.get("scaling.target_load", {}).get("display", {}).get("value", "n/a")
        out.append({"text": f"{inst['label']} ({tl}): {inst['display']['value']} instance(s) "
                            "at the latency target.", "refs": [inst["id"]]})
    return out


def build_summary(st, gathered: dict, *, run_id: str, service: str = "", from_phase: str = "",
                  to_phase: str = "", targets: list | None = None, previous_summary: str = "",
                  baseline_days: int = 7, current_days: int = 7, params_name: str = "",
                  plots=None) -> dict:
    """The summary.json document: the notebooks' findings (``gathered``), the targets evaluated on
    the open store ``st``, the comparison with a previous summary, and the derived statements."""
    from capplan.analysis.evidence import data_end
    from capplan.analysis.targets import parse_targets

    meta01 = gathered.get("01-collect", {}).get("meta", {})
    synthetic = bool(meta01.get("synthetic"))
    sections: dict[str, list[dict]] = {"data": [], "runway": [], "scaling": [], "targets": [],
                                       "changes": []}
    notes: dict[str, list[str]] = {}
    figs: dict[str, str] = {}
    for nb, payload in gathered.items():
        for f in payload.get("findings", []):
            sections.setdefault(f["section"], []).append(f)
        if payload.get("notes"):
            notes[nb] = payload["notes"]
        figs.update({f"{nb}:{k}": v for k, v in payload.get("figures", {}).items()})
    tspecs = parse_targets(targets or [], path="params")
    end = data_end(st)
    series = st.series()
    start = None if series.empty else pd.Timestamp(series["first"].min())
    if end is not None:
        tf = evaluate_targets(st, tspecs, start=start, end=end, baseline_days=baseline_days,
                              current_days=current_days, plots=plots)
        sections["targets"] = [f.to_dict() for f in tf]
    prev_info = None
    if previous_summary:
        prev = read_summary(previous_summary)
        prev_info = {"path": Path(previous_summary).name, "run_id": prev.get("run_id"),
                     "generated_at": prev.get("generated_at"), "to_phase": prev.get("to_phase")}
        sections["changes"] = [f.to_dict() for f in _compare_previous(prev, sections)]
    horizon = (gathered.get("02-growth", {}).get("meta", {}) or {}).get("horizon_days")
    return {
        "name": params_name, "run_id": run_id,
        "service": service, "from_phase": from_phase, "to_phase": to_phase,
        "synthetic": synthetic, "degraded": bool(meta01.get("degraded")),
        "data_window": [start, end], "windows": {
            "baseline": [start, None if start is None else start + pd.Timedelta(days=baseline_days)],
            "current": [None if end is None else end - pd.Timedelta(days=current_days), end]},
        "sections": sections,
        "statements": statements(sections, horizon_days=horizon, from_phase=from_phase or "the previous phase"),
        "recommendations": _recommendations(sections),
        "next_phase_targets": _next_targets(sections),
        "notes": notes, "figures": figs, "previous": prev_info,
        "provenance": {nb: payload.get("meta", {}) for nb, payload in gathered.items()},
    }
