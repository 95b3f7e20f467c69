"""The one typed model of a params file (pydantic v2), and its JSON Schema.

:class:`ParamsModel` is the only validation of a params file's structure and values: runner
keys, every notebook parameter (with the notebook's own default: a test keeps the two equal),
the live ``sources`` (one model per source kind, a discriminated union on ``source``), the
``prometheus`` history section, ``capacity`` entries, ``targets`` and SLOs.  Errors are reported
all at once by :func:`validate_params`, each with the file, the key path (``capacity[2].limit``)
and, for a misspelled key, a "did you mean".

``capplan schema`` prints :func:`json_schema`; params files start with
``# yaml-language-server: $schema=../docs/params.schema.json`` so editors complete and check
them as they are typed.
"""

from __future__ import annotations

import difflib
import math
import re
from typing import Annotated, Any, Literal, Union

from pydantic import (BaseModel, ConfigDict, Discriminator, Field, Tag, ValidationError,
                      field_validator, model_validator)

from capplan.analysis.findings import slug
from capplan.errors import ConfigError

__all__ = ["ParamsModel", "FleetModel", "validate_params", "validate_fleet", "json_schema",
           "parse_duration", "slug", "MODES"]

MODES = ("demo", "live", "prometheus", "store", "files")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|sec|min|m|h|d|w)\s*$")
_SECONDS = {"ms": 1e-3, "s": 1, "sec": 1, "min": 60, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_PANDAS_ALIASES = re.compile(r"^\s*(\d+)\s*(T|H|D|W)\s*$")
_METRIC = r"^[A-Za-z_:][A-Za-z0-9_:]*$"
_MAX_TEXT = 500


def parse_duration(text: str, *, what: str = "duration") -> float:
    """Seconds in a duration such as ``30s``, ``5min``, ``1h``, ``7d``, ``2w`` (> 0).

    ``M`` is refused (minute or month?); so are zero, negative and unitless values.
    """
    s = str(text).strip()
    m = _DURATION.match(s)
    if not m:
        m2 = _PANDAS_ALIASES.match(s)
        if m2:
            unit = {"T": "min", "H": "h", "D": "d", "W": "w"}[m2.group(2)]
            m = _DURATION.match(f"{m2.group(1)}{unit}")
    if not m:
        hint = " ('M' is ambiguous: write 1min or 30d)" if s.endswith("M") else ""
        raise ValueError(f"{what} {text!r} is not a duration like 30s, 5min, 1h, 7d{hint}")
    sec = float(m.group(1)) * _SECONDS[m.group(2)]
    if not sec > 0:
        raise ValueError(f"{what} {text!r} must be longer than zero")
    return sec


def _finite(v: float | None, *, positive: bool = False, nonneg: bool = False) -> float | None:
    if v is None:
        return v
    if isinstance(v, bool) or not math.isfinite(float(v)):
        raise ValueError("must be a finite number (not .nan or .inf)")
    if positive and not v > 0:
        raise ValueError("must be greater than zero")
    if nonneg and v < 0:
        raise ValueError("must not be negative")
    return v


Text = Annotated[str, Field(max_length=_MAX_TEXT)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Metric = Annotated[str, Field(min_length=1, max_length=200, pattern=_METRIC)]
EnvName = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
PositiveFloat = Annotated[float, Field(gt=0, allow_inf_nan=False)]
NonNegFloat = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False, frozen=True,
                              json_schema_extra={"additionalProperties": False})


# --- live sources (a discriminated union on `source`) -------------------------------------------

class _Source(_Strict):
    name: Name | None = Field(None, description="samples get source '<kind>:<name>'")
    timeout_s: PositiveFloat | None = Field(None, le=600, description="per-read timeout, seconds")


class QueueSpec(_Strict):
    key: Name
    type: Literal["list", "zset", "stream", "set"] = "list"
    name: Name | None = None


class RedisSource(_Source):
    source: Literal["redis"]
    url_env: EnvName | None = Field(None, description="environment variable holding the Redis URL "
                                                      "(default REDIS_URL)")
    url: Text | None = Field(None, description="redis:// URL without a password")
    profile: Name | None = None
    credentials_file: Text | None = None
    databases: list[int] | None = None
    queues: list[QueueSpec] = []
    slowlog: bool = True
    commandstats: bool = True
    latencystats: bool = True
    client: Any = Field(None, exclude=True, description="an injected client (library use only)")


class PostgresSource(_Source):
    source: Literal["postgres"]
    dsn_env: EnvName | None = Field(None, description="environment variable holding a DSN; "
                                                      "default: the libpq environment")
    profile: Name | None = None
    credentials_file: Text | None = None
    databases: list[Name] | Literal["all"] | None = None
    tables_limit: Annotated[int, Field(ge=0, le=100000)] | None = None
    statements_top: Annotated[int, Field(ge=0, le=10000)] | None = None
    sizes_every_s: PositiveFloat | None = None
    connection: Any = Field(None, exclude=True, description="an injected connection (library use)")


class HttpUrl(_Strict):
    url: Text
    name: Name | None = None


class HttpSource(_Source):
    source: Literal["http"]
    urls: list[HttpUrl | Text] = Field(min_length=1)
    requests_per_url: Annotated[int, Field(ge=1, le=100000)] | None = None
    budget_s: PositiveFloat | None = Field(None, le=3600)
    loopback_only: bool = True
    method: Literal["GET", "HEAD", "POST"] | None = None


class MetricsEndpointSource(_Source):
    source: Literal["metrics_endpoint"]
    url: Text
    map_exporters: bool = True
    keep_unmapped: bool = False
    include: list[Text] | None = None


class PrometheusSource(_Source):
    source: Literal["prometheus"]
    url: Text | None = None
    url_env: EnvName | None = None
    selector: Text | None = None
    metrics: list[Text] | None = None
    keep_labels: list[Text] | None = None
    bearer_token_env: EnvName | None = None


Source = Annotated[Union[
    Annotated[RedisSource, Tag("redis")],
    Annotated[PostgresSource, Tag("postgres")],
    Annotated[HttpSource, Tag("http")],
    Annotated[MetricsEndpointSource, Tag("metrics_endpoint")],
    Annotated[PrometheusSource, Tag("prometheus")],
], Discriminator("source")]


# --- prometheus history (mode: prometheus) ------------------------------------------------------

class PromQuery(_Strict):
    name: Metric = Field(description="the series name, usable in capacity and targets")
    promql: Annotated[str, Field(min_length=1, max_length=20000)]
    unit: Text | None = None
    kind: Literal["gauge", "counter"] | None = None
    labels: dict[str, Text] | list[Text] | None = None
    source_label: Text | None = None
    description: Text | None = None


class PrometheusHistory(_Strict):
    url_env: EnvName = Field("PROMETHEUS_URL", description="environment variable with the base URL")
    days: PositiveFloat | None = Field(None, le=3650, description="history to load; fractional "
                                                                  "for short windows")
    start: Text | None = None
    end: Text | None = None
    step: Text | PositiveFloat | None = Field(None, description="seconds, a duration, or auto")
    min_step: Text | PositiveFloat | None = None
    selector: Text | None = None
    metrics: list[Text] | None = None
    queries: list[PromQuery] = []
    presets: list[Text] | None = None
    node_selector: Text | None = None
    node_mountpoint: Text | None = None
    keep_labels: list[Text] | None = None
    timeout_s: PositiveFloat | None = Field(None, le=600)

    @field_validator("step")
    @classmethod
    def _step(cls, v):
        if isinstance(v, str) and v.strip() != "auto":
            parse_duration(v, what="step")
        return v


# --- job worker pools (03-scaling) ---------------------------------------------------------------

class WorkerPool(_Strict):
    name: Name
    source: Text | None = None
    queue_metric: Metric
    enqueued_metric: Metric | None = Field(None, description="a counter of jobs enqueued (*_total)")
    completed_metric: Metric | None = Field(None, description="a counter of jobs completed")
    service_time_metric: Metric | None = Field(None, description="base of <x>_sum and <x>_count")
    service_sum_metric: Metric | None = None
    service_count_metric: Metric | None = None
    workers: Annotated[int, Field(ge=1, le=1_000_000)] | None = None
    workers_metric: Metric | None = None
    wait_target_s: NonNegFloat
    wait_percentile: Annotated[float, Field(gt=0, lt=1)] | None = 0.95
    growth: PositiveFloat = 10.0
    window_days: PositiveFloat = 7.0

    @model_validator(mode="after")
    def _exactly_one(self):
        if (self.enqueued_metric is None) == (self.completed_metric is None):
            raise ValueError("give exactly one of enqueued_metric or completed_metric")
        if (self.workers is None) == (self.workers_metric is None):
            raise ValueError("give exactly one of workers (a number) or workers_metric")
        return self


# --- capacity and targets ---------------------------------------------------------------------

class Capacity(_Strict):
    name: Name
    metric: Metric
    source: Text | None = Field(None, description="one source (instance) when several are stored")
    limit: PositiveFloat | None = Field(None, description="a constant limit in the metric's unit")
    limit_metric: Metric | None = Field(None, description="a stored metric holding the limit")
    limit_source: Text | None = None
    statistic: Literal["mean", "max", "latest"] = "mean"
    bounds: tuple[float | None, float | None] | None = None

    @model_validator(mode="after")
    def _one_limit(self):
        if (self.limit is None) == (self.limit_metric is None):
            raise ValueError("give exactly one of 'limit' (a constant) or 'limit_metric'")
        if self.bounds is not None:
            lo, hi = self.bounds
            for b in self.bounds:
                _finite(b)
            if lo is not None and hi is not None and not lo < hi:
                raise ValueError("bounds must be [low, high] with low < high")
        return self


_Bound = Annotated[float, Field(allow_inf_nan=False)]


class ThresholdTarget(_Strict):
    name: Name
    metric: Metric
    unit: Text | None = None
    description: Text | None = None
    source: Text | None = None
    min: _Bound | None = None
    max: _Bound | None = None
    warn: _Bound | None = None
    crit: _Bound | None = None
    statistic: Annotated[str, Field(pattern=r"^(mean|max|min|latest|p\d{1,2}(\.\d+)?)$")] | None = None

    @model_validator(mode="after")
    def _one_bound(self):
        if (self.min is None) == (self.max is None):
            raise ValueError("give exactly one of 'min' or 'max'")
        return self


class SloTarget(_Strict):
    name: Name
    slo: Literal["availability", "latency", "error_rate"]
    objective: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)]
    window: Text = "30d"
    metric: Metric | None = None
    unit: Text | None = None
    description: Text | None = None
    source: Text | None = None
    warn: _Bound | None = None
    good_metric: Metric | None = None
    bad_metric: Metric | None = None
    total_metric: Metric | None = None
    threshold: PositiveFloat | None = None

    @field_validator("window")
    @classmethod
    def _window(cls, v):
        parse_duration(v, what="window")
        return v


def _target_kind(v: Any) -> str:
    return "slo" if isinstance(v, dict) and "slo" in v else "threshold"


Target = Annotated[Union[Annotated[ThresholdTarget, Tag("threshold")],
                         Annotated[SloTarget, Tag("slo")]], Discriminator(_target_kind)]


#: The notebooks' documented defaults (02-growth, 04-report); a test keeps them equal.
_DEMO_CAPACITY = [
    {"name": "Redis memory", "metric": "redis_used_memory_bytes",
     "limit_metric": "redis_maxmemory_bytes"},
    {"name": "PostgreSQL client connections", "metric": "pg_client_backends_total",
     "statistic": "max", "limit_metric": "pg_usable_connections"},
    {"name": "API request rate", "metric": "http_requests_per_second", "statistic": "max",
     "limit": 350, "limit_source": "rate at which p95 latency reaches 250 ms (Phase 2 load test)"},
    {"name": "PostgreSQL database size", "metric": "pg_database_size_bytes", "limit": 68719476736,
     "limit_source": "64 GiB data volume"},
]
_DEMO_TARGETS = [
    {"name": "Redis hit ratio", "metric": "redis_keyspace_hit_ratio", "min": 0.9, "warn": 0.92},
    {"name": "PostgreSQL buffer cache hit ratio", "metric": "pg_cache_hit_ratio", "min": 0.98},
    {"name": "API p95 latency", "metric": "http_request_duration_p95_seconds", "statistic": "p95",
     "max": 0.25, "warn": 0.2},
    {"name": "Availability", "slo": "availability", "objective": 0.998, "window": "30d",
     "bad_metric": "http_requests_failed_total", "total_metric": "http_requests_total"},
]


class CompareSettings(_Strict):
    """How two load-test results are compared (``capplan compare``; the handoff's "What changed")."""

    confidence: Annotated[float, Field(gt=0, lt=1, allow_inf_nan=False)] | None = None
    min_effect: dict[str, Annotated[float, Field(ge=0, allow_inf_nan=False)]] | None = None
    metrics: list[Literal["throughput", "mean", "p50", "p95", "p99", "error_rate"]] | Text | None = None
    min_runs: Annotated[int, Field(ge=1, le=1000)] | None = None
    bucket_s: PositiveFloat | None = None
    fail_on: Literal["regression", "insufficient"] | None = None
    adjust: bool | None = None


# --- the whole file ------------------------------------------------------------------------------

class ParamsModel(_Strict):
    """Every key of a params file, with the notebooks' defaults."""

    # runner
    name: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")] | None = Field(
        None, description="outputs folder name (default: the params file's stem)",
        json_schema_extra={"x-capplan-runner": True})
    # 01-collect
    mode: Literal["demo", "live", "prometheus", "store", "files"] = Field(
        "demo", description="demo (synthetic, no server) | live (sample `sources`) | prometheus "
                            "(load history) | files (exported CSV/Parquet) | store (as it is)")
    store: Text = Field("", description="SQLite file, or env:VAR naming a PostgreSQL DSN; empty for "
                                        "metrics.sqlite in the run folder")
    seed: Annotated[int, Field(ge=0, le=2**32 - 1)] = 7
    demo_days: Annotated[int, Field(ge=1, le=3650)] = 90
    demo_latency_factor: Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False)] = 1.0
    sources: list[Source] = []
    collect_duration_s: Annotated[float, Field(gt=0, le=86400, allow_inf_nan=False)] = 60.0
    collect_interval_s: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)] = 5.0
    prometheus: PrometheusHistory = PrometheusHistory()
    files: list[dict[str, Any]] = Field(
        [], description="mode: files: CSV/Parquet exports, one mapping per file (path, timestamp, "
                        "value, metric or columns / layout long, unit, kind, timezone); checked "
                        "file by file before any kernel (capplan.collect.exports.validate_files)")
    # 02-growth
    capacity: list[Capacity] = Field(default_factory=lambda: [Capacity(**c) for c in _DEMO_CAPACITY])
    grain: Text = "1h"
    horizon_days: Annotated[int, Field(ge=1, le=3650)] = 90
    lookback_days: Annotated[int, Field(ge=1, le=3650)] = 90
    # 03-scaling
    loadtest_file: Text = "demo"
    loadtest_tool: Text = ""
    load_metric: Text = "pg_xact_commit_per_second"
    load_multiplier: Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)] = 10.0
    latency_target_s: Annotated[float, Field(ge=0, le=3600, allow_inf_nan=False)] = 0.05
    worker_pools: list[WorkerPool] = []
    # 04-report
    service: Text = "checkout-api"
    from_phase: Text = "Phase 2 (beta)"
    to_phase: Text = "Phase 3 (general availability)"
    targets: list[Target] = Field(default_factory=lambda: [
        (SloTarget if "slo" in d else ThresholdTarget)(**d) for d in _DEMO_TARGETS])
    previous_summary: Text = ""
    baseline_loadtest: Text = Field("", description="load-test result(s) of the previous phase; "
                                                    "demo: the recorded pgbench pair")
    candidate_loadtest: Text = Field("", description="load-test result(s) of this phase")
    compare: CompareSettings = CompareSettings()
    baseline_days: Annotated[int, Field(ge=1, le=3650)] = 7
    current_days: Annotated[int, Field(ge=1, le=3650)] = 7

    @field_validator("grain")
    @classmethod
    def _grain(cls, v):
        if parse_duration(v, what="grain") < 1:
            raise ValueError(f"grain {v!r} is shorter than one second")
        return v

    @field_validator("store")
    @classmethod
    def _store(cls, v):
        if "://" in v or re.match(r"^\s*(host|dbname|user|password)\s*=", v):
            raise ValueError("a store is a SQLite file path or env:VAR naming a PostgreSQL DSN; "
                             "never a URL or DSN written in params")
        if v.startswith("env:") and not re.match(r"^env:[A-Za-z_][A-Za-z0-9_]*$", v):
            raise ValueError(f"{v!r}: write env:VARIABLE_NAME")
        return v

    @model_validator(mode="after")
    def _whole(self):
        for what, items in (("capacity", self.capacity), ("targets", self.targets),
                            ("worker_pools", self.worker_pools)):
            seen: dict[str, int] = {}
            for i, it in enumerate(items):
                s = slug(it.name)
                if s in seen:
                    raise ValueError(f"{what}[{i}] '{it.name}' has the same file name ('{s}') as "
                                     f"{what}[{seen[s]}] '{items[seen[s]].name}'; give it a "
                                     "distinct name")
                seen[s] = i
        if self.collect_interval_s > self.collect_duration_s:
            raise ValueError("collect_interval_s is longer than collect_duration_s")
        if self.mode == "live" and not self.sources:
            raise ValueError("mode: live needs at least one entry in sources")
        return self


# --- fleet files ---------------------------------------------------------------------------

class FleetServiceParams(ParamsModel):
    """One service of a fleet: the keys of a params file, plus ``demo_scale`` (demo mode)."""

    demo_scale: dict[str, PositiveFloat] = {}


class FleetPrometheusDiscover(_Strict):
    url_env: EnvName = "PROMETHEUS_URL"
    selector: Annotated[str, Field(min_length=1, max_length=_MAX_TEXT)]
    by: Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")] = "instance"
    days: PositiveFloat | None = Field(None, le=3650)
    step: Text | PositiveFloat | None = None
    metrics: list[Text] | None = None
    timeout_s: PositiveFloat = Field(30.0, le=600)


class FleetDiscover(_Strict):
    prometheus: FleetPrometheusDiscover


class FleetModel(_Strict):
    """A fleet params file (``capplan fleet``): services merge over ``defaults``."""

    scheduler: Text = Field("", description="tcp://host:port of a Dask scheduler; empty: a "
                                            "LocalCluster")
    workers: Annotated[int, Field(ge=1, le=10000)] = 2
    top: Annotated[int, Field(ge=1, le=100000)] = 10
    defaults: FleetServiceParams | None = None
    services: list[FleetServiceParams] = []
    discover: FleetDiscover | None = None

    @model_validator(mode="after")
    def _some_service(self):
        if not self.services and self.discover is None:
            raise ValueError("a fleet needs at least one entry in services, or discover")
        return self


# --- error reporting --------------------------------------------------------------------------

def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part in ("threshold", "slo", "redis", "postgres", "http", "metrics_endpoint",
                      "prometheus") and out.endswith("]"):
            continue  # the union's tag: not a key of the file
        else:
            out += ("." if out else "") + str(part)
    return out


def _model_at(model: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model class that owns the key at ``loc`` (for "did you mean")."""
    tags = {"threshold": ThresholdTarget, "slo": SloTarget, "redis": RedisSource,
            "postgres": PostgresSource, "http": HttpSource,
            "metrics_endpoint": MetricsEndpointSource, "prometheus": PrometheusSource}
    cur: Any = model
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        if isinstance(cur, type) and issubclass(cur, BaseModel) and str(part) in cur.model_fields:
            cur = _inner(cur.model_fields[str(part)].annotation)
        elif str(part) in tags:
            cur = tags[str(part)]
        else:
            return None
    return cur if isinstance(cur, type) and issubclass(cur, BaseModel) else None


def _inner(ann: Any) -> Any:
    import typing

    for _ in range(6):
        args = typing.get_args(ann)
        origin = typing.get_origin(ann)
        if origin is typing.Annotated:
            ann = args[0]
        elif origin in (list, tuple) and args:
            ann = args[0]
        elif origin is Union and args:
            models = [a for a in args if isinstance(a, type) and issubclass(a, BaseModel)]
            ann = models[0] if len(models) == 1 else ann
            if len(models) != 1:
                return ann
        else:
            return ann
    return ann


_EXPECTED = {"int": "int", "float": "float", "string": "str", "bool": "bool", "list": "list",
             "dict": "dict", "model": "a mapping", "tuple": "list"}


def format_errors(exc: ValidationError, model: type[BaseModel], *, path: str) -> list[dict]:
    """One entry per problem: ``{"key": "capacity[2].limit", "message": ..., "hint": ...}``."""
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        key = _loc(loc)
        msg = err["msg"].replace("Value error, ", "")
        hint = ""
        if err["type"] == "extra_forbidden":
            owner = _model_at(model, loc)
            allowed = sorted(owner.model_fields) if owner else []
            close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
            msg = f"unknown key '{loc[-1]}'"
            hint = (f"did you mean '{close[0]}'? " if close else "") + \
                (f"allowed keys: {', '.join(allowed)}" if allowed else "")
        elif err["type"].split("_")[0] in _EXPECTED and err["type"].endswith(("_type", "_parsing")):
            got = err.get("input")
            shown = repr(got) if len(repr(got)) <= 60 else repr(got)[:57] + "..."
            msg = f"expected {_EXPECTED[err['type'].split('_')[0]]}, got {type(got).__name__} {shown}"
            hint = "quote strings such as versions and durations in YAML"
        elif err["type"] == "union_tag_invalid":
            msg = f"unknown source kind {err.get('input', {}).get('source')!r}" \
                if isinstance(err.get("input"), dict) else msg
            hint = "source is one of redis, postgres, http, metrics_endpoint, prometheus"
        elif err["type"] == "union_tag_not_found":
            msg = "each source needs 'source: <kind>'"
            hint = "source is one of redis, postgres, http, metrics_endpoint, prometheus"
        out.append({"key": key, "message": msg, "hint": hint})
    return out


def validate_params(raw: dict, *, path: str) -> ParamsModel:
    """Check a params mapping against :class:`ParamsModel`; :class:`ConfigError` lists every
    problem (file, key path, message, did you mean) at once."""
    try:
        return ParamsModel.model_validate(raw)
    except ValidationError as exc:
        raise _config_error(format_errors(exc, ParamsModel, path=path), path,
                            "see `capplan schema` and params/demo.yaml") from None


def _config_error(errs: list[dict], path: str, default_hint: str) -> ConfigError:
    """One :class:`ConfigError` listing every problem (its ``errors`` keep them apart)."""
    lines = [f"{e['key'] or '(top level)'}: {e['message']}" + (f" ({e['hint']})" if e["hint"] else "")
             for e in errs]
    msg = errs[0]["message"] if len(errs) == 1 else \
        f"{len(errs)} problems:\n  " + "\n  ".join(lines)
    return ConfigError(msg, path=path, key=errs[0]["key"] if len(errs) == 1 else None,
                       hint=errs[0]["hint"] or default_hint, errors=errs)


def validate_fleet(raw: dict, *, path: str) -> FleetModel:
    """Check a fleet file against :class:`FleetModel`; every problem at once, as for params."""
    try:
        return FleetModel.model_validate(raw)
    except ValidationError as exc:
        errs = format_errors(exc, FleetModel, path=path)
        for e in errs:   # the whole-file rule is about the services key
            if not e["key"] and "services" in e["message"]:
                e["key"] = "services"
        raise _config_error(errs, path, "see params/fleets/fleet-demo.yaml") from None


def fleet_json_schema() -> dict:
    """The JSON Schema of a fleet params file (``capplan schema --fleet``)."""
    schema = FleetModel.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "capplan fleet params file"
    return schema


def json_schema() -> dict:
    """The JSON Schema (draft 2020-12) of a params file."""
    schema = ParamsModel.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "https://capplan.dev/schema/params.json"
    schema["title"] = "capplan params file"
    return schema
