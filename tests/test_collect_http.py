"""HTTP latency probe and /metrics scraping (capplan.collect.http, capplan.collect.exporters)."""

from __future__ import annotations

import math
import time

import pandas as pd
import pytest

from capplan.collect import create, exporters
from capplan.collect.http import (HttpProbe, MetricsEndpoint, parse_exposition, redact_url,
                                  scrape_metrics)
from capplan.errors import ConfigError, ParseError, SourceUnavailable
from capplan.core.frame import KINDS, UNITS, parse_labels, select, validate_frame
from httpservers import LocalServer, SilentSocket, closed_port

PROM = "prometheus"


def _text(fixtures_dir, name: str) -> str:
    return (fixtures_dir / PROM / name).read_text()


def _one(df: pd.DataFrame, metric: str, **labels) -> float:
    rows = select(df, metric, labels=labels or None)
    assert len(rows) == 1, (metric, labels, rows)
    return float(rows["value"].iloc[0])


@pytest.fixture(scope="module")
def web(fixtures_dir):
    redis_text = _text(fixtures_dir, "redis_exporter_1.45_redis7.prom").encode()

    def slow(_req):
        time.sleep(0.02)
        return 200, {"Content-Type": "text/plain"}, b"slow\n"

    srv = LocalServer({
        "/ok": lambda _r: (200, {"Content-Type": "text/plain"}, b"ok\n"),
        "/slow": slow,
        "/redirect": lambda _r: (301, {"Location": "/ok"}, b""),
        "/boom": lambda _r: (503, {"Content-Type": "text/plain"}, b"down\n"),
        "/metrics": lambda _r: (200, {"Content-Type": "text/plain; version=0.0.4"}, redis_text),
        "/html": lambda _r: (200, {"Content-Type": "text/html"},
                             b"<html><body>It works</body></html>\n"),
    })
    yield srv
    srv.close()


# -- probe ---------------------------------------------------------------------------------------
def test_probe_records_status_latency_percentiles_and_counts(web):
    probe = create("http", name="web", urls=[web.url("/ok"), {"url": web.url("/slow"),
                                                                "name": "slow"}],
                   requests_per_url=6, timeout_s=5)
    assert isinstance(probe, HttpProbe)
    df = probe.snapshot()
    validate_frame(df)
    assert set(df["source"]) == {"http:web"}
    ok = web.url("/ok")
    assert _one(df, "http_probe_requests_total", url=ok, status="200") == 6
    assert _one(df, "http_probe_sample_count", url="slow") == 6
    assert _one(df, "http_probe_up", url=ok) == 1
    qs = [_one(df, "http_probe_latency_seconds", url="slow", quantile=q) for q in ("0.5", "0.9", "0.99")]
    mx = _one(df, "http_probe_latency_max_seconds", url="slow")
    assert 0.02 <= qs[0] <= qs[1] <= qs[2] <= mx   # /slow sleeps 20 ms; nearest-rank order
    assert qs[2] == mx                              # 6 samples: p99 is the largest observed
    kinds = df.drop_duplicates("metric").set_index("metric")["kind"]
    assert kinds["http_probe_requests_total"] == "counter"
    assert kinds["http_probe_latency_seconds"] == "gauge"
    probe.close()
    probe.close()


def test_probe_counters_accumulate_across_snapshots(web):
    probe = HttpProbe(name="acc", urls=[web.url("/ok")], requests_per_url=3)
    first = probe.snapshot()
    second = probe.snapshot()
    url = web.url("/ok")
    assert _one(first, "http_probe_requests_total", url=url, status="200") == 3
    assert _one(second, "http_probe_requests_total", url=url, status="200") == 6
    assert _one(second, "http_probe_latency_seconds_count", url=url) == 6
    assert _one(second, "http_probe_latency_seconds_sum", url=url) >= \
        _one(first, "http_probe_latency_seconds_sum", url=url)


def test_probe_keeps_redirect_and_error_statuses(web):
    probe = HttpProbe(name="st", urls=[web.url("/redirect"), web.url("/boom"), web.url("/nope")],
                      requests_per_url=2)
    df = probe.snapshot()
    assert _one(df, "http_probe_requests_total", url=web.url("/redirect"), status="301") == 2
    assert _one(df, "http_probe_up", url=web.url("/redirect")) == 1
    assert _one(df, "http_probe_requests_total", url=web.url("/boom"), status="503") == 2
    assert _one(df, "http_probe_up", url=web.url("/boom")) == 0
    assert _one(df, "http_probe_requests_total", url=web.url("/nope"), status="404") == 2


def test_probe_redirect_is_not_followed():
    target_hits = []
    srv = LocalServer({"/r": lambda _r: (302, {"Location": "/t"}, b""),
                       "/t": lambda _r: (target_hits.append(1) or 200, {}, b"t")})
    try:
        df = HttpProbe(name="r", urls=[srv.url("/r")], requests_per_url=3).snapshot()
        assert _one(df, "http_probe_requests_total", url=srv.url("/r"), status="302") == 3
        assert target_hits == []
    finally:
        srv.close()


def test_probe_refused_connection_is_data_not_exception():
    url = f"http://127.0.0.1:{closed_port()}/x"
    df = HttpProbe(name="down", urls=[url], requests_per_url=2, timeout_s=2).snapshot()
    validate_frame(df)
    assert _one(df, "http_probe_requests_total", url=url, status="error") == 2
    assert _one(df, "http_probe_up", url=url) == 0
    assert _one(df, "http_probe_sample_count", url=url) == 0
    assert math.isnan(_one(df, "http_probe_latency_seconds", url=url, quantile="0.5"))


def test_probe_silent_server_times_out_and_budget_bounds_requests():
    silent = SilentSocket()
    try:
        probe = HttpProbe(name="hang", urls=[silent.url("/")], requests_per_url=50,
                          timeout_s=0.2, budget_s=0.5)
        df = probe.snapshot()
        n = select(df, "http_probe_requests_total")["value"].sum()
        statuses = {parse_labels(t)["status"] for t in select(df, "http_probe_requests_total")["labels"]}
        assert statuses == {"timeout"}
        # each request waits >= 0.2 s, none starts after 0.5 s: at most 3 of the 50 asked
        assert 1 <= n <= 4
    finally:
        silent.close()


def test_probe_loopback_only(web):
    ok = HttpProbe(name="lo", urls=[web.url("/ok"), f"http://localhost:{web.port}/ok"],
                   loopback_only=True, requests_per_url=1)
    assert _one(ok.snapshot(), "http_probe_up", url=web.url("/ok")) == 1
    far = HttpProbe(name="far", urls=["http://192.0.2.10/"], loopback_only=True)
    with pytest.raises(ConfigError, match="loopback_only"):
        far.snapshot()


@pytest.mark.parametrize("params, match", [
    ({"urls": "http://127.0.0.1/"}, "list of URLs"),
    ({"urls": []}, "list of URLs"),
    ({"urls": [f"http://127.0.0.1/{i}" for i in range(51)]}, "at most 50"),
    ({"urls": ["file:///etc/passwd"]}, "not an http"),
    ({"urls": ["http://127.0.0.1/"], "requests_per_url": 0}, "1..1000"),
    ({"urls": ["http://127.0.0.1/"], "budget_s": 3600}, "at most"),
    ({"urls": ["http://127.0.0.1/"], "method": "POST"}, "GET or HEAD"),
    ({"urls": ["http://127.0.0.1/"], "retries": 3}, "unknown key"),
    ({"urls": ["http://127.0.0.1/a", {"url": "http://127.0.0.1/b", "name": "http://127.0.0.1/a"}]},
     "share a name"),
])
def test_probe_rejects_bad_params(params, match):
    with pytest.raises(ConfigError, match=match):
        HttpProbe(name="bad", **params)


def test_probe_labels_never_carry_url_passwords(web):
    url = f"http://monitor:s3cret-pw@127.0.0.1:{web.port}/ok"
    df = HttpProbe(name="pw", urls=[url], requests_per_url=1).snapshot()
    assert "s3cret-pw" not in df.to_csv()
    assert redact_url(url) == web.url("/ok")


# -- exposition parsing --------------------------------------------------------------------------
def test_mappings_are_contract_clean():
    for m in exporters.MAPPINGS:
        assert m.kind in KINDS and m.unit in UNITS, m
        assert m.canonical == m.canonical.lower()
    assert "pg_usable_connections" in exporters.canonical_names()


def test_redis_exporter_text_maps_onto_direct_collector_names(fixtures_dir):
    from capplan.collect.redis import INFO_FIELDS

    df = parse_exposition(_text(fixtures_dir, "redis_exporter_1.45_redis7.prom"),
                          source="metrics:redis", timestamp=1.8e9)
    validate_frame(df)
    meta = df.drop_duplicates("metric").set_index("metric")
    for metric, kind, unit in INFO_FIELDS.values():   # the direct collector's names, kinds, units
        assert metric in meta.index, metric
        assert (meta.loc[metric, "kind"], meta.loc[metric, "unit"]) == (kind, unit), metric
    assert _one(df, "redis_keyspace_hits_total") == 7000
    assert _one(df, "redis_maxclients") == 10000          # 1.45 only has redis_config_maxclients
    assert _one(df, "redis_db_keys", db="9") == 3          # db="db9" -> "9"
    assert len(select(df, "redis_db_keys")) == 16
    lat = select(df, "redis_command_latency_seconds", labels={"cmd": "get"})
    assert {parse_labels(t)["quantile"] for t in lat["labels"]} == {"0.5", "0.99", "0.999"}
    assert (lat["value"] < 0.01).all()                     # µs -> s
    assert "redis_memory_used_bytes" not in set(df["metric"])   # renamed, not duplicated
    assert "redis_exporter_scrapes_total" in set(df["metric"])  # unmapped kept


def test_postgres_exporter_text_drops_datid0_sums_backends_derives_usable(fixtures_dir):
    text = _text(fixtures_dir, "postgres_exporter_0.11_pg15.prom")
    df = parse_exposition(text, source="metrics:pg", timestamp=1.8e9)
    validate_frame(df)
    hits = select(df, "pg_blks_hit_total")
    names = {parse_labels(t)["datname"] for t in hits["labels"]}
    assert "" not in names and "test" in names
    assert set(hits["kind"]) == {"counter"}                # counter written without _total
    assert "pg_stat_database_blks_hit_total" not in set(df["metric"])
    raw_active = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                     if line.startswith("pg_stat_activity_count{") and 'state="active"' in line)
    assert _one(df, "pg_client_backends", state="active") == raw_active
    assert _one(df, "pg_usable_connections") == _one(df, "pg_max_connections") - \
        _one(df, "pg_superuser_reserved_connections")
    assert _one(df, "pg_usable_connections") == 97
    assert math.isnan(_one(df, "pg_stats_reset_time_seconds", datname="test"))   # 0 = never reset


def test_node_exporter_cpu_summed_over_cpus(fixtures_dir):
    text = _text(fixtures_dir, "node_exporter_1.5_cpu_mem_fs_net.prom")
    df = parse_exposition(text, source="metrics:node", timestamp=1.8e9)
    validate_frame(df)
    idle = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("node_cpu_seconds_total{") and 'mode="idle"' in line)
    assert _one(df, "node_cpu_seconds_total", mode="idle") == pytest.approx(idle)
    assert _one(df, "node_memory_total_bytes") > _one(df, "node_memory_available_bytes") > 0
    assert _one(df, "node_filesystem_size_bytes", mountpoint="/") > 0
    assert select(df, "node_network_receive_bytes_total")["kind"].eq("counter").all()


def test_counter_without_total_keeps_name_prometheus_stores(fixtures_dir):
    df = parse_exposition(_text(fixtures_dir, "counter_without_total_suffix.prom"),
                          source="metrics:t", timestamp=1.8e9)
    assert _one(df, "app_jobs_done") == 42               # parser says app_jobs_done_total
    assert _one(df, "app_requests_total", code="200") == 7
    assert set(df["kind"]) == {"counter"}
    raw = parse_exposition(_text(fixtures_dir, "counter_without_total_suffix.prom"),
                           source="metrics:t", timestamp=1.8e9, map_exporters=False)
    assert len(select(raw, "pg_stat_database_blks_hit")) == 2   # datid 0 kept when unmapped


def test_histogram_summary_and_created(fixtures_dir):
    df = parse_exposition(_text(fixtures_dir, "histogram_summary_created.prom"),
                          source="metrics:t", timestamp=1.8e9)
    validate_frame(df)
    b = select(df, "http_request_duration_seconds_bucket", labels={"le": "+Inf"})
    assert b["kind"].iloc[0] == "counter" and b["unit"].iloc[0] == "count"
    assert float(b["value"].iloc[0]) == _one(df, "http_request_duration_seconds_count")
    s = select(df, "http_request_duration_seconds_sum")
    assert (s["kind"].iloc[0], s["unit"].iloc[0]) == ("counter", "seconds")
    q = select(df, "rpc_latency_seconds", labels={"quantile": "0.99"})
    assert q["kind"].iloc[0] == "gauge" and math.isnan(q["value"].iloc[0])
    assert select(df, "http_request_duration_seconds_created")["unit"].iloc[0] == "timestamp_seconds"


def test_special_values_never_break_the_contract(fixtures_dir):
    df = parse_exposition(_text(fixtures_dir, "special_values_nan_inf_negative.prom"),
                          source="metrics:t", timestamp=1.8e9)
    validate_frame(df)
    assert math.isnan(_one(df, "app_temperature_ratio"))
    assert math.isnan(_one(df, "app_headroom_bytes"))     # +Inf -> NaN
    assert math.isnan(_one(df, "app_floor_bytes"))        # -Inf -> NaN
    for gone in ("app_broken_total", "app_infinite_total", "app_negative_total"):
        assert select(df, gone).empty, gone               # impossible counter values dropped
    assert _one(df, "app_good_total") == 5


def test_escaped_labels_untyped_timestamps_and_names(fixtures_dir):
    df = parse_exposition(_text(fixtures_dir, "escaped_labels_untyped_timestamps.prom"),
                          source="metrics:t", timestamp=1.8e9)
    validate_frame(df)
    row = select(df, "app_untyped_thing")
    lab = parse_labels(row["labels"].iloc[0])
    assert lab == {"path": "C:\\temp", "quote": 'say "hi"', "nl": "a\nb"}
    assert row["kind"].iloc[0] == "gauge"                 # untyped -> unknown -> gauge
    assert row["timestamp"].iloc[0] == pd.Timestamp(1_700_000_000, unit="s", tz="UTC")  # ms -> s
    assert _one(df, "app_recorded_rate5m") == 0.25        # colons sanitised
    assert _one(df, "node_memory_available_bytes") > 0    # mapped from MemAvailable


def test_openmetrics_text(fixtures_dir):
    df = parse_exposition(_text(fixtures_dir, "openmetrics_counter_info.txt"),
                          source="metrics:t", timestamp=1.8e9, openmetrics=True)
    validate_frame(df)
    assert _one(df, "app_requests_total", code="200") == 7
    assert select(df, "app_build_info")["unit"].iloc[0] == "info"


def test_malformed_text_raises_parse_error(fixtures_dir):
    with pytest.raises(ParseError, match="exposition"):
        parse_exposition(_text(fixtures_dir, "malformed_truncated.prom"), source="metrics:t",
                         where="bad.prom")


def test_include_and_keep_unmapped(fixtures_dir):
    text = _text(fixtures_dir, "redis_exporter_1.45_redis7.prom")
    only = parse_exposition(text, source="m", include=["redis_keyspace_"])
    assert set(only["metric"]) == {"redis_keyspace_hits_total", "redis_keyspace_misses_total"}
    mapped = parse_exposition(text, source="m", keep_unmapped=False)
    assert set(mapped["metric"]) <= set(exporters.canonical_names())


# -- /metrics endpoint ---------------------------------------------------------------------------
def test_metrics_endpoint_scrapes_and_maps(web):
    col = create("metrics_endpoint", name="rx", url=web.url("/metrics"))
    assert isinstance(col, MetricsEndpoint)
    df = col.snapshot()
    validate_frame(df)
    assert set(df["source"]) == {"metrics:rx"}
    assert _one(df, "redis_keyspace_hits_total") == 7000
    col.close()


def test_metrics_endpoint_errors(web):
    with pytest.raises(SourceUnavailable, match="HTTP 404"):
        scrape_metrics(web.url("/missing"))
    with pytest.raises(SourceUnavailable, match="failed"):
        scrape_metrics(f"http://127.0.0.1:{closed_port()}/metrics", timeout_s=2)
    with pytest.raises(ParseError):
        scrape_metrics(web.url("/html"))
    silent = SilentSocket()
    try:
        with pytest.raises(SourceUnavailable, match="timed out|timeout"):
            scrape_metrics(silent.url("/metrics"), timeout_s=0.3)
    finally:
        silent.close()
    with pytest.raises(ConfigError):
        MetricsEndpoint(name="x", url="ftp://127.0.0.1/metrics")
