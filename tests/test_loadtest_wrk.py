"""wrk 4.1 text reports: unit suffixes, optional Latency Distribution and error lines."""

from __future__ import annotations

import math

import pytest

from capplan.errors import ParseError
from capplan.loadtest.wrk import read_wrk, wrk_count, wrk_time_s


@pytest.fixture
def lt(fixtures_dir):
    return fixtures_dir / "loadtest"


def test_latency_report(lt):
    p = read_wrk(lt / "wrk_latency_ok.txt").iloc[0]
    assert p["concurrency"] == 8 and p["scenario"] == "http://127.0.0.1:18481/"
    assert p["throughput_per_s"] == pytest.approx(8001.83)
    assert p["latency_mean_s"] == pytest.approx(1.05e-3)
    assert p["latency_p50_s"] == pytest.approx(783.00e-6)
    assert p["latency_p99_s"] == pytest.approx(4.73e-3)
    assert math.isnan(p["latency_p95_s"])
    assert p["requests"] == 16804 and p["duration_s"] == pytest.approx(2.10)
    assert p["errors"] == 0                          # no error lines printed


def test_non2xx_without_latency_distribution(lt):
    p = read_wrk(lt / "wrk_non2xx_no_latency.txt").iloc[0]
    assert p["errors"] == 20244 and math.isnan(p["latency_p50_s"])
    assert p["latency_mean_s"] == pytest.approx(464.76e-6)


def test_socket_errors(lt):
    p = read_wrk(lt / "wrk_socket_errors.txt").iloc[0]
    assert p["errors"] == 17 and p["concurrency"] == 16
    assert p["latency_p99_s"] == pytest.approx(12.32e-3)


def test_units():
    assert wrk_time_s("1.00m") == 60 and wrk_time_s("2.5s") == 2.5
    assert wrk_count("4.12k") == pytest.approx(4120)
    with pytest.raises(ParseError):
        wrk_time_s("12 parsecs")


def test_truncated(lt, tmp_path):
    lines = (lt / "wrk_latency_ok.txt").read_text().splitlines()
    bad = tmp_path / "w.txt"
    bad.write_text("\n".join(lines[:9]) + "\n")
    with pytest.raises(ParseError) as ei:
        read_wrk(bad)
    assert ei.value.line == 9 and "truncated" in str(ei.value)


def test_bad_latency_value_names_line(lt, tmp_path):
    text = (lt / "wrk_latency_ok.txt").read_text().replace("783.00us", "783.00xx")
    bad = tmp_path / "w.txt"
    bad.write_text(text)
    with pytest.raises(ParseError) as ei:
        read_wrk(bad)
    assert ei.value.line == 7
