"""Hostile load-test files (issue 10, items 3 and 5): typed errors naming file and line, never a
traceback, and never the file's content in the message.

Each ``test_issue10_*`` case is an input of the issue's adversarial pass that crashed a reader
with a raw exception; the fuzz suite (tests/test_fuzz_loadtest.py) generalises them.
"""

from __future__ import annotations

import gzip
import traceback

import pytest

from capplan.errors import CapplanError, ParseError
from capplan.loadtest import READERS, read_loadtest
from capplan.loadtest._io import number


def write(tmp_path, name: str, text: str):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


# -- the issue's examples --------------------------------------------------------------------

def test_issue10_k6_ndjson_point_with_number_data_is_a_parse_error(tmp_path):
    """``{"type":"Point","data":8}`` was a TypeError at k6.py:208."""
    p = write(tmp_path, "run.ndjson", '{"type":"Point","data":8}\n')
    with pytest.raises(ParseError) as ei:
        read_loadtest(p, tool="k6-json")
    assert ei.value.path == str(p) and ei.value.line == 1
    assert "data object" in ei.value.message


def test_issue10_k6_csv_timestamp_1e30_is_a_parse_error(tmp_path):
    """A k6 CSV timestamp ``1e30`` was an OutOfBoundsDatetime."""
    p = write(tmp_path, "run.csv", "metric_name,timestamp,metric_value\n"
                                   "http_reqs,1700000000,1\nhttp_reqs,1e30,1\n")
    with pytest.raises(ParseError) as ei:
        read_loadtest(p, tool="k6-csv")
    assert ei.value.line == 3 and "unix time" in ei.value.message


def test_issue10_pgbench_processed_1e300_is_a_parse_error(fixtures_dir, tmp_path):
    """``processed: 1e300`` in a ``-t`` run (duration = processed / tps) was an OverflowError
    at points.py:110 (file mtime minus 1e298 s)."""
    text = (fixtures_dir / "loadtest" / "pgbench_summary_pg11_transcribed.txt").read_text().replace(
        "processed: 10000/10000", "processed: 1e300")
    p = write(tmp_path, "pgbench.txt", text)
    with pytest.raises(ParseError) as ei:
        read_loadtest(p, tool="pgbench-summary")
    assert ei.value.path == str(p) and "duration" in ei.value.message
    assert ei.value.hint


def test_issue10_pgbench_progress_92203685478_s_is_a_parse_error(tmp_path):
    """``progress: 92203685478 s`` (past pandas' 292-year Timedelta) was OutOfBoundsTimedelta."""
    p = write(tmp_path, "stderr.txt", "progress: 1.0 s, 10.0 tps, lat 1.0 ms stddev 0.1\n"
                                      "progress: 92203685478 s, 10.0 tps, lat 1.0 ms stddev 0.1\n")
    with pytest.raises(ParseError) as ei:
        read_loadtest(p, tool="pgbench-progress")
    assert ei.value.line == 2 and "progress time" in ei.value.message


# -- root causes the fuzz suite found, one test each ------------------------------------------

@pytest.mark.parametrize("tool,name,text,line", [
    # a 5000-digit integer: json.loads raises ValueError (not JSONDecodeError) on Python 3.11+
    ("k6-summary", "s.json", '{"metrics": {"http_reqs": {"count": ' + "9" * 5000 + "}}}", None),
    # deep nesting: RecursionError
    ("k6-summary", "s.json", "[" * 100_000 + "]" * 100_000, None),
    # an integer beyond the float range: OverflowError in float()
    ("k6-summary", "s.json", '{"metrics": {"http_reqs": {"count": 1' + "0" * 400 + ', "rate": 1}}}',
     None),
    # 'values' that is not an object, thresholds that are a list
    ("k6-summary", "s.json", '{"metrics": {"vus": {"type": "gauge", "values": {"max": 1}}, '
                             '"http_reqs": {"type": "counter", "values": "count rate"}}}', 1),

    ("k6-json", "s.ndjson", '{"type":"Point","metric":["a"],"data":{"time":"2024-01-01T00:00:00Z",'
                            '"value":1}}\n', 1),
    ("k6-json", "s.ndjson", '{"type":"Point","metric":"m","data":{"time":12,"value":1}}\n', 1),
    ("k6-json", "s.ndjson", '{"type":"Point","metric":"m","data":{"time":"yesterday",'
                            '"value":1}}\n', 1),
    ("k6-csv", "s.csv", "metric_name,timestamp,metric_value\nm,nan,1\n", 2),
    ("pgbench-progress", "p.txt", "progress: 1.2.3 s, 10.0 tps, lat 1.0 ms stddev 0.1\n", 1),
    ("pgbench-aggregate", "pgbench_log.1", "1e30 10 100 1000 5 20\n1e30 10 100 1000 5 20\n", 1),
    ("wrk", "w.txt", "Running 1s test @ http://x\n  1 threads and 2 connections\n"
                     "  100 requests in 1..2s, 1KB read\nRequests/sec: 100\n", 3),
    ("wrk", "w.txt", "Running 1s test @ http://x\n  1 threads and 2 connections\n"
                     "  100 requests in 99999999999h, 1KB read\nRequests/sec: 100\n", 3),
    ("redis-benchmark", "r.csv", '"test","rps"\n"GET","' + "x" * 200_000 + '"\n', 2),
    ("locust-history", "l_stats_history.csv",
     "Timestamp,User Count,Type,Name,Total Request Count,Total Failure Count\n"
     "1e30,1,,Aggregated,10,0\n", 2),
])
def test_fuzz_found_inputs_raise_parse_errors(tmp_path, tool, name, text, line):
    p = write(tmp_path, name, text)
    with pytest.raises(ParseError) as ei:
        READERS[tool](p)
    assert ei.value.path == str(p)
    if line is not None:
        assert ei.value.line == line


@pytest.mark.parametrize("line", [
    '{"type":"Point","metric":"http_req_duration","data":8}',
    '{"type":"Point","metric":"http_req_duration","data":{"time":"yesterday","value":1}}',
    '{"type":"Point","metric":"http_req_duration","data":{"time":7,"value":1}}',
    '{"type":"Point","metric":"http_req_duration","data":{"time":"2024-01-01T00:00:00Z",'
    '"value":' + "9" * 5000 + '}}',
])
def test_compare_raw_k6_reader_raises_parse_errors(tmp_path, line):
    from capplan.loadtest.samples import read_run_records

    p = write(tmp_path, "run.ndjson", line + "\n")
    with pytest.raises(ParseError) as ei:
        read_run_records(p, tool="k6-json")
    assert ei.value.path == str(p) and ei.value.line == 1


def test_k6_thresholds_of_the_wrong_shape(tmp_path):
    from capplan.loadtest import k6_thresholds

    p = write(tmp_path, "s.json", '{"metrics": {"http_reqs": {"thresholds": ["rate>0"]}}}')
    with pytest.raises(ParseError, match="thresholds"):
        k6_thresholds(p)
    p = write(tmp_path, "h.json", '{"metrics": {"http_reqs": {"type": "counter", "values": {}, '
                                  '"thresholds": {"rate>0": 1}}}}')
    assert k6_thresholds(p) == {"http_reqs": {"rate>0": False}}


def test_pgbench_inf_tps_is_not_measured(tmp_path):
    """pgbench prints ``inf``/``nan`` tps for an empty interval: NaN, not a crash or a ParseError."""
    p = write(tmp_path, "p.txt", "progress: 1.0 s, inf tps, lat nan ms stddev nan\n"
                                 "progress: 2.0 s, 10.0 tps, lat 1.0 ms stddev 0.1\n")
    pts = READERS["pgbench-progress"](p, concurrency=1)
    assert pts["throughput_per_s"].isna().tolist() == [True, False]


def test_number_refuses_infinity_unless_missing_is_allowed():
    with pytest.raises(ParseError, match="infinite"):
        number("1e400", path="f", line=3, what="x")
    assert number("inf", path="f", line=3, what="x", allow_na=True) != \
        number("inf", path="f", line=3, what="x", allow_na=True)  # NaN


# -- never quote a file's content (issue 10, item 3) --------------------------------------------

CANARY = "Zq7CANARYsecret9x"

# shapes a secret file takes, and shapes that walk far into each parser before failing
SECRET_FILES = {
    "pgpass": f"localhost:5432:*:capplan:{CANARY}\n",
    "env": f"PGPASSWORD={CANARY}\nexport TOKEN={CANARY}\n",
    "bare": f"{CANARY}\n",
    "json": '{"password": "%s", "metrics": {"http_reqs": {"count": "%s"}}}' % (CANARY, CANARY),
    "ndjson": '{"type":"Point","metric":"%s","data":{"time":"%s","value":"%s"}}\n' % (
        CANARY, CANARY, CANARY),
    "ndjson_metric": '{"type":"Metric","data":"%s"}\n{"type":"Point","data":{"time":"%s",'
                     '"value":1}}\n' % (CANARY, CANARY),
    "k6csv": f"metric_name,timestamp,metric_value\n{CANARY},{CANARY},{CANARY}\n",
    "k6csv_time": f"metric_name,timestamp,metric_value\nhttp_reqs,{CANARY},1\n",
    "csv_header": f"{CANARY},{CANARY}2\n1,2\n",
    "locust": f"Type,Name,Request Count,Failure Count,Requests/s\n,Aggregated,{CANARY},0,1\n",
    "locust_hist": f"Timestamp,User Count,Type,Name,Total Request Count,Total Failure Count\n"
                   f"{CANARY},1,,Aggregated,1,0\n",
    "pgbench": f"number of clients: {CANARY}\ntps = {CANARY} (without initial connection time)\n"
               f"latency average = {CANARY} ms\n",
    "pgbench_lat": f"number of clients: 1\nlatency average = {CANARY}\ntps = 1\n",
    "progress": f"progress: {CANARY} s, 1 tps, lat 1 ms stddev 1\nprogress: 1.0 s, {CANARY}\n",
    "agg": f"1 2 3 4 5 {CANARY}\n",
    "redis": f'"test","rps"\n"{CANARY}","{CANARY}"\n',
    "redis_old": f'"{CANARY}","1.0"\n"GET","{CANARY}"\n',
    "wrk": f"Running 1s test @ {CANARY}\n  1 threads and 2 connections\n  Latency {CANARY}\n"
           f"Socket errors: {CANARY}\nRequests/sec: {CANARY}\n",
    "wrk_time": f"Running 1s test @ http://x\n  1 threads and 2 connections\n"
                f"  Latency {CANARY}s 1ms 1ms 1%\n  1 requests in {CANARY}, 1KB read\n",
    "points": f"run_id,tool,concurrency,throughput_per_s,started_at\nr,k6,{CANARY},1,{CANARY}\n",
    "series": f"timestamp,value\n{CANARY},{CANARY}\n2024-01-01T00:00:00Z,{CANARY}\n",
}


def _no_canary(exc: BaseException) -> None:
    text = "".join(traceback.format_exception(exc))  # message, hint and every chained cause
    assert CANARY not in text, text[-2000:]


@pytest.mark.parametrize("shape", sorted(SECRET_FILES))
def test_parse_errors_never_quote_the_file(tmp_path, shape):
    from capplan.collect.files import read_series_csv

    p = write(tmp_path, "result_stats.csv", SECRET_FILES[shape])
    calls = [lambda f=f: f(p) for f in READERS.values()]
    calls += [lambda: read_loadtest(p), lambda: read_series_csv(p)]
    for call in calls:
        try:
            call()
        except CapplanError as exc:
            _no_canary(exc)


@pytest.mark.parametrize("shape", sorted(SECRET_FILES))
def test_cli_never_echoes_the_file(tmp_path, shape, capsys):
    from capplan.cli import main

    p = write(tmp_path, "result.csv", SECRET_FILES[shape])
    for argv in (["usl", str(p)], ["usl", str(p), "--json"], ["usl", str(p), "--n-col", "x"],
                 ["forecast", str(p), "--horizon", "24"]):
        try:
            main(argv)
        except SystemExit:  # argparse refusing an argument (not the file)
            pass
        out = capsys.readouterr()
        assert CANARY not in out.err and CANARY not in out.out, (argv, out.err)


def test_gzipped_k6_garbage_names_the_file_not_the_bytes(tmp_path):
    p = tmp_path / "run.ndjson.gz"
    p.write_bytes(gzip.compress(f"\xff{CANARY}".encode("latin-1"))[:-4])  # truncated stream
    with pytest.raises(ParseError) as ei:
        read_loadtest(p, tool="k6-json")
    assert ei.value.path == str(p)
    _no_canary(ei.value)
