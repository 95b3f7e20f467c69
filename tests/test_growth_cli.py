"""The `capplan forecast` / `capplan runway` command-line contract (issue 5 item 6)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

FORECAST_KEYS = ["model", "grain", "forecast", "backtest", "changes", "warnings"]
RUNWAY_KEYS = ["crossing", "crossing_lo", "crossing_hi", "p_cross_within_horizon", "model",
               "warnings"]


def run(*args):
    return subprocess.run([sys.executable, "-m", "capplan", *args], capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
def growing_csv(fixtures_dir):
    return str(fixtures_dir / "growth" / "growth_used_memory_irregular_growing.csv")


def test_forecast_json_contract(growing_csv):
    r = run("forecast", growing_csv, "--horizon", "24h", "--json")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 1
    d = json.loads(lines[0])
    assert list(d) == FORECAST_KEYS
    assert d["grain"] == "1h" and isinstance(d["model"], str)
    assert len(d["forecast"]) == 24
    assert all(list(row) == ["timestamp", "mean", "lo80", "hi80", "lo95", "hi95"]
               for row in d["forecast"])
    assert d["forecast"][0]["timestamp"].endswith("+00:00")
    assert set(d["backtest"]) == {"mase", "coverage80", "coverage95", "folds"}
    assert isinstance(d["changes"], list) and isinstance(d["warnings"], list)
    assert any("missing" in w for w in d["warnings"])      # the fixture has a 33-hour gap


def test_forecast_grain_option(growing_csv):
    r = run("forecast", growing_csv, "--horizon", "18h", "--grain", "6h", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["grain"] == "6h" and len(d["forecast"]) == 3


def test_runway_json_contract(growing_csv):
    # the fixture grows 2e6 bytes/hour from 1e9 over 21 days: ~2.0e9 at the end
    r = run("runway", growing_csv, "--limit", "2.2e9", "--horizon", "240h", "--json")
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert list(d) == RUNWAY_KEYS
    assert d["crossing"] is not None and d["p_cross_within_horizon"] > 0.5


def test_human_output(growing_csv):
    r = run("runway", growing_csv, "--limit", "2.2e9", "--horizon", "240h")
    assert r.returncode == 0 and r.stdout.startswith("status: crosses")


@pytest.mark.parametrize("name,needle", [
    ("growth_malformed_value.csv", "growth_malformed_value.csv:4"),
    ("growth_bad_timestamp.csv", "growth_bad_timestamp.csv:3"),
    ("growth_missing_header.csv", "growth_missing_header.csv:1"),
    ("growth_too_short.csv", "need at least"),
    ("does_not_exist.csv", "cannot open"),
])
def test_unusable_input_exits_2_with_one_line(fixtures_dir, name, needle):
    r = run("forecast", str(fixtures_dir / "growth" / name), "--horizon", "24h", "--json")
    assert r.returncode == 2
    assert r.stdout == ""
    err = r.stderr.strip().splitlines()
    assert len(err) == 1 and needle in err[0], r.stderr


def test_bad_horizon_exits_2(growing_csv):
    r = run("runway", growing_csv, "--limit", "1", "--horizon", "0", "--json")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
