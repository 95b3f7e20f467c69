"""Findings that respect time (issue 13): evidence from time blocks, windows, peaks, freshness,
failed sources, load-test conditions, Markdown escaping.  Each test reproduces one bullet under
*Why* of the issue and failed on the code before it."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml

from capplan.analysis.findings import Finding
from capplan.analysis.summary import evaluate_targets, statements
from capplan.analysis.targets import parse_targets
from capplan.collect.demo import generate_demo
from capplan.collect._common import labels_key
from capplan.report.document import build_document
from capplan.report.render import to_markdown
from capplan.store import open_store

from conftest import ROOT

DEMO_TARGETS = yaml.safe_load((ROOT / "params" / "demo.yaml").read_text())["targets"]


def _store(tmp_path, frame):
    st = open_store(tmp_path / "m.sqlite")
    st.append(frame)
    return st


def _targets(entries):
    return parse_targets(entries, path="params")


def _eval(st, targets, **kw):
    ser = st.series()
    start, end = pd.Timestamp(ser["first"].min()), pd.Timestamp(ser["last"].max())
    return {f.label: f for f in evaluate_targets(st, targets, start=start, end=end,
                                                 baseline_days=7, current_days=7, **kw)}


def _series(ts, source, metric, values, kind, unit, labels=None):
    """One series as a contract frame."""
    n = len(ts)
    return pd.DataFrame({"timestamp": pd.DatetimeIndex(ts).astype("datetime64[ns, UTC]"),
                         "source": source, "metric": metric, "labels": labels_key(labels or {}),
                         "value": np.asarray(values, float), "kind": kind, "unit": unit},
                        index=range(n))


def _counter_frame(ts, hits, misses, source="redis:cache"):
    """Redis hit/miss counters at timestamps ``ts`` from per-interval increases."""
    return pd.concat([
        _series(ts, source, "redis_keyspace_hits_total", 1e6 + np.cumsum(hits), "counter", "count"),
        _series(ts, source, "redis_keyspace_misses_total", 1e5 + np.cumsum(misses), "counter",
                "count")], ignore_index=True)


# ---------------------------------------------------------------------- counts are not trials


def test_a_60_second_window_is_insufficient_evidence_for_every_target(tmp_path):
    f = generate_demo(days=1, step="5s")
    end = f["timestamp"].max()
    st = _store(tmp_path, f[f["timestamp"] >= end - pd.Timedelta(seconds=60)])
    found = _eval(st, _targets(DEMO_TARGETS))
    assert set(found) == {t["name"] for t in DEMO_TARGETS}
    for name, fi in found.items():
        assert fi.status == "insufficient evidence", (name, fi.status, fi.detail)
    for fi in found.values():       # one vocabulary for n: blocks, samples (and requests)
        n_text = fi.to_dict()["display"]["n"]
        assert "block" in n_text and "samples" in n_text, (fi.label, n_text)
    hit = found["Redis hit ratio"]
    assert "1 hourly block; at least 8 are needed" in hit.detail
    ev = hit.extra["evidence"]
    assert ev["blocks"] == 1 and ev["samples"] == 13 and ev["requests"] > 1000
    assert hit.to_dict()["display"]["n"].startswith("1 hourly block, 13 samples, ")
    st.close()


def test_hourly_swings_85_95_around_90_are_neither_meets_nor_a_hairline_miss(tmp_path):
    ts = pd.date_range("2026-11-29", periods=24 * 12 + 1, freq="5min", tz="UTC")
    per = 10_000_000 / (24 * 12)                 # 10 million lookups over the day
    ratio = np.where(((ts - pd.Timedelta("5min")).hour % 2) == 0, 0.852, 0.952)  # interval hour
    st = _store(tmp_path, _counter_frame(ts, per * ratio, per * (1 - ratio)))
    (t,) = _targets([{"name": "Hit", "metric": "redis_keyspace_hit_ratio", "min": 0.90}])
    f = _eval(st, [t])["Hit"]
    assert f.status not in ("meets", "misses"), f.detail
    lo, hi = f.interval
    assert hi - lo > 0.01                         # not the Wilson hairline of 10M "trials"
    assert lo < 0.90 < hi
    assert "12 of 24 hours at or above 90%; lowest 85.2" in f.detail
    assert f.extra["evidence"]["requests"] == pytest.approx(1e7, rel=1e-3)
    st.close()


# --------------------------------------------------------------------------------- windows


def test_short_history_has_no_baseline_and_windows_keep_their_end_sample(tmp_path):
    f = generate_demo(days=2, sources=["redis:cache"])
    st = _store(tmp_path, f)
    (t,) = _targets([{"name": "Hit", "metric": "redis_keyspace_hit_ratio", "min": 0.90}])
    fi = _eval(st, [t])["Hit"]
    assert fi.extra["baseline"] is None
    assert fi.extra["baseline_why"].startswith("no baseline: 2 of 14 days")
    assert fi.to_dict()["display"]["baseline"].startswith("no baseline")
    assert pd.Timestamp(fi.window[1]) == f["timestamp"].max()      # the last sample counts
    st.close()


def test_baseline_and_current_never_overlap():
    from capplan.analysis.evidence import windows_for

    s, e = pd.Timestamp("2026-11-01", tz="UTC"), pd.Timestamp("2026-11-20", tz="UTC")
    w = windows_for(s, e, baseline_days=7, current_days=14)
    assert w.baseline is None and "19 of 21 days" in w.why
    w = windows_for(s, e, baseline_days=7, current_days=7)
    assert w.baseline[1] < w.current[0] and w.current[1] == e


# ----------------------------------------------------------------------------------- peaks


def test_peak_is_the_highest_raw_sample_with_its_sampling_interval(tmp_path):
    ts = pd.date_range("2026-11-29", periods=12 * 60 * 24, freq="5s", tz="UTC")  # 1 day at 5 s
    conns = np.full(ts.size, 7.0)
    conns[5000] = 16.0                           # one 5-second spike: the 5-min mean stays < 8
    st = _store(tmp_path, _series(ts, "postgres:app", "pg_client_backends", conns, "gauge",
                                  "connections", {"state": "active"}))
    (t,) = _targets([{"name": "Conns", "metric": "pg_client_backends_total", "statistic": "max",
                      "max": 12}])
    f = _eval(st, [t])["Conns"]
    assert f.value == 16 and f.interval is None and f.status == "misses"
    assert "peak 16, sampled every 5 s" in f.detail
    assert "95% CI" not in f.detail              # a reading never gets an interval
    st.close()


def test_daily_peaks_and_days_over_target_are_reported(tmp_path):
    st = _store(tmp_path, generate_demo(days=20, sources=["postgres:app"]))
    (t,) = _targets([{"name": "Conns", "metric": "pg_client_backends_total", "statistic": "max",
                      "max": 87}])
    f = _eval(st, [t])["Conns"]
    ev = f.extra["evidence"]
    assert ev["days"] == 7 and len(ev["daily"]) == 7
    assert f"{ev['days_over']} of 7 days over 87" in f.detail
    assert "daily peaks" in f.to_dict()["display"]["spread"]
    st.close()


def test_a_size_is_judged_by_its_latest_value_not_a_mean(tmp_path):
    ts = pd.date_range("2026-11-23", periods=7 * 288, freq="5min", tz="UTC")
    size = np.linspace(40, 66, ts.size) * 2 ** 30          # a disk filling past 64 GiB
    st = _store(tmp_path, _series(ts, "postgres:app", "pg_database_size_bytes", size, "gauge",
                                  "bytes"))
    (t,) = _targets([{"name": "Disk", "metric": "pg_database_size_bytes", "max": 64 * 2 ** 30}])
    assert t.statistic == "last"
    f = _eval(st, [t])["Disk"]
    assert f.status == "misses" and f.value == pytest.approx(66 * 2 ** 30)
    assert f.interval is None and "latest reading 66 GiB" in f.detail
    st.close()


# ------------------------------------------------------------------------ freshness, failure


def test_old_data_is_stale_never_meets(tmp_path):
    from capplan.analysis.summary import Freshness

    f = generate_demo(days=10, sources=["redis:cache"])
    st = _store(tmp_path, f)
    newest = f["timestamp"].max()
    (t,) = _targets([{"name": "Hit", "metric": "redis_keyspace_hit_ratio", "min": 0.90}])
    fresh = Freshness(newest + pd.Timedelta(minutes=10), 10.0, {})   # live, 5 s interval
    hit = _eval(st, [t], freshness=fresh)["Hit"]
    assert hit.status == "stale"
    assert hit.detail.startswith(f"stale: no data since {newest:%Y-%m-%d %H:%M} UTC")
    assert hit.extra["freshness"]["age_s"] == 600
    ok = _eval(st, [t], freshness=Freshness(newest + pd.Timedelta(seconds=5), 10.0, {}))["Hit"]
    assert ok.status == "meets" and ok.extra["freshness"]["age"] == "5 s"
    st.close()


def test_one_source_down_is_named_in_the_executive_summary_and_its_findings_are_stale(
        tmp_path, pg_dsn, monkeypatch):
    from capplan.runner.pipeline import collect_step, report_step

    run = tmp_path / "run"
    (run / "findings").mkdir(parents=True)
    store = str(tmp_path / "metrics.sqlite")
    old = generate_demo(days=10, sources=["redis:cache"],
                        end=pd.Timestamp.now(tz="UTC").floor("5min") - pd.Timedelta(minutes=10))
    with open_store(store) as st:
        st.append(old)
    sources = [{"source": "redis", "name": "cache", "url": "redis://127.0.0.1:6399/0"},
               {"source": "postgres", "name": "app", "dsn_env": "CAPPLAN_H13_PG",
                "statements_top": 0, "tables_limit": 0}]
    monkeypatch.setenv("CAPPLAN_H13_PG", pg_dsn)
    out = collect_step(mode="live", store=store, run_dir=run, sources=sources, duration_s=2,
                       interval_s=1)
    assert out.degraded
    import json
    meta = json.loads((run / "findings" / "01-collect.json").read_text())["meta"]
    (failed,) = meta["failed_sources"]
    assert failed["source"] == "redis:cache" and failed["produced"] == 0 and failed["ok"] == 0
    assert "6399" in failed["error"] and failed["hint"]
    assert meta["produced_samples"] > 0           # postgres:app still produced data
    res = report_step(run_dir=run, store=store, service="svc", targets=[
        {"name": "Redis hit ratio", "metric": "redis_keyspace_hit_ratio", "min": 0.90}])
    s = res.summary
    (hit,) = s["sections"]["targets"]
    assert hit["status"] == "stale" and hit["detail"].startswith("stale: no data since")
    first = s["statements"][0]
    assert first["severity"] == "failed" and "redis:cache" in first["text"]
    assert failed["error"] in first["text"] and failed["hint"] in first["text"]
    md = res.markdown.read_text()
    summary_part = md.split("## What changed")[0]
    assert "redis:cache failed during this run" in summary_part
    assert "**stale**" in summary_part


# ------------------------------------------------------------------------------- load tests


def _points(levels, x):
    return pd.DataFrame({"tool": "pgbench", "scenario": "select-only", "concurrency": levels,
                         "throughput_per_s": x, "latency_mean_s": np.asarray(levels) / np.asarray(x),
                         "duration_s": 10.0, "errors": 0.0})


def test_scaling_names_the_workload_and_labels_extrapolation():
    from capplan.analysis.scaling import analyse_scaling

    n = np.array([1, 2, 4, 8, 1, 2, 4, 8], float)
    x = 100 * n / (1 + 0.02 * (n - 1) + 0.0001 * n * (n - 1))
    out = analyse_scaling(_points(n, x), "bench.csv", latency_target_s=0.5)
    by = {f.id: f for f in out.findings}
    wl = by["scaling.workload"].detail
    for words in ("pgbench", "select-only", "client placement not recorded", "10 s per level",
                  "1–8 concurrent clients"):
        assert words in wl
    n_at = by["scaling.n_at_latency"]
    assert n_at.extra["extrapolated"] and n_at.status == "insufficient evidence"
    sections = {"scaling": [f.to_dict() for f in out.findings]}
    text = next(s["text"] for s in statements(sections, horizon_days=90, from_phase="p")
                if "scaling.x_peak" in s["refs"])
    assert "extrapolated beyond 2× the largest tested level (8 clients)" in text
    assert f"{n_at.value:.1f}" not in text and "select-only" in text


def test_too_few_points_are_shown_as_a_table():
    from capplan.analysis.scaling import analyse_scaling

    out = analyse_scaling(_points([4.0], [321.0]), "one.csv")
    by = {f.id: f for f in out.findings}
    assert by["scaling.fit"].status == "insufficient data"
    doc = build_document({"sections": {"scaling": [f.to_dict() for f in out.findings]}})
    tables = [b for b in doc if b[0] == "table" and "Throughput" in b[1]]
    assert tables and tables[0][2][0][:2] == ["4", "321/s"]


# ------------------------------------------------------------------------ Markdown injection


def test_markdown_escapes_params_and_scraped_text():
    evil = "<script>alert(1)</script>"
    note = "x <img src=x onerror=alert(1)> [click](javascript:alert(1))"
    summary = {"service": evil, "from_phase": "[a](javascript:alert(2))", "to_phase": evil,
               "notes": {"01-collect": [note]},
               "sections": {"targets": [Finding("target.x", "targets", evil, value=0.5,
                                                unit="ratio", status="meets",
                                                detail=note).to_dict()]},
               "statements": [{"severity": "meets", "text": note, "refs": ["target.x"]}]}
    md = to_markdown(build_document(summary))
    import re

    for bad in ("<script", "<img", "onerror=alert(1)>"):
        assert bad not in md, bad
    assert not re.search(r"(?<!\\)\]\(javascript:", md)      # no live link
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in md


def test_demo_history_ends_at_the_run_date(tmp_path):
    from capplan.analysis.evidence import data_end
    from capplan.runner.pipeline import collect_step

    run = tmp_path / "run"
    collect_step(mode="demo", store="", run_dir=run, demo_days=2)
    with open_store(run / "metrics.sqlite") as st:
        end = data_end(st)
    today = pd.Timestamp.now(tz="UTC").floor("1D")
    assert today - pd.Timedelta(minutes=5) <= end < today + pd.Timedelta(days=1)


def test_one_status_word_for_a_runway_in_notebook_and_report():
    from capplan.analysis.findings import STATUS_WORDS, runway_status

    assert runway_status("not within horizon", 0.42) == "at risk"
    assert runway_status("not within horizon", 0.05) == "not within horizon"
    assert runway_status("crosses", 0.9) == "crosses"
    assert {"at risk", "not within horizon", "stale", "failed"} <= set(STATUS_WORDS)


def test_each_note_is_printed_once():
    note = "redis:cache: 3 failed read(s) of 3: connection refused"
    doc = build_document({"notes": {"01-collect": [note, note], "02-growth": [note]},
                          "sections": {}})
    md = to_markdown(doc)
    assert md.count("connection refused") == 1
