"""Prometheus HTTP API: history through ``query_range`` and live samples through ``query``.

Months of history that growth models need on day one usually live in Prometheus.  This module reads
the series of the well-known exporters (redis_exporter, postgres_exporter, node_exporter) and returns
them under capplan's canonical names (:mod:`capplan.collect.exporters`), so a notebook computes the
same numbers from ``source="prometheus"`` as from the direct ``redis:<name>`` / ``postgres:<name>``
collectors.

**Counters are fetched raw** (``redis_keyspace_hits_total``, not ``rate(...)``): the contract keeps
counters raw and :mod:`capplan.core.rates` derives every rate and ratio, with Prometheus reset semantics,
for both paths alike -- one implementation, and a hit ratio summed from deltas the same way whatever
the source.  The cost: ``query_range`` returns the latest raw sample at each step, so with a step
coarser than the scrape interval a reset *followed by a climb above the old value within one step*
is not visible and that step's increase is undercounted (``rate()`` would see it).  Choose a step
near the scrape interval for short windows; for months the undercount is bounded by one step per
reset.

Prometheus API facts handled (REFERENCE gotcha 6, section 4):

* values are JSON strings; ``"NaN"`` stays NaN for gauges; ``"+Inf"``/``"-Inf"`` become NaN for
  gauges (the contract forbids infinities); counter points that are NaN, infinite or negative are
  dropped;
* a series with no data at a step simply has no point there (nothing is filled in);
* a ``query_range`` is refused above 11,000 points per series: :func:`choose_step` picks a step
  giving at most 10,000 points, and an explicit finer step is split into chunks of 10,000 points;
* errors (``{"status":"error","errorType":...,"error":...}`` with HTTP 400/422/503) raise
  :class:`~capplan.errors.ConfigError` for a bad query, step or selector (``bad_data``) and
  :class:`~capplan.errors.SourceUnavailable` otherwise, quoting Prometheus's message; ``warnings``
  are logged and kept in ``frame.attrs["prometheus_warnings"]``.

Any PromQL query as a named series, the node_exporter preset and the ``mode: prometheus``
params section are in :mod:`capplan.collect.promql`; quantiles from histogram buckets in
:mod:`capplan.models.histogram`.

Params section for live sampling (``source: prometheus``)::

    - source: prometheus
      name: prometheus          # frame source "prometheus" (or "prometheus:<name>" for others)
      url: http://127.0.0.1:9090
      url_env: null             # or the name of a variable holding http://user:pass@host:9090
      selector: 'job="redis"'   # optional label matchers (text, or a mapping of equalities)
      metrics: null             # canonical names; default every mapped metric
      keep_labels: [instance]   # Prometheus labels kept besides the mapped ones
      timeout_s: 10
      bearer_token_env: null    # name of an environment variable holding a bearer token
"""

from __future__ import annotations

import base64
import difflib
import json
import logging
import math
import os
import re
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta

import pandas as pd

from capplan.collect import register
from capplan.collect import exporters
from capplan.collect._common import check_keys, open_url, positive_float
from capplan.core.credentials import scrub
from capplan.errors import ConfigError, SourceUnavailable
from capplan.core.frame import make_frame

__all__ = ["fetch_history", "query_range", "instant_query", "choose_step", "chunk_windows",
           "parse_duration", "PrometheusCollector", "MAX_POINTS", "CHUNK_POINTS"]

log = logging.getLogger(__name__)

#: Prometheus refuses a query_range above this many points per series (web/api/v1/api.go).
MAX_POINTS = 11_000
#: Points per chunk (and the most a default step gives), safely under :data:`MAX_POINTS`.
CHUNK_POINTS = 10_000
#: A window needing more chunks than this is refused (step far too fine for the window).
MAX_CHUNKS = 200
_NICE_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
               43200, 86400)
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w|y)")
_DURATION_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}


# -- times and steps -----------------------------------------------------------------------------
def parse_duration(value: object, *, key: str = "step") -> float:
    """Seconds from a number, a :class:`~datetime.timedelta` or a Prometheus duration (``1m30s``)."""
    if isinstance(value, timedelta):
        out = value.total_seconds()
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        out = float(value)
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            out = float(text)
        except ValueError:
            parts = _DURATION_RE.findall(text)
            if not parts or "".join(n + u for n, u in parts) != text:
                raise ConfigError(f"'{value}' is not a duration", key=key,
                                  hint="write seconds (15) or a Prometheus duration (15s, 1m, 1h30m)"
                                  ) from None
            out = sum(float(n) * _DURATION_S[u] for n, u in parts)
    else:
        raise ConfigError(f"'{value!r}' is not a duration", key=key,
                          hint="write seconds (15) or a Prometheus duration (15s, 1m, 1h30m)")
    if not out > 0 or math.isinf(out):
        raise ConfigError(f"must be positive, got {value!r}", key=key)
    return out


def _check_step(step: float) -> float:
    # Prometheus turns the step into whole milliseconds; below 1 ms it divides by zero (HTTP 422)
    if step < 0.001:
        raise ConfigError(f"step {step:g}s is below Prometheus's 1 ms resolution", key="step",
                          hint="use a step of at least 0.001 s (and usually >= the scrape interval)")
    return step


def _epoch(value: object, key: str) -> float:
    """Epoch seconds from epoch numbers, datetimes (naive = UTC) or ISO text."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"'{value}' is not a time", key=key,
                          hint="pass epoch seconds, a datetime or ISO 8601 text") from exc
    if ts is pd.NaT:
        raise ConfigError("missing time", key=key)
    if ts.tzinfo is None:
        ts = ts.tz_localize("UTC")
    return ts.timestamp()


def choose_step(start: float, end: float, *, min_step: float = 15.0,
                max_points: int = CHUNK_POINTS) -> float:
    """The smallest "nice" step (1 s, 15 s, 1 min, 5 min, 1 h ...) at least ``min_step`` that
    covers ``[start, end]`` (epoch seconds) in at most ``max_points`` points per series."""
    need = max(min_step, (end - start) / max(1, max_points - 1))
    for s in _NICE_STEPS:
        if s >= need:
            return float(s)
    return float(math.ceil(need / 86400) * 86400)


def chunk_windows(start: float, end: float, step: float, *,
                  points: int = CHUNK_POINTS) -> list[tuple[float, float]]:
    """Split ``[start, end]`` into windows of at most ``points`` evaluation points each.

    Points stay on the grid ``start + k*step`` across chunks and no point is evaluated twice.
    """
    n = int(math.floor((end - start) / step + 1e-9)) + 1
    out = []
    for first in range(0, n, points):
        last = min(first + points, n) - 1
        out.append((start + first * step, start + last * step))
    return out


# -- HTTP ----------------------------------------------------------------------------------------
def _server_timeout(timeout_s: float) -> str:
    """Prometheus's own query timeout: 90 % of ours, so a slow query ends in its clean 503 error
    (errorType timeout) rather than in our socket timeout.  Float seconds: 2.42 rejects "0.5s"."""
    return f"{max(0.001, 0.9 * timeout_s):.3f}"


def _auth_headers(base_url: str, bearer_token: str | None) -> tuple[str, dict[str, str]]:
    """``base_url`` without user info, and the Authorization header it implied."""
    parts = urllib.parse.urlsplit(base_url)
    headers = {"User-Agent": "capplan-collect", "Accept": "application/json"}
    if parts.username is not None:
        cred = f"{urllib.parse.unquote(parts.username)}:{urllib.parse.unquote(parts.password or '')}"
        headers["Authorization"] = "Basic " + base64.b64encode(cred.encode()).decode()
        netloc = parts.netloc.rsplit("@", 1)[1]
        base_url = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    if bearer_token:
        headers["Authorization"] = f"Bearer {bearer_token}"
    return base_url.rstrip("/"), headers


def _call(base_url: str, path: str, form: Mapping[str, str], *, timeout_s: float,
          bearer_token: str | None = None, source: str = "prometheus") -> dict:
    """POST ``form`` to the API; the ``data`` object of a success, else a typed error."""
    base, headers = _auth_headers(base_url, bearer_token)
    if not base.startswith(("http://", "https://")):
        raise ConfigError(f"'{scrub(base_url)}' is not an http(s) URL", key="url",
                          hint="write e.g. http://127.0.0.1:9090")
    url = f"{base}{path}"
    data = urllib.parse.urlencode(form).encode()
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    req = urllib.request.Request(url, data=data, headers=headers, method="POST")
    status = None
    try:
        with open_url(req, timeout_s=timeout_s) as resp:  # whole answer within timeout_s (issue 10.7)
            body = resp.read()
            status = resp.status
    except urllib.error.HTTPError as exc:
        status = exc.code
        try:
            body = exc.read()
        finally:
            exc.close()
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise SourceUnavailable(f"Prometheus at {base} unreachable: {scrub(reason)}", source=source,
                                hint=f"check url and that Prometheus runs there; timeout_s="
                                     f"{timeout_s:g}") from exc
    try:
        doc = json.loads(body)
    except ValueError as exc:
        snippet = body[:200].decode("utf-8", "replace").strip()
        raise SourceUnavailable(f"{path} at {base} answered HTTP {status} with non-JSON "
                                f"({snippet!r})", source=source,
                                hint="check that url is the Prometheus server root "
                                     "(no /graph or /api suffix)") from exc
    if not isinstance(doc, dict) or doc.get("status") != "success":
        etype = doc.get("errorType", "?") if isinstance(doc, dict) else "?"
        err = doc.get("error", "") if isinstance(doc, dict) else str(doc)[:200]
        query = form.get("query", "")
        msg = f"{path} at {base} failed (HTTP {status}, {etype}): {err}; query: {query}"
        if etype == "bad_data":
            raise ConfigError(msg, key="metrics/selector/step",
                              hint="check the selector's label matchers and the step")
        if etype in ("timeout", "canceled"):
            hint = ("the query took too long: narrow the window, use a larger step, or raise "
                    "timeout_s (and the server's --query.timeout)")
        elif etype == "execution":
            hint = ("the query failed while running; for 'too many samples' narrow the window or "
                    "use a larger step (server flag --query.max-samples)")
        else:
            hint = "Prometheus is not ready or overloaded; retry later"
        raise SourceUnavailable(msg, source=source, hint=hint)
    for w in doc.get("warnings") or []:
        log.warning("Prometheus warning for %s: %s", form.get("query", ""), w)
    data = doc.get("data")
    if isinstance(data, str) and path.endswith("/format_query"):
        data = {"formatted": data}     # format_query answers with the expression text
    if not isinstance(data, dict):
        raise SourceUnavailable(f"{path} at {base}: answer without a data object", source=source)
    data["_warnings"] = list(doc.get("warnings") or [])
    return data


def query_range(base_url: str, query: str, start: object, end: object, step: object, *,
                timeout_s: float = 10.0, bearer_token: str | None = None,
                source: str = "prometheus") -> tuple[list[dict], list[str]]:
    """Run ``query`` over ``[start, end]`` at ``step``, chunked under the 11,000-point limit.

    Returns ``(series, warnings)`` where each series is ``{"metric": {labels}, "values":
    [[t, "v"], ...]}`` with the chunks' values concatenated in time order.
    """
    t0, t1 = _epoch(start, "start"), _epoch(end, "end")
    if not t1 > t0:
        raise ConfigError(f"end ({end}) must be after start ({start})", key="end")
    st = _check_step(parse_duration(step))
    windows = chunk_windows(t0, t1, st)
    if len(windows) > MAX_CHUNKS:
        raise ConfigError(f"step {st:g}s over {t1 - t0:g}s needs {len(windows)} queries of "
                          f"{CHUNK_POINTS} points", key="step",
                          hint=f"use a step of at least {choose_step(t0, t1, min_step=st):g}s")
    merged: dict[str, dict] = {}
    warnings: list[str] = []
    for a, b in windows:
        data = _call(base_url, "/api/v1/query_range",
                     {"query": query, "start": repr(a), "end": repr(b), "step": repr(st),
                      "timeout": _server_timeout(timeout_s)},
                     timeout_s=timeout_s, bearer_token=bearer_token, source=source)
        warnings += data["_warnings"]
        if data.get("resultType") != "matrix":
            raise SourceUnavailable(f"query_range returned {data.get('resultType')!r}, not a "
                                    f"matrix, for {query}", source=source)
        for s in data.get("result") or []:
            key = exporters.label_text(s.get("metric") or {})
            cur = merged.setdefault(key, {"metric": s.get("metric") or {}, "values": []})
            cur["values"].extend(s.get("values") or [])
    return list(merged.values()), warnings


def instant_query(base_url: str, query: str, *, at: object | None = None, timeout_s: float = 10.0,
                  bearer_token: str | None = None, source: str = "prometheus"
                  ) -> tuple[list[dict], list[str]]:
    """Run an instant ``query`` (``/api/v1/query``); returns ``(vector, warnings)``."""
    form = {"query": query, "timeout": _server_timeout(timeout_s)}
    if at is not None:
        form["time"] = repr(_epoch(at, "at"))
    data = _call(base_url, "/api/v1/query", form, timeout_s=timeout_s,
                 bearer_token=bearer_token, source=source)
    if data.get("resultType") != "vector":
        raise SourceUnavailable(f"query returned {data.get('resultType')!r}, not a vector, for "
                                f"{query}", source=source)
    return list(data.get("result") or []), data["_warnings"]


# -- mapping to the contract ---------------------------------------------------------------------
def _matchers(selector: object) -> str:
    """Label matchers without braces from text (``job="redis"`` or ``{job="redis"}``) or a mapping."""
    if selector is None:
        return ""
    if isinstance(selector, Mapping):
        esc = {str(k): str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
               for k, v in selector.items()}
        return ",".join(f'{k}="{v}"' for k, v in esc.items())
    if isinstance(selector, str):
        text = selector.strip()
        if text.startswith("{") and text.endswith("}"):
            text = text[1:-1].strip()
        return text
    raise ConfigError(f"selector must be label-matcher text or a mapping, got {selector!r}",
                      key="selector", hint='e.g. selector: \'job="redis"\'')


def _resolve(metrics: Iterable[str] | None) -> tuple[list[exporters.MetricMap], list[str]]:
    """Mappings to fetch (derived inputs included) and the canonical names asked for."""
    if metrics is None:
        names = [m.canonical for m in exporters.MAPPINGS] + list(exporters.DERIVED)
    elif isinstance(metrics, str):
        names = [metrics]
    else:
        names = list(metrics)
    known = exporters.canonical_names()
    maps: dict[str, exporters.MetricMap] = {}
    for name in names:
        if name in exporters.DERIVED:
            inputs = exporters.DERIVED[name][2]
        elif exporters.by_canonical(name) is not None:
            inputs = (name,)
        else:
            close = difflib.get_close_matches(name, known, n=3)
            raise ConfigError(f"no exporter mapping for metric '{name}'", key="metrics",
                              hint=(f"did you mean {', '.join(close)}? " if close else "")
                              + "see capplan.collect.exporters.canonical_names()")
        for n in inputs:
            maps[n] = exporters.by_canonical(n)
    return list(maps.values()), names


def _value(text: object, kind: str) -> float | None:
    """A Prometheus sample string as float; None when the point must be dropped."""
    try:
        v = float(text)   # accepts "NaN", "+Inf", "-Inf"
    except (TypeError, ValueError):
        return None
    if math.isinf(v):
        return None if kind == "counter" else math.nan
    if kind == "counter" and (math.isnan(v) or v < 0):
        return None
    return v


def _frame(rows: list[exporters.MappedRow], wanted: Iterable[str], source: str) -> pd.DataFrame:
    want = set(wanted)
    recs = [{"timestamp": ts, "source": source, "metric": metric, "labels": labels,
             "value": value, "kind": kind, "unit": unit}
            for metric, labels, ts, value, kind, unit in rows if metric in want]
    df = make_frame(recs)
    if len(df):
        df = df.sort_values(["metric", "labels", "timestamp"], kind="stable").reset_index(drop=True)
    return df


def fetch_history(base_url: str, metrics: Sequence[str] | None, start: object, end: object, *,
                  step: object | None = None, selector: object = None, timeout_s: float = 10.0,
                  keep_labels: Iterable[str] = ("instance",), source: str = "prometheus",
                  bearer_token: str | None = None) -> pd.DataFrame:
    """History of canonical ``metrics`` (None = every mapped one) from Prometheus at ``base_url``.

    ``start``/``end``: epoch seconds, datetimes (naive = UTC) or ISO text.  ``step``: seconds or a
    Prometheus duration; default :func:`choose_step` (>= 15 s, <= 10,000 points per series).
    ``selector``: label matchers applied to every exporter series (``'job="redis"'`` or
    ``{"job": "redis"}``).  One query per metric (and per chunk of 10,000 points).  Counters come
    back raw (see the module docstring); kind and unit come from the mapping; labels are the mapped
    ones plus ``keep_labels``.  ``frame.attrs`` holds ``prometheus_warnings``, ``missing_metrics``
    (asked for but without any point) and ``step_s``.

    Raises :class:`ConfigError` (unknown metric, bad selector/step/window, ``bad_data``) and
    :class:`SourceUnavailable` (unreachable, timeout, other API errors).
    """
    t0, t1 = _epoch(start, "start"), _epoch(end, "end")
    if not t1 > t0:
        raise ConfigError(f"end ({end}) must be after start ({start})", key="end")
    st = choose_step(t0, t1) if step is None else _check_step(parse_duration(step))
    maps, names = _resolve(metrics)
    matchers = _matchers(selector)
    keep = tuple(keep_labels)
    pairs = []
    warnings: list[str] = []
    for m in maps:
        series, warn = query_range(base_url, exporters.promql(m, matchers, keep), t0, t1, st,
                                   timeout_s=timeout_s, bearer_token=bearer_token, source=source)
        warnings += warn
        for s in series:
            labels = s["metric"]
            name = labels.get("__name__", m.exporter[0])
            if name not in m.exporter:   # not this mapping's series (defensive; PromQL selects it)
                continue
            for t, v in s["values"]:
                val = _value(v, m.kind)
                if val is not None:
                    pairs.append((m, (name, labels, float(t), val)))
    df = _frame(exporters.map_rows(pairs, keep=keep), names, source)
    present = set(df["metric"].unique()) if len(df) else set()
    df.attrs["prometheus_warnings"] = list(dict.fromkeys(warnings))
    df.attrs["missing_metrics"] = [n for n in names if n not in present]
    df.attrs["step_s"] = st
    return df


class PrometheusCollector:
    """Live sampling from Prometheus: one instant query per snapshot for every mapped metric."""

    _KEYS = {"source", "name", "url", "url_env", "selector", "metrics", "keep_labels",
             "timeout_s", "bearer_token_env"}

    def __init__(self, name: str = "prometheus", **params):
        check_keys(params, self._KEYS, where=f"sources[{name}]")
        if params.get("source", "prometheus") != "prometheus":
            raise ConfigError(f"source must be 'prometheus', got {params['source']!r}",
                              key="source")
        self.name = str(name)
        self.source = "prometheus" if self.name == "prometheus" else f"prometheus:{self.name}"
        w = f"sources[{self.name}]"
        url, self.url_env = params.get("url"), params.get("url_env")
        if self.url_env is None and (not isinstance(url, str)
                                     or not url.startswith(("http://", "https://"))):
            raise ConfigError(f"must be the Prometheus server URL, got {url!r}", key=f"{w}.url",
                              hint="e.g. url: http://127.0.0.1:9090, or url_env: NAME of a "
                                   "variable holding http://user:pass@host:9090")
        self.url = url
        self.matchers = _matchers(params.get("selector"))
        self.maps, self.metrics = _resolve(params.get("metrics"))
        keep = params.get("keep_labels", ("instance",))
        if isinstance(keep, str) or not isinstance(keep, Sequence):
            raise ConfigError("must be a list of label names", key=f"{w}.keep_labels")
        self.keep = tuple(str(k) for k in keep)
        self.timeout_s = positive_float(params.get("timeout_s", 10.0), key=f"{w}.timeout_s")
        self.token_env = params.get("bearer_token_env")
        self.warnings: list[str] = []

    def __repr__(self) -> str:
        return f"PrometheusCollector(name={self.name!r}, url={self.url or '$' + str(self.url_env)!r})"

    def _base_url(self) -> str:
        if self.url_env is None:
            return self.url
        url = os.environ.get(str(self.url_env))
        if not url or not url.startswith(("http://", "https://")):
            raise ConfigError(f"environment variable {self.url_env} is not set to an http(s) URL",
                              key=f"sources[{self.name}].url_env",
                              hint=f"export {self.url_env}=http://[user:pass@]host:9090")
        return url

    def _token(self) -> str | None:
        if not self.token_env:
            return None
        token = os.environ.get(str(self.token_env))
        if not token:
            raise ConfigError(f"environment variable {self.token_env} is not set",
                              key=f"sources[{self.name}].bearer_token_env",
                              hint=f"export {self.token_env}=<token> before collecting")
        return token

    def snapshot(self) -> pd.DataFrame:
        """Read the latest value of every metric (one ``/api/v1/query``); a contract frame.

        Raises :class:`SourceUnavailable` when Prometheus fails or no series matches at all.
        """
        names = sorted({n for m in self.maps for n in m.exporter})
        sel = ",".join(p for p in [f'__name__=~"{"|".join(names)}"',
                                   self.matchers] if p)
        now = time.time()
        base = self._base_url()
        vector, self.warnings = instant_query(base, "{" + sel + "}", at=now,
                                              timeout_s=self.timeout_s,
                                              bearer_token=self._token(), source=self.source)
        pairs = []
        for s in vector:
            labels = s.get("metric") or {}
            name = labels.get("__name__", "")
            m = exporters.lookup(name)
            if m is None or m not in self.maps:
                continue
            val = _value(s["value"][1], m.kind)
            if val is not None:
                pairs.append((m, (name, labels, now, val)))
        if not pairs:
            raise SourceUnavailable(f"no series at {_auth_headers(base, None)[0]} matched "
                                    f"{{{self.matchers or 'any labels'}}} for {len(names)} exporter "
                                    "metric names", source=self.source,
                                    hint="check that Prometheus scrapes redis_exporter / "
                                         "postgres_exporter / node_exporter and the selector")
        return _frame(exporters.map_rows(pairs, keep=self.keep), self.metrics, self.source)

    def close(self) -> None:
        """Nothing stays open between queries; safe to call twice."""


register("prometheus", PrometheusCollector)
