"""Well-known exporter metric names mapped onto capplan's canonical names.

The same notebooks must work whether a series was sampled directly (``redis:<name>``,
``postgres:<name>``) or read from Prometheus / an exporter's ``/metrics``.  Each :class:`MetricMap`
says which exporter series gives a canonical metric, which labels survive (renamed where capplan's
name differs), which rows to drop, whether to sum over the other labels, and the canonical kind and
unit.  Exporters covered (names checked against the real output stored in
``tests/fixtures/prometheus/``):

* oliver006/redis_exporter (Debian 1.45): ``redis_memory_used_bytes`` -> ``redis_used_memory_bytes``,
  ``redis_uptime_in_seconds`` -> ``redis_uptime_seconds``, ``redis_db_keys_expiring{db="db0"}``
  -> ``redis_db_expires{db="0"}``, ``redis_commands_total{cmd}`` -> ``redis_command_calls_total{cmd}``,
  ``redis_latency_percentiles_usec{cmd,quantile="99.9"}`` -> ``redis_command_latency_seconds{cmd,
  quantile="0.999"}`` (µs -> s) ... .  Newer builds export ``redis_max_clients`` (from INFO);
  1.45 only ``redis_config_maxclients`` (from ``CONFIG GET``): both are tried, in that order.
  Both the exporter (1.45) and the direct collector emit every database, 0 for an empty one.
* prometheus-community/postgres_exporter (Debian 0.11): ``pg_stat_database_<col>{datid,datname}``
  (the ``datid="0"`` shared-catalog row dropped, as the direct collector does), ``pg_database_size_bytes``,
  ``pg_settings_*``, and ``pg_stat_activity_count{datname,state}`` summed over ``datname`` into
  ``pg_client_backends{state}``.  ``pg_usable_connections`` is derived as
  ``max_connections - superuser_reserved_connections - reserved_connections`` (the last is PG16+,
  0 when absent).
* prometheus/node_exporter: CPU seconds by mode (summed over CPUs: all CPUs of a host reset together
  at boot, so the sum is still a counter whose only decreases are resets), memory available/total,
  filesystem avail/size per mountpoint (two devices on one mountpoint: the first series wins) and
  network bytes per device.

When the labels kept by a non-summed mapping collide (two exporter series map to one canonical
series), the first series wins; the others are dropped, never added up.

Exporter names are given as Prometheus stores them (what PromQL selects).  The text parser of
``prometheus_client`` appends ``_total`` to counter samples that lack it (REFERENCE gotcha 7), so
:func:`lookup` also tries the name without that suffix.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["MetricMap", "MAPPINGS", "DERIVED", "by_canonical", "lookup", "canonical_names",
           "map_rows", "label_text", "promql"]


@dataclass(frozen=True)
class MetricMap:
    """How one canonical capplan metric is read from an exporter.

    ``exporter`` lists candidate exporter names, first match wins.  ``labels`` maps exporter label
    -> capplan label (only these survive); ``value_fn`` names a rewrite of a label value
    (``strip_db``: ``db0`` -> ``0``; ``percent``: quantile ``99.9`` -> ``0.999``).  ``drop`` lists
    ``(label, value)`` rows to ignore.  ``sum_other_labels`` sums the series that differ only in
    dropped labels.  ``scale`` multiplies the value (µs -> s); ``zero_is_nan`` reads 0 as "no value"
    (postgres_exporter writes a NULL ``stats_reset`` as 0).
    """

    canonical: str
    exporter: tuple[str, ...]
    kind: str
    unit: str
    family: str
    labels: tuple[tuple[str, str], ...] = ()
    value_fn: tuple[tuple[str, str], ...] = ()
    drop: tuple[tuple[str, str], ...] = ()
    sum_other_labels: bool = False
    scale: float = 1.0
    zero_is_nan: bool = False

    def map_labels(self, labels: Mapping[str, str]) -> dict[str, str] | None:
        """Canonical labels for an exporter label set, or None when the row is to be dropped."""
        for k, v in self.drop:
            if labels.get(k) == v:
                return None
        fns = dict(self.value_fn)
        out = {}
        for src, dst in self.labels:
            if src in labels:
                val = str(labels[src])
                if src in fns:
                    val = _VALUE_FNS[fns[src]](val)
                out[dst] = val
        return out


def _strip_db(v: str) -> str:
    return v[2:] if v.startswith("db") and v[2:].isdigit() else v


def _percent(v: str) -> str:
    try:
        return format(float(v) / 100, "g")
    except ValueError:
        return v


_VALUE_FNS = {"strip_db": _strip_db, "percent": _percent}


def _m(canonical, exporter, kind, unit, family, **kw) -> MetricMap:
    exp = (exporter,) if isinstance(exporter, str) else tuple(exporter)
    for key in ("labels", "value_fn", "drop"):
        if key in kw:
            kw[key] = tuple(kw[key].items()) if isinstance(kw[key], dict) else tuple(kw[key])
    return MetricMap(canonical, exp, kind, unit, family, **kw)


_R, _P, _N = "redis_exporter", "postgres_exporter", "node_exporter"
_DB = {"labels": {"db": "db"}, "value_fn": {"db": "strip_db"}}
_DAT = {"labels": {"datname": "datname"}, "drop": {"datid": "0"}}

#: Every mapping, in the order they are documented.
MAPPINGS: tuple[MetricMap, ...] = (
    # redis_exporter
    _m("redis_used_memory_bytes", "redis_memory_used_bytes", "gauge", "bytes", _R),
    _m("redis_used_memory_rss_bytes", "redis_memory_used_rss_bytes", "gauge", "bytes", _R),
    _m("redis_maxmemory_bytes", "redis_memory_max_bytes", "gauge", "bytes", _R),
    _m("redis_connected_clients", "redis_connected_clients", "gauge", "clients", _R),
    _m("redis_maxclients", ("redis_max_clients", "redis_config_maxclients"), "gauge", "clients", _R),
    _m("redis_blocked_clients", "redis_blocked_clients", "gauge", "clients", _R),
    _m("redis_uptime_seconds", "redis_uptime_in_seconds", "gauge", "seconds", _R),
    _m("redis_start_time_seconds", "redis_start_time_seconds", "gauge", "timestamp_seconds", _R),
    _m("redis_keyspace_hits_total", "redis_keyspace_hits_total", "counter", "operations", _R),
    _m("redis_keyspace_misses_total", "redis_keyspace_misses_total", "counter", "operations", _R),
    _m("redis_commands_processed_total", "redis_commands_processed_total", "counter", "commands",
       _R),
    _m("redis_expired_keys_total", "redis_expired_keys_total", "counter", "keys", _R),
    _m("redis_evicted_keys_total", "redis_evicted_keys_total", "counter", "keys", _R),
    _m("redis_rejected_connections_total", "redis_rejected_connections_total", "counter",
       "connections", _R),
    _m("redis_connections_received_total", "redis_connections_received_total", "counter",
       "connections", _R),
    _m("redis_net_input_bytes_total", "redis_net_input_bytes_total", "counter", "bytes", _R),
    _m("redis_net_output_bytes_total", "redis_net_output_bytes_total", "counter", "bytes", _R),
    _m("redis_mem_fragmentation_ratio", "redis_mem_fragmentation_ratio", "gauge", "ratio", _R),
    _m("redis_db_keys", "redis_db_keys", "gauge", "keys", _R, **_DB),
    _m("redis_db_expires", "redis_db_keys_expiring", "gauge", "keys", _R, **_DB),
    _m("redis_command_calls_total", "redis_commands_total", "counter", "commands", _R,
       labels={"cmd": "cmd"}),
    _m("redis_command_duration_seconds_total", "redis_commands_duration_seconds_total", "counter",
       "seconds", _R, labels={"cmd": "cmd"}),
    _m("redis_command_latency_seconds", "redis_latency_percentiles_usec", "gauge", "seconds", _R,
       labels={"cmd": "cmd", "quantile": "quantile"}, value_fn={"quantile": "percent"},
       scale=1e-6),
    _m("redis_slowlog_length", "redis_slowlog_length", "gauge", "count", _R),
    # postgres_exporter
    _m("pg_numbackends", "pg_stat_database_numbackends", "gauge", "connections", _P, **_DAT),
    _m("pg_client_backends", "pg_stat_activity_count", "gauge", "connections", _P,
       labels={"state": "state"}, sum_other_labels=True),
    _m("pg_max_connections", "pg_settings_max_connections", "gauge", "connections", _P),
    _m("pg_superuser_reserved_connections", "pg_settings_superuser_reserved_connections", "gauge",
       "connections", _P),
    _m("pg_reserved_connections", "pg_settings_reserved_connections", "gauge", "connections", _P),
    _m("pg_xact_commit_total", "pg_stat_database_xact_commit", "counter", "transactions", _P,
       **_DAT),
    _m("pg_xact_rollback_total", "pg_stat_database_xact_rollback", "counter", "transactions", _P,
       **_DAT),
    _m("pg_blks_hit_total", "pg_stat_database_blks_hit", "counter", "blocks", _P, **_DAT),
    _m("pg_blks_read_total", "pg_stat_database_blks_read", "counter", "blocks", _P, **_DAT),
    _m("pg_deadlocks_total", "pg_stat_database_deadlocks", "counter", "count", _P, **_DAT),
    _m("pg_temp_bytes_total", "pg_stat_database_temp_bytes", "counter", "bytes", _P, **_DAT),
    _m("pg_stats_reset_time_seconds", "pg_stat_database_stats_reset", "gauge",
       "timestamp_seconds", _P, zero_is_nan=True, **_DAT),
    _m("pg_database_size_bytes", "pg_database_size_bytes", "gauge", "bytes", _P,
       labels={"datname": "datname"}),
    # postgres_exporter --collector.stat_statements (off by default): summed over user and
    # database, as the direct collector does
    _m("pg_statement_calls_total", "pg_stat_statements_calls_total", "counter", "operations", _P,
       labels={"queryid": "queryid"}, sum_other_labels=True),
    _m("pg_statement_exec_seconds_total", "pg_stat_statements_seconds_total", "counter", "seconds",
       _P, labels={"queryid": "queryid"}, sum_other_labels=True),
    # node_exporter
    _m("node_cpu_seconds_total", "node_cpu_seconds_total", "counter", "seconds", _N,
       labels={"mode": "mode"}, sum_other_labels=True),
    _m("node_memory_available_bytes", "node_memory_MemAvailable_bytes", "gauge", "bytes", _N),
    _m("node_memory_total_bytes", "node_memory_MemTotal_bytes", "gauge", "bytes", _N),
    _m("node_filesystem_avail_bytes", "node_filesystem_avail_bytes", "gauge", "bytes", _N,
       labels={"mountpoint": "mountpoint"}),
    _m("node_filesystem_size_bytes", "node_filesystem_size_bytes", "gauge", "bytes", _N,
       labels={"mountpoint": "mountpoint"}),
    _m("node_network_receive_bytes_total", "node_network_receive_bytes_total", "counter", "bytes",
       _N, labels={"device": "device"}),
    _m("node_network_transmit_bytes_total", "node_network_transmit_bytes_total", "counter",
       "bytes", _N, labels={"device": "device"}),
)

#: Canonical metrics computed from other mapped metrics: name -> (kind, unit, inputs).
DERIVED: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "pg_usable_connections": ("gauge", "connections",
                              ("pg_max_connections", "pg_superuser_reserved_connections",
                               "pg_reserved_connections")),
}

_BY_CANONICAL = {m.canonical: m for m in MAPPINGS}
_BY_EXPORTER = {name: m for m in MAPPINGS for name in m.exporter}


def canonical_names() -> list[str]:
    """Every canonical metric this module can produce (mapped and derived)."""
    return sorted(set(_BY_CANONICAL) | set(DERIVED))


def by_canonical(name: str) -> MetricMap | None:
    """The mapping that produces canonical metric ``name`` (None for derived or unknown names)."""
    return _BY_CANONICAL.get(name)


def lookup(sample_name: str, family_type: str | None = None) -> MetricMap | None:
    """The mapping for an exporter sample name as Prometheus or ``prometheus_client`` spells it.

    ``pg_stat_database_blks_hit`` comes out of ``prometheus_client``'s parser as
    ``pg_stat_database_blks_hit_total`` (a counter sample gets ``_total`` appended), so when the
    exact name is unknown and the name ends in ``_total`` the name without it is tried.
    """
    m = _BY_EXPORTER.get(sample_name)
    if m is None and sample_name.endswith("_total") and family_type in (None, "counter"):
        m = _BY_EXPORTER.get(sample_name[:-6])
    return m


def label_text(labels: Mapping[str, object]) -> str:
    """Sorted compact JSON of a label set (the same text as :func:`capplan.core.frame.labels_key`)."""
    return json.dumps({str(k): str(v) for k, v in labels.items()}, sort_keys=True,
                      separators=(",", ":"), ensure_ascii=False)


#: One mapped sample: (canonical metric, labels, timestamp seconds, value, kind, unit).
MappedRow = tuple[str, dict, float, float, str, str]


def map_rows(pairs: Iterable[tuple[MetricMap, tuple[str, Mapping[str, str], float, float]]], *,
             keep: Iterable[str] = ("instance",)) -> list[MappedRow]:
    """Apply mappings to exporter samples ``(mapping, (sample name, labels, ts, value))``.

    Labels are reduced to the mapping's labels plus those named in ``keep`` (Prometheus's
    ``instance``, so several servers stay apart).  Series that collide on (metric, labels, ts) are
    summed when the mapping says ``sum_other_labels``; otherwise the first exporter name in the
    mapping's order wins (``redis_max_clients`` before ``redis_config_maxclients``) and later
    duplicates are dropped.  Derived metrics (:data:`DERIVED`) are appended when their inputs are
    present at the same timestamp and labels.
    """
    keep = tuple(keep)
    out: dict[tuple[str, str, float], list] = {}
    for m, (name, labels, ts, value) in pairs:
        mapped = m.map_labels(labels)
        if mapped is None:
            continue
        for k in keep:
            if k in labels:
                mapped[k] = str(labels[k])
        base = name[:-6] if name.endswith("_total") and name not in m.exporter else name
        prio = m.exporter.index(base) if base in m.exporter else 0
        key = (m.canonical, label_text(mapped), ts)
        v = float(value) * m.scale
        if m.zero_is_nan and v == 0:
            v = float("nan")
        cur = out.get(key)
        if cur is None:
            out[key] = [m.canonical, mapped, ts, v, m.kind, m.unit, prio]
        elif m.sum_other_labels:
            cur[3] += v
        elif prio < cur[6]:
            cur[3], cur[6] = v, prio
    rows = [tuple(r[:6]) for r in out.values()]
    rows += _derive(rows)
    return rows


def _derive(rows: list[MappedRow]) -> list[MappedRow]:
    """``pg_usable_connections`` = max - superuser_reserved - reserved (0 when absent)."""
    kind, unit, (mx, su, res) = DERIVED["pg_usable_connections"]
    parts: dict[tuple[str, float], dict[str, tuple[dict, float]]] = {}
    for metric, labels, ts, value, _k, _u in rows:
        if metric in (mx, su, res):
            parts.setdefault((label_text(labels), ts), {})[metric] = (labels, value)
    out = []
    for (_lt, ts), got in parts.items():
        if mx in got and su in got:
            labels = got[mx][0]
            value = got[mx][1] - got[su][1] - (got[res][1] if res in got else 0.0)
            out.append(("pg_usable_connections", dict(labels), ts, value, kind, unit))
    return out


def _selector(matchers: str, extra: tuple[tuple[str, str], ...] = ()) -> str:
    parts = [p for p in [matchers.strip()] if p]
    parts += [f'{k}!="{v}"' for k, v in extra]
    return "{" + ",".join(parts) + "}" if parts else ""


def promql(m: MetricMap, matchers: str = "", keep: tuple[str, ...] = ("instance",)) -> str:
    """The PromQL expression that returns ``m``'s raw exporter series.

    ``matchers`` is a label-matcher list without braces (``job="redis"``).  Rows named in
    ``m.drop`` are excluded with ``!=`` matchers; alternatives are joined with ``or`` (the first
    name wins where both exist); series summed over other labels keep ``keep`` and the mapped
    labels (``sum by (...)``) -- summing gauges or same-host CPU counters is safe.
    """
    sel = _selector(matchers, m.drop)
    expr = " or ".join(f"{name}{sel}" for name in m.exporter)
    if m.sum_other_labels:
        by = ", ".join(dict.fromkeys([*keep, *(src for src, _dst in m.labels)]))
        expr = f"sum by ({by}) ({expr})"
    return expr
