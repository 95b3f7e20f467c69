"""Bring-your-own-metrics from Prometheus: any PromQL query becomes a named series of the contract.

The params section (``mode: prometheus``, key ``prometheus``)::

    prometheus:
      url_env: PROMETHEUS_URL     # variable holding http://[user:pass@]host:9090
      days: 30                    # window ending now; fractional for short windows (0.01 = 14.4 min)
      # start: 2026-10-01T00:00:00Z   # ... or an explicit window (ISO 8601 or epoch seconds)
      # end: 2026-11-01T00:00:00Z
      step: auto                  # auto, or seconds / a duration (15s, 1m)
      min_step: 15s               # auto never goes below this (use your scrape interval)
      timeout_s: 30
      selector: null              # label matchers for the exporter mapping below
      metrics: null               # exporter mapping: null = every mapped name, [] = none
      presets: [node_exporter]    # ready-made query sets (see PRESETS)
      node_selector: 'job="node"' # label matchers for the node_exporter preset
      node_mountpoint: /          # filesystem the node_exporter preset reads
      queries:
        - {name: api_request_rate, promql: 'sum(rate(http_requests_total{job="api"}[5m]))',
           unit: requests_per_second}
        - {name: api_p95_latency, unit: seconds,
           promql: 'histogram_quantile(0.95, sum by (le) (rate(http_request_duration_seconds_bucket{job="api"}[5m])))'}

Each query entry: ``name`` (snake_case; what ``capacity:`` and ``targets:`` call it), ``promql``,
``unit`` (a contract unit, or an alias such as ``requests/s``, ``s``, ``B``), ``kind``
(``gauge``, default, or ``counter`` for a query returning a raw counter, whose name must then
end in ``_total`` so ``<x>_per_second`` derives its rate), ``labels`` (extra constant labels)
and ``source_label`` (default ``instance``).

Every series a query returns keeps its labels (``__name__`` dropped).  A series carrying the
``source_label`` label is stored under source ``prometheus:<value>``, so one instance can be
picked by a capacity entry's ``source:`` and the fleet total is the sum over sources; a series
without it (an aggregate such as ``sum(...)``) is stored under source ``prometheus``.

``step: auto`` is the finest "nice" step, at least ``min_step``, that keeps every series within
10,000 points (Prometheus refuses more than 11,000 per series), e.g. 15 s for a 14.4-minute
window (58 points), 5 min for 30 days (8,640 points).  An explicit finer step is split into
chunks of 10,000 points by :func:`capplan.collect.prometheus.query_range`.  When Prometheus
holds less history than the window (a fresh server under the default 30 days) and the auto step
leaves most series (the median) with fewer than ``MIN_POINTS`` points, the window is re-read from where the
data begin at the step that span needs (``info["step_refined"]`` and a warning say so).

Errors: a bad query raises :class:`~capplan.errors.ConfigError` whose message quotes
Prometheus's own message and the query; :func:`validate_queries` asks Prometheus to parse every
query without evaluating it (``/api/v1/format_query``, or an instant query at one time on servers
without it), so a runner can refuse a params file before any notebook runs.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping

import pandas as pd

from capplan.core.frame import UNITS, make_frame
from capplan.errors import ConfigError, SourceUnavailable

__all__ = ["QuerySpec", "PRESETS", "UNIT_ALIASES", "parse_queries", "preset_queries",
           "fetch_queries", "validate_queries", "history", "resolve_window", "HISTORY_KEYS"]

HISTORY_KEYS = frozenset({"url_env", "days", "start", "end", "step", "min_step", "selector",
                          "metrics", "timeout_s", "queries", "presets", "node_selector",
                          "node_mountpoint", "keep_labels"})
_QUERY_KEYS = {"name", "promql", "unit", "kind", "labels", "source_label", "description"}
_NAME_RE = re.compile(r"^[a-z_][a-z0-9_]*$")
_COUNTER_SUFFIXES = ("_total", "_bucket", "_count", "_sum")

#: Unit spellings accepted in params besides the contract's own names (capplan.core.frame.UNITS).
UNIT_ALIASES = {"requests/s": "requests_per_second", "req/s": "requests_per_second",
                "rps": "requests_per_second", "jobs/s": "jobs_per_second",
                "tx/s": "transactions_per_second", "transactions/s": "transactions_per_second",
                "commands/s": "commands_per_second", "cmd/s": "commands_per_second",
                "/s": "per_second", "1/s": "per_second", "s": "seconds", "second": "seconds",
                "B": "bytes", "byte": "bytes", "%": "percent", "1": "ratio", "": "count"}


class QuerySpec:
    """One checked query entry."""

    __slots__ = ("name", "promql", "unit", "kind", "labels", "source_label", "description")

    def __init__(self, name, promql, unit, kind="gauge", labels=None, source_label="instance",
                 description=""):
        self.name, self.promql, self.unit, self.kind = name, promql, unit, kind
        self.labels = dict(labels or {})
        self.source_label, self.description = source_label, description

    def __repr__(self) -> str:
        return f"QuerySpec({self.name!r}, {self.promql!r}, unit={self.unit!r}, kind={self.kind!r})"


def _unit(value: object, key: str) -> str:
    text = "count" if value is None else str(value).strip()
    text = UNIT_ALIASES.get(text, text)
    if text not in UNITS:
        raise ConfigError(f"unknown unit {value!r}", key=key,
                          hint=f"use one of {', '.join(sorted(UNITS))} (or requests/s, s, B, %)")
    return text


def parse_queries(raw: object, *, key: str = "prometheus.queries") -> list[QuerySpec]:
    """Check the ``queries`` list; :class:`ConfigError` names the entry and key."""
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise ConfigError("must be a list of {name, promql, unit} entries", key=key)
    out, seen = [], set()
    for i, item in enumerate(raw):
        k = f"{key}[{i}]"
        if not isinstance(item, Mapping):
            raise ConfigError("each query must be a mapping", key=k,
                              hint="e.g. {name: api_request_rate, promql: 'sum(rate(x[5m]))', "
                                   "unit: requests/s}")
        bad = sorted(set(item) - _QUERY_KEYS)
        if bad:
            raise ConfigError(f"unknown key(s) {bad}", key=k,
                              hint=f"allowed keys: {', '.join(sorted(_QUERY_KEYS))}")
        name = item.get("name")
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ConfigError(f"name {name!r} must be snake_case", key=f"{k}.name",
                              hint="e.g. api_request_rate; capacity and targets use this name")
        if name in seen:
            raise ConfigError(f"name {name!r} is used twice", key=f"{k}.name")
        seen.add(name)
        promql = item.get("promql")
        if not isinstance(promql, str) or not promql.strip():
            raise ConfigError("promql must be a non-empty PromQL expression", key=f"{k}.promql",
                              hint="quote it in YAML: promql: 'sum(rate(x_total[5m]))'")
        kind = item.get("kind", "gauge")
        if kind not in ("gauge", "counter"):
            raise ConfigError(f"kind must be gauge or counter, got {kind!r}", key=f"{k}.kind")
        if kind == "counter" and not name.endswith(_COUNTER_SUFFIXES):
            raise ConfigError(f"a counter's name must end in _total (or _bucket, _count, _sum "
                              f"for histogram parts), got {name!r}", key=f"{k}.name",
                              hint=f"name it {name}_total; then {name}_per_second is its rate")
        labels = item.get("labels") or {}
        if not isinstance(labels, Mapping):
            raise ConfigError("labels must be a mapping of label -> value", key=f"{k}.labels")
        out.append(QuerySpec(name, promql.strip(), _unit(item.get("unit"), f"{k}.unit"), kind,
                             {str(a): str(b) for a, b in labels.items()},
                             str(item.get("source_label", "instance") or ""),
                             str(item.get("description", ""))))
    return out


def _node_queries(selector: str, mountpoint: str) -> list[dict]:
    sel = selector.strip().strip("{}").strip()
    s = f"{{{sel}}}" if sel else ""

    def with_(extra: str) -> str:
        return "{" + ",".join(p for p in (sel, extra) if p) + "}"

    fs = with_(f'mountpoint="{mountpoint}",fstype!~"tmpfs|ramfs|overlay|squashfs"')
    nic = with_('device!~"lo|veth.*|docker.*|br-.*|virbr.*"')
    busy, idle = with_('mode!~"idle|iowait|steal"'), with_('mode="idle"')
    return [
        {"name": "node_cpu_busy_seconds_total", "kind": "counter", "unit": "seconds",
         "promql": f"sum by (instance) (node_cpu_seconds_total{busy})",
         "description": "CPU seconds not idle, summed over CPUs; its rate is busy cores"},
        {"name": "node_cpu_cores", "unit": "count",
         "promql": f"count by (instance) (node_cpu_seconds_total{idle})",
         "description": "CPUs (cores/threads) the kernel reports"},
        {"name": "node_memory_used_bytes", "unit": "bytes",
         "promql": f"node_memory_MemTotal_bytes{s} - node_memory_MemAvailable_bytes{s}",
         "description": "MemTotal - MemAvailable"},
        {"name": "node_memory_limit_bytes", "unit": "bytes",
         "promql": f"node_memory_MemTotal_bytes{s}", "description": "MemTotal"},
        {"name": "node_filesystem_used_bytes", "unit": "bytes",
         "promql": f"max by (instance, mountpoint) (node_filesystem_size_bytes{fs} - "
                   f"node_filesystem_avail_bytes{fs})",
         "description": f"size - avail of {mountpoint} (what non-root users can still write)"},
        {"name": "node_filesystem_limit_bytes", "unit": "bytes",
         "promql": f"max by (instance, mountpoint) (node_filesystem_size_bytes{fs})",
         "description": f"size of {mountpoint}"},
        {"name": "node_nic_receive_bytes_total", "kind": "counter", "unit": "bytes",
         "promql": f"sum by (instance) (node_network_receive_bytes_total{nic})",
         "description": "bytes received on physical-looking interfaces"},
        {"name": "node_nic_transmit_bytes_total", "kind": "counter", "unit": "bytes",
         "promql": f"sum by (instance) (node_network_transmit_bytes_total{nic})",
         "description": "bytes sent on physical-looking interfaces"},
        {"name": "node_nic_speed_bytes", "unit": "bytes",
         "promql": f"sum by (instance) (node_network_speed_bytes{nic} > 0)",
         "description": "link speed in bytes/s where the driver reports it (absent for "
                        "virtual NICs: give a constant limit instead)"},
    ]


#: Ready-made query sets by name -> function(selector, mountpoint) -> query entries.
PRESETS = {"node_exporter": _node_queries}


def preset_queries(names: object, *, node_selector: str = "", node_mountpoint: str = "/"
                   ) -> list[QuerySpec]:
    """The query entries of the named presets (``node_exporter``)."""
    if names is None:
        return []
    if isinstance(names, str):
        names = [names]
    out: list[QuerySpec] = []
    for n in names:
        if n not in PRESETS:
            raise ConfigError(f"unknown preset {n!r}", key="prometheus.presets",
                              hint=f"use one of: {', '.join(PRESETS)}")
        out += parse_queries(PRESETS[n](str(node_selector or ""), str(node_mountpoint or "/")),
                             key=f"prometheus.presets[{n}]")
    return out


def _bare(exc: ConfigError) -> str:
    """The message of a wrapped error without its own "key '...': " prefix."""
    return re.sub(r"^key '[^']*': ", "", exc.message)


def _value(text: object, kind: str) -> float | None:
    try:
        v = float(text)
    except (TypeError, ValueError):
        return None
    if math.isinf(v):
        return None if kind == "counter" else math.nan
    if kind == "counter" and (math.isnan(v) or v < 0):
        return None
    return v


def fetch_queries(base_url: str, queries: list[QuerySpec], start: object, end: object, *,
                  step: object = "auto", min_step: object = 15.0, timeout_s: float = 30.0,
                  bearer_token: str | None = None) -> pd.DataFrame:
    """Every query over ``[start, end]`` as one contract frame (see the module docstring).

    ``frame.attrs``: ``step_s``, ``points`` (query name -> points returned), ``empty_queries``
    (queries that returned no series), ``prometheus_warnings``.
    """
    from capplan.collect import prometheus as prom

    t0, t1 = prom._epoch(start, "prometheus.start"), prom._epoch(end, "prometheus.end")
    if not t1 > t0:
        raise ConfigError(f"end ({end}) must be after start ({start})", key="prometheus.end")
    st = _step(step, min_step, t0, t1)
    recs: list[dict] = []
    points: dict[str, int] = {}
    empty: list[str] = []
    warnings: list[str] = []
    for q in queries:
        try:
            series, warn = prom.query_range(base_url, q.promql, t0, t1, st, timeout_s=timeout_s,
                                            bearer_token=bearer_token)
        except ConfigError as exc:
            raise ConfigError(f"query {q.name}: {_bare(exc)}", key=f"prometheus.queries.{q.name}",
                              hint="fix the PromQL (try it in the Prometheus expression browser)"
                              ) from exc
        except SourceUnavailable as exc:
            raise SourceUnavailable(f"query {q.name}: {exc.message}", source="prometheus",
                                    hint=exc.hint) from exc
        warnings += warn
        n = 0
        for s in series:
            labels = {k: str(v) for k, v in (s.get("metric") or {}).items() if k != "__name__"}
            labels.update(q.labels)
            inst = labels.get(q.source_label) if q.source_label else None
            src = f"prometheus:{inst}" if inst else "prometheus"
            for t, v in s.get("values") or []:
                val = _value(v, q.kind)
                if val is None:
                    continue
                recs.append({"timestamp": float(t), "source": src, "metric": q.name,
                             "labels": labels, "value": val, "kind": q.kind, "unit": q.unit})
                n += 1
        points[q.name] = n
        if not series:
            empty.append(q.name)
    df = make_frame(recs)
    if len(df):
        df = df.sort_values(["source", "metric", "labels", "timestamp"],
                            kind="stable").reset_index(drop=True)
    df.attrs.update(step_s=st, points=points, empty_queries=empty,
                    prometheus_warnings=list(dict.fromkeys(warnings)))
    return df


def _step(step: object, min_step: object, t0: float, t1: float) -> float:
    from capplan.collect import prometheus as prom

    if step is None or (isinstance(step, str) and step.strip().lower() == "auto"):
        return prom.choose_step(t0, t1, min_step=prom.parse_duration(min_step,
                                                                     key="prometheus.min_step"))
    return prom._check_step(prom.parse_duration(step, key="prometheus.step"))


def resolve_window(cfg: Mapping, *, now: pd.Timestamp | None = None
                   ) -> tuple[pd.Timestamp, pd.Timestamp, float]:
    """``(start, end, days)`` from ``days`` (fractional allowed) or ``start``/``end``."""
    from capplan.collect import prometheus as prom

    now = (now or pd.Timestamp.now(tz="UTC")).floor("s")
    days = cfg.get("days")
    days = 30.0 if days is None else _days(days)
    if cfg.get("end") is not None:
        end = pd.Timestamp(prom._epoch(cfg["end"], "prometheus.end"), unit="s", tz="UTC")
    else:
        end = now
    if cfg.get("start") is not None:
        start = pd.Timestamp(prom._epoch(cfg["start"], "prometheus.start"), unit="s", tz="UTC")
    else:
        start = end - pd.Timedelta(days=days)
    if not end > start:
        raise ConfigError(f"end ({end}) must be after start ({start})", key="prometheus.start")
    return start, end, (end - start).total_seconds() / 86400


def _days(value: object) -> float:
    try:
        d = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"days must be a number, got {value!r}", key="prometheus.days",
                          hint="e.g. 30, or 0.01 for 14.4 minutes") from None
    if not d > 0 or math.isinf(d):
        raise ConfigError(f"days must be positive, got {value!r}", key="prometheus.days")
    return d


def _check_cfg(cfg: object) -> dict:
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, Mapping):
        raise ConfigError("must be a mapping", key="prometheus",
                          hint="see params/prometheus.yaml")
    bad = sorted(set(cfg) - HISTORY_KEYS)
    if bad:
        import difflib

        close = [c for b in bad for c in difflib.get_close_matches(b, HISTORY_KEYS, n=1)]
        raise ConfigError(f"unknown key(s) {bad}", key="prometheus",
                          hint=(f"did you mean {', '.join(close)}? " if close else "")
                          + f"allowed keys: {', '.join(sorted(HISTORY_KEYS))}")
    return dict(cfg)


def _all_queries(cfg: Mapping) -> list[QuerySpec]:
    qs = parse_queries(cfg.get("queries"))
    qs += preset_queries(cfg.get("presets"), node_selector=cfg.get("node_selector") or "",
                         node_mountpoint=cfg.get("node_mountpoint") or "/")
    names = [q.name for q in qs]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"query name(s) {dup} defined twice (queries and presets)",
                          key="prometheus.queries", hint="rename your query")
    return qs


def _url(cfg: Mapping) -> tuple[str, str]:
    var = str(cfg.get("url_env") or "PROMETHEUS_URL")
    url = os.environ.get(var)
    if not url:
        raise ConfigError(f"environment variable {var} is not set", key="prometheus.url_env",
                          hint=f"export {var}=http://127.0.0.1:9090 (the Prometheus base URL)")
    return url, var


def validate_queries(cfg: object, *, path: str | None = None) -> list[str]:
    """Check the ``prometheus`` section and have Prometheus parse every query (no evaluation).

    Returns the query names.  Raises :class:`ConfigError` (exit 2) quoting Prometheus's message
    and the query for invalid PromQL, and for a bad section or unset URL variable; raises
    :class:`SourceUnavailable` when Prometheus cannot be reached.
    """
    from capplan.collect import prometheus as prom

    cfg = _check_cfg(cfg)
    qs = _all_queries(cfg)
    resolve_window(cfg)
    timeout_s = float(cfg.get("timeout_s") or 30)
    if not qs:
        return []
    url, _var = _url(cfg)
    for q in qs:
        try:
            try:
                prom._call(url, "/api/v1/format_query", {"query": q.promql},
                           timeout_s=timeout_s)
            except SourceUnavailable as exc:
                if "HTTP 404" not in str(exc) and "non-JSON" not in str(exc):
                    raise
                # servers before 2.38 have no format_query: an instant query parses it too
                prom._call(url, "/api/v1/query", {"query": q.promql, "timeout": "1"},
                           timeout_s=timeout_s)
        except ConfigError as exc:
            raise ConfigError(f"invalid PromQL in query {q.name}: {_bare(exc)}", path=path,
                              key=f"prometheus.queries.{q.name}",
                              hint="fix the expression; Prometheus's message above says where"
                              ) from exc
    return [q.name for q in qs]


def history(cfg: object, *, now: pd.Timestamp | None = None) -> tuple[pd.DataFrame, dict]:
    """History for ``mode: prometheus``: the exporter mapping (``metrics``) plus every query.

    Returns ``(frame, info)``; ``info`` holds days, window, step_s, url_env, missing_metrics,
    empty_queries, points per query, ``step_refined`` (None, or the coarse step's figures when
    the window was re-read where the data begin) and Prometheus's warnings.
    """
    cfg = _check_cfg(cfg)
    qs = _all_queries(cfg)
    url, var = _url(cfg)
    start, end, days = resolve_window(cfg, now=now)
    timeout_s = float(cfg.get("timeout_s") or 30)
    st = _step(cfg.get("step"), cfg.get("min_step") or 15, start.timestamp(),
               end.timestamp())
    refined = None
    auto = cfg.get("step") is None or str(cfg.get("step")).strip().lower() == "auto"
    if auto:    # the grid ends at ``end`` itself, so the newest data always give a point
        start = end - pd.Timedelta(seconds=st * math.floor((end - start).total_seconds() / st))
    frame, missing, warnings, info_q = _fetch_all(cfg, url, qs, start, end, st, timeout_s)
    if auto and not frame.empty:
        # Prometheus may hold far less history than the window asked for (a fresh server, the
        # default 30 days): then the auto step is too coarse for the data there is, and a
        # counter's increases vanish ("no traffic" over 919,981 hits, issue 13).  The data begin
        # after the step before the first point returned (that one found nothing), so re-ask
        # for that span at the step it needs.
        per_series = frame.groupby(["source", "metric", "labels"], sort=False).size()
        if float(per_series.median()) < MIN_POINTS:     # most series: a short history
            t0 = max(start, pd.Timestamp(frame["timestamp"].min()) - pd.Timedelta(seconds=st))
            st2 = _step("auto", cfg.get("min_step") or 15, t0.timestamp(), end.timestamp())
            t0 = end - pd.Timedelta(seconds=st2 * math.ceil((end - t0).total_seconds() / st2))
            if t0 < start:
                t0 += pd.Timedelta(seconds=st2)
            if st2 < st:
                refined = {"step_s": st, "points": int(per_series.median()),
                           "data_from": pd.Timestamp(frame["timestamp"].min()).isoformat()}
                frame, missing, warnings, info_q = _fetch_all(cfg, url, qs, t0, end, st2,
                                                              timeout_s)
                warnings = [f"Prometheus holds data only from about {t0.isoformat()}: step "
                            f"{st:g}s gave a median {refined['points']} point(s) per series, so the "
                            f"window was re-read from there at step {st2:g}s"] + warnings
                start, st = t0, st2
    return frame, {"days": round(days, 6), "window": [start.isoformat(), end.isoformat()],
                   "start": start.isoformat(), "end": end.isoformat(),
                   "step_s": st, "url_env": var, "missing_metrics": missing,
                   "queries": [q.name for q in qs], **info_q, "step_refined": refined,
                   "warnings": list(dict.fromkeys(warnings))}


#: Fewest points per series ``step: auto`` accepts when the data cover less than the window.
MIN_POINTS = 30


def _fetch_all(cfg, url, qs, start, end, st, timeout_s):
    from capplan.collect.prometheus import fetch_history
    from capplan.core.frame import concat_frames

    frames, missing, warnings = [], [], []
    metrics = cfg.get("metrics")
    if metrics is None or metrics:
        keep = cfg.get("keep_labels") or ("instance",)
        fh = fetch_history(url, metrics, start, end, step=st, selector=cfg.get("selector"),
                           timeout_s=timeout_s, keep_labels=keep)
        frames.append(fh)
        missing = list(fh.attrs.get("missing_metrics", []))
        warnings += list(fh.attrs.get("prometheus_warnings", []))
    info_q: dict = {"points": {}, "empty_queries": []}
    if qs:
        fq = fetch_queries(url, qs, start, end, step=st, timeout_s=timeout_s)
        frames.append(fq)
        info_q = {"points": fq.attrs["points"], "empty_queries": fq.attrs["empty_queries"]}
        warnings += fq.attrs["prometheus_warnings"]
    frame = concat_frames(frames) if frames else make_frame([])
    return frame, missing, warnings, info_q

