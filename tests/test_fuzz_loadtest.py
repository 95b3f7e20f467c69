"""Fuzz suite over every load-test reader (issue 10, item 5): on any input a reader returns a
load-point table or raises a capplan error naming the file, never another exception, and never
quotes the file.

Two sources of cases: real fixture files (tests/fixtures/loadtest, the packaged demo sweep)
mutated byte- and line-wise with hostile numbers swapped in, and structured garbage in each
format's shape (known keys and columns, hostile values).  Each case goes through the format's
own reader and through :func:`read_loadtest`'s sniffing, and a table that comes back is turned
into a metrics frame as the store would.  Seeded and bounded: see tests/fuzzing.py.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capplan.loadtest import (POINT_COLUMNS, READERS, detect_format, points_to_frame,
                              read_loadtest)
from capplan.loadtest.samples import RAW_FORMATS, read_run_records
from fuzzing import CANARY, CASES, FUZZ, cell, hostile_number, mutated, report, typed_only

LT = Path(__file__).resolve().parent / "fixtures" / "loadtest"
DEMO = Path(__file__).resolve().parents[1] / "lib" / "capplan" / "data" / "demo_pgbench_sweep.csv"


def _head(path: Path, lines: int = 40) -> bytes:
    return b"\n".join(path.read_bytes().split(b"\n")[:lines]) + b"\n"


#: format -> (file name to write, seed files' bytes)
SEEDS: dict[str, tuple[str, list[bytes]]] = {
    "k6-summary": ("summary.json", [(LT / n).read_bytes() for n in
                                    ("k6_summary_export_v1.1.json",
                                     "k6_handle_summary_p99_v1.1.json")]),
    "k6-json": ("stream.ndjson", [_head(LT / "k6_stream_v1.1.ndjson")]),
    "k6-csv": ("stream.csv", [_head(LT / "k6_stream_v1.1.csv")]),
    "locust-stats": ("run_stats.csv", [(LT / n).read_bytes() for n in
                                       ("locust_2.47/run_stats.csv", "locust_2.47/full_stats.csv",
                                        "locust_1x_stats_transcribed.csv",
                                        "locust_stats_truncated.csv")]),
    "locust-history": ("run_stats_history.csv", [(LT / n).read_bytes() for n in
                                                 ("locust_2.47/run_stats_history.csv",
                                                  "locust_2.47/full_stats_history.csv",
                                                  "locust_history_truncated.csv")]),
    "pgbench-summary": ("pgbench.txt", [(LT / n).read_bytes() for n in
                                        ("pgbench_summary_pg15.txt",
                                         "pgbench_summary_pg11_transcribed.txt",
                                         "pgbench_summary_pg13_latency_transcribed.txt",
                                         "pgbench_summary_reconnect_pg15.txt",
                                         "pgbench_aggregate_pg15/summary_with_stderr.txt")]),
    "pgbench-progress": ("stderr.txt", [(LT / n).read_bytes() for n in
                                        ("pgbench_progress_pg15_stderr.txt",
                                         "pgbench_progress_truncated_line.txt")]),
    "pgbench-aggregate": ("pgbench_log.4242", [(LT / n).read_bytes() for n in
                                               ("pgbench_aggregate_pg15/pgbench_log.12956",
                                                "pgbench_aggregate_pg15/pgbench_log.12956.1",
                                                "pgbench_aggregate_truncated.log")]),
    "redis-benchmark": ("redis.csv", [(LT / n).read_bytes() for n in
                                      ("redisbench_csv_7.0.txt",
                                       "redisbench_csv_old_transcribed.txt",
                                       "redisbench_csv_truncated.txt")]),
    "wrk": ("wrk.txt", [(LT / n).read_bytes() for n in
                        ("wrk_latency_ok.txt", "wrk_non2xx_no_latency.txt",
                         "wrk_socket_errors.txt")]),
    "points": ("points.csv", [_head(DEMO, 12)]),
}
HISTORY_SEED = (LT / "locust_2.47" / "run_stats_history.csv").read_bytes()


def _check_reader(fmt: str, path: Path, case: int) -> None:
    """The property: the format's reader, the format sniffer and the sniffing dispatcher give
    typed errors only; a table that comes back has the documented columns and converts to a
    metrics frame; the raw-records reader of ``capplan compare`` gives typed errors only.  (The
    dispatcher, the frame and the raw reader, which parse again, run on every 4th case:
    pandas costs ~10 ms a table and the suite has a time budget.)"""
    pts = typed_only(lambda: READERS[fmt](path))
    typed_only(lambda: detect_format(path))
    if case % 4 == 0:
        auto = typed_only(lambda: read_loadtest(path))
        pts = auto if pts is None else pts
        if pts is not None:
            typed_only(lambda: points_to_frame(pts))
    if case % 4 == 1 and fmt in RAW_FORMATS:  # capplan compare's finest-grain reader
        typed_only(lambda: read_run_records(path))
    if pts is not None:
        assert list(pts.columns) == list(POINT_COLUMNS)


def _workdir(tmp_path_factory, name: str) -> Path:
    return tmp_path_factory.mktemp(name)


# -- real files, mutated ------------------------------------------------------------------------

MUTATED_EXAMPLES = 200


@pytest.mark.parametrize("fmt", sorted(SEEDS))
def test_fuzz_mutated_fixture_files(fmt, tmp_path_factory):
    name, seeds = SEEDS[fmt]
    work = _workdir(tmp_path_factory, f"mut-{fmt}")

    @settings(FUZZ, max_examples=MUTATED_EXAMPLES)
    @given(data=st.data())
    def run(data):
        seed = seeds[data.draw(st.integers(0, len(seeds) - 1))]
        raw = data.draw(mutated(seed))
        target = work / name
        if fmt in ("k6-json", "k6-csv") and data.draw(st.booleans()):
            gz = gzip.compress(raw, mtime=0)
            raw = gz[:data.draw(st.integers(1, len(gz)))] if data.draw(st.booleans()) else gz
            target = work / (name + ".gz")
        for old in work.iterdir():
            old.unlink()
        target.write_bytes(raw)
        if fmt == "locust-stats" and data.draw(st.booleans()):  # a sibling history is read too
            (work / "run_stats_history.csv").write_bytes(data.draw(mutated(HISTORY_SEED)))
        CASES[f"mutated {fmt}"] += 1
        _check_reader(fmt, target, CASES[f"mutated {fmt}"])

    run()


# -- structured garbage in each format's shape ------------------------------------------------

def json_value(depth: int = 2):
    leaf = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(10**400), max_value=10**400),
                     st.floats(), hostile_number(), st.text(max_size=8), st.just(CANARY))
    return st.recursive(leaf, lambda c: st.lists(c, max_size=3)
                        | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=4)


K6_METRICS = ("http_reqs", "http_req_duration", "http_req_failed", "iterations",
              "iteration_duration", "vus", "vus_max", CANARY)
K6_STATS = ("count", "rate", "avg", "med", "p(95)", "p(99)", "max", "min", "passes", "fails",
            "value", "thresholds", "type", "values", CANARY)


@st.composite
def k6_summary(draw) -> bytes:
    stat = st.dictionaries(st.sampled_from(K6_STATS), json_value(), max_size=6)
    metric = st.one_of(stat, st.fixed_dictionaries({"type": st.sampled_from(("trend", "counter")),
                                                    "values": stat}), json_value())
    doc = {"metrics": draw(st.dictionaries(st.sampled_from(K6_METRICS), metric, max_size=5))}
    if draw(st.booleans()):
        doc["state"] = draw(st.one_of(json_value(), st.fixed_dictionaries(
            {"testRunDurationMs": json_value()})))
    if draw(st.integers(0, 9)) == 0:
        return json.dumps(draw(json_value())).encode()
    return json.dumps(doc).encode()


@st.composite
def k6_ndjson(draw) -> bytes:
    time = st.one_of(hostile_number(), st.datetimes().map(lambda d: d.isoformat() + "Z"),
                     json_value())
    point = st.fixed_dictionaries({
        "type": st.sampled_from(("Point", "Metric", "Point", CANARY)),
        "metric": st.one_of(st.sampled_from(K6_METRICS), json_value()),
        "data": st.one_of(st.fixed_dictionaries({"time": time, "value": json_value()}),
                          json_value()),
    })
    lines = draw(st.lists(point, min_size=1, max_size=6))
    return ("\n".join(json.dumps(x) for x in lines) + "\n").encode()


CSV_COLUMNS = {
    "k6-csv": ("metric_name", "timestamp", "metric_value", "check", "url"),
    "locust-stats": ("Type", "Name", "Request Count", "Failure Count", "Requests/s",
                     "Average Response Time", "Median Response Time", "50%", "95%", "99%",
                     "# requests"),
    "locust-history": ("Timestamp", "User Count", "Type", "Name", "Total Request Count",
                       "Total Failure Count", "Total Average Response Time", "Requests/s", "50%",
                       "95%", "99%"),
    "redis-benchmark": ("test", "rps", "avg_latency_ms", "p50_latency_ms", "p95_latency_ms",
                        "p99_latency_ms"),
    "points": POINT_COLUMNS,
}


@st.composite
def csv_garbage(draw, fmt: str) -> bytes:
    names = CSV_COLUMNS[fmt]
    header = draw(st.lists(st.sampled_from(names), min_size=1, max_size=len(names) + 1,
                           unique=True))
    if draw(st.integers(0, 4)) == 0:
        header.append(draw(cell()))
    width = len(header)
    special = {"Name": st.sampled_from(("Aggregated", "Total", "/", CANARY)),
               "Type": st.sampled_from(("", "None", "GET", CANARY)),
               "metric_name": st.sampled_from(K6_METRICS),
               "test": st.sampled_from(("GET", "SET", CANARY))}
    rows = []
    for _ in range(draw(st.integers(0, 6))):
        n = width if draw(st.integers(0, 9)) else draw(st.integers(0, width + 2))
        rows.append([draw(special.get(header[i], cell()) if i < width else cell())
                     for i in range(n)])
    quote = draw(st.booleans())

    def fmt_row(r):
        return ",".join(('"%s"' % c.replace('"', '""')) if quote else c for c in r)

    return ("\n".join([fmt_row(header)] + [fmt_row(r) for r in rows]) + "\n").encode(
        "utf-8", errors="surrogatepass")


TEMPLATES = {
    "pgbench-summary": (
        "pgbench (16.1)\ntransaction type: <builtin: TPC-B (sort of)>\nnumber of clients: {0}\n"
        "number of threads: {1}\nduration: {2} s\nnumber of transactions actually processed: {3}\n"
        "number of failed transactions: {4} (0.000%)\nlatency average = {5} ms\n"
        "initial connection time = {6} ms\ntps = {7} (without initial connection time)\n",
        "transaction type: <builtin: select only>\nnumber of clients: {0}\n"
        "number of transactions per client: {1}\nnumber of transactions actually processed: "
        "{2}/{3}\nlatency average = {4} ms\ntps = {5} (including connections establishing)\n"
        "tps = {6} (excluding connections establishing)\n",
    ),
    "pgbench-progress": (
        "progress: {0} s, {1} tps, lat {2} ms stddev {3}, {4} failed\n"
        "progress: {5} s, {6} tps, lat {7} ms stddev {3}\n",
        "starting vacuum...end.\nprogress: {0} s, {1} tps, lat {2} ms stddev {3}, lag {4} ms\n",
    ),
    "pgbench-aggregate": (
        "{0} {1} {2} {3} {4} {5}\n{6} {1} {2} {3} {4} {5}\n",
        "{0} {1} {2} {3} {4} {5} 0 0 0 0 {6} {7} 1 0 0\n1700000001 {1} {2} {3} {4} {5} 0 0 0 0 "
        "{6} {7} 1 0 0\n",
    ),
    "wrk": (
        "Running {0}s test @ http://127.0.0.1:8080/\n  {1} threads and {2} connections\n"
        "  Thread Stats   Avg      Stdev     Max   +/- Stdev\n    Latency   {3}ms  {4}us  {5}s "
        "  {6}%\n  Latency Distribution\n     50%  {7}ms\n     99%  {3}s\n"
        "  {6} requests in {5}m, {4}MB read\nSocket errors: connect {1}, read {2}, write 0, "
        "timeout {6}\nNon-2xx or 3xx responses: {7}\nRequests/sec:  {0}\nTransfer/sec: 1MB\n",
    ),
}


@st.composite
def template_garbage(draw, fmt: str) -> bytes:
    tpl = draw(st.sampled_from(TEMPLATES[fmt]))
    vals = [draw(st.one_of(hostile_number(), st.sampled_from(("1", "10", "100", "1.5"))))
            for _ in range(8)]
    return tpl.format(*vals).encode("utf-8", errors="surrogatepass")


STRUCTURED = {
    "k6-summary": k6_summary(),
    "k6-json": k6_ndjson(),
    **{fmt: csv_garbage(fmt) for fmt in CSV_COLUMNS},
    **{fmt: template_garbage(fmt) for fmt in TEMPLATES},
}
STRUCTURED_EXAMPLES = {"k6-summary": 160, "k6-json": 160}
STRUCTURED_DEFAULT = 130


@pytest.mark.parametrize("fmt", sorted(STRUCTURED))
def test_fuzz_structured_garbage(fmt, tmp_path_factory):
    name = SEEDS[fmt][0]
    work = _workdir(tmp_path_factory, f"gen-{fmt}")

    @settings(FUZZ, max_examples=STRUCTURED_EXAMPLES.get(fmt, STRUCTURED_DEFAULT))
    @given(raw=STRUCTURED[fmt])
    def run(raw):
        target = work / name
        target.write_bytes(raw)
        CASES[f"structured {fmt}"] += 1
        _check_reader(fmt, target, CASES[f"structured {fmt}"])

    run()


def test_fuzz_loadtest_case_count(request):
    """At least 3,500 load-test cases ran, all without a traceback (printed to the terminal)."""
    names = tuple(sorted(k for k in CASES if k.startswith(("mutated ", "structured "))))
    expected = [f"mutated {f}" for f in SEEDS] + [f"structured {f}" for f in STRUCTURED]
    if any(CASES[k] == 0 for k in expected):
        pytest.skip("counts cover the whole module; run all of tests/test_fuzz_loadtest.py")
    report(request, "load-test fuzz", names, minimum=3500)
    cli = ("usl generated", "usl mutated", "forecast generated", "forecast mutated")
    if all(CASES[k] for k in cli):  # tests/test_fuzz_cli.py ran first in this session
        report(request, "fuzz suite total", names + cli, minimum=5000)


def test_typed_only_catches_a_traceback():
    """The property itself can fail: a raw exception propagates, a quoting error is caught."""
    from capplan.errors import ParseError

    with pytest.raises(ZeroDivisionError):
        typed_only(lambda: 1 / 0)
    with pytest.raises(AssertionError, match="quotes"):
        typed_only(lambda: (_ for _ in ()).throw(ParseError(f"bad {CANARY}")))
    assert typed_only(lambda: (_ for _ in ()).throw(ParseError("bad"))) is None
    assert isinstance(typed_only(lambda: pd.DataFrame()), pd.DataFrame)
