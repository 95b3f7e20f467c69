"""capplan.runner.alerts: rules that promtool accepts, whose thresholds are the params' and really fire."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from capplan.runner.alerts import BURN_WINDOWS, alerts_from_params, build_rules, quantity_expr, write_rules
from capplan.errors import ConfigError
from capplan.runner.fleet import notebook_defaults
from capplan.runner.params import load_params
from capplan.analysis.runway import parse_capacity
from capplan.analysis.targets import parse_targets

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "params" / "demo.yaml"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def _promtool(*args, cwd=None) -> subprocess.CompletedProcess:
    if not Path(PROMTOOL).exists():
        pytest.fail("promtool not found: apt-get install prometheus (it ships /usr/bin/promtool)")
    return subprocess.run([PROMTOOL, *args], capture_output=True, text=True, cwd=cwd, timeout=60)


@pytest.fixture(scope="module")
def demo_rules() -> dict:
    return alerts_from_params(DEMO)


def _rules(rules: dict, alert: str) -> list[dict]:
    return [r for r in rules["groups"][0]["rules"] if r["alert"] == alert]


def test_promtool_check_rules_accepts_the_demo_rules(demo_rules, tmp_path):
    out = write_rules(demo_rules, tmp_path / "capplan.rules.yml")
    res = _promtool("check", "rules", str(out))
    assert res.returncode == 0, res.stdout + res.stderr
    assert f"SUCCESS: {len(demo_rules['groups'][0]['rules'])} rules found" in res.stdout


def test_thresholds_are_the_parsed_targets_and_capacity(demo_rules):
    p = load_params(DEMO)
    values = {**notebook_defaults(), **p.values}
    targets = parse_targets(values["targets"], path=str(DEMO))
    capacity = parse_capacity(values["capacity"], path=str(DEMO))
    for t in targets:
        rs = _rules(demo_rules, "Capplan" + "".join(w[:1].upper() + w[1:] for w in t.name.split())
                    + ("BudgetBurn" if t.is_slo else ""))
        assert rs, t.name
        if t.is_slo:
            budget = 1 - t.bound
            got = sorted(float(r["annotations"]["threshold"]) for r in rs)
            want = sorted(round(share * 720 / {"1h": 1, "6h": 6, "1d": 24, "3d": 72}[lw] * budget, 9)
                          for _s, lw, _sw, share in BURN_WINDOWS)
            assert got == pytest.approx(want, rel=1e-6)
            continue
        by_kind = {r["labels"]["threshold"]: float(r["annotations"]["threshold"]) for r in rs}
        assert by_kind["target"] == t.bound
        assert by_kind.get("warn") == t.warn
        assert by_kind.get("crit") == t.crit
        op = " < " if t.direction == "min" else " > "
        for r in rs:
            assert r["expr"].endswith(op + r["annotations"]["threshold"])
    for c in capacity:
        rs = _rules(demo_rules, "Capplan" + "".join(w[:1].upper() + w[1:] for w in c.name.split())
                    + "ExhaustionPredicted")
        assert len(rs) == 2, c.name
        if c.limit is not None:        # exact, not rounded: 68719476736 stays 68719476736
            assert all(r["expr"].endswith(f">= {int(c.limit)}") for r in rs)


def test_ratio_uses_rates_in_numerator_and_denominator():
    e = quantity_expr("redis_keyspace_hit_ratio", selector='job="cache"')
    assert e == ('(sum (rate(redis_keyspace_hits_total{job="cache"}[5m])) / '
                 '(sum (rate(redis_keyspace_hits_total{job="cache"}[5m])) + '
                 'sum (rate(redis_keyspace_misses_total{job="cache"}[5m]))))')
    pg = quantity_expr("pg_cache_hit_ratio", by=("instance",))
    assert 'pg_stat_database_blks_hit{datid!="0"}' in pg and "sum by (instance)" in pg


def test_usable_connections_subtract_reserved():
    e = quantity_expr("pg_usable_connections")
    assert "pg_settings_max_connections" in e and "pg_settings_superuser_reserved_connections" in e
    assert "pg_settings_reserved_connections" in e


def test_bad_utilisation_thresholds_are_refused():
    with pytest.raises(ConfigError):
        build_rules((), (), group="g", util_warn=0.95, util_crit=0.9)


UNIT_TESTS = """
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'redis_keyspace_hits_total{instance="cache:6379"}'
        values: '0+85x60'
      - series: 'redis_keyspace_misses_total{instance="cache:6379"}'
        values: '0+15x60'
      - series: 'pg_stat_activity_count{datname="app",state="active"}'
        values: '40x60'
      - series: 'pg_stat_activity_count{datname="app",state="idle"}'
        values: '50x60'
      - series: 'pg_settings_max_connections'
        values: '100x60'
      - series: 'pg_settings_superuser_reserved_connections'
        values: '3x60'
    alert_rule_test: []
"""


def test_promtool_unit_test_pages_at_the_document_thresholds(demo_rules, tmp_path):
    """A hit ratio of 0.85 fires both the warning (0.92) and the target (0.90) rule; 90 of 97
    usable connections (92.8 %) fires both utilisation rules; the 87-connection target fires."""
    write_rules(demo_rules, tmp_path / "rules.yml")
    spec = yaml.safe_load(UNIT_TESTS)
    checks = []
    for alert in ("CapplanRedisHitRatio", "CapplanPostgreSQLClientConnectionsUtilisation",
                  "CapplanPostgreSQLConnectionsAtPeak"):
        rs = _rules(demo_rules, alert)
        assert len(rs) >= 2
        checks.append({"eval_time": "30m", "alertname": alert,
                       "exp_alerts": [{"exp_labels": r["labels"], "exp_annotations": r["annotations"]}
                                      for r in rs]})
    # a healthy buffer cache (no pg_stat_database series at all) fires nothing
    checks.append({"eval_time": "30m", "alertname": "CapplanPostgreSQLBufferCacheHitRatio",
                   "exp_alerts": []})
    spec["tests"][0]["alert_rule_test"] = checks
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    res = _promtool("test", "rules", "tests.yml", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS" in res.stdout


def test_promtool_unit_test_quiet_below_warning(demo_rules, tmp_path):
    write_rules(demo_rules, tmp_path / "rules.yml")
    spec = yaml.safe_load(UNIT_TESTS.replace("0+85x60", "0+95x60").replace("0+15x60", "0+5x60")
                          .replace("'50x60'", "'20x60'"))
    spec["tests"][0]["alert_rule_test"] = [
        {"eval_time": "30m", "alertname": a, "exp_alerts": []}
        for a in ("CapplanRedisHitRatio", "CapplanPostgreSQLClientConnectionsUtilisation")]
    (tmp_path / "tests.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    res = _promtool("test", "rules", "tests.yml", cwd=tmp_path)
    assert res.returncode == 0, res.stdout + res.stderr


def test_cli_alerts_writes_a_rule_file(tmp_path):
    out = tmp_path / "r.yml"
    res = subprocess.run([sys.executable, "-m", "capplan", "alerts", str(DEMO), "--out", str(out),
                          "--selector", 'job="checkout"', "--by", "instance"],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    rules = yaml.safe_load(out.read_text())
    assert rules["groups"][0]["name"] == "capplan-demo"
    assert all('job="checkout"' in r["expr"] for r in rules["groups"][0]["rules"])
    assert _promtool("check", "rules", str(out)).returncode == 0


def test_cli_alerts_bad_params_exit_2(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("targets:\n  - {name: x, metric: redis_keyspace_hit_ratio, min: 0.9, warn: 0.8}\n")
    res = subprocess.run([sys.executable, "-m", "capplan", "alerts", str(bad)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert "warn" in res.stderr and "Traceback" not in res.stderr
