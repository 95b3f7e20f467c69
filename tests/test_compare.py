"""capplan compare: readers of raw runs, the comparison, its writers, the CLI, and its honesty
measured with real pgbench and wrk on loopback (false alarms on same-configuration runs, an
induced regression detected)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from capplan.analysis.compare import (compare, compare_loadtests, compare_runs,
                                      compare_settings, compare_store_windows, expand_runs)
from capplan.cli import main
from capplan.errors import ConfigError, ParseError
from capplan.loadtest.samples import read_run_records
from capplan.report.compare_output import junit_xml, markdown_table

HERE = Path(__file__).resolve().parent
CMP = HERE / "fixtures" / "compare"
LT = HERE / "fixtures" / "loadtest"
BASE, NOPK = CMP / "pgbench_select_baseline", CMP / "pgbench_select_no_pkey"
SIX = ("throughput", "latency_mean", "latency_p50", "latency_p95", "latency_p99", "error_rate")


# ------------------------------------------------------------------------- readers


def test_pgbench_per_transaction_logs_are_read_with_rate_lag_field():
    rec = read_run_records(BASE / "run1")
    assert rec.format == "pgbench-log" and rec.kind == "requests"
    lines = sum(1 for f in (BASE / "run1").glob("pgbench_log.*") for _ in open(f))
    assert len(rec.t_s) == lines and np.all(np.diff(rec.t_s) >= 0)
    assert 0 < np.nanmedian(rec.latency_s) < 1          # µs -> s
    assert not rec.failed.any()


def test_pgbench_log_skipped_and_failed_transactions(tmp_path):
    (tmp_path / "pgbench_log.1").write_text(
        "0 1 1200 0 1796157675 769813\n0 2 skipped 0 1796157675 869813\n"
        "1 1 failed 0 1796157676 100\n1 2 serialization 0 1796157676 200\n")
    rec = read_run_records(tmp_path)
    assert np.isnan(rec.latency_s[1:]).all() and rec.latency_s[0] == pytest.approx(0.0012)
    assert rec.failed.tolist() == [False, False, True, True]


def test_a_malformed_log_line_names_file_and_line(tmp_path):
    (tmp_path / "pgbench_log.1").write_text("0 1 1200 0 1796157675 769813\n0 2 xx\n")
    with pytest.raises(ParseError) as ei:
        read_run_records(tmp_path, tool="pgbench-log")
    assert ei.value.line == 2 and "pgbench_log.1" in str(ei.value)


@pytest.mark.parametrize("name,kind,fmt", [
    ("k6_stream_v1.1.ndjson", "requests", "k6-json"),
    ("k6_stream_v1.1.csv", "requests", "k6-csv"),
    ("locust_2.47/run_stats_history.csv", "buckets", "locust-history"),
    ("pgbench_aggregate_pg15", "buckets", "pgbench-aggregate"),
    ("pgbench_progress_pg15_stderr.txt", "buckets", "pgbench-progress"),
    ("wrk_latency_ok.txt", "summary", "wrk"),
    ("redisbench_csv_7.0.txt", "summary", "redis-benchmark"),
    ("pgbench_summary_pg15.txt", "summary", "pgbench-summary"),
])
def test_every_format_is_read_at_its_finest_grain(name, kind, fmt):
    rec = read_run_records(LT / name)
    assert (rec.kind, rec.format) == (kind, fmt)
    if kind == "requests":
        assert len(rec.t_s) == len(rec.latency_s) > 0
        assert rec.failed is not None and rec.failed.sum() == 4   # k6 stream: 4 of 16 to /fail
    if kind == "buckets":
        assert rec.n_requests > 0 and (rec.seconds > 0).all()


def test_expand_runs_directory_of_runs_glob_and_single_run():
    assert len(expand_runs(BASE)) == 3
    assert expand_runs(BASE / "run1") == [BASE / "run1"]
    assert len(expand_runs(str(CMP / "pgbench_select_*" / "run1"))) == 2
    with pytest.raises(ConfigError):
        expand_runs(CMP / "nothing-here")


# ------------------------------------------------------------------------- comparison


def test_recorded_missing_primary_key_is_a_regression_in_throughput_and_latency():
    cmp = compare_loadtests(BASE, NOPK)
    v = {m.metric: m.verdict for m in cmp.metrics}
    assert [m.metric for m in cmp.metrics] == list(SIX)
    assert cmp.verdict == "regressed" and cmp.exit_code() == 1
    for m in ("throughput", "latency_mean", "latency_p50", "latency_p95"):
        assert v[m] == "regressed", cmp.metrics
    assert v["error_rate"] == "no change"           # no transaction failed on either side
    tp = cmp.metrics[0]
    assert tp.change < 0 and tp.change_hi < 0 and tp.change_lo <= tp.change <= tp.change_hi
    assert cmp.baseline["runs"] == cmp.candidate["runs"] == 3


def test_the_same_runs_are_no_change():
    cmp = compare_loadtests(BASE, BASE)
    assert {m.verdict for m in cmp.metrics} == {"no change"} and cmp.exit_code() == 0


def test_one_run_a_side_is_insufficient_evidence_with_the_interval_shown():
    cmp = compare_loadtests(BASE / "run1", NOPK / "run1")
    assert {m.verdict for m in cmp.metrics} == {"insufficient evidence"}
    assert cmp.metrics[0].change_lo is not None       # the within-run interval is still shown
    assert any("fewer than 2 a side" in n for n in cmp.notes)
    assert cmp.exit_code() == 0 and cmp.exit_code("insufficient") == 3
    assert compare_loadtests(BASE / "run1", NOPK / "run1", min_runs=1).verdict == "regressed"


def test_summaries_need_two_runs_a_side_and_say_so():
    one = compare(LT / "wrk_latency_ok.txt", LT / "wrk_socket_errors.txt")
    assert {m.verdict for m in one.metrics} == {"insufficient evidence"}
    assert any("only summaries" in n for n in one.notes)
    p95 = next(m for m in one.metrics if m.metric == "latency_p95")
    assert "not reported" in p95.reason                # wrk prints no p95


def test_minimum_practical_effect_and_metric_selection():
    cmp = compare_loadtests(BASE, NOPK, metrics=["throughput"],
                            min_effect={"throughput": 0.9})
    assert [m.metric for m in cmp.metrics] == ["throughput"]
    assert cmp.metrics[0].verdict == "no change"      # −76 % is below a 90 % minimum effect
    with pytest.raises(ConfigError):
        compare_loadtests(BASE, NOPK, metrics=["latency_p42"])


def test_summary_json_phase_over_phase(tmp_path):
    def summary(p95, lo, hi, path):
        path.write_text(json.dumps({"schema_version": 1, "run_id": path.stem, "sections": {
            "targets": [{"id": "target.api_p95", "label": "API p95", "value": p95,
                         "interval": [lo, hi], "n": 5000, "unit": "seconds"}],
            "changes": []}}))
        return path
    a = summary(0.200, 0.190, 0.210, tmp_path / "a.json")
    b = summary(0.003, 0.0028, 0.0032, tmp_path / "b.json")
    cmp = compare(a, b)
    assert cmp.kind == "summary" and cmp.metrics[0].verdict == "improved"
    assert compare(a, a).metrics[0].verdict == "no change"
    assert compare(b, a).exit_code() == 1


def test_two_windows_of_one_store(tmp_path):
    import pandas as pd

    from capplan.core.frame import make_frame
    from capplan.store import open_store

    rng = np.random.default_rng(3)
    t = pd.date_range("2026-11-01", periods=240, freq="1min", tz="UTC")
    v = np.r_[rng.normal(0.10, 0.01, 120), rng.normal(0.15, 0.01, 120)]
    frame = make_frame([{"timestamp": ts, "source": "app", "metric": "api_latency_seconds",
                         "labels": {}, "value": float(x), "kind": "gauge", "unit": "seconds"}
                        for ts, x in zip(t, v)])
    store = tmp_path / "m.sqlite"
    with open_store(store) as st:
        st.append(frame)
    w1, w2, w3 = (("2026-11-01T00:00Z", "2026-11-01T01:00Z"),
                  ("2026-11-01T01:00Z", "2026-11-01T02:00Z"),
                  ("2026-11-01T02:00Z", "2026-11-01T03:00Z"))
    bad = compare_store_windows(store, metrics=["api_latency_seconds"], baseline=w1,
                                candidate=w3)
    same = compare_store_windows(store, metrics=["api_latency_seconds"], baseline=w1,
                                 candidate=w2)
    assert bad.metrics[0].verdict == "regressed" and same.metrics[0].verdict == "no change"
    rc = main(["compare", "--store", str(store), "--metrics", "api_latency_seconds",
               "2026-11-01T00:00Z..2026-11-01T01:00Z", "2026-11-01T02:00Z..2026-11-01T03:00Z"])
    assert rc == 1
    assert main(["compare", "--store", str(store), "--metrics", "api_latency_seconds",
                 "yesterday", "2026-11-01T02:00Z..2026-11-01T03:00Z"]) == 2
    # a counter is compared as its per-second rate; more requests served is better
    served = np.cumsum(np.r_[rng.poisson(100, 120), rng.poisson(60, 120)]).astype(float)
    with open_store(store) as st:
        st.append(make_frame([{"timestamp": ts, "source": "app", "metric": "requests_total",
                               "labels": {}, "value": float(x), "kind": "counter",
                               "unit": "requests"} for ts, x in zip(t, served)]))
    fewer = compare_store_windows(store, metrics=["requests_total"], baseline=w1, candidate=w3,
                                  higher_is_better=["requests_total"])
    m = fewer.metrics[0]
    assert m.unit == "per_second" and m.baseline == pytest.approx(100 / 60, rel=0.1)
    assert m.verdict == "regressed"


def test_findings_for_the_handoff_are_plain_dicts():
    f = compare_loadtests(BASE, NOPK).to_findings()
    assert len(f) == 6 and json.loads(json.dumps(f)) == f
    tp = f[0]
    assert tp["id"] == "change.loadtest.throughput" and tp["section"] == "changes"
    assert tp["status"] == "regressed" and tp["display"]["verdict"] == "regressed"
    assert tp["extra"]["change_interval"][1] < 0


def test_params_section_and_flags(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_text("compare:\n  confidence: 0.9\n  min_effect: {throughput: 0.2}\n"
                 "  metrics: [throughput]\n")
    s = compare_settings(str(p), min_effect=["latency_p95=0.3"])
    assert s["conf"] == 0.9 and s["metrics"] == ("throughput",)
    assert s["min_effect"] == {"throughput": 0.2, "latency_p95": 0.3}
    p.write_text("compare:\n  confidance: 0.9\n")
    with pytest.raises(ConfigError, match="confidance"):
        compare_settings(str(p))


# ------------------------------------------------------------------------- CLI and writers


def test_cli_exit_codes(tmp_path, capsys):
    assert main(["compare", str(BASE), str(BASE)]) == 0
    assert main(["compare", str(BASE), str(NOPK)]) == 1
    assert main(["compare", str(BASE), str(tmp_path / "missing")]) == 2
    assert "capplan compare:" in capsys.readouterr().err
    garbage = tmp_path / "garbage.txt"
    garbage.write_text("hello\n")
    assert main(["compare", str(BASE), str(garbage)]) == 2
    assert main(["compare", str(BASE / "run1"), str(BASE / "run2")]) == 0
    assert main(["compare", str(BASE / "run1"), str(BASE / "run2"),
                 "--fail-on", "insufficient"]) == 3
    assert main(["compare", str(BASE), str(NOPK), "--confidence", "1.5"]) == 2
    assert main(["compare", str(BASE), str(NOPK), "--min-effect", "throughput"]) == 2


def test_cli_json_junit_and_markdown(tmp_path, capsys):
    from junitparser import Failure, JUnitXml, Skipped

    junit, md = tmp_path / "r" / "junit.xml", tmp_path / "r" / "compare.md"
    rc = main(["compare", str(BASE), str(NOPK), "--json", "--junit", str(junit),
               "--markdown", str(md)])
    assert rc == 1
    out = json.loads(capsys.readouterr().out)
    assert out["verdict"] == "regressed" and len(out["metrics"]) == 6
    xml = JUnitXml.fromfile(str(junit))
    cases = [c for suite in xml for c in suite]
    assert [c.name for c in cases] == list(SIX)
    failed = {c.name for c in cases if any(isinstance(r, Failure) for r in c.result)}
    assert {"throughput", "latency_mean", "latency_p50", "latency_p95"} <= failed
    assert "error_rate" not in failed
    text = md.read_text()
    rows = [ln for ln in text.splitlines() if ln.startswith("| ")]
    assert rows[0].startswith("| Metric | Baseline | Candidate | Change | Interval | Verdict")
    assert len(rows) == 7 and sum("regressed" in r for r in rows) >= 4
    assert "Throughput" in rows[1] and "/s" in rows[1]
    # insufficient evidence is skipped, or a failure with --fail-on insufficient
    one = compare_loadtests(BASE / "run1", BASE / "run2")
    for fail_on, kind in (("regression", Skipped), ("insufficient", Failure)):
        p = tmp_path / f"{fail_on}.xml"
        p.write_text(junit_xml(one, fail_on=fail_on))
        res = [r for s in JUnitXml.fromfile(str(p)) for c in s for r in c.result]
        assert len(res) == 6 and all(isinstance(r, kind) for r in res)
    assert "insufficient evidence" in markdown_table(one)


# ------------------------------------------------------------- honesty with real tools


def _pg_args(dsn: str) -> list[str]:
    from psycopg.conninfo import conninfo_to_dict

    d = conninfo_to_dict(dsn)
    return ["-h", d.get("host", "127.0.0.1"), "-p", str(d.get("port", 5432)),
            "-U", d.get("user", "postgres")]


@pytest.fixture(scope="module")
def pgbench_runs(pg_dsn, tmp_path_factory):
    """Real pgbench -S runs on loopback in a throwaway database: 10 of one configuration, then
    3 after dropping pgbench_accounts' primary key (every select becomes a sequential scan)."""
    import psycopg
    from psycopg.conninfo import make_conninfo

    if not shutil.which("pgbench"):
        pytest.fail("pgbench is not on PATH (apt-get install postgresql-client)", pytrace=False)
    db = f"capplan_cmp_{os.getpid()}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'drop database if exists "{db}"')
        conn.execute(f'create database "{db}"')
    args = _pg_args(pg_dsn)
    root = tmp_path_factory.mktemp("pgbench")
    try:
        subprocess.run(["pgbench", *args, "-i", "-s", "1", "-q", db], check=True,
                       capture_output=True, timeout=60)

        def run(name: str) -> Path:
            d = root / name
            d.mkdir()
            subprocess.run(["pgbench", *args, "-S", "-c", "2", "-j", "1", "-T", "1", "-l", db],
                           cwd=d, check=True, capture_output=True, timeout=30)
            return d

        same = [run(f"same{i}") for i in range(10)]
        with psycopg.connect(make_conninfo(pg_dsn, dbname=db), autocommit=True) as conn:
            conn.execute("alter table pgbench_accounts drop constraint pgbench_accounts_pkey")
        nopk = [run(f"nopk{i}") for i in range(3)]
    finally:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f'drop database if exists "{db}" with (force)')
    return same, nopk


def test_false_alarm_rate_on_real_same_configuration_pgbench_runs(pgbench_runs):
    """40 comparisons of two disjoint sets of 4 real runs of ONE configuration (drawn from 10
    runs): at least 95 % must be 'no change' in every metric.

    Why 4: on this host a run lands in one of two regimes (median ~0.03 or ~0.055 ms, the
    scheduler's placement of client and backends), so the comparisons drawn from ONE pool of
    recorded runs inherit that pool's regime mix: with 3 a side from 8 runs, 0, 1 and 6 of 40
    alarms in three recordings; with fresh runs for every pair (bench/compare_calibration.py,
    3 a side) 1 of 40."""
    same, _ = pgbench_runs
    recs = [read_run_records(d) for d in same]
    regimes = [round(float(np.nanmedian(r.latency_s)) * 1e3, 3) for r in recs]
    rng = np.random.default_rng(17)
    alarms, t0 = [], time.perf_counter()
    for k in range(40):
        idx = rng.permutation(len(recs))
        cmp = compare_runs([recs[i] for i in idx[:4]], [recs[i] for i in idx[4:8]], seed=k,
                           n_boot=300)
        bad = [m.reason for m in cmp.metrics if m.verdict != "no change"]
        if bad:
            alarms.append(bad)
    rate = len(alarms) / 40
    print(f"\nfalse alarms: {len(alarms)}/40 = {rate:.1%} (same configuration, 4 vs 4 real "
          f"pgbench runs; per-run medians {regimes} ms; {time.perf_counter() - t0:.1f} s)")
    assert rate <= 0.05, alarms
    # the same runs one against one: within-run intervals alone would cry wolf
    single = [compare_runs([recs[i]], [recs[i + 1]], min_runs=1, n_boot=300)
              for i in range(0, 10, 2)]
    flagged = sum(c.verdict != "no change" for c in single)
    print(f"single run vs single run (min_runs=1): {flagged}/{len(single)} flagged")


def test_real_induced_regression_dropping_the_primary_key_is_detected(pgbench_runs, tmp_path):
    same, nopk = pgbench_runs
    junit = tmp_path / "junit.xml"
    base = str(same[0].parent / "same[0-2]")
    cand = str(nopk[0].parent / "nopk*")
    rc = main(["compare", base, cand, "--junit", str(junit)])
    cmp = compare_loadtests(base, cand)
    print("\n" + "\n".join(m.reason for m in cmp.metrics))
    assert rc == 1 and cmp.verdict == "regressed"
    v = {m.metric: m.verdict for m in cmp.metrics}
    assert v["throughput"] == v["latency_mean"] == v["latency_p50"] == "regressed"


def _wrk(url: str, out: Path) -> Path:
    res = subprocess.run(["wrk", "-t1", "-c4", "-d1s", "--latency", url], capture_output=True,
                         text=True, timeout=30, check=True)
    out.write_text(res.stdout)
    return out


class _Quiet:
    """A threaded loopback HTTP server: ``/`` answers at once, ``/slow`` after 2 ms.  wrk drops
    its connections mid-response when its time is up; those broken pipes are not errors."""

    def __init__(self):
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self):
                if self.path.startswith("/slow"):
                    time.sleep(0.002)
                # one write: headers and body in separate segments meet Nagle and delayed
                # ACK on keep-alive connections (40 ms a request)
                self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")

            def log_message(self, *a):
                pass

        class S(ThreadingHTTPServer):
            daemon_threads = True

            def handle_error(self, request, client_address):
                pass

        self.httpd = S(("127.0.0.1", 0), H)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_real_wrk_against_a_local_server_with_an_added_2ms_delay(tmp_path):
    """3 real wrk runs a side (summaries only: the interval is between runs)."""
    if not shutil.which("wrk"):
        pytest.fail("wrk is not installed (apt-get install wrk)", pytrace=False)
    srv = _Quiet()
    try:
        for side, path in (("base", "/"), ("cand", "/slow")):
            (tmp_path / side).mkdir()
            for i in range(3):
                _wrk(srv.url(path), tmp_path / side / f"wrk{i}.txt")
    finally:
        srv.close()
    cmp = compare(tmp_path / "base", tmp_path / "cand")
    print("\n" + "\n".join(m.reason for m in cmp.metrics))
    v = {m.metric: m.verdict for m in cmp.metrics}
    # the gate fails on the median (+2 ms on ~0.2 ms); throughput and the mean move too, but
    # on a loaded 2-core host one slow run of the Python server can widen their 3-run interval
    assert cmp.verdict == "regressed" and v["latency_p50"] == "regressed"
    assert cmp.metrics[0].change < 0                        # and throughput went down
    assert v["latency_p95"] == "insufficient evidence"      # wrk prints no p95
    assert cmp.exit_code() == 1


def test_compare_from_params_for_the_handoff(tmp_path):
    from capplan.analysis.compare import compare_from_params

    assert compare_from_params({"baseline_loadtest": str(BASE)}) is None
    cmp = compare_from_params({"baseline_loadtest": "pgbench_select_baseline",
                               "candidate_loadtest": "pgbench_select_no_pkey",
                               "compare": {"metrics": ["throughput"], "min_runs": 3}},
                              base_dir=CMP)
    assert [m.metric for m in cmp.metrics] == ["throughput"]
    assert cmp.to_findings()[0]["status"] == "regressed"
    with pytest.raises(ConfigError):
        compare_from_params({"baseline_loadtest": "a", "candidate_loadtest": "b",
                             "compare": {"confidance": 0.9}})


def test_redis_benchmark_tests_are_compared_one_by_one(tmp_path):
    """Summaries of several tests (SET, GET ...) a run: each test is its own set of metrics;
    the candidate files are the real ones with GET's rps scaled (a mechanism test)."""
    import csv

    src = (LT / "redisbench_csv_7.0.txt").read_text().splitlines()
    rows = list(csv.reader(src))
    for i, f in enumerate((0.97, 1.0, 1.03)):
        (tmp_path / f"base{i}.csv").write_text("\n".join(src) + "\n")
        out = [rows[0]] + [[r[0], f"{float(r[1]) * (0.5 * f if r[0] == 'GET' else f):.2f}",
                            *r[2:]] for r in rows[1:]]
        (tmp_path / f"cand{i}.csv").write_text(
            "\n".join(",".join(f'"{c}"' for c in r) for r in out) + "\n")
    cmp = compare(sorted(str(p) for p in tmp_path.glob("base*.csv")),
                  sorted(str(p) for p in tmp_path.glob("cand*.csv")))
    v = {m.metric: m.verdict for m in cmp.metrics}
    assert v["GET:throughput"] == "regressed" and v["SET:throughput"] == "no change"
    assert v["GET:error_rate"] == "insufficient evidence"      # redis-benchmark counts none
    assert any("scenarios" in n for n in cmp.notes)
