"""pgbench summary (PG15 and transcribed pre-PG14 wordings), -P progress and aggregate logs."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from capplan.errors import ParseError
from capplan.loadtest.pgbench import (pgbench_summary_fields, read_pgbench_aggregate,
                                      read_pgbench_progress, read_pgbench_summary)


@pytest.fixture
def lt(fixtures_dir):
    return fixtures_dir / "loadtest"


def test_pg15_summary(lt):
    p = read_pgbench_summary(lt / "pgbench_summary_pg15.txt").iloc[0]
    assert p["tool"] == "pgbench" and p["scenario"] == "TPC-B (sort of)"
    assert p["concurrency"] == 4
    assert p["throughput_per_s"] == pytest.approx(1663.052060)
    assert p["latency_mean_s"] == pytest.approx(0.002396)
    assert p["requests"] == 4992 and p["errors"] == 0 and p["duration_s"] == 3
    assert math.isnan(p["latency_p95_s"])           # pgbench reports no percentiles
    f = pgbench_summary_fields((lt / "pgbench_summary_pg15.txt").read_text())
    assert f["tps_wording"] == "without initial connection time"
    assert f["threads"] == 2 and f["version"].startswith("15.20")


def test_reconnect_wording(lt):
    f = pgbench_summary_fields((lt / "pgbench_summary_reconnect_pg15.txt").read_text())
    assert f["tps"] == pytest.approx(275.426150)
    assert f["tps_wording"] == "including reconnection times"
    assert f["connection_time_ms"] == pytest.approx(3.539)
    assert read_pgbench_summary(lt / "pgbench_summary_reconnect_pg15.txt")["scenario"][0] == \
        "select only"


def test_old_wording_uses_excluding_connections(lt):
    p = read_pgbench_summary(lt / "pgbench_summary_pg11_transcribed.txt").iloc[0]
    assert p["throughput_per_s"] == pytest.approx(85.296346)     # not 85.184871 (including)
    assert p["requests"] == 10000 and p["concurrency"] == 10
    assert p["duration_s"] == pytest.approx(10000 / 85.296346)   # -t run: processed / tps
    assert math.isnan(p["latency_mean_s"])
    q = read_pgbench_summary(lt / "pgbench_summary_pg13_latency_transcribed.txt").iloc[0]
    assert q["throughput_per_s"] == pytest.approx(622.977698)
    assert q["latency_mean_s"] == pytest.approx(0.015844)


def test_summary_with_stderr_mixed_in(lt):
    p = read_pgbench_summary(lt / "pgbench_aggregate_pg15" / "summary_with_stderr.txt").iloc[0]
    assert p["throughput_per_s"] == pytest.approx(25875.476149) and p["requests"] == 103320


def test_truncated_summary_names_file_and_line(lt):
    with pytest.raises(ParseError) as ei:
        read_pgbench_summary(lt / "pgbench_summary_truncated.txt")
    assert ei.value.line == 8 and "pgbench_summary_truncated.txt:8" in str(ei.value)
    assert "tps" in str(ei.value)


def test_malformed_tps_names_line(lt):
    with pytest.raises(ParseError) as ei:
        read_pgbench_summary(lt / "pgbench_summary_bad_tps.txt")
    # names the line and the field, never the text found there (issue 10: no file content in
    # parse errors)
    assert ei.value.line == 14 and "tps: expected a number" in str(ei.value)
    assert "16x3.05" not in str(ei.value)


def test_stderr_is_not_a_summary(lt):
    with pytest.raises(ParseError, match="number of clients"):
        read_pgbench_summary(lt / "pgbench_progress_pg15_stderr.txt")


def test_progress_lines(lt):
    pts = read_pgbench_progress(lt / "pgbench_progress_pg15_stderr.txt", concurrency=4,
                                started_at="2026-11-23T15:46:57Z")
    assert len(pts) == 3
    assert list(pts["throughput_per_s"]) == pytest.approx([1343.8, 1773.0, 1872.1])
    assert list(pts["latency_mean_s"]) == pytest.approx([0.002944, 0.002253, 0.002129])
    assert list(pts["requests"]) == [1344, 1773, 1872]
    assert (pts["concurrency"] == 4).all() and (pts["errors"] == 0).all()
    assert pts["started_at"].iloc[2] == pd.Timestamp("2026-11-23T15:46:59Z")


def test_truncated_progress_line(lt):
    with pytest.raises(ParseError) as ei:
        read_pgbench_progress(lt / "pgbench_progress_truncated_line.txt")
    assert ei.value.line == 3


def test_aggregate_logs_merge_threads(lt):
    pts = read_pgbench_aggregate(lt / "pgbench_aggregate_pg15", concurrency=4)
    assert len(pts) == 4
    first = pts.iloc[0]
    assert first["requests"] == 8235 + 5214
    assert first["throughput_per_s"] == 8235 + 5214                    # 1 s intervals
    assert first["latency_mean_s"] == pytest.approx((890041 + 914148) / (8235 + 5214) / 1e6)
    assert first["started_at"] == pd.Timestamp(1795448822, unit="s", tz="UTC")
    assert pts["run_id"].iloc[0] == "pgbench_log.12956"
    # the same from an explicit file list
    files = sorted((lt / "pgbench_aggregate_pg15").glob("pgbench_log.*"))
    assert read_pgbench_aggregate(files)["requests"].sum() == pts["requests"].sum()


def test_truncated_aggregate_line(lt):
    with pytest.raises(ParseError) as ei:
        read_pgbench_aggregate(lt / "pgbench_aggregate_truncated.log")
    assert ei.value.line == 3 and "fields" in str(ei.value)
