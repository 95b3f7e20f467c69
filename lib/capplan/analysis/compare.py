"""Baseline vs candidate: load-test runs, two summary.json files, or two windows of one store.

The question a CI gate asks: did this change make the service slower?  For each metric
(:data:`METRICS`: throughput, mean, p50, p95, p99 latency, error rate) a :class:`Comparison`
holds the baseline, the candidate, the change with its interval and a verdict from
:data:`VERDICTS`: ``regressed``, ``improved``, ``no change`` or ``insufficient evidence``.

Evidence, finest first (:mod:`capplan.loadtest.samples` reads it):

* per-request records (pgbench ``-l``, k6 NDJSON/CSV) and per-interval totals (pgbench
  aggregate logs and ``-P`` progress, Locust history): time buckets resampled in blocks
  (:mod:`capplan.models.regression_buckets`), never request by request, because latencies
  are autocorrelated in time;
* summaries only (wrk, redis-benchmark, pgbench stdout, k6 end-of-test, Locust ``_stats.csv``):
  one number per statistic and run, so an interval needs several runs a side (Welch t on the
  per-run values); one run a side is "insufficient evidence", said as such.

**Runs, not requests, are the unit of evidence.**  Measured on this project's 2-core host
(tests/test_compare.py): two 1 s pgbench runs of one configuration differ by up to 2× in
median latency and throughput (the scheduler places the client and the backends differently
from run to run), while each run is steady inside.  A within-run interval cannot see that, so
with one run a side (``min_runs=2``, the default) the interval is shown but the verdict is
"insufficient evidence"; give a side several runs (a directory of runs, or a glob) and they
are resampled run first, blocks second.  ``min_runs=1`` accepts single runs for quiet,
dedicated runners — measure the false-alarm rate there first.

Multiple metrics: the intervals are simultaneous at ``conf`` (Bonferroni over the metrics
judged; each interval's own level is in its ``conf``).
"""

from __future__ import annotations

import glob
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from capplan.errors import ConfigError, InsufficientData, ParseError
from capplan.loadtest.samples import RunRecords, read_run_records
from capplan.models import regression as rg
from capplan.models.regression_buckets import (DEFAULT_MIN_EFFECT, METRICS, TimeBuckets,
                                               bucketize, compare_bucket_means,
                                               compare_buckets, compare_run_values, point_value,
                                               pool_runs)

__all__ = ["METRICS", "VERDICTS", "DEFAULT_MIN_EFFECT", "MetricResult", "Comparison",
           "compare", "compare_loadtests", "compare_runs", "compare_summary_files", "compare_settings",
           "compare_from_params",
           "compare_store_windows", "expand_runs"]

REGRESSED, IMPROVED, NO_CHANGE, INSUFFICIENT = ("regressed", "improved", "no change",
                                                "insufficient evidence")
CHANGED = "changed"
#: Every verdict; ``changed`` only for a summary.json figure whose good direction is unknown.
VERDICTS = (REGRESSED, IMPROVED, NO_CHANGE, INSUFFICIENT, CHANGED)
_FROM_MODEL = {rg.WORSE: REGRESSED, rg.BETTER: IMPROVED, rg.SAME: NO_CHANGE,
               rg.INSUFFICIENT: INSUFFICIENT, rg.UP: CHANGED, rg.DOWN: CHANGED}
_LABELS = {"throughput": "Throughput", "latency_mean": "Mean latency",
           "latency_p50": "p50 latency", "latency_p95": "p95 latency",
           "latency_p99": "p99 latency", "error_rate": "Error rate"}
_POINT_COLUMN = {"throughput": "throughput_per_s", "latency_mean": "latency_mean_s",
                 "latency_p50": "latency_p50_s", "latency_p95": "latency_p95_s",
                 "latency_p99": "latency_p99_s"}
#: Runs shorter than this many buckets of ``bucket_s`` get narrower buckets (say so).
AUTO_BUCKETS = 30


@dataclass(frozen=True)
class MetricResult:
    """One metric of a comparison.  ``change`` is relative (``+0.12`` = 12 % higher) except for
    the error rate, where it is the difference of shares (``change_kind`` says which)."""

    metric: str
    label: str
    unit: str
    baseline: float | None
    candidate: float | None
    change: float | None
    change_lo: float | None
    change_hi: float | None
    change_kind: str
    conf: float
    min_effect: float
    verdict: str
    reason: str
    method: str
    evidence: str
    n_baseline: float | None = None
    n_candidate: float | None = None
    higher_is_worse: bool | None = True

    def to_dict(self) -> dict:
        return {k: _clean(getattr(self, k)) for k in self.__dataclass_fields__}


def _clean(v):
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, (np.floating, np.integer)):
        return _clean(v.item())
    return v


@dataclass(frozen=True)
class Comparison:
    """A whole comparison: what was compared, each metric's result, and the settings."""

    kind: str                      # "loadtest", "summary" or "store"
    baseline: dict
    candidate: dict
    metrics: tuple[MetricResult, ...]
    conf: float
    settings: dict = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def regressed(self) -> tuple[MetricResult, ...]:
        return tuple(m for m in self.metrics if m.verdict == REGRESSED)

    @property
    def insufficient(self) -> tuple[MetricResult, ...]:
        return tuple(m for m in self.metrics if m.verdict == INSUFFICIENT)

    @property
    def verdict(self) -> str:
        """``regressed`` if any metric regressed; else ``insufficient evidence`` if every metric
        is; else ``improved`` if any improved; else ``no change``."""
        vs = [m.verdict for m in self.metrics]
        if REGRESSED in vs:
            return REGRESSED
        if not vs or all(v == INSUFFICIENT for v in vs):
            return INSUFFICIENT
        return IMPROVED if IMPROVED in vs else NO_CHANGE

    def exit_code(self, fail_on: str = "regression") -> int:
        """CI exit code: 0 no regression, 1 regression, 3 insufficient evidence (any metric)
        when ``fail_on == "insufficient"`` (bad input, 2, never reaches a Comparison)."""
        if fail_on not in ("regression", "insufficient"):
            raise ConfigError(f"fail_on must be 'regression' or 'insufficient', got {fail_on!r}",
                              key="--fail-on")
        if self.regressed:
            return 1
        if fail_on == "insufficient" and self.insufficient:
            return 3
        return 0

    def to_dict(self) -> dict:
        return {"kind": self.kind, "verdict": self.verdict, "conf": self.conf,
                "baseline": self.baseline, "candidate": self.candidate,
                "metrics": [m.to_dict() for m in self.metrics], "settings": self.settings,
                "notes": list(self.notes)}

    def to_findings(self) -> list[dict]:
        """The comparison as findings (plain dicts in the summary.json Finding schema) for the
        handoff's "What changed" section: one per metric, ``status`` = the verdict."""
        from capplan.analysis.findings import Finding, fmt

        out = []
        for m in self.metrics:
            if m.change_kind == "absolute":
                fmt_ch = lambda x: f"{x * 100:+.2f} pp"  # noqa: E731
            else:
                fmt_ch = lambda x: f"{x * 100:+.1f}%"  # noqa: E731
            change = "n/a" if m.change is None else fmt_ch(m.change)
            ci = "n/a" if m.change_lo is None else \
                f"{fmt_ch(m.change_lo)} to {fmt_ch(m.change_hi)}"
            out.append(Finding(
                id=f"change.{self.kind}.{m.metric}", section="changes",
                label=m.label, metric=m.metric, value=m.candidate, unit=m.unit, interval=None,
                n=m.n_candidate, source=self.candidate.get("path") or self.candidate.get("name"),
                status=m.verdict, detail=m.reason,
                extra={"previous": m.baseline, "change": m.change,
                       "change_interval": [m.change_lo, m.change_hi],
                       "change_kind": m.change_kind, "conf": m.conf, "evidence": m.evidence,
                       "method": m.method, "baseline": self.baseline,
                       "candidate": self.candidate,
                       "display": {"previous": fmt(m.baseline, m.unit),
                                   "current": fmt(m.candidate, m.unit), "change": change,
                                   "change_interval": ci, "verdict": m.verdict}},
            ).to_dict())
        return out


# ---------------------------------------------------------------------------------- inputs


def expand_runs(spec: str | os.PathLike | Sequence) -> list[Path]:
    """The run(s) ``spec`` names: a file or a directory that IS one run (pgbench's per-thread
    logs), a directory of runs (each sub-directory, else each file, is one run), a glob, or a
    list of those.  Raises ConfigError naming what matched nothing."""
    if isinstance(spec, (list, tuple)):
        return [p for s in spec for p in expand_runs(s)]
    s = str(spec)
    if any(ch in s for ch in "*?["):
        hits = [Path(x) for x in sorted(glob.glob(s))]
        if not hits:
            raise ConfigError(f"no file matches {s!r}", key="baseline/candidate",
                              hint="quote the glob and check the path")
        return hits
    p = Path(s)
    if not p.exists():
        raise ConfigError(f"{s}: no such file or directory", key="baseline/candidate",
                          hint="give a load-test result file, a directory of runs or a glob")
    if p.is_file() or any(p.glob("pgbench_log.*")):
        return [p]
    kids = sorted(x for x in p.iterdir() if not x.name.startswith("."))
    dirs = [x for x in kids if x.is_dir()]
    runs = dirs or [x for x in kids if x.is_file()]
    if not runs:
        raise ConfigError(f"{s}: empty directory", key="baseline/candidate")
    return runs


def _records_to_buckets(rec: RunRecords, width_s: float) -> TimeBuckets:
    if rec.kind == "requests":
        return bucketize(rec.t_s, rec.latency_s, rec.failed, width_s=width_s)
    sec = np.asarray(rec.seconds, dtype=float)
    if width_s > float(np.median(sec)) * 1.5:      # merge native intervals into wider buckets
        g = np.floor((rec.start_s - rec.start_s.min()) / width_s + 1e-9).astype(int)
        s = lambda a: None if a is None else np.bincount(g, weights=a)  # noqa: E731
        return TimeBuckets(seconds=s(sec), requests=s(rec.requests), errors=s(rec.errors),
                           latency_sum=s(rec.latency_sum), latency_n=s(rec.latency_n),
                           width_s=width_s)
    return TimeBuckets(seconds=sec, requests=np.asarray(rec.requests, dtype=float),
                       errors=rec.errors, latency_sum=rec.latency_sum, latency_n=rec.latency_n,
                       width_s=float(np.median(sec)))


def _span(rec: RunRecords) -> float:
    if rec.kind == "requests":
        return float(rec.t_s.max() - rec.t_s.min())
    return float(np.sum(rec.seconds))


def _describe(recs: Sequence[RunRecords], spec) -> dict:
    kinds = sorted({r.kind for r in recs})
    return {"path": str(spec), "runs": len(recs), "files": [r.path for r in recs],
            "format": ",".join(sorted({r.format for r in recs})),
            "tool": ",".join(sorted({r.tool for r in recs})), "evidence": ",".join(kinds),
            "requests": float(sum(r.n_requests for r in recs))}


def _from_model(c: rg.Comparison, metric: str, evidence: str, *, label: str | None = None,
                relative: bool = True) -> MetricResult:
    if relative:
        ch = lambda r: None if r is None else r - 1.0  # noqa: E731
        change, lo, hi, kind = ch(c.ratio), ch(c.ratio_lo), ch(c.ratio_hi), "relative"
        if change is None and c.diff is not None and c.baseline:
            change = c.diff / abs(c.baseline)
    else:
        change, lo, hi, kind = c.diff, c.diff_lo, c.diff_hi, "absolute"
    verdict = _FROM_MODEL[c.verdict]
    reason = c.reason
    if reason.endswith(": " + c.verdict):     # the model's words -> the gate's words
        reason = reason[: -len(c.verdict)] + verdict
    reason = reason.replace(f"): {c.verdict} (below", f"): {verdict} (below")
    return MetricResult(metric=metric, label=label or _LABELS.get(metric, metric), unit=c.unit,
                        baseline=c.baseline, candidate=c.current, change=change, change_lo=lo,
                        change_hi=hi, change_kind=kind, conf=c.conf, min_effect=c.min_effect,
                        verdict=verdict, reason=reason, method=c.method,
                        evidence=evidence, n_baseline=c.n_baseline, n_candidate=c.n_current,
                        higher_is_worse=c.higher_is_worse)


def _scenarios(recs: Sequence[RunRecords]) -> list[str]:
    """Scenarios (redis-benchmark tests, Locust endpoints) in the summaries, in file order."""
    seen: list[str] = []
    for r in recs:
        for p in r.points:
            name = str(p.get("scenario") or "")
            if name not in seen:
                seen.append(name)
    return seen or [""]


def _summary_values(recs: Sequence[RunRecords], metric: str, scenario: str | None = None
                    ) -> list[float]:
    """One value per run (of ``scenario`` when given): raw runs are reduced with the same point
    estimates as their buckets."""
    out = []
    for r in recs:
        if r.kind != "summary":
            tb = _records_to_buckets(r, max(_span(r) / AUTO_BUCKETS, 1e-3))
            v = point_value(tb, metric) if tb.k else None
        else:
            pts = [p for p in r.points if scenario is None or str(p.get("scenario") or "")
                   == scenario] or [{}]
            if metric == "error_rate":
                req = sum(p.get("requests") or 0 for p in pts)
                err = sum(p.get("errors") or 0 for p in pts)
                v = err / req if req else None
            else:
                v = pts[0].get(_POINT_COLUMN[metric])
        out.append(float("nan") if v is None else float(v))
    return out


def compare_runs(baseline: Sequence[RunRecords], candidate: Sequence[RunRecords], *,
                 metrics: Sequence[str] = tuple(METRICS), conf: float = 0.95,
                 min_effect: Mapping[str, float] | None = None, bucket_s: float | None = None,
                 min_runs: int = 2, n_boot: int = 1000, seed: int = 0, adjust: bool = True,
                 names: tuple[str, str] = ("baseline", "candidate")) -> Comparison:
    """Compare already-read runs (each side: one or more :class:`RunRecords`).

    ``bucket_s``: bucket width for per-request records (default 1 s, narrowed so each run has
    at least :data:`AUTO_BUCKETS` buckets; per-interval files keep their interval unless
    ``bucket_s`` is wider).  ``min_runs``: runs a side below which verdicts are "insufficient
    evidence" (module docstring).  Raises ConfigError for an unknown metric or bad settings.
    """
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ConfigError(f"unknown metric(s) {unknown}", key="--metrics",
                          hint=f"use some of {', '.join(METRICS)}")
    if not 0 < conf < 1:
        raise ConfigError(f"confidence must be in (0, 1), got {conf}", key="--confidence")
    if bucket_s is not None and not bucket_s > 0:
        raise ConfigError(f"bucket width must be positive seconds, got {bucket_s}", key="--bucket")
    if not (baseline and candidate):
        raise ConfigError("a side has no runs", key="baseline/candidate")
    eff = {**DEFAULT_MIN_EFFECT, **(min_effect or {})}
    bad = {k: v for k, v in eff.items() if k not in METRICS or not (v >= 0)}
    if bad:
        raise ConfigError(f"bad minimum effect(s) {bad}", key="--min-effect",
                          hint=f"METRIC=FRACTION with METRIC one of {', '.join(METRICS)}")
    desc = (_describe(baseline, names[0]), _describe(candidate, names[1]))
    notes = []
    n_runs = min(len(baseline), len(candidate))
    settings = {"metrics": list(metrics), "min_effect": {m: eff[m] for m in metrics},
                "min_runs": min_runs, "n_boot": n_boot, "seed": seed, "adjust": adjust}
    raw = all(r.kind != "summary" for r in (*baseline, *candidate))
    results: list[MetricResult] = []
    if raw:
        width = 1.0 if bucket_s is None else float(bucket_s)
        req_spans = [_span(r) for r in (*baseline, *candidate) if r.kind == "requests"]
        if bucket_s is None and req_spans and min(req_spans) / width < AUTO_BUCKETS:
            width = max(min(req_spans) / AUTO_BUCKETS, 1e-3)
            notes.append(f"runs shorter than {AUTO_BUCKETS} s: buckets narrowed to "
                         f"{width * 1000:.0f} ms so each run has {AUTO_BUCKETS}")
        try:
            tbs = [pool_runs([_records_to_buckets(r, width) for r in side])
                   for side in (baseline, candidate)]
        except ValueError as exc:
            raise InsufficientData(f"a run is too short to bucket: {exc}",
                                   hint="record longer runs or pass a smaller --bucket") from None
        res = compare_buckets(*tbs, metrics=metrics, conf=conf, min_effect=eff, n_boot=n_boot,
                              seed=seed, adjust=adjust)
        settings["bucket_s"] = width
        evidence = "+".join(sorted({r.kind for r in (*baseline, *candidate)}))
        for c in res.comparisons:
            results.append(_from_model(c, c.statistic, evidence,
                                       relative=c.statistic != "error_rate"))
    else:
        notes.append("only summaries on at least one side: intervals come from the variation "
                     "between runs (Welch t on per-run values); a single run a side is "
                     "insufficient evidence")
        # scenarios both sides report (redis-benchmark tests); a wrk URL that changed between
        # the runs is not a scenario of its own
        sb = _scenarios([r for r in baseline if r.kind == "summary"])
        sc_c = _scenarios([r for r in candidate if r.kind == "summary"])
        scen = [x for x in sb if x in sc_c] if all(r.kind == "summary" for r in
                                                    (*baseline, *candidate)) else [""]
        several = len(scen) > 1
        scen = scen if several else [""]
        k = len(metrics) * len(scen)
        each = 1 - (1 - conf) / k if adjust and k > 1 else conf
        for sc in scen:
            for m in metrics:
                results.append(_summary_metric(baseline, candidate, m, sc if several else None,
                                               each, eff[m], desc))
        if several:
            notes.append(f"{len(scen)} scenarios in the summaries ({', '.join(scen)}): each "
                         "compared on its own")
    if n_runs < min_runs:
        notes.append(f"{len(baseline)} run(s) vs {len(candidate)}: fewer than {min_runs} a side, "
                     "so every verdict is 'insufficient evidence' (runs of one configuration "
                     "differ by more than a run's own variation shows); record more runs or "
                     "pass min_runs=1 on a quiet, dedicated runner")
        results = [r if r.verdict == INSUFFICIENT else _replace(
            r, verdict=INSUFFICIENT,
            reason=f"{r.reason.rsplit(': ', 1)[0]}: insufficient evidence ({len(baseline)} vs "
                   f"{len(candidate)} runs; need {min_runs} a side, as runs of one "
                   "configuration differ between runs)") for r in results]
    return Comparison(kind="loadtest", baseline=desc[0], candidate=desc[1],
                      metrics=tuple(results), conf=conf, settings=settings, notes=tuple(notes))


def _summary_metric(baseline, candidate, m: str, scenario: str | None, each: float,
                    min_effect: float, desc) -> MetricResult:
    unit, hiw, _stat = METRICS[m]
    vb, vc = (_summary_values(side, m, scenario) for side in (baseline, candidate))
    name = f"{scenario}:{m}" if scenario else m
    label = f"{scenario} {_LABELS[m].lower()}" if scenario else None
    if m == "error_rate":      # shares near 0: compare 1 + share, report shares (pp)
        c = compare_run_values([v + 1 for v in vb], [v + 1 for v in vc], unit="ratio",
                               higher_is_worse=True, conf=each, min_effect=0.0, name=name)
        r = _shift_error_rate(_from_model(c, name, "summary", relative=False, label=label),
                              vb, vc, min_effect)
    else:
        c = compare_run_values(vb, vc, unit=unit, higher_is_worse=hiw, conf=each,
                               min_effect=min_effect, name=name)
        r = _from_model(c, name, "summary", label=label)
    if all(math.isnan(v) for v in vb + vc):
        r = _replace(r, verdict=INSUFFICIENT,
                     reason=f"{name}: not reported by {desc[0]['format']} / {desc[1]['format']}")
    return r


def _replace(r: MetricResult, **kw) -> MetricResult:
    return MetricResult(**{**{k: getattr(r, k) for k in r.__dataclass_fields__}, **kw})


def _shift_error_rate(r: MetricResult, vb, vc, min_effect: float) -> MetricResult:
    """Error shares were compared as 1 + share (positive); report them as shares again."""
    if r.verdict == INSUFFICIENT:
        b = [v for v in vb if math.isfinite(v)]
        c = [v for v in vc if math.isfinite(v)]
        return _replace(r, unit="ratio", baseline=float(np.mean(b)) if b else None,
                        candidate=float(np.mean(c)) if c else None)
    b, c = float(np.nanmean(vb)), float(np.nanmean(vc))
    lo, hi = r.change_lo, r.change_hi   # (1+c)-(1+b) interval = share difference interval
    d = c - b
    sig = lo is not None and (lo > 0 or hi < 0)
    verdict = NO_CHANGE if not sig or abs(d) < min_effect else (REGRESSED if d > 0 else IMPROVED)
    reason = (f"{r.metric} {b * 100:.2f}% → {c * 100:.2f}% ({d * 100:+.2f} pp, "
              f"{round(r.conf * 100, 2):g}% CI {lo * 100:+.2f} to {hi * 100:+.2f} pp; "
              f"{int(r.n_baseline or 0)} vs {int(r.n_candidate or 0)} runs): {verdict}")
    return _replace(r, unit="ratio", baseline=b, candidate=c, change=d, verdict=verdict,
                    reason=reason, min_effect=min_effect)


def compare_loadtests(baseline_path, candidate_path, *, tool: str | None = None,
                      **kwargs) -> Comparison:
    """Read two load-test results (each a file, a run directory, a directory of runs or a glob;
    any format of :mod:`capplan.loadtest`, plus pgbench ``-l`` logs) and :func:`compare_runs`.

    This is the call for the handoff's "What changed" section::

        cmp = compare_loadtests(params["baseline_loadtest"], params["candidate_loadtest"])
        findings = cmp.to_findings()      # one Finding dict per metric, status = verdict

    Raises ConfigError / ParseError (unusable input) and InsufficientData (runs too short).
    """
    sides = []
    for spec in (baseline_path, candidate_path):
        sides.append([read_run_records(p, tool=tool) for p in expand_runs(spec)])
    return compare_runs(sides[0], sides[1], names=(str(baseline_path), str(candidate_path)),
                        **kwargs)


# ------------------------------------------------------------------------- summary.json


def _read_json(path) -> dict:
    p = Path(path)
    if p.is_dir():
        p = p / "summary.json"
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read ({exc.strerror})", key="baseline/candidate") \
            from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise ParseError("not valid JSON", path=str(p)) from None
    if not isinstance(data, dict) or not isinstance(data.get("sections"), dict):
        raise ParseError("not a capplan summary.json (no 'sections' object)", path=str(p))
    return data


def _is_summary_json(path) -> bool:
    p = Path(path)
    p = p / "summary.json" if p.is_dir() else p
    if not (p.is_file() and p.suffix == ".json"):
        return False
    try:
        with open(p, "rb") as fh:
            head = fh.read(65536).decode("utf-8", errors="replace")
    except OSError:
        return False
    return '"schema_version"' in head and '"sections"' in head


def compare_summary_files(baseline_path, candidate_path, *,
                          min_effect: float = rg.MIN_EFFECT) -> Comparison:
    """Phase over phase: every figure (finding with a value) present in both summary.json
    files, compared from its value and interval (:func:`capplan.models.regression.
    compare_summaries`, MOVER).  A figure without an interval is taken as exact (said)."""
    b, c = _read_json(baseline_path), _read_json(candidate_path)
    prev = {f["id"]: f for sec, fs in b["sections"].items() if sec != "changes" for f in fs
            if isinstance(f, dict) and "id" in f}
    results = []
    for sec, fs in c["sections"].items():
        if sec == "changes":
            continue
        for f in fs:
            p = prev.get(f.get("id")) if isinstance(f, dict) else None
            if not p or p.get("value") is None or f.get("value") is None:
                continue
            if not isinstance(p["value"], (int, float)) or not isinstance(f["value"],
                                                                          (int, float)):
                continue
            try:
                cm = rg.compare_summaries(p, f, min_effect=min_effect)
            except ValueError as exc:
                results.append(MetricResult(
                    metric=f["id"], label=f.get("label") or f["id"], unit=f.get("unit") or "",
                    baseline=p["value"], candidate=f["value"], change=None, change_lo=None,
                    change_hi=None, change_kind="relative", conf=0.95, min_effect=min_effect,
                    verdict=INSUFFICIENT, reason=f"{f['id']}: {exc}", method="MOVER",
                    evidence="summary"))
                continue
            results.append(_from_model(cm, f["id"], "summary", label=f.get("label")))
    return Comparison(kind="summary",
                      baseline={"path": str(baseline_path), "run_id": b.get("run_id"),
                                "phase": b.get("to_phase")},
                      candidate={"path": str(candidate_path), "run_id": c.get("run_id"),
                                 "phase": c.get("to_phase")},
                      metrics=tuple(results), conf=0.95, settings={"min_effect": min_effect},
                      notes=("figures compared from their summary intervals (MOVER, "
                             "independent sides assumed)",) if results else
                      ("no figure is present in both files",))


# --------------------------------------------------------------------------- store windows


def _better_when_higher(metric: str) -> bool:
    m = metric.lower()
    return any(m.endswith(s) for s in ("_per_s", "_per_second", "throughput", "hit_ratio",
                                       "_hits_total", "_available_bytes"))


def compare_store_windows(store, *, metrics: Sequence[str], baseline: tuple, candidate: tuple,
                          source: str | None = None, labels: Mapping[str, str] | None = None,
                          grain: str = "1min", conf: float = 0.95,
                          min_effect: float = rg.MIN_EFFECT,
                          higher_is_better: Sequence[str] = (), n_boot: int = 1000,
                          seed: int = 0) -> Comparison:
    """Two windows ``(start, end)`` of one store: per metric, the mean of its per-``grain``
    bucket values (counters as per-second rates) in each window, block-bootstrapped.

    ``store`` is an open store or a path / ``env:VAR``.  Each metric must select one series
    (narrow with ``source`` / ``labels``).  Higher is worse unless the metric is in
    ``higher_is_better`` or named like a rate of useful work (``*_per_s``, ``*throughput``,
    ``*hit_ratio``).  Raises ConfigError for a metric with no or several series.
    """
    from capplan.core.rates import counter_rate
    from capplan.store import downsample, open_store

    if not metrics:
        raise ConfigError("name the store metric(s) to compare", key="--metrics",
                          hint="e.g. --metrics redis_used_memory_bytes")
    own = not hasattr(store, "query")
    st = open_store(store) if own else store
    try:
        results = []
        k = len(metrics)
        each = 1 - (1 - conf) / k if k > 1 else conf
        for metric in metrics:
            vals = []
            for start, end in (baseline, candidate):
                fr = st.query(metric, source=source, labels=labels, start=start, end=end)
                keys = fr[["source", "labels"]].drop_duplicates()
                if len(keys) > 1:
                    raise ConfigError(f"metric {metric!r} has {len(keys)} series in the window; "
                                      "name one", key="--metric",
                                      hint="narrow with --source and --label KEY=VALUE")
                if len(fr) and fr["kind"].iloc[0] == "counter":
                    s = fr.set_index("timestamp")["value"]
                    rate = counter_rate(s).dropna()
                    fr = fr.set_index("timestamp").loc[rate.index].reset_index()
                    fr["value"] = rate.to_numpy()
                    fr["kind"], fr["unit"] = "gauge", "per_second"
                fr = downsample(fr, grain) if len(fr) else fr
                vals.append(fr["value"].to_numpy(float) if len(fr) else np.zeros(0))
            unit = "" if not len(fr) else str(fr["unit"].iloc[0])
            hiw = not (metric in higher_is_better or _better_when_higher(metric))
            cm = compare_bucket_means(vals[0], vals[1], unit=unit, higher_is_worse=hiw,
                                      conf=each, min_effect=min_effect, n_boot=n_boot,
                                      seed=seed, name=metric)
            results.append(_from_model(cm, metric, f"store ({grain} buckets)", label=metric))
    finally:
        if own:
            st.close()
    win = lambda w: {"start": str(w[0]), "end": str(w[1])}  # noqa: E731
    return Comparison(kind="store", baseline={"name": "baseline window", **win(baseline)},
                      candidate={"name": "candidate window", **win(candidate)},
                      metrics=tuple(results), conf=conf,
                      settings={"grain": grain, "min_effect": min_effect, "source": source,
                                "labels": dict(labels or {})})


def compare(baseline, candidate, **kwargs) -> Comparison:
    """Two summary.json files (or run folders holding one) → :func:`compare_summary_files`;
    anything else → :func:`compare_loadtests`."""
    if all(not isinstance(x, (list, tuple)) and _is_summary_json(x)
           for x in (baseline, candidate)):
        allowed = {k: v for k, v in kwargs.items() if k == "min_effect"}
        if isinstance(allowed.get("min_effect"), Mapping):
            allowed.pop("min_effect")
        return compare_summary_files(baseline, candidate, **allowed)
    return compare_loadtests(baseline, candidate, **kwargs)


# ------------------------------------------------------------------------------ settings

_SETTING_KEYS = ("confidence", "min_effect", "metrics", "min_runs", "bucket_s", "fail_on",
                 "adjust")


def _params_section(path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise ConfigError(f"cannot read ({exc.strerror})", path=str(path)) from None
    except yaml.YAMLError:
        raise ConfigError("not valid YAML", path=str(path)) from None
    sec = data.get("compare", {}) if isinstance(data, dict) else {}
    if not isinstance(sec, dict):
        raise ConfigError("'compare' must be a mapping", path=str(path), key="compare")
    unknown = sorted(set(sec) - set(_SETTING_KEYS))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown}", path=str(path), key="compare",
                          hint=f"use {', '.join(_SETTING_KEYS)}")
    return sec


def _window(text: str, what: str) -> tuple[str, str]:
    import pandas as pd

    parts = str(text).split("..")
    if len(parts) != 2 or not all(p.strip() for p in parts):
        raise ConfigError(f"{what} must be a window START..END, e.g. "
                          "2026-11-01T00:00Z..2026-11-02T00:00Z", key=what)
    for p in parts:
        try:
            pd.Timestamp(p.strip())
        except ValueError:
            raise ConfigError(f"{what}: {p.strip()!r} is not a time", key=what) from None
    return parts[0].strip(), parts[1].strip()


def _labels(items: Sequence[str]) -> dict:
    out = {}
    for it in items:
        k, sep, v = str(it).partition("=")
        if not sep or not k:
            raise ConfigError(f"label {it!r} must be KEY=VALUE", key="--label")
        out[k] = v
    return out


def compare_settings(params: str | None = None, *, metrics: str | Sequence[str] | None = None,
                     min_effect: Sequence[str] | Mapping[str, float] = (),
                     confidence: float | None = None, min_runs: int | None = None,
                     bucket_s: float | None = None, fail_on: str | None = None,
                     no_adjust: bool = False) -> dict:
    """The comparison settings from flags over a params file's ``compare:`` section over the
    defaults.  ``min_effect`` items are ``METRIC=FRACTION``.  Raises ConfigError naming the
    flag or key of a bad value."""
    sec = _params_section(params) if params else {}
    mets = metrics if metrics is not None else sec.get("metrics")
    if isinstance(mets, str):
        mets = [m.strip() for m in mets.split(",") if m.strip()]
    eff: dict[str, float] = {}
    from_file = sec.get("min_effect") or {}
    if not isinstance(from_file, Mapping):
        raise ConfigError("compare.min_effect must map metric -> fraction", key="min_effect")
    items = list(from_file.items())
    for it in (min_effect.items() if isinstance(min_effect, Mapping) else min_effect):
        if isinstance(it, tuple):
            items.append(it)
            continue
        k, sep, v = str(it).partition("=")
        if not sep:
            raise ConfigError(f"{it!r} must be METRIC=FRACTION, e.g. latency_p95=0.1",
                              key="--min-effect")
        items.append((k.strip(), v.strip()))
    for k, v in items:
        try:
            eff[k] = float(v)
        except (TypeError, ValueError):
            raise ConfigError(f"minimum effect for {k!r} must be a number, got {v!r}",
                              key="--min-effect") from None
    conf = confidence if confidence is not None else float(sec.get("confidence", 0.95))
    if not 0 < conf < 1:
        raise ConfigError(f"confidence must be between 0 and 1, got {conf}",
                          key="--confidence", hint="e.g. 0.95")
    runs = min_runs if min_runs is not None else int(sec.get("min_runs", 2))
    if runs < 1:
        raise ConfigError(f"min_runs must be at least 1, got {runs}", key="--min-runs")
    fail = fail_on or sec.get("fail_on", "regression")
    if fail not in ("regression", "insufficient"):
        raise ConfigError(f"fail_on must be 'regression' or 'insufficient', got {fail!r}",
                          key="--fail-on")
    lt_metrics = tuple(mets) if mets else tuple(METRICS)
    return {"metrics": lt_metrics, "store_metrics": list(mets or []), "conf": conf,
            "min_effect": eff, "min_runs": runs,
            "bucket_s": bucket_s if bucket_s is not None else sec.get("bucket_s"),
            "fail_on": fail, "adjust": not no_adjust and bool(sec.get("adjust", True)),
            "window": _window, "labels": _labels}


def compare_from_params(params: Mapping, *, base_dir: str | os.PathLike = ".") -> Comparison | None:
    """The handoff's load-test comparison, when ``params`` name one: keys
    ``baseline_loadtest`` and ``candidate_loadtest`` (paths, directories of runs or globs,
    relative to ``base_dir``, the params file's folder) and an optional ``compare:`` mapping
    (:func:`compare_settings` keys).  None when either key is absent; errors as
    :func:`compare_loadtests`."""
    b, c = params.get("baseline_loadtest"), params.get("candidate_loadtest")
    if not b or not c:
        return None
    sec = params.get("compare") or {}
    if not isinstance(sec, Mapping):
        raise ConfigError("'compare' must be a mapping", key="compare")
    unknown = sorted(set(sec) - set(_SETTING_KEYS))
    if unknown:
        raise ConfigError(f"unknown key(s) {unknown}", key="compare",
                          hint=f"use {', '.join(_SETTING_KEYS)}")
    s = compare_settings(None, metrics=sec.get("metrics"),
                         min_effect=dict(sec.get("min_effect") or {}),
                         confidence=sec.get("confidence"), min_runs=sec.get("min_runs"),
                         bucket_s=sec.get("bucket_s"), fail_on=sec.get("fail_on"),
                         no_adjust=sec.get("adjust") is False)
    where = lambda p: str(p) if os.path.isabs(str(p)) else str(Path(base_dir) / str(p))  # noqa: E731
    return compare_loadtests(where(b), where(c), metrics=s["metrics"], conf=s["conf"],
                             min_effect=s["min_effect"], bucket_s=s["bucket_s"],
                             min_runs=s["min_runs"])
