"""read_loadtest / detect_format: the reader is chosen from the content."""

from __future__ import annotations

import pytest

from capplan.errors import ConfigError, ParseError
from capplan.loadtest import detect_format, read_loadtest

CASES = [
    ("k6_summary_export_v1.1.json", "k6-summary"),
    ("k6_handle_summary_p99_v1.1.json", "k6-summary"),
    ("k6_stream_v1.1.ndjson", "k6-json"),
    ("k6_stream_v1.1.csv", "k6-csv"),
    ("locust_2.47/run_stats.csv", "locust-stats"),
    ("locust_1x_stats_transcribed.csv", "locust-stats"),
    ("locust_2.47/run_stats_history.csv", "locust-history"),
    ("pgbench_summary_pg15.txt", "pgbench-summary"),
    ("pgbench_summary_pg11_transcribed.txt", "pgbench-summary"),
    ("pgbench_progress_pg15_stderr.txt", "pgbench-progress"),
    ("pgbench_aggregate_pg15", "pgbench-aggregate"),
    ("pgbench_aggregate_pg15/pgbench_log.12956", "pgbench-aggregate"),
    ("redisbench_csv_7.0.txt", "redis-benchmark"),
    ("redisbench_csv_old_transcribed.txt", "redis-benchmark"),
    ("wrk_latency_ok.txt", "wrk"),
]


@pytest.mark.parametrize("name,fmt", CASES)
def test_detect_and_read(fixtures_dir, name, fmt):
    path = fixtures_dir / "loadtest" / name
    assert detect_format(path) == fmt
    pts = read_loadtest(path)
    assert len(pts) >= 1 and (pts["throughput_per_s"] > 0).all()


def test_tool_mismatch_and_unknown(fixtures_dir):
    lt = fixtures_dir / "loadtest"
    with pytest.raises(ConfigError, match="looks like wrk"):
        read_loadtest(lt / "wrk_latency_ok.txt", tool="pgbench")
    with pytest.raises(ConfigError, match="unknown load-test tool"):
        read_loadtest(lt / "wrk_latency_ok.txt", tool="jmeter")
    assert read_loadtest(lt / "pgbench_summary_pg15.txt", tool="pgbench")["concurrency"][0] == 4


def test_unrecognised_content(tmp_path):
    f = tmp_path / "notes.txt"
    f.write_text("hello\n")
    with pytest.raises(ParseError, match="unrecognised"):
        read_loadtest(f)
