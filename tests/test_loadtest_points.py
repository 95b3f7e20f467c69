"""The load-point table and its round trip through the metrics contract and the store."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from capplan.errors import DataContractError
from capplan.core.frame import validate_frame
from capplan.loadtest import (POINT_COLUMNS, frame_to_points, make_points, points_to_frame,
                              read_loadtest)


def _points():
    return make_points([
        {"run_id": "r1", "tool": "pgbench", "concurrency": 4, "throughput_per_s": 1663.05,
         "latency_mean_s": 0.002396, "errors": 0, "requests": 4992, "duration_s": 3,
         "started_at": "2026-11-23T15:46:57Z"},
        {"run_id": "r1", "tool": "pgbench", "concurrency": 8, "throughput_per_s": 1900.5,
         "latency_mean_s": 0.0042, "latency_p95_s": 0.009, "errors": 1, "requests": 5701,
         "duration_s": 3, "started_at": "2026-11-23T15:47:01Z"},
        {"run_id": "r2", "tool": "redis-benchmark", "scenario": "GET", "concurrency": 10,
         "throughput_per_s": 75757.58, "latency_p99_s": 0.000175, "started_at": 1795448822.5},
    ])


def test_make_points_has_documented_columns_and_dtypes():
    pts = _points()
    assert tuple(pts.columns) == POINT_COLUMNS
    assert str(pts["started_at"].dtype) == "datetime64[ns, UTC]"
    assert pts["concurrency"].dtype == np.float64
    assert math.isnan(pts.loc[0, "latency_p99_s"])      # not reported -> NaN, never 0
    assert pts.loc[2, "scenario"] == "GET" and pts.loc[0, "scenario"] == ""


def test_points_to_frame_is_a_valid_contract_frame():
    frame = points_to_frame(_points())
    validate_frame(frame)
    assert set(frame["source"]) == {"loadtest:pgbench", "loadtest:redis-benchmark"}
    p95 = frame[frame["metric"] == "loadtest_latency_p95_seconds"]
    assert len(p95) == 1 and p95["value"].iloc[0] == pytest.approx(0.009)
    assert p95["labels"].iloc[0] == '{"concurrency":"8","run_id":"r1"}'
    thr = frame[(frame["metric"] == "loadtest_throughput_per_s")
                & (frame["source"] == "loadtest:redis-benchmark")]
    assert thr["labels"].iloc[0] == '{"concurrency":"10","run_id":"r2","scenario":"GET"}'
    assert set(frame["kind"]) == {"gauge"}
    assert not frame["value"].isna().any()              # NaN statistics are left out


def test_frame_round_trip_restores_points():
    pts = _points()
    back = frame_to_points(points_to_frame(pts))
    key = ["run_id", "concurrency"]
    pd.testing.assert_frame_equal(back.sort_values(key).reset_index(drop=True),
                                  pts.sort_values(key).reset_index(drop=True))


def test_points_without_start_time_are_refused():
    pts = make_points([{"run_id": "x", "tool": "wrk", "throughput_per_s": 1.0}])
    with pytest.raises(DataContractError, match="started_at"):
        points_to_frame(pts)


def test_store_round_trip(tmp_path, fixtures_dir):
    from capplan.store import open_store

    pts = read_loadtest(fixtures_dir / "loadtest" / "redisbench_csv_7.0.txt", concurrency=10,
                        requests=5000, started_at="2026-11-23T15:47:18Z")
    with open_store(tmp_path / "m.sqlite") as store:
        written = store.append(points_to_frame(pts))
        assert written == 4 * 8                 # 4 tests x 8 reported statistics
        back = frame_to_points(store.query(source="loadtest:redis-benchmark"))
    assert sorted(back["scenario"]) == ["GET", "INCR", "LPUSH", "SET"]
    get = back[back["scenario"] == "GET"].iloc[0]
    assert get["throughput_per_s"] == pytest.approx(75757.58)
    assert get["latency_p99_s"] == pytest.approx(0.000175)
    assert get["concurrency"] == 10
    assert get["started_at"] == pd.Timestamp("2026-11-23T15:47:18Z")
