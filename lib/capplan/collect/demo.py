"""The embedded default: a SYNTHETIC DEMO DATA history for one web service.

Everything this module produces is **synthetic demo data**, made up from the assumptions below
so that capplan can show a complete capacity report with no server and no configuration.  Any
report that uses it must say so wherever the data appears (:data:`DEMO_LABEL`).

The service: an HTTP API backed by one PostgreSQL database (``app``) and one Redis cache, the
shape of the services in phase handoff documents.  :func:`generate_demo` returns a contract frame
(:mod:`capplan.core.frame`) with 23 series from three sources (:data:`DEMO_SOURCES`), under the
canonical names that capplan's live collectors use (:data:`DEMO_SERIES`).  The same seed gives
the same frame, bit for bit (``numpy.random.Generator``; each source draws from its own stream,
so asking for a subset of sources gives the same values for those sources).

Window
    ``days`` (default 90) whole days ending at ``end`` (default 2026-11-01T00:00Z, exclusive):
    samples at ``start, start + step, ..., end - step`` with ``start = end - days``, all in UTC on
    the ``step`` grid (default 5 min, so 25,920 samples per series).

Load (shared by every source)
    Request rate ``r(t) = PEAK_RPS_START * g(t) * d(h) * w(t) * e(day)`` in requests/s, where

    * compound growth ``g = (1 + 0.03) ** (weeks since start)`` (3 %/week, x1.46 over 90 days);
    * daily shape ``d(h) = 0.22 + 0.78 * ((1 + cos(2 pi (h - 14) / 24)) / 2) ** 2`` with ``h`` the
      UTC hour: peak 1.0 at 14:00 UTC, trough 0.22 at 02:00 UTC;
    * weekly shape ``w = 0.6`` on Saturday and Sunday (weekends ~40 % lower), else 1;
    * a day-to-day factor ``e ~ LogNormal(0, 0.03)``, one draw per calendar day.

    With ``PEAK_RPS_START = 220`` the weekday peak grows from ~220 req/s to ~320 req/s.

``api`` (the HTTP front end)
    * ``http_requests_total`` (counter, requests): ``Poisson(r * step)`` requests per step,
      cumulated from 0 at the window start (the process started then).
    * ``http_requests_failed_total`` (counter, errors): ``Binomial(requests, 0.001)``, except on
      the incident (day 38, 13:05-15:40 UTC, a Thursday afternoon) when the error fraction is 2.5 %.
    * ``http_request_duration_p95_seconds`` (gauge, seconds): a queueing-like curve
      ``R = S / (1 - rho)`` with ``S = 0.080 s`` and utilisation ``rho = r / API_CAPACITY_RPS``
      (520 req/s), times ``LogNormal(0, 0.03)`` noise; ~85 ms at night, ~225 ms at the final
      weekday peaks, against a 250 ms target (:data:`LATENCY_TARGET_P95_SECONDS`).

``redis:cache`` (maxmemory 256 MiB, RDB persistence)
    * ``redis_used_memory_bytes`` (gauge): linear trend 150 MiB -> 215 MiB over the window
      (~0.72 MiB/day, so 256 MiB is crossed ~8 weeks after the default end) plus a daily wiggle of
      4 MiB peaking at 15:00 UTC and AR(1) noise (phi 0.9, sd 0.3 MiB); after the restart the
      dataset is reloaded from RDB and memory dips 3 % (fresh allocator), recovering with a 12 h
      time constant.  ``redis_maxmemory_bytes`` is 268,435,456 throughout.
    * ``redis_keyspace_hits_total`` / ``redis_keyspace_misses_total`` (counters, operations):
      2.2 key lookups per request (Poisson), hit ratio ``0.925 + 0.02 cos(2 pi (h - 14) / 24)``
      plus ``Normal(0, 0.004)`` noise (Binomial split): ~0.93 weighted by traffic.
    * ``redis_commands_processed_total`` (counter, commands): 3.5 commands per request plus
      40 commands/s of background traffic (Poisson).
    * ``redis_connected_clients`` (gauge, clients): ``round(10 + r / 5 + Normal(0, 1.5))``.
    * ``redis_uptime_seconds`` (gauge, seconds) and ``redis_start_time_seconds`` (gauge,
      timestamp_seconds): the server has been up 23 days at the window start.
    * ``redis_counter_reset`` (gauge, boolean): 1 at the first sample after the restart, else 0
      (the same reset signal as capplan's live Redis collector).
    * ONE restart, on day 61 at 03:13:20 UTC (a Saturday night; :data:`RESTART_AT` is the first
      sample after it, 03:15 UTC, with the defaults): the three counters start again from what
      was counted in the 100 s since the restart, uptime goes back to 100 s and start_time jumps.
      No other counter in the frame ever decreases.  Counters start the window at their first
      hour's rate times the 23 days of uptime.

``postgres:app`` (max_connections 100, superuser_reserved_connections 3, database ``app``)
    * ``pg_client_backends{state=active|idle}`` (gauges, connections): the application pools
      hold ``N = round(15 + 0.22 r + Normal(0, 2))`` client connections, capped at 95 (pool
      limit); ``Binomial(N, 0.08 + 0.5 rho)`` of them are active, the rest idle.  The peak total
      grows from ~63 to ~90, approaching the 97 usable connections.
    * ``pg_numbackends{datname=app}`` (gauge): ``N`` plus 0-3 background workers
      (``min(Poisson(0.6), 3)``).
    * ``pg_max_connections`` 100, ``pg_superuser_reserved_connections`` 3,
      ``pg_usable_connections`` 97 (gauges, connections; usable = max - reserved).
    * ``pg_blks_hit_total`` / ``pg_blks_read_total{datname=app}`` (counters, blocks): 60 block
      accesses per request, buffer hit ratio 0.994 (Normal(0, 0.001) noise); 02:00-04:00 UTC a
      nightly report job adds 300 block reads/s (Poisson), ~0.99 overall.
    * ``pg_xact_commit_total{datname=app}`` (counter, transactions): 1.4 per request plus 5/s.
      PostgreSQL counters survive the window (no reset); they start at 180 days of traffic.
    * ``pg_database_size_bytes{datname=app}`` (gauge, bytes): 40 GiB at the start, +15 bytes per
      expected request (~52 GiB at the default end), in whole 8 kB pages; on day 47 at 02:00 UTC
      a purge (DELETE of old audit rows + VACUUM FULL) releases 1.5 GiB.
    * ``pg_table_dead_tuples{datname=app,schema=public,table=orders}`` (gauge, tuples): 0.35
      dead tuples per request; autovacuum resets it when it exceeds ``50 + 0.2 * n_live_tup``
      (PostgreSQL's default autovacuum_vacuum_threshold and scale_factor), with ``n_live_tup``
      growing from 2.0 M by 0.001 rows per request; a sawtooth.

When ``days`` is not 90 the event days (incident 38, purge 47, restart 61) scale with it
(``day * days // 90``).  Raises :class:`~capplan.errors.ConfigError` for an unusable seed, days,
step, end or source.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from capplan.errors import ConfigError, OutputError
from capplan.core.frame import COLUMNS, labels_key, make_frame

__all__ = [
    "DEMO_LABEL",
    "DEMO_SOURCES",
    "DEMO_SERIES",
    "DEFAULT_SEED",
    "DEFAULT_DAYS",
    "DEFAULT_STEP",
    "DEFAULT_END",
    "REDIS_MAXMEMORY_BYTES",
    "PG_MAX_CONNECTIONS",
    "PG_SUPERUSER_RESERVED",
    "PG_USABLE_CONNECTIONS",
    "LATENCY_TARGET_P95_SECONDS",
    "RESTART_AT",
    "DemoSeries",
    "generate_demo",
    "describe_demo",
    "demo_events",
    "write_frame_csv",
]

DEMO_LABEL = "SYNTHETIC DEMO DATA"
DEMO_SOURCES: tuple[str, ...] = ("api", "redis:cache", "postgres:app")

DEFAULT_SEED = 7
DEFAULT_DAYS = 90
DEFAULT_STEP = "5min"
DEFAULT_END = pd.Timestamp("2026-11-01T00:00:00Z")

MIB = 1024 ** 2
GIB = 1024 ** 3
DAY_S = 86_400

# --- limits (what the report compares against) ---------------------------------------------
REDIS_MAXMEMORY_BYTES = 256 * MIB            # 268,435,456
PG_MAX_CONNECTIONS = 100
PG_SUPERUSER_RESERVED = 3
PG_USABLE_CONNECTIONS = PG_MAX_CONNECTIONS - PG_SUPERUSER_RESERVED   # 97
LATENCY_TARGET_P95_SECONDS = 0.250

# --- load ------------------------------------------------------------------------------------
PEAK_RPS_START = 220.0            # weekday 14:00 UTC request rate at the window start, req/s
GROWTH_PER_WEEK = 0.03            # compound
PEAK_HOUR_UTC = 14.0
DAILY_FLOOR = 0.22                # night / peak
WEEKEND_FACTOR = 0.60
DAY_NOISE_SD = 0.03               # log-sd of the per-day factor

# --- api ---------------------------------------------------------------------------------------
ERROR_FRACTION = 0.001
INCIDENT_DAY, INCIDENT_FROM_S, INCIDENT_TO_S = 38, 13 * 3600 + 300, 15 * 3600 + 2400
INCIDENT_ERROR_FRACTION = 0.025
SERVICE_TIME_S = 0.080
API_CAPACITY_RPS = 520.0
LATENCY_NOISE_SD = 0.03

# --- redis -------------------------------------------------------------------------------------
REDIS_MEM_START, REDIS_MEM_END = 150 * MIB, 215 * MIB   # trend over the default 90 days
REDIS_MEM_SLOPE = (REDIS_MEM_END - REDIS_MEM_START) / (DEFAULT_DAYS * DAY_S)   # bytes/s
REDIS_WIGGLE = 4 * MIB
REDIS_WIGGLE_PEAK_HOUR = 15.0
REDIS_NOISE_PHI, REDIS_NOISE_SD = 0.9, 0.3 * MIB    # AR(1) coefficient, stationary sd
LOOKUPS_PER_REQUEST = 2.2
HIT_RATIO, HIT_RATIO_DAILY_AMP, HIT_RATIO_NOISE_SD = 0.925, 0.02, 0.004
COMMANDS_PER_REQUEST, COMMANDS_BACKGROUND_PER_S = 3.5, 40.0
REDIS_UPTIME_AT_START_S = 23 * DAY_S
RESTART_DAY, RESTART_OFFSET_S = 61, 3 * 3600 + 13 * 60 + 20   # 03:13:20 UTC
RESTART_MEM_DIP, RESTART_MEM_TAU_S = 0.03, 12 * 3600

# --- postgres ----------------------------------------------------------------------------------
PG_POOL_CAP = 95
BLOCKS_PER_REQUEST, BUFFER_HIT_RATIO = 60.0, 0.994
BATCH_FROM_S, BATCH_TO_S, BATCH_READS_PER_S = 2 * 3600, 4 * 3600, 300.0
XACT_PER_REQUEST, XACT_BACKGROUND_PER_S = 1.4, 5.0
PG_STATS_AGE_AT_START_S = 180 * DAY_S
DB_SIZE_START = 40 * GIB
DB_BYTES_PER_REQUEST = 15.0
PURGE_DAY, PURGE_OFFSET_S, PURGE_BYTES = 47, 2 * 3600, 1.5 * GIB
DEAD_PER_REQUEST = 0.35
ORDERS_LIVE_START, ORDERS_PER_REQUEST = 2.0e6, 0.001
AUTOVACUUM_THRESHOLD, AUTOVACUUM_SCALE = 50, 0.2


@dataclass(frozen=True)
class DemoSeries:
    """One generated series: its contract key, kind, unit and what it stands for."""

    source: str
    metric: str
    labels: str
    kind: str
    unit: str
    description: str

    def to_dict(self) -> dict:
        return {"source": self.source, "metric": self.metric, "labels": self.labels,
                "kind": self.kind, "unit": self.unit, "description": self.description}


def _s(source: str, metric: str, labels: dict | None, kind: str, unit: str,
       desc: str) -> DemoSeries:
    return DemoSeries(source, metric, labels_key(labels), kind, unit, desc)


_APP = {"datname": "app"}
#: Every series :func:`generate_demo` emits, in output order.
DEMO_SERIES: tuple[DemoSeries, ...] = (
    _s("api", "http_requests_total", None, "counter", "requests", "requests served"),
    _s("api", "http_requests_failed_total", None, "counter", "errors", "requests answered 5xx"),
    _s("api", "http_request_duration_p95_seconds", None, "gauge", "seconds",
       "95th percentile request latency over the step"),
    _s("redis:cache", "redis_used_memory_bytes", None, "gauge", "bytes", "INFO used_memory"),
    _s("redis:cache", "redis_maxmemory_bytes", None, "gauge", "bytes", "INFO maxmemory"),
    _s("redis:cache", "redis_keyspace_hits_total", None, "counter", "operations",
       "INFO keyspace_hits"),
    _s("redis:cache", "redis_keyspace_misses_total", None, "counter", "operations",
       "INFO keyspace_misses"),
    _s("redis:cache", "redis_commands_processed_total", None, "counter", "commands",
       "INFO total_commands_processed"),
    _s("redis:cache", "redis_connected_clients", None, "gauge", "clients",
       "INFO connected_clients"),
    _s("redis:cache", "redis_uptime_seconds", None, "gauge", "seconds", "INFO uptime_in_seconds"),
    _s("redis:cache", "redis_start_time_seconds", None, "gauge", "timestamp_seconds",
       "server start time (now - uptime), epoch seconds"),
    _s("redis:cache", "redis_counter_reset", None, "gauge", "boolean",
       "1 at the first sample after the counters were reset (restart), else 0"),
    _s("postgres:app", "pg_client_backends", {"state": "active"}, "gauge", "connections",
       "pg_stat_activity client backends in state active"),
    _s("postgres:app", "pg_client_backends", {"state": "idle"}, "gauge", "connections",
       "pg_stat_activity client backends in state idle"),
    _s("postgres:app", "pg_numbackends", _APP, "gauge", "connections",
       "pg_stat_database.numbackends"),
    _s("postgres:app", "pg_max_connections", None, "gauge", "connections", "max_connections"),
    _s("postgres:app", "pg_superuser_reserved_connections", None, "gauge", "connections",
       "superuser_reserved_connections"),
    _s("postgres:app", "pg_usable_connections", None, "gauge", "connections",
       "max_connections - superuser_reserved_connections"),
    _s("postgres:app", "pg_blks_hit_total", _APP, "counter", "blocks",
       "pg_stat_database.blks_hit"),
    _s("postgres:app", "pg_blks_read_total", _APP, "counter", "blocks",
       "pg_stat_database.blks_read"),
    _s("postgres:app", "pg_xact_commit_total", _APP, "counter", "transactions",
       "pg_stat_database.xact_commit"),
    _s("postgres:app", "pg_database_size_bytes", _APP, "gauge", "bytes", "pg_database_size('app')"),
    _s("postgres:app", "pg_table_dead_tuples", {**_APP, "schema": "public", "table": "orders"},
       "gauge",
       "tuples", "pg_stat_user_tables.n_dead_tup for public.orders"),
)


def _default_restart_at() -> pd.Timestamp:
    start = DEFAULT_END - pd.Timedelta(days=DEFAULT_DAYS)
    instant = start + pd.Timedelta(days=RESTART_DAY, seconds=RESTART_OFFSET_S)
    return instant.ceil(DEFAULT_STEP)


#: First sample after the Redis restart with the default window (2026-10-03T03:15:00Z).
RESTART_AT: pd.Timestamp = _default_restart_at()


# --- window and checks -------------------------------------------------------------------------

@dataclass(frozen=True)
class _Window:
    start: pd.Timestamp
    end: pd.Timestamp
    step_s: int
    days: int
    epoch: np.ndarray        # int64 seconds since 1970 of each sample

    def event(self, nominal_day: int, offset_s: int) -> int:
        """Epoch second of an event on ``nominal_day`` of a 90-day window, scaled to this one."""
        day = min(self.days - 1, nominal_day * self.days // DEFAULT_DAYS)
        return int(self.start.timestamp()) + day * DAY_S + offset_s


def _window(days: int, step: str, end: str | pd.Timestamp) -> _Window:
    if isinstance(days, bool) or not isinstance(days, (int, np.integer)) or not 1 <= days <= 3650:
        raise ConfigError(f"days must be a whole number from 1 to 3650, got {days!r}", key="days",
                          hint="ask for e.g. days=90")
    try:
        delta = pd.Timedelta(step)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"step {step!r} is not a duration", key="step",
                          hint="use a pandas offset string such as '5min' or '1h'") from exc
    step_s = 0.0 if delta is pd.NaT else delta.total_seconds()
    if step_s <= 0 or step_s != int(step_s) or DAY_S % int(step_s):
        raise ConfigError(f"step {step!r} must be a whole number of seconds that divides one day",
                          key="step", hint="use e.g. '1min', '5min', '15min' or '1h'")
    step_s = int(step_s)
    try:
        end_ts = pd.Timestamp(end)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"end {end!r} is not a timestamp", key="end",
                          hint="use ISO 8601, e.g. '2026-11-01T00:00:00Z'") from exc
    if end_ts is pd.NaT:
        raise ConfigError("end is missing (NaT)", key="end", hint="use e.g. '2026-11-01T00:00:00Z'")
    end_ts = end_ts.tz_localize("UTC") if end_ts.tzinfo is None else end_ts.tz_convert("UTC")
    end_s = end_ts.value / 1e9
    if end_s != int(end_s) or int(end_s) % step_s:
        raise ConfigError(f"end {end_ts.isoformat()} is not on the {step} grid", key="end",
                          hint=f"round it, e.g. {end_ts.floor(delta).isoformat()}")
    start = end_ts - pd.Timedelta(days=days)
    n = days * DAY_S // step_s
    epoch = int(start.value // 10**9) + step_s * np.arange(n, dtype=np.int64)
    return _Window(start, end_ts, step_s, int(days), epoch)


def _check_sources(sources: Iterable[str] | None) -> tuple[str, ...]:
    if sources is None:
        return DEMO_SOURCES
    if isinstance(sources, str):
        sources = [sources]
    chosen = tuple(dict.fromkeys(sources))
    unknown = [s for s in chosen if s not in DEMO_SOURCES]
    if unknown or not chosen:
        raise ConfigError(f"unknown demo source(s) {unknown or '(none given)'}", key="sources",
                          hint=f"choose from {list(DEMO_SOURCES)}")
    return tuple(s for s in DEMO_SOURCES if s in chosen)


def _check_seed(seed: int) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}", key="seed",
                          hint="e.g. seed=7")
    return int(seed)


# --- shared shapes -----------------------------------------------------------------------------

def _hour(epoch: np.ndarray) -> np.ndarray:
    return (epoch % DAY_S) / 3600.0


def _load(w: _Window, rng: np.random.Generator) -> np.ndarray:
    """Expected request rate (req/s) at each sample: growth x daily x weekly x day factor."""
    elapsed = (w.epoch - w.epoch[0]).astype(float)
    growth = (1.0 + GROWTH_PER_WEEK) ** (elapsed / (7 * DAY_S))
    daily = DAILY_FLOOR + (1 - DAILY_FLOOR) * \
        ((1 + np.cos(2 * np.pi * (_hour(w.epoch) - PEAK_HOUR_UTC) / 24)) / 2) ** 2
    day_index = w.epoch // DAY_S
    weekday = (day_index + 3) % 7           # 1970-01-01 was a Thursday; Monday = 0
    weekly = np.where(weekday >= 5, WEEKEND_FACTOR, 1.0)
    day_factor = rng.lognormal(0.0, DAY_NOISE_SD, size=w.days + 1)
    return PEAK_RPS_START * growth * daily * weekly * day_factor[day_index - day_index[0]]


def _between(w: _Window, t0: int, t1: int) -> np.ndarray:
    return (w.epoch >= t0) & (w.epoch < t1)


# --- sources -----------------------------------------------------------------------------------

def _api(w: _Window, rate: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    req = rng.poisson(rate * w.step_s).astype(float)
    p_err = np.full(len(rate), ERROR_FRACTION)
    t0 = w.event(INCIDENT_DAY, 0)
    p_err[_between(w, t0 + INCIDENT_FROM_S, t0 + INCIDENT_TO_S)] = INCIDENT_ERROR_FRACTION
    err = rng.binomial(req.astype(np.int64), p_err).astype(float)
    rho = np.minimum(rate / API_CAPACITY_RPS, 0.95)
    p95 = SERVICE_TIME_S / (1 - rho) * rng.lognormal(0.0, LATENCY_NOISE_SD, len(rate))
    return [np.cumsum(req), np.cumsum(err), p95]


def _restart_counter(inc: np.ndarray, initial: float, r: int | None, frac: float) -> np.ndarray:
    """Cumulate ``inc`` from ``initial``; from index ``r`` on start again at ``frac * inc[r]``."""
    if r is None:
        return initial + np.cumsum(inc)
    out = np.empty_like(inc)
    out[:r] = initial + np.cumsum(inc[:r])
    after = inc[r:].copy()
    after[0] = np.floor(after[0] * frac)
    out[r:] = np.cumsum(after)
    return out


def _redis(w: _Window, rate: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    n, epoch = len(rate), w.epoch
    hour = _hour(epoch)
    restart_s = w.event(RESTART_DAY, RESTART_OFFSET_S)
    after = np.nonzero(epoch > restart_s)[0]
    r = int(after[0]) if len(after) and restart_s >= epoch[0] else None
    frac = (epoch[r] - restart_s) / w.step_s if r is not None else 1.0

    elapsed = (epoch - epoch[0]).astype(float)
    noise = _ar1(rng.normal(0.0, REDIS_NOISE_SD * np.sqrt(1 - REDIS_NOISE_PHI ** 2), n),
                 REDIS_NOISE_PHI)
    mem = REDIS_MEM_START + REDIS_MEM_SLOPE * elapsed \
        + REDIS_WIGGLE * np.cos(2 * np.pi * (hour - REDIS_WIGGLE_PEAK_HOUR) / 24) + noise
    uptime = REDIS_UPTIME_AT_START_S + elapsed
    start_time = np.full(n, float(epoch[0] - REDIS_UPTIME_AT_START_S))
    reset = np.zeros(n)
    if r is not None:
        since = (epoch[r:] - restart_s).astype(float)
        mem[r:] *= 1 - RESTART_MEM_DIP * np.exp(-since / RESTART_MEM_TAU_S)
        uptime[r:] = since
        start_time[r:] = float(restart_s)
        reset[r] = 1.0

    lookups = rng.poisson(rate * w.step_s * LOOKUPS_PER_REQUEST)
    ratio = HIT_RATIO + HIT_RATIO_DAILY_AMP * np.cos(2 * np.pi * (hour - PEAK_HOUR_UTC) / 24) \
        + rng.normal(0.0, HIT_RATIO_NOISE_SD, n)
    hits = rng.binomial(lookups, np.clip(ratio, 0.5, 0.999)).astype(float)
    misses = (lookups - hits).astype(float)
    cmds = rng.poisson((rate * COMMANDS_PER_REQUEST + COMMANDS_BACKGROUND_PER_S) * w.step_s)
    cmds = cmds.astype(float)
    m = max(1, 3600 // w.step_s)              # samples in the first hour (at least one)

    def initial(inc: np.ndarray) -> float:     # the first hour's rate times the uptime so far
        return float(np.round(inc[:m].sum() / (m * w.step_s) * REDIS_UPTIME_AT_START_S))

    clients = np.maximum(1.0, np.round(10 + rate / 5 + rng.normal(0.0, 1.5, n)))
    return [
        mem,
        np.full(n, float(REDIS_MAXMEMORY_BYTES)),
        _restart_counter(hits, initial(hits), r, frac),
        _restart_counter(misses, initial(misses), r, frac),
        _restart_counter(cmds, initial(cmds), r, frac),
        clients,
        uptime,
        start_time,
        reset,
    ]


def _ar1(shocks: np.ndarray, phi: float) -> np.ndarray:
    """x[i] = phi * x[i-1] + shocks[i], x[0] = shocks[0] / sqrt(1 - phi^2) (stationary start).

    Computed in blocks of 64 so that phi**k never underflows; each block is a matrix product.
    """
    n, b = len(shocks), 64
    k = np.arange(b)
    lower = np.tril(phi ** (k[:, None] - k[None, :]).clip(min=0)) * (k[:, None] >= k[None, :])
    pad = (-n) % b
    s = np.concatenate([shocks, np.zeros(pad)]).reshape(-1, b)
    s[0, 0] /= np.sqrt(1 - phi ** 2)
    inner = s @ lower.T                         # each block started from 0
    out = np.empty_like(inner)
    carry = 0.0
    decay = phi ** (k + 1)
    for i in range(len(inner)):                 # n / 64 steps (405 for the default window)
        out[i] = inner[i] + carry * decay
        carry = out[i, -1]
    return out.ravel()[:n]


def _postgres(w: _Window, rate: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    n, epoch, step = len(rate), w.epoch, w.step_s
    rho = np.minimum(rate / API_CAPACITY_RPS, 0.95)
    total = np.clip(np.round(15 + 0.22 * rate + rng.normal(0.0, 2.0, n)), 1, PG_POOL_CAP)
    active = rng.binomial(total.astype(np.int64), 0.08 + 0.5 * rho).astype(float)
    idle = total - active
    background = np.minimum(rng.poisson(0.6, n), 3)
    numbackends = total + background

    expected_req = rate * step
    ratio = np.clip(BUFFER_HIT_RATIO + rng.normal(0.0, 0.001, n), 0.9, 0.9999)
    accesses = expected_req * BLOCKS_PER_REQUEST
    hit_inc = rng.poisson(accesses * ratio).astype(float)
    hour_s = epoch % DAY_S
    batch = (hour_s >= BATCH_FROM_S) & (hour_s < BATCH_TO_S)
    read_inc = rng.poisson(accesses * (1 - ratio) + batch * BATCH_READS_PER_S * step)
    read_inc = read_inc.astype(float)
    xact_inc = rng.poisson(expected_req * XACT_PER_REQUEST + XACT_BACKGROUND_PER_S * step)
    xact_inc = xact_inc.astype(float)
    age_steps = PG_STATS_AGE_AT_START_S / step

    cum_req = np.cumsum(expected_req)
    size = DB_SIZE_START + DB_BYTES_PER_REQUEST * cum_req
    size[epoch >= w.event(PURGE_DAY, PURGE_OFFSET_S)] -= PURGE_BYTES
    size = np.round(size / 8192) * 8192

    dead = _dead_tuples(cum_req, rng.poisson(expected_req * DEAD_PER_REQUEST).astype(float), rng)
    return [
        active, idle, numbackends,
        np.full(n, float(PG_MAX_CONNECTIONS)),
        np.full(n, float(PG_SUPERUSER_RESERVED)),
        np.full(n, float(PG_USABLE_CONNECTIONS)),
        np.round(hit_inc.mean() * age_steps) + np.cumsum(hit_inc),
        np.round(read_inc.mean() * age_steps) + np.cumsum(read_inc),
        np.round(xact_inc.mean() * age_steps) + np.cumsum(xact_inc),
        size,
        dead,
    ]


def _dead_tuples(cum_req: np.ndarray, inc: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Sawtooth: dead tuples accumulate until autovacuum's threshold, then drop to a residue."""
    cum = np.cumsum(inc)
    live = ORDERS_LIVE_START + ORDERS_PER_REQUEST * cum_req
    dead = np.empty_like(cum)
    base, i, n = 0.0, 0, len(cum)
    residue = rng.uniform(0.0, 1.0, n)
    while i < n:                              # one iteration per vacuum (~10 a day)
        threshold = AUTOVACUUM_THRESHOLD + AUTOVACUUM_SCALE * live[i]
        j = int(np.searchsorted(cum, base + threshold, side="right"))
        j = max(j, i + 1)
        dead[i:j] = cum[i:j] - base
        if j >= n:
            break
        dead[j] = np.floor(inc[j] * residue[j])    # tuples dead since the vacuum started
        base = cum[j] - dead[j]
        i = j + 1
    return dead


_BUILDERS = {"api": _api, "redis:cache": _redis, "postgres:app": _postgres}


# --- public ------------------------------------------------------------------------------------

def generate_demo(*, seed: int = DEFAULT_SEED, days: int = DEFAULT_DAYS, step: str = DEFAULT_STEP,
                  end: str | pd.Timestamp = DEFAULT_END,
                  sources: Iterable[str] | None = None) -> pd.DataFrame:
    """SYNTHETIC DEMO DATA: a validated contract frame for the demo service (module docstring).

    ``sources`` picks a subset of :data:`DEMO_SOURCES` (default all).  Rows are ordered by series
    (as in :data:`DEMO_SERIES`) then time.  Deterministic in ``seed``.  Raises
    :class:`~capplan.errors.ConfigError` for unusable arguments.
    """
    seed = _check_seed(seed)
    chosen = _check_sources(sources)
    w = _window(days, step, end)
    root = np.random.SeedSequence(seed)
    load_seq, *source_seqs = root.spawn(1 + len(DEMO_SOURCES))
    rate = _load(w, np.random.default_rng(load_seq))
    values: list[np.ndarray] = []
    specs: list[DemoSeries] = []
    for src, seq in zip(DEMO_SOURCES, source_seqs):
        if src not in chosen:
            continue
        values.extend(_BUILDERS[src](w, rate, np.random.default_rng(seq)))
        specs.extend(s for s in DEMO_SERIES if s.source == src)
    n, k = len(w.epoch), len(specs)
    ns = np.tile(w.epoch * 10**9, k).view("datetime64[ns]")

    def repeated(field: str) -> pd.Series:
        # object dtype given explicitly: pandas would otherwise infer a string dtype row by row
        return pd.Series(np.repeat(np.array([getattr(x, field) for x in specs], dtype=object), n),
                         dtype=object)

    df = pd.DataFrame({
        "timestamp": pd.DatetimeIndex(ns).tz_localize("UTC"),
        **{col: repeated(col) for col in ("source", "metric", "labels")},
        "value": np.concatenate(values).astype("float64"),
        **{col: repeated(col) for col in ("kind", "unit")},
    }, columns=list(COLUMNS))
    return make_frame(df)


def demo_events(*, days: int = DEFAULT_DAYS, step: str = DEFAULT_STEP,
                end: str | pd.Timestamp = DEFAULT_END) -> dict:
    """When the scripted events happen in this window (UTC ISO strings; restart may be None)."""
    w = _window(days, step, end)

    def iso(epoch_s: int) -> str:
        return pd.Timestamp(epoch_s, unit="s", tz="UTC").isoformat()

    restart_s = w.event(RESTART_DAY, RESTART_OFFSET_S)
    after = w.epoch[w.epoch > restart_s]
    incident = w.event(INCIDENT_DAY, 0)
    return {
        "redis_restart": {"at": iso(restart_s),
                          "first_sample_after": iso(int(after[0])) if len(after) else None},
        "api_incident": {"from": iso(incident + INCIDENT_FROM_S),
                         "to": iso(incident + INCIDENT_TO_S),
                         "error_fraction": INCIDENT_ERROR_FRACTION},
        "pg_purge": {"at": iso(w.event(PURGE_DAY, PURGE_OFFSET_S)), "released_bytes": PURGE_BYTES},
    }


def describe_demo(*, seed: int = DEFAULT_SEED, days: int = DEFAULT_DAYS, step: str = DEFAULT_STEP,
                  end: str | pd.Timestamp = DEFAULT_END,
                  sources: Iterable[str] | None = None) -> dict:
    """The generating assumptions of :func:`generate_demo` for these arguments, as plain JSON data.

    For the report's Data section: label, window, sources, series, limits, events, assumptions.
    """
    seed = _check_seed(seed)
    chosen = _check_sources(sources)
    w = _window(days, step, end)
    return {
        "label": DEMO_LABEL,
        "synthetic": True,
        "generator": "capplan.collect.demo.generate_demo",
        "seed": seed,
        "window": {"start": w.start.isoformat(), "end": w.end.isoformat(), "end_exclusive": True,
                   "step_seconds": w.step_s, "days": w.days, "samples_per_series": len(w.epoch)},
        "sources": list(chosen),
        "series": [s.to_dict() for s in DEMO_SERIES if s.source in chosen],
        "limits": {
            "redis_maxmemory_bytes": REDIS_MAXMEMORY_BYTES,
            "pg_max_connections": PG_MAX_CONNECTIONS,
            "pg_superuser_reserved_connections": PG_SUPERUSER_RESERVED,
            "pg_usable_connections": PG_USABLE_CONNECTIONS,
            "latency_target_p95_seconds": LATENCY_TARGET_P95_SECONDS,
            "api_capacity_requests_per_second": API_CAPACITY_RPS,
        },
        "events": demo_events(days=days, step=step, end=end),
        "assumptions": {
            "peak_requests_per_second_at_start": PEAK_RPS_START,
            "growth_per_week": GROWTH_PER_WEEK,
            "peak_hour_utc": PEAK_HOUR_UTC,
            "night_to_peak_ratio": DAILY_FLOOR,
            "weekend_factor": WEEKEND_FACTOR,
            "day_to_day_log_sd": DAY_NOISE_SD,
            "error_fraction": ERROR_FRACTION,
            "latency_model": "p95 = S / (1 - rho), rho = rate / capacity, lognormal noise",
            "service_time_seconds": SERVICE_TIME_S,
            "latency_noise_log_sd": LATENCY_NOISE_SD,
            "redis_used_memory_start_bytes": REDIS_MEM_START,
            "redis_used_memory_growth_bytes_per_day": REDIS_MEM_SLOPE * DAY_S,
            "redis_daily_wiggle_bytes": REDIS_WIGGLE,
            "redis_hit_ratio": HIT_RATIO,
            "redis_lookups_per_request": LOOKUPS_PER_REQUEST,
            "redis_commands_per_request": COMMANDS_PER_REQUEST,
            "pg_pool_cap_connections": PG_POOL_CAP,
            "pg_connections_model": "round(15 + 0.22 * rate + Normal(0, 2)), capped at the pool",
            "pg_buffer_hit_ratio": BUFFER_HIT_RATIO,
            "pg_blocks_per_request": BLOCKS_PER_REQUEST,
            "pg_xact_per_request": XACT_PER_REQUEST,
            "pg_database_size_start_bytes": DB_SIZE_START,
            "pg_database_bytes_per_request": DB_BYTES_PER_REQUEST,
            "pg_dead_tuples_per_request": DEAD_PER_REQUEST,
            "autovacuum_threshold": AUTOVACUUM_THRESHOLD,
            "autovacuum_scale_factor": AUTOVACUUM_SCALE,
        },
    }


def write_frame_csv(frame: pd.DataFrame, path: str | os.PathLike) -> int:
    """Write a contract frame as CSV (contract columns, ISO 8601 UTC timestamps); returns rows.

    Written to a temporary file beside ``path`` and renamed, so a reader never sees half a file.
    Raises :class:`~capplan.errors.OutputError` when the file cannot be written.
    """
    target = Path(path)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "x", newline="", encoding="utf-8") as fh:
            frame[list(COLUMNS)].to_csv(fh, index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
        os.replace(tmp, target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"cannot write {target}: {exc.strerror or exc}",
                          hint="check that the folder exists, is writable and has free space"
                          ) from exc
    return len(frame)


# --- worker pool (an RQ/Celery-like job queue) ---------------------------------------------------
#
# SYNTHETIC DEMO DATA, source ``worker:reports``: the API enqueues report jobs on an RQ-like queue
# "reports" served by 5 workers (the seed's "concurrent capacity 5 jobs validated").  Jobs arrive
# as a Poisson process at JOBS_PER_REQUEST x the API's request rate (~0.09 jobs/s at the first
# weekday peaks, ~0.13 at the last), are served FCFS by the first free worker, and take an
# exponential time with mean 45 s until the optimisation deployed on day 30 (JOBS_FAST_DAY),
# 25 s after it (the seed's "job processing 45 s -> 25 s").  Series, sampled on the demo grid:
# ``jobs_enqueued_total``, ``jobs_completed_total`` (counters, jobs), ``job_duration_seconds_sum``
# (counter, seconds) and ``job_duration_seconds_count`` (counter, jobs) over completed jobs,
# ``job_queue_depth`` (gauge, jobs: enqueued and not yet started) and ``job_workers`` (gauge).

JOBS_PER_REQUEST = 0.0004
JOBS_WORKERS = 5
JOBS_SLOW_S, JOBS_FAST_S, JOBS_FAST_DAY = 45.0, 25.0, 30
JOBS_SOURCE = "worker:reports"

#: The worker-pool entry the demo report uses (params key ``worker_pools``).
DEMO_WORKER_POOL = {"name": "Report jobs (queue reports)", "source": JOBS_SOURCE,
                    "enqueued_metric": "jobs_enqueued_total", "queue_metric": "job_queue_depth",
                    "service_time_metric": "job_duration_seconds", "workers": JOBS_WORKERS,
                    "wait_target_s": 30.0, "wait_percentile": 0.95, "growth": 10.0}


def generate_demo_jobs(*, seed: int = DEFAULT_SEED, days: int = DEFAULT_DAYS,
                       step: str = DEFAULT_STEP, end: str | pd.Timestamp = DEFAULT_END
                       ) -> pd.DataFrame:
    """SYNTHETIC DEMO DATA: the demo's job queue (see the comment above), a contract frame.

    Uses the same load as :func:`generate_demo` for the same seed (its own random stream for
    the jobs, so the other sources are unchanged).  A discrete-event FCFS simulation, not a
    formula: the queue depth it records is what an M/M/c model should predict.
    """
    import heapq

    seed = _check_seed(seed)
    w = _window(days, step, end)
    root = np.random.SeedSequence(seed)
    load_seq, *_ = root.spawn(1 + len(DEMO_SOURCES))
    jobs_seq = root.spawn(1)[0]
    rate = _load(w, np.random.default_rng(load_seq))
    rng = np.random.default_rng(jobs_seq)
    n_step = rng.poisson(rate * JOBS_PER_REQUEST * w.step_s)
    arrive = np.repeat(w.epoch.astype(float), n_step) + rng.uniform(0, w.step_s, n_step.sum())
    arrive.sort()
    fast_from = w.event(JOBS_FAST_DAY, 0)
    mean_s = np.where(arrive < fast_from, JOBS_SLOW_S, JOBS_FAST_S)
    service = rng.exponential(1.0, len(arrive)) * mean_s
    free = [float(arrive[0]) if len(arrive) else 0.0] * JOBS_WORKERS
    heapq.heapify(free)
    start = np.empty(len(arrive))
    for i, (a, s) in enumerate(zip(arrive.tolist(), service.tolist())):
        f = heapq.heappop(free)
        st = a if a > f else f
        start[i] = st
        heapq.heappush(free, st + s)
    done = start + service
    order = np.argsort(done)
    done_sorted, dur_cum = done[order], np.cumsum(service[order])
    t = w.epoch.astype(float)
    enq = np.searchsorted(arrive, t, side="right").astype(float)
    began = np.searchsorted(start, t, side="right").astype(float)
    comp = np.searchsorted(done_sorted, t, side="right")
    dsum = np.where(comp > 0, dur_cum[np.maximum(comp - 1, 0)], 0.0)
    labels = labels_key({"queue": "reports"})
    parts = [("jobs_enqueued_total", "counter", "jobs", enq),
             ("jobs_completed_total", "counter", "jobs", comp.astype(float)),
             ("job_duration_seconds_sum", "counter", "seconds", dsum),
             ("job_duration_seconds_count", "counter", "jobs", comp.astype(float)),
             ("job_queue_depth", "gauge", "jobs", enq - began),
             ("job_workers", "gauge", "count", np.full(len(t), float(JOBS_WORKERS)))]
    n = len(t)
    ts = pd.DatetimeIndex((np.tile(w.epoch, len(parts)) * 10**9).view("datetime64[ns]")
                          ).tz_localize("UTC")
    df = pd.DataFrame({
        "timestamp": ts,
        "source": pd.Series(np.full(n * len(parts), JOBS_SOURCE, dtype=object), dtype=object),
        "metric": pd.Series(np.repeat(np.array([p[0] for p in parts], dtype=object), n),
                            dtype=object),
        "labels": pd.Series(np.full(n * len(parts), labels, dtype=object), dtype=object),
        "value": np.concatenate([p[3] for p in parts]).astype("float64"),
        "kind": pd.Series(np.repeat(np.array([p[1] for p in parts], dtype=object), n),
                          dtype=object),
        "unit": pd.Series(np.repeat(np.array([p[2] for p in parts], dtype=object), n),
                          dtype=object),
    }, columns=list(COLUMNS))
    return make_frame(df)
