"""Locust 2.47 _stats.csv / _stats_history.csv (cumulative vs windowed) and the old header."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from capplan.errors import ParseError
from capplan.loadtest.locust import read_locust_history, read_locust_stats


@pytest.fixture
def lt(fixtures_dir):
    return fixtures_dir / "loadtest"


def test_stats_aggregated_row(lt):
    pts = read_locust_stats(lt / "locust_2.47" / "run_stats.csv")
    assert len(pts) == 1
    p = pts.iloc[0]
    assert p["scenario"] == "" and p["run_id"] == "run"
    assert p["requests"] == 336 and p["errors"] == 61
    assert p["throughput_per_s"] == pytest.approx(67.69389072120569)
    assert p["latency_mean_s"] == pytest.approx(2.748227458334828e-3)
    assert (p["latency_p50_s"], p["latency_p95_s"], p["latency_p99_s"]) == \
        pytest.approx((0.002, 0.005, 0.008))
    assert p["concurrency"] == 4                       # from the sibling history file
    assert p["started_at"] == pd.Timestamp(1795448889, unit="s", tz="UTC")


def test_stats_endpoints(lt):
    pts = read_locust_stats(lt / "locust_2.47" / "run_stats.csv", include_endpoints=True,
                            concurrency=7)
    assert list(pts["scenario"]) == ["GET /", "GET /fail", ""]
    assert pts.loc[1, "errors"] == 61 and pts.loc[0, "latency_p99_s"] == pytest.approx(0.011)
    assert (pts["concurrency"] == 7).all()


def test_old_header_aliases(lt):
    p = read_locust_stats(lt / "locust_1x_stats_transcribed.csv").iloc[0]
    assert p["requests"] == 336 and p["errors"] == 61
    assert math.isnan(p["concurrency"])                  # no history file next to it


def test_history_cumulative_percentiles(lt):
    pts = read_locust_history(lt / "locust_2.47" / "run_stats_history.csv")
    assert list(pts["concurrency"]) == [2, 4]
    first, second = pts.iloc[0], pts.iloc[1]
    assert first["requests"] == 38 and first["errors"] == 8 and first["duration_s"] == 1
    # the first step starts from zero requests, so cumulative percentiles are its own
    assert first["latency_p95_s"] == pytest.approx(0.030)
    assert second["requests"] == 336 - 38 and second["duration_s"] == 4
    assert second["throughput_per_s"] == pytest.approx(298 / 4)
    assert second["errors"] == 61 - 8
    assert second["latency_mean_s"] == pytest.approx(
        (2.748227458334828 * 336 - 4.211105815791801 * 38) / 298 / 1e3)
    assert math.isnan(second["latency_p95_s"])          # cumulative since start: not usable


def test_history_full_windowed(lt):
    pts = read_locust_history(lt / "locust_2.47" / "full_stats_history.csv",
                              include_endpoints=True)
    agg = pts[pts["scenario"] == ""].iloc[0]
    assert agg["concurrency"] == 3 and agg["requests"] == 168
    assert agg["latency_p99_s"] == pytest.approx(0.004)     # windowed: last row of the step
    assert set(pts["scenario"]) == {"", "GET /", "GET /fail"}


def test_endpoints_need_full_history(lt):
    with pytest.raises(ParseError, match="full-history"):
        read_locust_history(lt / "locust_2.47" / "run_stats_history.csv", include_endpoints=True)


def test_truncated_stats_and_history(lt):
    with pytest.raises(ParseError) as ei:
        read_locust_stats(lt / "locust_stats_truncated.csv")
    assert "Aggregated" in str(ei.value) and ei.value.line == 3
    with pytest.raises(ParseError) as ei:
        read_locust_history(lt / "locust_history_truncated.csv")
    assert ei.value.line == 5 and "fields" in str(ei.value)
