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

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from capplan.errors import CapplanError, InsufficientData
from capplan.analysis.findings import (slug, P_CROSS_AT_RISK, SEVERITY, Finding, fmt, fmt_date,
                                       fmt_interval, fmt_time, fmt_window, read_summary, runway_status)

__all__ = ["build_summary", "evaluate_targets", "statements", "P_CROSS_AT_RISK"]




def _target_text(t) -> str:
    if t.is_slo:
        op = "≤" if t.slo == "error_rate" else "≥"
        return f"{op} {fmt(t.bound, 'ratio')} over {t.window.days}d"
    op = "≥" if t.direction == "min" else "≤"
    return f"{op} {fmt(t.bound, t.unit)}"


def _evaluate_window(st, t, start, end):
    """(TargetStatus, window seen, samples or None, newest sample) of a threshold target on one
    window (end sample included).  Intervals come from between-block variation
    (:mod:`capplan.models.blocks`); peaks are raw readings.

    Raises :class:`InsufficientData` when the window holds no samples of the metric.
    """
    from capplan.analysis.evidence import (RATIOS, block_labels, choose_block, ratio_blocks,
                                           raw_series)
    from capplan.analysis.targets import evaluate_blocks, evaluate_peak, evaluate_reading
    from capplan.models.blocks import MIN_BLOCKS, block_mean, block_quantile, block_ratio

    block = choose_block(start, end, MIN_BLOCKS)
    if t.metric in RATIOS:          # a stored *_ratio gauge falls through to its readings
        succ, tot, meta = ratio_blocks(st, t.metric, start=start, end=end, source=t.source,
                                       block=block)
        be = block_ratio(succ, tot, block=block)
        res = evaluate_blocks(be, t, estimand="ratio of summed counter increases",
                              samples=meta.n_samples, requests=float(tot.sum()))
        return res, (meta.start, meta.end), None, meta.end
    hist = _histogram_of(st, t) if t.quantile is not None else None
    if hist is not None:            # a percentile of stored buckets (issue 14 item 2)
        from capplan.analysis.latency import block_histogram_quantile, block_histograms
        from capplan.analysis.targets import evaluate_histogram_quantile

        bh = block_histograms(st, hist, start=start, end=end, source=t.source, block=block)
        be, whole = block_histogram_quantile(bh, t.quantile)
        res = evaluate_histogram_quantile(be, whole, t, metric=hist, samples=bh.samples,
                                          observations=bh.total,
                                          top_bound=max(b for b in bh.bounds if b < np.inf))
        return res, (bh.first, bh.last), None, bh.last
    raw = raw_series(st, t.metric, start=start, end=end, source=t.source)
    x = raw.series
    window = (raw.oldest, raw.newest)
    if t.statistic in ("max", "min"):
        return (evaluate_peak(x, t, sampling_s=raw.sampling_s, min_blocks=MIN_BLOCKS, end=end),
                window, x.to_numpy(), raw.newest)
    if t.statistic == "last":
        return (evaluate_reading(x, t, sampling_s=raw.sampling_s), window, x.to_numpy(),
                raw.newest)
    labels = block_labels(x.index, end, block)
    q = t.quantile
    if q is not None:
        be = block_quantile(x.to_numpy(), labels, q, block=block)
        estimand = f"{t.statistic} of the readings"
    else:
        be = block_mean(x.to_numpy(), labels, block=block)
        estimand = "mean of the readings"
    return (evaluate_blocks(be, t, estimand=estimand, samples=int(x.size)), window, x.to_numpy(),
            raw.newest)


@dataclass(frozen=True)
class Freshness:
    """What "now" is for the report, how old data may be, and which sources failed this run
    (from the collect step's meta: ``as_of``, ``stale_after_s``, ``failed_sources``)."""

    as_of: pd.Timestamp | None
    stale_after_s: float | None
    failed: dict

    @classmethod
    def from_meta(cls, meta: dict, end) -> "Freshness":
        as_of = meta.get("as_of")
        failed = {f["source"]: f for f in meta.get("failed_sources", []) or []
                  if not f.get("produced")}
        return cls(pd.Timestamp(as_of) if as_of else end, meta.get("stale_after_s"), failed)

    def check(self, newest, sources: str | None, metric: str | None) -> tuple[dict, str | None]:
        """(freshness record, stale reason or None) of a finding whose newest sample is
        ``newest`` and whose data came from ``sources`` (comma-separated)."""
        age = None if newest is None or self.as_of is None else \
            max(0.0, (self.as_of - pd.Timestamp(newest)).total_seconds())
        rec = {"newest_sample": newest, "age_s": age, "as_of": self.as_of,
               "stale_after_s": self.stale_after_s,
               "age": "n/a" if age is None else fmt_age(age)}
        names = [x for x in (sources or "").split(",") if x]
        hit = [self.failed[n] for n in names if n in self.failed]
        if not names and metric:
            hit = [f for src, f in self.failed.items() if _family(src) == _family_of_metric(metric)]
        if hit:
            f = hit[0]
            return rec, (f"stale: no data since {fmt_time(newest)}: source {f['source']} failed "
                         f"during this run ({f.get('error')})")
        if age is not None and self.stale_after_s and age > self.stale_after_s:
            return rec, (f"stale: no data since {fmt_time(newest)} ({fmt_age(age)} old; data older "
                         f"than {fmt_age(self.stale_after_s)} is stale)")
        return rec, None


def fmt_age(seconds: float) -> str:
    from capplan.core.numfmt import fmt_timedelta

    return fmt_timedelta(pd.Timedelta(seconds=float(seconds)))


_FAMILY = {"redis": "redis", "postgres": "postgres", "pg": "postgres", "http": "http",
           "api": "http"}


def _family(source: str) -> str:
    return _FAMILY.get(source.split(":", 1)[0], source.split(":", 1)[0])


def _family_of_metric(metric: str) -> str:
    return _FAMILY.get(metric.split("_", 1)[0], metric.split("_", 1)[0])


def _histogram_of(st, t) -> str | None:
    from capplan.analysis.latency import histogram_metric

    return histogram_metric(st, t.metric)


def _histogram_slo(st, t, fid: str, w0, end, span, fresh) -> Finding:
    """A latency SLO read from histogram buckets: good = observations <= threshold per block
    (exact on a bucket bound, else interpolated and said so)."""
    from capplan.analysis.evidence import choose_block
    from capplan.analysis.latency import block_histograms, block_slo_counts, histogram_metric
    from capplan.analysis.slo import evaluate_slo_target
    from capplan.analysis.targets import block_spread
    from capplan.models.blocks import MIN_BLOCKS, block_ratio, blocks_text

    hist = histogram_metric(st, t.metric) or (t.metric if t.metric.endswith("_bucket")
                                               else f"{t.metric}_bucket")
    block = choose_block(w0, end, MIN_BLOCKS)
    bh = block_histograms(st, hist, start=w0, end=end, source=t.source, block=block)
    good_b, tot_b, whole = block_slo_counts(bh, t.threshold)
    be = block_ratio(good_b, tot_b, block=block)
    s = evaluate_slo_target(t, whole.good, whole.n, max(span, pd.Timedelta(seconds=1)),
                            as_of=end, blocks=be)
    n_text = (f"{blocks_text(be.n_blocks, be.block)}, {bh.samples:,} samples, "
              f"{whole.n:,.0f} requests")
    rec, why = fresh.check(bh.last, ",".join(bh.sources), hist)
    f = Finding(fid, "targets", t.name, metric=hist, value=s.value, unit="ratio",
                interval=None if s.interval[0] is None else s.interval, n=be.n_blocks,
                window=(bh.first, bh.last), source=",".join(bh.sources), status=s.status,
                detail=f"{s.reason}; threshold {fmt(t.threshold, 'seconds')}: {whole.note}",
                extra={"kind": "slo", "slo": s.to_dict(), "target": t.to_dict(),
                       "blocks": be.to_dict(), "freshness": rec, "histogram": whole.to_dict(),
                       "evidence": {"estimand": f"observations <= {t.threshold:g} s / all "
                                                "observations over the SLO window (histogram "
                                                "buckets)", "blocks": be.n_blocks,
                                    "block": be.block, "samples": bh.samples,
                                    "requests": whole.n, "exact": whole.exact,
                                    "n_text": n_text},
                       "display": {"target": _target_text(t), "baseline": "n/a", "n": n_text,
                                   "age": rec["age"], "spread": block_spread(be, t),
                                   "exact": "exact (threshold is a bucket bound)" if whole.exact
                                   else "approximate (threshold between bucket bounds)"}})
    return _stale(f, why) if why else f


def _slo_blocks(tot, part, bad_metric: bool, start, end):
    from capplan.analysis.evidence import choose_block
    from capplan.models.blocks import MIN_BLOCKS, block_ratio

    from capplan.analysis.evidence import block_labels

    block = choose_block(start, end, MIN_BLOCKS)
    t = tot.values.groupby(block_labels(tot.values.index, end, block)).sum()
    p = part.values.groupby(block_labels(part.values.index, end, block)).sum() \
        .reindex(t.index, fill_value=0)
    good = (t - p) if bad_metric else p
    return block_ratio(good.to_numpy(float), t.to_numpy(float), block=block)


def _stale(f: Finding, reason: str) -> Finding:
    """The same finding, status "stale" (never "meets"), the reason first."""
    from dataclasses import replace

    return replace(f, status="stale", detail=f"{reason}; last evidence: {f.detail}" if f.detail
                   else reason)


def evaluate_targets(st, targets, *, start, end, baseline_days: int, current_days: int,
                     plots=None, freshness: Freshness | None = None) -> list[Finding]:
    """One finding per target: current status (with interval, n) and the baseline beside it.

    Baseline and current never overlap (:func:`capplan.analysis.evidence.windows_for`).
    ``plots`` (a :class:`capplan.report.figures.FigureWriter`) draws the SLO and latency figures;
    ``freshness`` marks findings of failed or silent sources "stale".
    """
    from capplan.analysis.evidence import counter_increases, inclusive, windows_for
    from capplan.analysis.slo import evaluate_slo_target

    fresh = freshness or Freshness(end, None, {})
    out: list[Finding] = []
    wins = windows_for(start, end, baseline_days=baseline_days, current_days=current_days)
    cur_start, _ = wins.current
    for t in targets:
        fid = f"target.{slug(t.name)}"
        try:
            if t.is_slo and t.total_metric is None:     # a latency SLO from histogram buckets
                span = min(t.window, end - start)
                out.append(_histogram_slo(st, t, fid, end - span, end, span, fresh))
                continue
            if t.is_slo:
                span = min(t.window, end - start)
                w0 = end - span
                tot = counter_increases(st, t.total_metric, start=w0, end=inclusive(end),
                                        source=t.source)
                part = counter_increases(st, t.bad_metric or t.good_metric, start=w0,
                                         end=inclusive(end), source=t.source)
                total = tot.total
                good = total - part.total if t.bad_metric else part.total
                be = _slo_blocks(tot, part, bool(t.bad_metric), w0, end)
                s = evaluate_slo_target(t, good, total, max(span, pd.Timedelta(seconds=1)),
                                        as_of=end, blocks=be)
                d = s.to_dict()
                fig = None
                if plots is not None and s.budget_fraction and total > 0:
                    cum_total = tot.cumulative()
                    cum_bad = part.cumulative() if t.bad_metric else cum_total - part.cumulative()
                    elapsed = (cum_total.index - w0) / t.window
                    allowed = s.budget_fraction * cum_total / np.maximum(elapsed, 1e-9)
                    remaining = (1 - cum_bad / allowed.replace(0, np.nan)).dropna()
                    fig = plots.slo(f"slo_{slug(t.name)}", remaining,
                                    title=f"{t.name}: error budget")
                from capplan.models.blocks import blocks_text

                n_text = (f"{blocks_text(be.n_blocks, be.block)}, {tot.n_samples:,} samples, "
                          f"{total:,.0f} requests")
                from capplan.analysis.targets import block_spread

                spread = block_spread(be, t) if t.slo != "error_rate" else None
                rec, why = fresh.check(tot.end, ",".join(tot.sources), t.total_metric)
                f = Finding(
                    fid, "targets", t.name, metric=t.total_metric, value=s.value,
                    unit="ratio", interval=None if s.interval[0] is None else s.interval,
                    n=be.n_blocks, window=(tot.start, tot.end), source=",".join(tot.sources),
                    status=s.status, detail=s.reason,
                    extra={"kind": "slo", "slo": d, "target": t.to_dict(), "figure": fig,
                           "blocks": be.to_dict(), "freshness": rec,
                           "evidence": {"estimand": "good events / all events over the SLO "
                                                    "window", "blocks": be.n_blocks,
                                        "block": be.block, "samples": tot.n_samples,
                                        "requests": total, "n_text": n_text},
                           "display": {"target": _target_text(t), "baseline": "n/a",
                                       "n": n_text, "age": rec["age"], "spread": spread,
                                       "burn_rate": "n/a" if s.burn_rate is None else f"{s.burn_rate:.2f}",
                                       "budget_remaining": "n/a" if s.consumed_fraction is None
                                       else f"{max(0.0, 1 - s.consumed_fraction) * 100:.0f}%"}})
                out.append(_stale(f, why) if why else f)
                continue
            cur, window, cur_samples, newest = _evaluate_window(st, t, cur_start, end)
            base = base_samples = None
            base_why = wins.why
            if wins.baseline is not None:
                try:
                    base, _bw, base_samples, _n = _evaluate_window(st, t, *wins.baseline)
                except InsufficientData as exc:
                    base_why = exc.message
            fig = None
            if plots is not None and t.unit == "seconds" and cur_samples is not None and base_samples is not None:
                fig = plots.latency(
                    f"latency_{slug(t.name)}", base_samples, cur_samples,
                    title=f"{t.name}: baseline vs current",
                    labels=(f"baseline ({fmt_window(*wins.baseline)})",
                            f"current ({fmt_window(*window)})"),
                    target=t.bound)
            bd = base.to_dict() if base is not None else None
            base_disp = (base_why or "n/a") if base is None else fmt(base.value, base.unit)
            if base is not None and base.lo is not None:
                base_disp += f" ({fmt_interval(base.lo, base.hi, base.unit)})"
            ev = cur.evidence or {}
            rec, why = fresh.check(newest, None if t.source is None else t.source, t.metric)
            if not why and t.source is None:
                rec, why = fresh.check(newest, _sources_of(st, t.metric, cur_start, end), t.metric)
            disp = {"target": _target_text(t), "baseline": base_disp, "age": rec["age"]}
            if ev.get("n_text"):
                disp["n"] = ev["n_text"]
            if ev.get("spread"):
                disp["spread"] = ev["spread"]
            if ev.get("sampling"):
                disp["sampling"] = ev["sampling"]
            f = Finding(
                fid, "targets", t.name, metric=t.metric, value=cur.value, unit=cur.unit or None,
                interval=None if cur.lo is None else (cur.lo, cur.hi), n=cur.n, window=window,
                source=t.source, status=cur.status, detail=cur.reason,
                extra={"kind": "threshold", "current": cur.to_dict(), "baseline": bd,
                       "baseline_window": list(wins.baseline) if wins.baseline else None,
                       "baseline_why": base_why, "target": t.to_dict(),
                       "critical": cur.critical, "figure": fig, "freshness": rec,
                       "evidence": ev, "display": disp})
            out.append(_stale(f, why) if why else f)
        except (CapplanError, ValueError) as exc:  # no data, or counts the SLO math refuses
            msg = getattr(exc, "message", None) or str(exc)
            f = Finding(fid, "targets", t.name, metric=t.metric, status="insufficient evidence",
                        detail=msg,
                        extra={"kind": "slo" if t.is_slo else "threshold",
                               "target": t.to_dict(),
                               "display": {"target": _target_text(t), "baseline": "n/a"}})
            _rec, why = fresh.check(None, t.source, t.metric or t.total_metric)
            out.append(_stale(f, why) if why else f)
    return out


def _sources_of(st, metric: str, start, end) -> str | None:
    from capplan.analysis.evidence import RATIOS, SUMS

    name = RATIOS[metric][0] if metric in RATIOS else SUMS.get(metric, metric)
    if name.endswith("_per_second"):
        name = name[: -len("_per_second")] + "_total"
    ser = st.series()
    if ser.empty:
        return None
    return ",".join(sorted(set(ser.loc[ser["metric"] == name, "source"]))) or None


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


#: worker-pool statuses the executive summary and the recommendations name (issue 14)
_WORKER_ALERTS = ("misses", "crosses", "at risk")


def _pool_of(fid: str) -> str:
    """``workers.<pool>`` of a worker finding id ``workers.<pool>.<quantity>``."""
    return ".".join(fid.split(".")[:2])


def _sev(status) -> int:
    return SEVERITY.get(status, 0)


def statements(sections: dict, *, horizon_days: int | None, from_phase: str) -> list[dict]:
    """Executive-summary sentences from the findings, most severe first.  Each names in
    ``refs`` the findings whose values and display strings it quotes (and nothing else)."""
    out = []
    for f in sections.get("data", []):
        if f.get("status") == "failed":
            hint = (f.get("extra") or {}).get("hint")
            stale = [g["id"] for g in sections.get("targets", []) if g.get("status") == "stale"]
            out.append({"severity": "failed", "refs": [f["id"]],
                        "text": f"Source {f['label']} failed during this run: {f.get('detail')}"
                                + (f". How to fix: {hint}" if hint else "")
                                + (f". {len(stale)} finding(s) are stale" if stale else "")
                                + ".", "stale_refs": stale})
        elif f["id"].startswith("failure."):    # some reads failed, the source still produced data
            x = f.get("extra") or {}
            out.append({"severity": "info", "refs": [f["id"]],
                        "text": f"Source {f['label']}: {x.get('failed')} read(s) failed during "
                                f"this run ({x.get('ok')} succeeded): {f.get('detail')}"
                                + (f". How to fix: {x.get('hint')}" if x.get("hint") else "")
                                + "; its data has gaps."})
    for f in sections.get("changes", []):
        if f["status"] == "regressed":
            out.append({"severity": "worse", "refs": [f["id"]],
                        "text": f"Load-test regression: {f['label']}: {f['detail']}."})
        if f["status"] == "worse":
            d = f["display"]
            out.append({"severity": "worse", "refs": [f["id"]],
                        "text": f"Regression since {from_phase}: {f['label']} went from "
                                f"{d.get('previous')} to {d.get('current')} ({f['detail']})."})
    for f in sections.get("targets", []):
        if f["status"] in ("misses", "stale", "at risk", "insufficient evidence", "meets"):
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
            out.append({"severity": "already over limit", "refs": [f["id"]],
                        "text": f"{f['label']} is already over its limit of {d.get('limit')}."})
        elif f["status"] in ("insufficient data", "insufficient evidence"):
            out.append({"severity": f["status"], "refs": [f["id"]],
                        "text": f"{f['label']}: insufficient data for a runway ({f.get('detail')})."})
        elif f["status"] in ("not within horizon", "at risk"):
            # the central forecast stays below the limit, but the calibrated paths may not
            out.append({"severity": f["status"], "refs": [f["id"]],
                        "text": f"{f['label']}: the forecast does not cross {d.get('limit')} before "
                                f"{d.get('horizon_end')} (now {d.get('utilisation')} of the limit; "
                                f"probability of crossing within the horizon {d.get('p_cross')})."})
    for f in sections.get("workers", []):
        if f.get("status") in _WORKER_ALERTS:
            val = (f.get("display") or {}).get("value")
            detail = f.get("detail") or ""
            model = (f.get("extra") or {}).get("model")
            if model and f["id"].endswith(".runway"):   # the model's internals: appendix only
                detail = detail.replace(f"forecast ({model}) ", "forecast ")
            out.append({"severity": f["status"], "refs": [f["id"]],
                        "text": f"{f['label']} — {f['status']}"
                                + (f" ({val})" if val else "")
                                + (f": {detail}" if detail else "") + "."})
    sc = {f["id"]: f for f in sections.get("scaling", [])}
    if "scaling.x_peak" in sc:
        xp, npk = sc["scaling.x_peak"], sc["scaling.n_peak"]
        refs = ["scaling.x_peak", "scaling.n_peak"]
        wl = (sc.get("scaling.workload") or {})
        text = "Load test"
        if wl:
            text += f" ({wl.get('detail')})"
            refs.append("scaling.workload")
        text += f": throughput peaks at {_point_or_range(xp)} at about {_point_or_range(npk)} " \
                "concurrent clients"
        for key in ("scaling.n_at_latency", "scaling.instances_needed"):
            g = sc.get(key)
            if g and g.get("value") is not None:
                text += f"; {g['label'][0].lower() + g['label'][1:]}: {_point_or_range(g)}"
                refs.append(key)
        out.append({"severity": "info", "refs": refs, "text": text + "."})
    elif "scaling.fit" in sc:
        f = sc["scaling.fit"]
        out.append({"severity": f.get("status") or "insufficient data", "refs": [f["id"]],
                    "text": f"Load test: no scalability fit ({f.get('detail')}); its points are "
                            "listed under Scaling headroom."})
    out.sort(key=lambda s: -_sev(s["severity"]))
    return out


def _point_or_range(f: dict) -> str:
    """A scaling figure for the executive summary: an extrapolated one (beyond 2× the largest
    tested level) is named as such, without a point estimate."""
    d = f.get("display", {})
    if (f.get("extra") or {}).get("extrapolated"):
        return f"{d.get('extrapolated', 'n/a')}"
    iv = d.get("interval")
    return f"{d.get('value')} (95% interval {iv})" if iv else str(d.get("value"))


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
        if f["status"] == "at risk":
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
        elif f["status"] == "stale":
            out.append({"text": f"{f['label']}: no status while its data is stale; fix the source "
                                "and run again.", "refs": [f["id"]]})
    wk = {f["id"]: f for f in sections.get("workers", [])}
    for f in sections.get("workers", []):
        st = f.get("status")
        if st not in _WORKER_ALERTS:
            continue
        x = f.get("extra") or {}
        if f["id"].endswith(".littles_law"):
            out.append({"text": f"{f['label']}: the observed queue does not match M/M/c; size "
                                "the pool from the observed waits, not the model's.",
                        "refs": [f["id"]]})
        elif st == "crosses":
            out.append({"text": f"{f['label']}: add workers before "
                                f"{fmt_date(x.get('crossing_lo') or x.get('crossing'))}, when "
                                "the arrival rate is projected to pass what the pool serves "
                                "within its wait target.", "refs": [f["id"]]})
        elif st == "at risk":
            out.append({"text": f"{f['label']}: the arrival rate may pass what the pool serves "
                                "within its wait target before the horizon; plan the workers "
                                "now.", "refs": [f["id"]]})
        else:
            need = wk.get(f"{_pool_of(f['id'])}.workers_needed_peak")
            if need is not None and need.get("value") is not None and need["id"] != f["id"]:
                out.append({"text": f"{f['label']} misses: raise the pool to at least "
                                    f"{(need.get('display') or {}).get('value')} workers "
                                    f"({need['label']}).",
                            "refs": [f["id"], need["id"]]})
            elif need is not None and need.get("value") is not None:
                out.append({"text": f"{f['label']}: {(need.get('display') or {}).get('value')}"
                                    " — raise the pool to it.",
                            "refs": [f["id"]]})
            else:
                out.append({"text": f"{f['label']} misses: add workers or shorten the job "
                                    f"time ({f.get('detail')}).", "refs": [f["id"]]})
    for f in sections.get("changes", []):
        if f["status"] in ("worse", "regressed"):
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
                            "at the latency target.",
                    "refs": [inst["id"]] + (["scaling.target_load"] if "scaling.target_load" in sc
                                            else [])})
    return out


def build_summary(st, gathered: dict, *, run_id: str, service: str = "", from_phase: str = "",
                  to_phase: str = "", targets: list | None = None, previous_summary: str = "",
                  baseline_days: int = 7, current_days: int = 7, params_name: str = "",
                  plots=None, loadtest_changes: list[dict] | None = None,
                  loadtest_comparison: dict | None = None) -> dict:
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
    from capplan.analysis.evidence import windows_for

    fresh = Freshness.from_meta(meta01, end)
    wins = None if end is None else windows_for(start, end, baseline_days=baseline_days,
                                                current_days=current_days)
    if end is not None:
        tf = evaluate_targets(st, tspecs, start=start, end=end, baseline_days=baseline_days,
                              current_days=current_days, plots=plots, freshness=fresh)
        sections["targets"] = [f.to_dict() for f in tf]
    elif tspecs:
        sections["targets"] = [f.to_dict() for f in evaluate_targets(
            st, tspecs, start=pd.Timestamp(0, tz="UTC"), end=pd.Timestamp(0, tz="UTC"),
            baseline_days=baseline_days, current_days=current_days, freshness=fresh)]
    for f in sections.get("runway", []):      # one status vocabulary (findings.STATUS_WORDS)
        f["status"] = runway_status(f.get("status"), (f.get("extra") or {}).get("p_cross_within_horizon"))
    for f in sections.get("workers", []):     # the pools' arrival-rate runways likewise
        if f["id"].endswith(".runway"):
            f["status"] = runway_status(f.get("status"),
                                        (f.get("extra") or {}).get("p_cross_within_horizon"))
    prev_info = None
    if previous_summary:
        prev = read_summary(previous_summary)
        prev_info = {"path": Path(previous_summary).name, "run_id": prev.get("run_id"),
                     "generated_at": prev.get("generated_at"), "to_phase": prev.get("to_phase")}
        sections["changes"] = [f.to_dict() for f in _compare_previous(prev, sections)]
    sections["changes"] += list(loadtest_changes or [])
    horizon = (gathered.get("02-growth", {}).get("meta", {}) or {}).get("horizon_days")
    return {
        "name": params_name, "run_id": run_id,
        "service": service, "from_phase": from_phase, "to_phase": to_phase,
        "synthetic": synthetic, "degraded": bool(meta01.get("degraded")),
        "data_window": [start, end], "windows": {
            "baseline": None if wins is None or wins.baseline is None else list(wins.baseline),
            "baseline_why": None if wins is None else wins.why,
            "current": None if wins is None else list(wins.current)},
        "failed_sources": list(meta01.get("failed_sources", []) or []),
        "sections": sections,
        "statements": statements(sections, horizon_days=horizon,
                                 from_phase=from_phase or "the previous phase"),
        "recommendations": _recommendations(sections),
        "next_phase_targets": _next_targets(sections),
        "notes": notes, "figures": figs, "previous": prev_info,
        "loadtest_comparison": loadtest_comparison,
        "provenance": {nb: payload.get("meta", {}) for nb, payload in gathered.items()},
    }
