"""mode: files -- CSV/Parquet exports to contract frames; errors name the file and line."""

from __future__ import annotations

import pandas as pd
import pytest

from capplan.collect.exports import read_export, read_exports
from capplan.core.frame import validate_frame
from capplan.errors import ConfigError, ParseError

GRAFANA = """Time,Value
2026-03-29 00:30:00,10.5
2026-03-29 01:30:00,11
2026-03-29 03:30:00,
2026-03-29 04:30:00,"1,234.5"
"""


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_one_series_per_file_in_a_stated_time_zone(tmp_path):
    _write(tmp_path, "api.csv", GRAFANA)
    df = read_export({"path": "api.csv", "timestamp": "Time", "value": "Value",
                      "metric": "api_request_rate", "unit": "requests/s",
                      "timezone": "Europe/Berlin"}, base=tmp_path)
    validate_frame(df)
    # Berlin switched to CEST (UTC+2) at 02:00 on 2026-03-29: 01:30 is UTC+1, 03:30 is UTC+2
    assert list(df["timestamp"]) == [pd.Timestamp("2026-03-28T23:30Z"),
                                     pd.Timestamp("2026-03-29T00:30Z"),
                                     pd.Timestamp("2026-03-29T02:30Z")]
    assert list(df["value"]) == [10.5, 11.0, 1234.5]          # the empty cell is a gap
    assert set(df["source"]) == {"file:api"} and set(df["unit"]) == {"requests_per_second"}


def test_wide_columns_and_epoch_milliseconds(tmp_path):
    _write(tmp_path, "mem.csv", "Time,redis-1,redis-2\n1767225600000,100,200\n"
                                "1767225660000,110,210\n")
    df = read_export({"path": "mem.csv", "timestamp": "Time", "unit": "bytes",
                      "columns": {"redis-1": "redis_used_memory_bytes",
                                  "redis-2": "redis_used_memory_bytes"},
                      "labels": {"job": "redis"}}, base=tmp_path)
    assert df["timestamp"].min() == pd.Timestamp("2026-01-01T00:00Z")
    assert sorted(df["labels"].unique()) == ['{"column":"redis-1","job":"redis"}',
                                             '{"column":"redis-2","job":"redis"}']
    assert df["value"].sum() == 620


def test_long_format_parquet_with_label_columns(tmp_path):
    pytest.importorskip("pyarrow", reason="Parquet exports need pyarrow (requirements-dev.txt)")
    t = pd.date_range("2026-01-01", periods=3, freq="1min", tz="UTC")
    src = pd.DataFrame({"ts": list(t) * 2, "metric": ["jobs_enqueued_total"] * 6,
                        "queue": ["a"] * 3 + ["b"] * 3, "value": [1, 2, 3, 10, 20, 30]})
    src.to_parquet(tmp_path / "jobs.parquet")
    df = read_export({"path": "jobs.parquet", "layout": "long", "timestamp": "ts",
                      "metric_column": "metric", "value": "value", "labels": ["queue"],
                      "kind": "counter", "unit": "jobs", "source": "worker:jobs"}, base=tmp_path)
    validate_frame(df)
    assert set(df["labels"]) == {'{"queue":"a"}', '{"queue":"b"}'}
    assert set(df["kind"]) == {"counter"} and set(df["source"]) == {"worker:jobs"}


def test_bad_value_names_file_and_line_but_never_quotes_the_cell(tmp_path):
    p = _write(tmp_path, "bad.csv", "timestamp,value\n2026-01-01T00:00:00Z,1\n"
                                    "2026-01-01T00:01:00Z,hunter2-s3cret\n")
    with pytest.raises(ParseError) as err:
        read_export({"path": str(p), "value": "value", "metric": "x_seconds"})
    text = str(err.value) + " ".join(map(str, err.value.args))
    assert err.value.line == 3 and f"{p}:3" in text
    assert "14-character cell with digits, letters, other characters" in text
    assert "hunter2" not in text and "s3cret" not in text


def test_bad_timestamp_names_file_and_line_but_never_quotes_the_cell(tmp_path):
    p = _write(tmp_path, "bad.csv", "timestamp,value\npassword=swordfish,1\n")
    with pytest.raises(ParseError, match=r"bad\.csv:2: timestamp is not a time \(a 18-character"
                       ) as err:
        read_export({"path": str(p), "value": "value", "metric": "x_seconds"})
    assert "swordfish" not in str(err.value) + repr(err.value)


def test_bad_metric_name_cell_is_not_quoted(tmp_path):
    p = _write(tmp_path, "long.csv", "timestamp,metric,value\n2026-01-01T00:00:00Z,Token abc123!,1\n")
    with pytest.raises(ParseError, match="metric name is not snake_case") as err:
        read_export({"path": str(p), "layout": "long", "metric_column": "metric",
                     "value": "value"})
    assert "abc123" not in str(err.value) + repr(err.value)


def test_negative_counter_and_missing_column_and_zone(tmp_path):
    p = _write(tmp_path, "c.csv", "t,v\n2026-01-01,5\n2026-01-02,-1\n")
    with pytest.raises(ParseError, match=r"c\.csv:3: counter value -1"):
        read_export({"path": str(p), "timestamp": "t", "value": "v", "metric": "a_total",
                     "kind": "counter"})
    with pytest.raises(ConfigError, match=r"no column 'Value' \(columns: t, v\)"):
        read_export({"path": str(p), "timestamp": "t", "value": "Value", "metric": "a"})
    with pytest.raises(ConfigError, match="unknown time zone"):
        read_export({"path": str(p), "timestamp": "t", "value": "v", "metric": "a",
                     "timezone": "Mars/Olympus"})
    with pytest.raises(ParseError, match="file not found"):
        read_export({"path": str(tmp_path / "nope.csv"), "value": "v", "metric": "a"})


def test_read_exports_and_collect_step_in_files_mode(tmp_path, monkeypatch):
    _write(tmp_path, "api.csv", GRAFANA)
    frame, info = read_exports([{"path": "api.csv", "timestamp": "Time", "value": "Value",
                                 "metric": "api_request_rate"}], base=tmp_path)
    assert info["files"] == [{"path": "api.csv", "rows": 3, "metrics": ["api_request_rate"]}]
    from capplan.runner import pipeline

    monkeypatch.setenv("CAPPLAN_PROJECT_DIR", str(tmp_path))
    monkeypatch.setattr(pipeline, "project_root", lambda *a: tmp_path)
    out = pipeline.collect_step(mode="files", store="", run_dir=pipeline.run_folder(
        str(tmp_path / "run")), files=[{"path": "api.csv", "timestamp": "Time", "value": "Value",
                                        "metric": "api_request_rate"}])
    assert int(out.inventory["samples"].sum()) == 3 and "api.csv (3 rows)" in out.notes[0]


def test_preflight_refuses_a_broken_file_before_any_notebook(tmp_path):
    from capplan.runner.preflight import preflight

    (tmp_path / "params").mkdir()
    _write(tmp_path, "x.csv", "timestamp,value\n2026-01-01,abc\n")
    with pytest.raises(ParseError, match=r"x\.csv:2"):
        preflight({"mode": "files", "files": [{"path": "x.csv", "value": "value",
                                               "metric": "a"}]},
                  path=str(tmp_path / "params" / "p.yaml"))
