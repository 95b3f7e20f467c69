"""redis-benchmark --csv: the 7.0 header format and the old headerless two-column one."""

from __future__ import annotations

import math

import pytest

from capplan.errors import ParseError
from capplan.loadtest.redisbench import parse_redisbench_csv, read_redisbench_csv


@pytest.fixture
def lt(fixtures_dir):
    return fixtures_dir / "loadtest"


def test_new_format(lt):
    pts = read_redisbench_csv(lt / "redisbench_csv_7.0.txt", concurrency=10, requests=5000)
    assert list(pts["scenario"]) == ["SET", "GET", "INCR", "LPUSH"]
    get = pts.iloc[1]
    assert get["throughput_per_s"] == pytest.approx(75757.58)
    assert get["latency_mean_s"] == pytest.approx(0.080e-3)
    assert get["latency_p50_s"] == pytest.approx(0.071e-3)
    assert get["latency_p95_s"] == pytest.approx(0.103e-3)
    assert get["latency_p99_s"] == pytest.approx(0.175e-3)
    assert get["duration_s"] == pytest.approx(5000 / 75757.58)
    assert (pts["concurrency"] == 10).all()


def test_columns_by_name_not_position():
    text = ('"p99_latency_ms","rps","test","avg_latency_ms"\n'
            '"0.5","1000.00","GET","0.2"\n')
    p = parse_redisbench_csv(text).iloc[0]
    assert p["scenario"] == "GET" and p["throughput_per_s"] == 1000
    assert p["latency_p99_s"] == pytest.approx(0.0005) and math.isnan(p["latency_p95_s"])


def test_old_format(lt):
    pts = read_redisbench_csv(lt / "redisbench_csv_old_transcribed.txt")
    assert len(pts) == 7 and pts.loc[2, "scenario"] == "SET"
    assert pts.loc[2, "throughput_per_s"] == pytest.approx(48923.68)
    assert pts["latency_mean_s"].isna().all()


def test_truncated(lt):
    with pytest.raises(ParseError) as ei:
        read_redisbench_csv(lt / "redisbench_csv_truncated.txt")
    assert ei.value.line == 2


def test_old_format_bad_row():
    with pytest.raises(ParseError) as ei:
        parse_redisbench_csv('"SET","1.0"\n"GET"\n', path="x.csv")
    assert ei.value.line == 2 and "x.csv:2" in str(ei.value)
