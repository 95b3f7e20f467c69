"""Redis collector: INFO (server, clients, memory, stats, keyspace, commandstats, latencystats),
SLOWLOG LEN and the depth of named job-queue keys, as contract frames.

Params section (``source: redis``)::

    - source: redis
      name: cache              # frame source becomes "redis:cache"
      url_env: REDIS_URL       # optional; see capplan.core.credentials (REDIS_URL is the default)
      profile: null            # or a profile of the git-ignored credentials.yaml
      url: null                # a password-free URL may be written here directly
      databases: null          # number of logical dbs to report; default CONFIG GET databases,
                               # or 16 where CONFIG is disabled (managed Redis)
      queues:                  # optional; one read per key, never KEYS or SCAN
        - {key: "rq:queue:default", type: list, name: default}
      slowlog: true            # SLOWLOG LEN -> redis_slowlog_length
      commandstats: true       # per-command calls and time
      latencystats: true       # per-command p50/p99/p99.9 (Redis 7+)
      timeout_s: 2             # seconds; bounds connect, each read, and the whole snapshot
                               # (a server trickling its reply is cut off); no retries

Queue key conventions (examples; name the keys you use, the collector never discovers them):

* **RQ**: pending jobs are the list ``rq:queue:<name>``; started/failed/scheduled/deferred are
  sorted sets ``rq:wip:<name>``, ``rq:failed:<name>``, ``rq:scheduled:<name>``, ``rq:deferred:<name>``.
* **Celery** (Redis broker): the list named after the queue (``celery`` by default); with
  priorities, extra lists ``<queue>\\x06\\x16<n>``; unacknowledged messages in ``unacked_index`` (zset).
* **BullMQ**: ``bull:<queue>:wait``, ``:active``, ``:paused`` are lists; ``:delayed``,
  ``:prioritized``, ``:completed``, ``:failed`` are sorted sets (prefix ``bull`` by default).
* **Sidekiq**: ``queue:<name>`` lists (plus any namespace prefix); ``schedule``, ``retry`` and
  ``dead`` are sorted sets.
* A Redis stream used as a queue: ``type: stream`` gives ``XLEN`` (entries kept, not pending).

``type`` is ``list`` (LLEN, the default), ``stream`` (XLEN) or ``zset`` (ZCARD).  A missing key
reads 0; a key of another type gives NaN and a note naming the key.

Metrics (kind, unit): see :data:`INFO_FIELDS` plus ``redis_start_time_seconds`` (gauge,
timestamp_seconds: now - uptime, constant while run_id is), ``redis_db_keys{db}`` /
``redis_db_expires{db}`` (gauge, keys; every db 0..N-1, 0 when INFO has no line for it),
``redis_command_calls_total{cmd}`` (counter, commands), ``redis_command_duration_seconds_total{cmd}``
(counter, seconds), ``redis_command_latency_seconds{cmd,quantile}`` (gauge, seconds; quantile
"0.5", "0.99", "0.999"), ``redis_slowlog_length`` (gauge, count), ``redis_queue_depth{queue,type}``
(gauge, jobs) and ``redis_counter_reset`` (gauge, boolean).

``redis_maxmemory_bytes`` is 0 when memory is unlimited: never divide by it.

**Reset signal.**  ``redis_counter_reset`` is 1 at a sample taken after the counters were reset
since this collector's previous sample, else 0 (0 on the first sample).  A reset is detected by
(a) ``run_id`` changing or ``uptime_in_seconds`` going down (restart), (b) any INFO counter or
per-command call count going down (``CONFIG RESETSTAT``, which keeps run_id and uptime), or
(c) ``cmdstat_info.calls`` growing by less than the one INFO this collector sent since its previous
sample (catches a RESETSTAT after which counters already climbed past their old values).
Consumers (``capplan.core.rates``) treat every counter of that source at a flagged sample as restarted
from 0: the increase over the interval ending there is the value itself (Prometheus semantics),
never ``value - previous``.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence

from capplan.collect import register
from capplan.collect._common import Row, Watchdog, build_frame, check_keys, positive_float
from capplan.core.credentials import dsn_passwords, known_secrets, resolve_redis_url, scrub
from capplan.errors import ConfigError, SourceUnavailable

__all__ = ["RedisCollector", "INFO_FIELDS", "QUEUE_TYPES"]

log = logging.getLogger(__name__)

#: INFO field -> (metric, kind, unit).  Missing fields are skipped (they vary by version).
INFO_FIELDS: dict[str, tuple[str, str, str]] = {
    "used_memory": ("redis_used_memory_bytes", "gauge", "bytes"),
    "used_memory_rss": ("redis_used_memory_rss_bytes", "gauge", "bytes"),
    "maxmemory": ("redis_maxmemory_bytes", "gauge", "bytes"),
    "mem_fragmentation_ratio": ("redis_mem_fragmentation_ratio", "gauge", "ratio"),
    "connected_clients": ("redis_connected_clients", "gauge", "clients"),
    "maxclients": ("redis_maxclients", "gauge", "clients"),
    "blocked_clients": ("redis_blocked_clients", "gauge", "clients"),
    "uptime_in_seconds": ("redis_uptime_seconds", "gauge", "seconds"),
    "keyspace_hits": ("redis_keyspace_hits_total", "counter", "operations"),
    "keyspace_misses": ("redis_keyspace_misses_total", "counter", "operations"),
    "total_commands_processed": ("redis_commands_processed_total", "counter", "commands"),
    "expired_keys": ("redis_expired_keys_total", "counter", "keys"),
    "evicted_keys": ("redis_evicted_keys_total", "counter", "keys"),
    "rejected_connections": ("redis_rejected_connections_total", "counter", "connections"),
    "total_connections_received": ("redis_connections_received_total", "counter", "connections"),
    "total_net_input_bytes": ("redis_net_input_bytes_total", "counter", "bytes"),
    "total_net_output_bytes": ("redis_net_output_bytes_total", "counter", "bytes"),
}
_COUNTER_FIELDS = [f for f, (_, kind, _) in INFO_FIELDS.items() if kind == "counter"]

#: queue type -> the O(1) command that reads its length
QUEUE_TYPES: dict[str, str] = {"list": "LLEN", "stream": "XLEN", "zset": "ZCARD"}
_DEFAULT_DATABASES = 16
_KEYS = {"source", "name", "url", "url_env", "profile", "credentials_file", "databases", "queues",
         "slowlog", "commandstats", "latencystats", "timeout_s", "client"}


def _parse_queues(queues: object, where: str) -> list[tuple[str, str, str]]:
    """Params ``queues`` -> [(key, type, label)]."""
    if queues is None:
        return []
    if not isinstance(queues, Sequence) or isinstance(queues, (str, bytes)):
        raise ConfigError("must be a list of keys or {key, type, name} maps", key=f"{where}.queues")
    out = []
    for i, q in enumerate(queues):
        k = f"{where}.queues[{i}]"
        if isinstance(q, str):
            q = {"key": q}
        if not isinstance(q, Mapping) or not q.get("key"):
            raise ConfigError("each queue needs a 'key'", key=k,
                              hint="e.g. {key: 'rq:queue:default', type: list, name: default}")
        check_keys(q, {"key", "type", "name"}, where=k)
        qtype = str(q.get("type") or "list")
        if qtype not in QUEUE_TYPES:
            raise ConfigError(f"type '{qtype}' is not supported", key=f"{k}.type",
                              hint=f"use one of: {', '.join(QUEUE_TYPES)}")
        out.append((str(q["key"]), qtype, str(q.get("name") or q["key"])))
    return out


class RedisCollector:
    """Samples one Redis instance; see the module docstring for params and metrics.

    The client is created on the first :meth:`snapshot` (or injected as ``client``).  Every
    failure to connect, authenticate or read raises :class:`SourceUnavailable` whose message names
    the source and host, never the password.
    """

    def __init__(self, name: str = "redis", **params):
        check_keys(params, _KEYS, where=f"sources[{name}]")
        if params.get("source", "redis") != "redis":
            raise ConfigError(f"source must be 'redis', got {params['source']!r}", key="source")
        self.name = str(name)
        self.source = f"redis:{self.name}"
        self._where = f"sources[{self.name}]"
        self._url_args = {k: params.get(k) for k in ("url", "url_env", "profile", "credentials_file")}
        url = params.get("url")
        if url and scrub(str(url)) != str(url):
            raise ConfigError("the url in params embeds a password; params must not hold secrets",
                              key=f"{self._where}.url",
                              hint="put the URL in an environment variable named by url_env "
                                   "(REDIS_URL by default) or in a credentials.yaml profile")
        self.timeout_s = positive_float(params.get("timeout_s", 2.0), key=f"{self._where}.timeout_s")
        dbs = params.get("databases")
        if dbs is not None and (not isinstance(dbs, int) or isinstance(dbs, bool) or dbs < 1):
            raise ConfigError(f"must be a positive integer, got {dbs!r}", key=f"{self._where}.databases")
        self._databases: int | None = dbs
        self.queues = _parse_queues(params.get("queues"), self._where)
        self.slowlog = bool(params.get("slowlog", True))
        self.commandstats = bool(params.get("commandstats", True))
        self.latencystats = bool(params.get("latencystats", True))
        self._client = params.get("client")
        self._own_client = self._client is None
        self._where_safe = "redis"   # host:port/db for messages, set once the URL is resolved
        self._secrets: list[str] = []
        self._prev: dict | None = None
        self._start_time: float | None = None
        self.notes: list[str] = []   # human-readable findings (reset detected, key type wrong)

    def __repr__(self) -> str:
        return f"RedisCollector(name={self.name!r}, at={self._where_safe!r})"

    # -- connection --------------------------------------------------------------------------
    def _connect(self):
        import redis
        from redis.retry import Retry
        from redis.backoff import NoBackoff

        url = resolve_redis_url(**self._url_args)
        from urllib.parse import urlsplit
        parts = urlsplit(url)
        self._secrets = sorted(known_secrets(extra=[parts.password, *dsn_passwords(url)]))
        try:
            port = parts.port or 6379
        except ValueError:   # a non-numeric port: redis-py refuses the URL below
            port = "?"
        self._where_safe = f"{parts.hostname or 'localhost'}:{port}{parts.path or ''}"
        try:
            return redis.Redis.from_url(url, socket_timeout=self.timeout_s,
                                        socket_connect_timeout=self.timeout_s,
                                        retry=Retry(NoBackoff(), 0), health_check_interval=0,
                                        client_name=f"capplan-{self.name}")
        except (ValueError, redis.RedisError) as exc:
            raise ConfigError(f"unusable Redis URL ({scrub(exc, self._secrets)})",
                              key=f"{self._where}.url",
                              hint="use redis://host:port/db (user and password, if any, in the userinfo "
                                   "part) or rediss:// for TLS") from None

    def _fail(self, exc: BaseException, doing: str) -> SourceUnavailable:
        import redis

        msg = scrub(f"{doing} at {self._where_safe} failed: {type(exc).__name__}: {exc}",
                    self._secrets)
        if isinstance(exc, redis.AuthenticationError) or "NOAUTH" in str(exc) \
                or "WRONGPASS" in str(exc):
            hint = "check the password in the variable named by url_env (REDIS_URL by default)"
        elif isinstance(exc, redis.TimeoutError):
            hint = (f"no answer within timeout_s={self.timeout_s:g}s; check the host, port, TLS "
                    "(rediss://) and firewall, or raise timeout_s")
        elif isinstance(exc, redis.ConnectionError):
            hint = "check that Redis is running and reachable at that host and port"
        else:
            hint = "check that this Redis user may run INFO (ACL +info)"
        return SourceUnavailable(msg, source=self.source, hint=hint)

    # -- reading -----------------------------------------------------------------------------
    def _ensure_client(self):
        if self._client is None:
            self._client = self._connect()
        return self._client

    def _discover_databases(self, client) -> int:
        import redis

        if self._databases is None:
            try:
                got = client.config_get("databases")
                self._databases = int(got.get("databases", _DEFAULT_DATABASES))
            except redis.ResponseError as exc:   # CONFIG disabled or renamed (managed Redis)
                log.info("%s: CONFIG GET databases refused (%s); reporting dbs 0..15",
                         self.source, scrub(exc, self._secrets))
                self._databases = _DEFAULT_DATABASES
        return self._databases

    def snapshot(self):
        """Read the instance once; returns a contract frame.  Raises :class:`SourceUnavailable`."""
        import redis

        client = self._ensure_client()
        # socket_timeout bounds each recv(), not a reply: a server trickling its INFO a byte at a
        # time would hold the read for minutes.  The watchdog closes the sockets at timeout_s.
        dog = Watchdog(self.timeout_s, lambda: client.connection_pool.disconnect())
        try:
            with dog:
                replies, ndb, ts = self._read(client)
        except Exception as exc:  # noqa: BLE001 - a read cut by the watchdog fails in any way
            if dog.fired:
                raise SourceUnavailable(
                    f"reading INFO at {self._where_safe}: no complete answer within "
                    f"timeout_s={self.timeout_s:g}s (slow or trickling server)",
                    source=self.source, hint="check the server's load and network, or raise "
                                             "timeout_s") from None
            if isinstance(exc, redis.RedisError):
                raise self._fail(exc, "reading INFO") from None
            raise
        return self._frame(replies, ndb, ts)

    def _read(self, client):
        """One round trip: (replies, number of databases, sample time)."""
        ndb = self._discover_databases(client)
        pipe = client.pipeline(transaction=False)
        pipe.info("all")
        if self.slowlog:
            pipe.execute_command("SLOWLOG", "LEN")
        for key, qtype, _ in self.queues:
            pipe.execute_command(QUEUE_TYPES[qtype], key)
        t0 = time.time()
        replies = pipe.execute(raise_on_error=False)
        return replies, ndb, (t0 + time.time()) / 2

    def _frame(self, replies, ndb: int, ts: float):
        """The contract frame of one read's replies."""
        info = replies[0]
        if isinstance(info, Exception):
            raise self._fail(info, "reading INFO") from None
        rows: list[Row] = []
        for field, (metric, kind, unit) in INFO_FIELDS.items():
            if field in info:
                rows.append((metric, None, info[field], kind, unit))
        self._start_time_rows(info, ts, rows)
        self._keyspace_rows(info, ndb, rows)
        calls = self._command_rows(info, rows)
        i = 1
        if self.slowlog:
            rep = replies[i]
            i += 1
            if isinstance(rep, Exception):
                self._note(f"SLOWLOG LEN refused ({rep}); set slowlog: false to silence")
            else:
                rows.append(("redis_slowlog_length", None, rep, "gauge", "count"))
        for key, qtype, label in self.queues:
            rep = replies[i]
            i += 1
            if isinstance(rep, Exception):
                self._note(f"queue key '{key}' cannot be read as a {qtype} ({rep}); fix its "
                           "type in params (list, stream or zset)")
                rep = math.nan
            rows.append(("redis_queue_depth", {"queue": label, "type": qtype}, rep, "gauge", "jobs"))
        reset = self._detect_reset(info, calls)
        rows.append(("redis_counter_reset", None, 1.0 if reset else 0.0, "gauge", "boolean"))
        return build_frame(ts, self.source, rows)

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)
            log.warning("%s: %s", self.source, scrub(text, self._secrets))

    def _start_time_rows(self, info: Mapping, ts: float, rows: list[Row]) -> None:
        uptime = info.get("uptime_in_seconds")
        if uptime is None:
            return
        prev = self._prev
        same_run = prev is not None and prev.get("run_id") == info.get("run_id") \
            and uptime >= prev.get("uptime", 0)
        if not same_run or self._start_time is None:
            # uptime has 1 s resolution: fix the start time once per run so it only moves on restart
            self._start_time = float(math.floor(ts - float(uptime)))
        rows.append(("redis_start_time_seconds", None, self._start_time, "gauge", "timestamp_seconds"))

    @staticmethod
    def _keyspace_rows(info: Mapping, ndb: int, rows: list[Row]) -> None:
        seen = {int(k[2:]) for k in info if k.startswith("db") and k[2:].isdigit()
                and isinstance(info[k], Mapping)}
        for db in sorted(set(range(ndb)) | seen):
            entry = info.get(f"db{db}") or {}
            rows.append(("redis_db_keys", {"db": db}, entry.get("keys", 0), "gauge", "keys"))
            rows.append(("redis_db_expires", {"db": db}, entry.get("expires", 0), "gauge", "keys"))

    def _command_rows(self, info: Mapping, rows: list[Row]) -> dict[str, float]:
        calls: dict[str, float] = {}
        for key, val in info.items():
            if key.startswith("cmdstat_") and isinstance(val, Mapping):
                cmd = key[8:]
                calls[cmd] = float(val.get("calls", 0))
                if self.commandstats:
                    rows.append(("redis_command_calls_total", {"cmd": cmd}, calls[cmd],
                                 "counter", "commands"))
                    rows.append(("redis_command_duration_seconds_total", {"cmd": cmd},
                                 float(val.get("usec", 0)) / 1e6, "counter", "seconds"))
            elif self.latencystats and key.startswith("latency_percentiles_usec_") \
                    and isinstance(val, Mapping):
                cmd = key[len("latency_percentiles_usec_"):]
                for p, usec in val.items():
                    q = _quantile_label(str(p))
                    if q is not None:
                        rows.append(("redis_command_latency_seconds", {"cmd": cmd, "quantile": q},
                                     float(usec) / 1e6, "gauge", "seconds"))
        return calls

    def _detect_reset(self, info: Mapping, calls: Mapping[str, float]) -> bool:
        cur = {"run_id": info.get("run_id"), "uptime": info.get("uptime_in_seconds", 0),
               "counters": {f: float(info[f]) for f in _COUNTER_FIELDS if f in info},
               "calls": dict(calls)}
        prev, self._prev = self._prev, cur
        if prev is None:
            return False
        reason = None
        if cur["run_id"] != prev["run_id"] or cur["uptime"] < prev["uptime"]:
            reason = f"restart (run_id {str(prev['run_id'])[:8]} -> {str(cur['run_id'])[:8]})"
        else:
            down = [f for f, v in cur["counters"].items() if v < prev["counters"].get(f, 0.0)]
            down += [f"cmdstat_{c}" for c, v in prev["calls"].items() if calls.get(c, 0.0) < v]
            if down:
                reason = f"counters went down ({', '.join(down[:3])}): CONFIG RESETSTAT"
            elif "info" in prev["calls"] and calls.get("info", 0.0) < prev["calls"]["info"] + 1:
                reason = "INFO call count lower than this collector's own calls: CONFIG RESETSTAT"
        if reason:
            log.info("%s: counter reset detected: %s", self.source, reason)
            self.notes.append(f"counter reset detected at {time.strftime('%H:%M:%S')}: {reason}")
        return reason is not None

    def close(self) -> None:
        """Close the client this collector created (an injected client is left open)."""
        client, self._client = self._client, None
        if client is not None and self._own_client:
            client.close()


def _quantile_label(p: str) -> str | None:
    """'p50' -> '0.5', 'p99.9' -> '0.999' (None for anything else)."""
    if not p.startswith("p"):
        return None
    try:
        return format(float(p[1:]) / 100, "g")
    except ValueError:
        return None


register("redis", RedisCollector)
