"""Redis collector against real servers: the shared one (read-only use) and private
redis-servers that the tests restart, RESETSTAT, rename CONFIG on, or protect with a password."""

from __future__ import annotations

import pandas as pd
import pytest

from capplan.core import rates
from capplan.collect import create
from capplan.collect.redis import INFO_FIELDS, RedisCollector
from capplan.errors import ConfigError, SourceUnavailable
from capplan.core.frame import labels_key, parse_labels, series, validate_frame
from fixtures.collect.servers import PrivateRedis, SilentServer, free_port


@pytest.fixture
def private_redis():
    srv = PrivateRedis("--databases", "4")
    yield srv
    srv.stop()


def _value(frame, metric, labels=None):
    rows = frame[(frame.metric == metric) & (frame.labels == labels_key(labels or {}))]
    assert len(rows) == 1, f"{metric} {labels}: {len(rows)} rows"
    return float(rows.value.iloc[0])


def _collector(url, **kw):
    return create("redis", name="t", url=url, **kw)


def test_snapshot_of_shared_server_has_contract_kinds_and_units(redis_url):
    c = create("redis", name="cache", url=redis_url)
    try:
        f = validate_frame(c.snapshot())
    finally:
        c.close()
    assert set(f.source) == {"redis:cache"}
    assert f.timestamp.nunique() == 1
    for field, (metric, kind, unit) in INFO_FIELDS.items():
        rows = f[f.metric == metric]
        assert len(rows) == 1, metric
        assert (rows.kind.iloc[0], rows.unit.iloc[0]) == (kind, unit)
    assert _value(f, "redis_maxmemory_bytes") >= 0   # 0 = unlimited: emitted, never a divisor
    assert _value(f, "redis_counter_reset") == 0.0   # first sample: nothing to compare with
    lat = f[f.metric == "redis_command_latency_seconds"]
    assert len(lat) and set(lat.labels.map(lambda t: parse_labels(t)["quantile"])) == \
        {"0.5", "0.99", "0.999"}
    assert (f[f.metric == "redis_command_calls_total"].kind == "counter").all()


def test_every_configured_db_is_present_and_empty_ones_are_zero(private_redis):
    r = private_redis.client()
    r.select(2)
    r.set("k", "v", ex=100)
    c = _collector(private_redis.url)
    f = c.snapshot()
    c.close()
    keys = {parse_labels(t)["db"]: v for t, v in
            f[f.metric == "redis_db_keys"][["labels", "value"]].itertuples(index=False)}
    assert keys == {"0": 0.0, "1": 0.0, "2": 1.0, "3": 0.0}   # --databases 4 from CONFIG GET
    assert _value(f, "redis_db_expires", {"db": 2}) == 1.0


def test_never_scans_the_keyspace(private_redis):
    c = _collector(private_redis.url, queues=["q1"])
    for _ in range(3):
        c.snapshot()
    c.close()
    stats = private_redis.client().info("commandstats")
    assert "cmdstat_info" in stats
    assert not {"cmdstat_keys", "cmdstat_scan"} & set(stats)


def test_queue_depths_by_type_and_wrong_type_noted(private_redis):
    r = private_redis.client()
    r.rpush("rq:queue:default", "a", "b", "c")
    r.xadd("events", {"x": 1})
    r.zadd("bull:mail:delayed", {"j1": 1, "j2": 2})
    c = _collector(private_redis.url, queues=[
        {"key": "rq:queue:default", "name": "default"}, {"key": "events", "type": "stream"},
        {"key": "bull:mail:delayed", "type": "zset"}, "missing", {"key": "events", "type": "list",
                                                                  "name": "wrongtype"}])
    f = validate_frame(c.snapshot())
    c.close()
    assert _value(f, "redis_queue_depth", {"queue": "default", "type": "list"}) == 3
    assert _value(f, "redis_queue_depth", {"queue": "events", "type": "stream"}) == 1
    assert _value(f, "redis_queue_depth", {"queue": "bull:mail:delayed", "type": "zset"}) == 2
    assert _value(f, "redis_queue_depth", {"queue": "missing", "type": "list"}) == 0
    assert pd.isna(_value(f, "redis_queue_depth", {"queue": "wrongtype", "type": "list"}))
    assert any("'events'" in n and "list" in n for n in c.notes)


def test_restart_is_flagged_and_gives_no_negative_rate(private_redis):
    r = private_redis.client()
    c = _collector(private_redis.url)
    frames = []
    for _ in range(2):
        for i in range(200):
            r.get(f"k{i}")
        frames.append(c.snapshot())
    private_redis.restart()
    r = private_redis.client()
    r.get("x")
    frames.append(c.snapshot())   # redis-py reconnects on its own
    frames.append(c.snapshot())
    c.close()
    f = pd.concat(frames, ignore_index=True)
    flag = series(f, "redis_counter_reset")
    assert flag.tolist() == [0.0, 0.0, 1.0, 0.0]
    start = series(f, "redis_start_time_seconds")
    assert start.iloc[0] == start.iloc[1] and start.iloc[2] == start.iloc[3]
    assert start.iloc[2] >= start.iloc[1]
    resets = flag[flag == 1].index
    assert list(rates.resets_from_start_time(start, tolerance_s=0.5)) in ([], list(resets))
    cmds = series(f, "redis_commands_processed_total")
    inc = rates.counter_increase(cmds, resets=resets)
    assert (inc >= 0).all() and inc.iloc[1] == cmds.iloc[2]


def test_resetstat_is_flagged_even_when_counters_climb_back(private_redis):
    r = private_redis.client()
    c = _collector(private_redis.url)
    for i in range(50):
        r.get(f"k{i}")
    first = c.snapshot()
    c.snapshot()
    r.config_resetstat()
    pipe = r.pipeline(transaction=False)
    for i in range(2000):   # more than before: the counters alone cannot show the reset
        pipe.get(f"k{i}")
    pipe.execute()
    after = c.snapshot()
    later = c.snapshot()
    c.close()
    assert _value(after, "redis_commands_processed_total") > \
        _value(first, "redis_commands_processed_total")
    assert _value(after, "redis_counter_reset") == 1.0
    assert _value(later, "redis_counter_reset") == 0.0
    assert any("RESETSTAT" in n for n in c.notes)
    # run_id and start time do not change on RESETSTAT
    assert _value(after, "redis_start_time_seconds") == _value(first, "redis_start_time_seconds")


def test_works_where_config_is_disabled():
    srv = PrivateRedis("--rename-command", "CONFIG", "")
    try:
        c = _collector(srv.url)
        f = validate_frame(c.snapshot())
        c.close()
    finally:
        srv.stop()
    assert (f.metric == "redis_db_keys").sum() == 16
    assert _value(f, "redis_maxclients") > 0


def test_wrong_password_is_a_clear_error_without_the_password(monkeypatch):
    srv = PrivateRedis(password="right-horse-battery")
    try:
        monkeypatch.setenv("CAP_TEST_REDIS", f"redis://:wrong-secret-77@127.0.0.1:{srv.port}/0")
        c = create("redis", name="q", url_env="CAP_TEST_REDIS", timeout_s=2)
        with pytest.raises(SourceUnavailable) as ei:
            c.snapshot()
        text = str(ei.value) + repr(c)
        assert "wrong-secret-77" not in text and "password" in text.lower()
        assert "redis:q" in text and f"127.0.0.1:{srv.port}" in text
        monkeypatch.setenv("CAP_TEST_REDIS", srv.url)
        ok = create("redis", name="q", url_env="CAP_TEST_REDIS")
        assert len(validate_frame(ok.snapshot()))
        ok.close()
        monkeypatch.setenv("CAP_TEST_REDIS", f"redis://127.0.0.1:{srv.port}/0")
        with pytest.raises(SourceUnavailable):
            create("redis", name="q", url_env="CAP_TEST_REDIS").snapshot()
    finally:
        srv.stop()


@pytest.mark.timeout(15)
def test_unreachable_port_is_source_unavailable():
    c = _collector(f"redis://127.0.0.1:{free_port()}/0", timeout_s=1)
    with pytest.raises(SourceUnavailable, match="reachable"):
        c.snapshot()


@pytest.mark.timeout(15)
def test_silent_server_times_out_within_the_timeout():
    srv = SilentServer()
    try:
        c = _collector(f"redis://127.0.0.1:{srv.port}/0", timeout_s=1)
        with pytest.raises(SourceUnavailable, match="timeout_s=1"):
            c.snapshot()
    finally:
        srv.close()


def test_params_errors():
    with pytest.raises(ConfigError, match="unknown key"):
        RedisCollector("x", urll="redis://h")
    with pytest.raises(ConfigError, match="password") as ei:
        RedisCollector("x", url="redis://:hunter2@h:6379/0")   # refused before connecting
    assert "hunter2" not in str(ei.value)
    with pytest.raises(ConfigError, match="type"):
        RedisCollector("x", queues=[{"key": "k", "type": "hash"}])
    with pytest.raises(ConfigError, match="timeout_s"):
        RedisCollector("x", timeout_s=0)


def test_password_from_a_credentials_profile(tmp_path, monkeypatch):
    srv = PrivateRedis(password="Pr0file-Pass")
    try:
        cred = tmp_path / "credentials.yaml"
        cred.write_text(f"profiles:\n  q: {{url: '{srv.url}'}}\n")
        cred.chmod(0o600)
        monkeypatch.setenv("CAPPLAN_CREDENTIALS", str(cred))
        c = create("redis", name="queue", profile="q")
        f = validate_frame(c.snapshot())
        c.close()
    finally:
        srv.stop()
    assert len(f) and "Pr0file-Pass" not in repr(c)
    assert not f.astype(str).apply(lambda col: col.str.contains("Pr0file")).any().any()
