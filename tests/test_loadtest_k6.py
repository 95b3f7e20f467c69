"""k6 summaries (--summary-export vs handleSummary) and NDJSON / CSV streams, k6 v1.1.0."""

from __future__ import annotations

import gzip
import math

import pytest

from capplan.errors import ParseError
from capplan.loadtest.k6 import (k6_summary_format, k6_thresholds, read_k6_csv_stream,
                                 read_k6_json_stream, read_k6_summary)


@pytest.fixture
def lt(fixtures_dir):
    return fixtures_dir / "loadtest"


def test_summary_export(lt):
    p = read_k6_summary(lt / "k6_summary_export_v1.1.json").iloc[0]
    assert p["tool"] == "k6" and p["concurrency"] == 4
    assert p["requests"] == 10622
    assert p["throughput_per_s"] == pytest.approx(5266.647658805396)
    assert p["errors"] == 967                          # http_req_failed *passes* = failures
    assert p["latency_mean_s"] == pytest.approx(0.6804592929768375e-3)
    assert p["latency_p50_s"] == pytest.approx(0.4834295e-3)
    assert p["latency_p95_s"] == pytest.approx(1.7454185e-3)
    assert math.isnan(p["latency_p99_s"])              # not in the default trend stats
    assert p["duration_s"] == pytest.approx(10622 / 5266.647658805396)


def test_handle_summary(lt):
    p = read_k6_summary(lt / "k6_handle_summary_p99_v1.1.json").iloc[0]
    assert p["requests"] == 12137 and p["errors"] == 0 and p["concurrency"] == 4
    assert p["latency_p99_s"] == pytest.approx(2.8969035999999995e-3)
    assert p["duration_s"] == pytest.approx(2.002826515)     # state.testRunDurationMs


def test_thresholds_normalise_the_inverted_boolean(lt):
    # summary-export writes "rate<0.01": true for a FAILED threshold
    assert k6_thresholds(lt / "k6_summary_export_v1.1.json") == {
        "http_req_duration": {"p(95)<500": True}, "http_req_failed": {"rate<0.01": False}}
    assert k6_thresholds(lt / "k6_handle_summary_p99_v1.1.json") == {
        "http_req_duration": {"p(95)<500": True}}


def test_format_detection(lt):
    import json
    assert k6_summary_format(json.loads((lt / "k6_summary_export_v1.1.json").read_text())) == \
        "summary-export"
    assert k6_summary_format(json.loads((lt / "k6_handle_summary_p99_v1.1.json").read_text())) \
        == "handleSummary"


def test_truncated_summary_json(lt, tmp_path):
    text = (lt / "k6_summary_export_v1.1.json").read_text()
    bad = tmp_path / "cut.json"
    bad.write_text(text[: len(text) // 2])
    with pytest.raises(ParseError) as ei:
        read_k6_summary(bad)
    assert ei.value.line == text[: len(text) // 2].count("\n") + 1
    assert "cut.json" in str(ei.value)


def test_json_stream(lt):
    p = read_k6_json_stream(lt / "k6_stream_v1.1.ndjson").iloc[0]
    assert p["concurrency"] == 2 and p["requests"] == 16 and p["errors"] == 4
    assert p["latency_mean_s"] == pytest.approx(0.00079, rel=1e-3)
    assert p["latency_p99_s"] > p["latency_p95_s"] > p["latency_p50_s"] > 0
    assert p["duration_s"] == pytest.approx(3.010129, abs=1e-5)


def test_csv_stream_matches_json_stream(lt):
    c = read_k6_csv_stream(lt / "k6_stream_v1.1.csv").iloc[0]
    j = read_k6_json_stream(lt / "k6_stream_v1.1.ndjson").iloc[0]
    for col in ("requests", "errors", "concurrency", "latency_p50_s", "latency_p95_s",
                "latency_p99_s"):
        assert c[col] == pytest.approx(j[col], rel=1e-6), col
    assert c["duration_s"] == 4.0                  # whole seconds + 1 s resolution


def test_gzipped_stream(lt, tmp_path):
    gz = tmp_path / "s.ndjson.gz"
    gz.write_bytes(gzip.compress((lt / "k6_stream_v1.1.ndjson").read_bytes()))
    assert read_k6_json_stream(gz)["requests"].iloc[0] == 16


def test_truncated_ndjson_line(lt, tmp_path):
    lines = (lt / "k6_stream_v1.1.ndjson").read_text().splitlines()
    bad = tmp_path / "cut.ndjson"
    bad.write_text("\n".join(lines[:10]) + "\n" + lines[10][:40])
    with pytest.raises(ParseError) as ei:
        read_k6_json_stream(bad)
    assert ei.value.line == 11


def test_truncated_csv_row(lt, tmp_path):
    lines = (lt / "k6_stream_v1.1.csv").read_text().splitlines()
    bad = tmp_path / "cut.csv"
    bad.write_text("\n".join(lines[:20]) + "\n" + lines[20][:25] + "\n")
    with pytest.raises(ParseError) as ei:
        read_k6_csv_stream(bad)
    assert ei.value.line == 21
