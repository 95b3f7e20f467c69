"""HTTP sources: a latency probe for a list of URLs, and a scrape of any Prometheus text endpoint.

Two collectors are registered:

``source: http`` -- :class:`HttpProbe`::

    - source: http
      name: web                 # frame source becomes "http:web"
      urls:                     # at most 50; a string or {url, name}
        - http://127.0.0.1:8000/healthz
        - {url: "http://127.0.0.1:8000/api/items", name: items}
      requests_per_url: 5       # per snapshot, 1..1000
      timeout_s: 5              # per request, in total: connect, headers and the whole body
      budget_s: 30              # the whole snapshot, in total: no request runs past it
      loopback_only: false      # true: refuse any URL whose host is not a loopback address
      method: GET               # GET or HEAD

  Requests go round-robin over the URLs, so a slow URL cannot starve the others of budget.
  Every request ends by ``min(timeout_s, what is left of budget_s)`` however slowly the server
  sends (the deadline bounds the whole read, not each socket operation: a server trickling its
  body a byte a second is cut off at the deadline), so a snapshot never outlasts ``budget_s`` by
  more than a few milliseconds.  Redirects are not followed (a 301 is recorded as 301).  Latency
  is wall time from opening the connection to the end of the body (at most 1 MiB read), so it
  includes TCP connect and TLS.  Metrics (labels ``url`` = the name, or the URL with any
  ``user:pass@`` removed):

  * ``http_probe_latency_seconds{url,quantile}`` (gauge, seconds): nearest-rank percentiles
    ("0.5", "0.9", "0.99") of this snapshot's requests that got an HTTP status *or timed out*; a
    timed-out request counts with the time it was given (its latency is longer), so a p99 is
    never computed from the fast requests only.  With 5 requests the 0.99 quantile is the
    maximum.  NaN when no request got a status or timed out (refused, DNS, TLS errors are not
    latencies).
  * ``http_probe_latency_censored{url,quantile}`` (gauge, boolean): 1 when a timed-out request
    ranks at or below that percentile, i.e. the true percentile is *more than* the value shown
    ("> timeout"); 0 when the value is exact.
  * ``http_probe_latency_max_seconds{url}`` (gauge, seconds; a lower bound when any request timed
    out), ``http_probe_sample_count{url}`` (gauge, requests: the n behind the percentiles,
    timeouts included) and ``http_probe_timeout_count{url}`` (gauge, requests: how many of them
    timed out).
  * ``http_probe_requests_total{url,status}`` (counter, requests): cumulative since the collector
    was created; ``status`` is the HTTP code, ``timeout`` or ``error`` (refused, DNS, TLS...).
  * ``http_probe_latency_seconds_sum{url}`` (counter, seconds), ``http_probe_latency_seconds_count{url}``
    (counter, requests): for a mean latency over any window via :mod:`capplan.core.rates`; these
    count only requests that got a status (a mean over censored values would mean nothing).
  * ``http_probe_up{url}`` (gauge, boolean): 1 when the last request got a status below 400.

  A URL that fails is data (``up`` = 0, status ``error``), not an exception.

``source: metrics_endpoint`` -- :class:`MetricsEndpoint`::

    - source: metrics_endpoint
      name: redis_exporter      # frame source becomes "metrics:redis_exporter"
      url: http://127.0.0.1:9121/metrics
      timeout_s: 5              # the whole scrape, in total (connect, headers, body)
      map_exporters: true       # rename well-known exporter series (capplan.collect.exporters)
      keep_unmapped: true       # keep every other series under its sanitised name
      include: null             # optional list of metric-name prefixes to keep

  The text is parsed by ``prometheus_client.parser.text_string_to_metric_families`` (OpenMetrics by
  ``prometheus_client.openmetrics.parser`` when the server answers with that content type); see
  :func:`parse_exposition` for how its renaming (REFERENCE gotcha 7) and each metric type map onto
  the contract.
"""

from __future__ import annotations

import http.client
import math
import re
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from ipaddress import ip_address

import pandas as pd

from capplan.collect import register
from capplan.collect import exporters
from capplan.collect._common import DeadlineOpener, check_keys, open_url, positive_float
from capplan.core.credentials import scrub
from capplan.errors import ConfigError, ParseError, SourceUnavailable
from capplan.core.frame import make_frame

__all__ = ["HttpProbe", "MetricsEndpoint", "parse_exposition", "scrape_metrics", "redact_url",
           "censored_percentile", "PROBE_QUANTILES", "MAX_URLS", "MAX_REQUESTS_PER_URL"]

PROBE_QUANTILES = (0.5, 0.9, 0.99)
MAX_URLS = 50
MAX_REQUESTS_PER_URL = 1000
MAX_BUDGET_S = 600.0
_MAX_PROBE_BODY = 1 << 20
_MAX_SCRAPE_BODY = 64 << 20
_USER_AGENT = "capplan-collect"


# -- URLs ----------------------------------------------------------------------------------------
def redact_url(url: str) -> str:
    """``url`` without ``user:password@`` (safe for labels and messages)."""
    parts = urllib.parse.urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc))


def _check_url(url: object, key: str) -> str:
    if not isinstance(url, str) or not url:
        raise ConfigError(f"must be an http(s) URL, got {url!r}", key=key)
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"'{redact_url(url)}' is not an http:// or https:// URL with a host",
                          key=key, hint="write e.g. http://127.0.0.1:8000/healthz")
    return url


def _is_loopback(host: str) -> bool:
    """True when every address ``host`` resolves to is a loopback address."""
    try:
        return ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    addrs = {info[4][0] for info in infos}
    return bool(addrs) and all(ip_address(a.split("%")[0]).is_loopback for a in addrs)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):  # noqa: D102
        return None




def censored_percentile(obs: Sequence[tuple[float, bool]], q: float) -> tuple[float, float]:
    """Nearest-rank ``q`` percentile of sorted ``(seconds, timed_out)`` observations.

    A timed-out observation holds the time it was given, a lower bound of its latency.  Returns
    ``(value, censored)``: ``censored`` is 1.0 when a timed-out observation ranks at or below the
    percentile's rank, so the true percentile is more than ``value``; 0.0 when ``value`` is exact
    (every later-ranked timeout's true latency is above its bound, hence above ``value``).
    ``(nan, nan)`` for no observations.
    """
    if not obs:
        return math.nan, math.nan
    k = max(1, math.ceil(q * len(obs) - 1e-9))   # nearest rank, 1-based (numpy "inverted_cdf")
    return float(obs[k - 1][0]), float(any(t for _, t in obs[:k]))


# -- the probe -----------------------------------------------------------------------------------
class HttpProbe:
    """Latency probe for a bounded list of URLs; see the module docstring for params and metrics."""

    _KEYS = {"source", "name", "urls", "requests_per_url", "timeout_s", "budget_s",
             "loopback_only", "method"}

    def __init__(self, name: str = "http", **params):
        check_keys(params, self._KEYS, where=f"sources[{name}]")
        if params.get("source", "http") != "http":
            raise ConfigError(f"source must be 'http', got {params['source']!r}", key="source")
        self.name = str(name)
        self.source = f"http:{self.name}"
        w = f"sources[{self.name}]"
        urls = params.get("urls")
        if isinstance(urls, str) or not isinstance(urls, Sequence) or not urls:
            raise ConfigError("must be a non-empty list of URLs", key=f"{w}.urls")
        if len(urls) > MAX_URLS:
            raise ConfigError(f"{len(urls)} URLs; at most {MAX_URLS} per probe", key=f"{w}.urls",
                              hint="split them over several http sources")
        self.targets: list[tuple[str, str]] = []   # (url, label)
        for i, u in enumerate(urls):
            if isinstance(u, Mapping):
                check_keys(u, {"url", "name"}, where=f"{w}.urls[{i}]")
                url = _check_url(u.get("url"), f"{w}.urls[{i}].url")
                label = str(u.get("name") or redact_url(url))
            else:
                url = _check_url(u, f"{w}.urls[{i}]")
                label = redact_url(url)
            self.targets.append((url, label))
        labels = [lab for _, lab in self.targets]
        if len(set(labels)) != len(labels):
            raise ConfigError("two URLs share a name", key=f"{w}.urls",
                              hint="give each URL a distinct 'name'")
        n = params.get("requests_per_url", 5)
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_REQUESTS_PER_URL:
            raise ConfigError(f"must be an integer in 1..{MAX_REQUESTS_PER_URL}, got {n!r}",
                              key=f"{w}.requests_per_url")
        self.requests_per_url = n
        self.timeout_s = positive_float(params.get("timeout_s", 5.0), key=f"{w}.timeout_s")
        self.budget_s = positive_float(params.get("budget_s", 30.0), key=f"{w}.budget_s")
        if self.budget_s > MAX_BUDGET_S:
            raise ConfigError(f"must be at most {MAX_BUDGET_S:g} s, got {self.budget_s:g}",
                              key=f"{w}.budget_s")
        self.loopback_only = bool(params.get("loopback_only", False))
        self.method = str(params.get("method", "GET")).upper()
        if self.method not in ("GET", "HEAD"):
            raise ConfigError(f"method must be GET or HEAD, got {self.method!r}", key=f"{w}.method")
        self._checked = False
        self._opener: DeadlineOpener | None = None
        self._totals: dict[tuple[str, str], float] = {}
        self._lat_sum: dict[str, float] = {lab: 0.0 for _, lab in self.targets}
        self._lat_count: dict[str, float] = {lab: 0.0 for _, lab in self.targets}

    def __repr__(self) -> str:
        return f"HttpProbe(name={self.name!r}, urls={len(self.targets)})"

    def _check_loopback(self) -> None:
        if self.loopback_only and not self._checked:
            for i, (url, _) in enumerate(self.targets):
                host = urllib.parse.urlsplit(url).hostname or ""
                if not _is_loopback(host):
                    raise ConfigError(f"'{redact_url(url)}' is not a loopback address and "
                                      "loopback_only is true", key=f"sources[{self.name}].urls[{i}]",
                                      hint="probe 127.0.0.1/::1/localhost, or set loopback_only: false")
        self._checked = True

    def _one(self, url: str, deadline: float) -> tuple[str, float | None]:
        """One request ending by ``deadline`` (monotonic): (status, seconds).

        ``seconds`` is the latency for a status, the time given before the cut-off for
        ``"timeout"`` (a lower bound of the latency), None for ``"error"``.
        """
        req = urllib.request.Request(url, method=self.method, headers={"User-Agent": _USER_AGENT})
        t0 = time.perf_counter()
        try:
            with self._opener.open(req, timeout_s=self.timeout_s, deadline=deadline) as resp:
                resp.read(_MAX_PROBE_BODY)
                return str(resp.status), time.perf_counter() - t0
        except urllib.error.HTTPError as exc:   # 4xx/5xx and unfollowed 3xx still have a status
            try:
                exc.read(_MAX_PROBE_BODY)
            except (OSError, http.client.HTTPException):
                pass
            finally:
                exc.close()
            return str(exc.code), time.perf_counter() - t0
        except (TimeoutError, socket.timeout):
            return "timeout", time.perf_counter() - t0
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, (TimeoutError, socket.timeout)):
                return "timeout", time.perf_counter() - t0
            return "error", None
        except (OSError, http.client.HTTPException):   # refused, reset, a garbled status line
            return "error", None

    def snapshot(self) -> pd.DataFrame:
        """Probe every URL (round-robin, ending by ``budget_s``); returns a contract frame."""
        self._check_loopback()
        if self._opener is None:
            self._opener = DeadlineOpener([_NoRedirect()])
        budget_end = time.monotonic() + self.budget_s
        lat: dict[str, list[tuple[float, bool]]] = {lab: [] for _, lab in self.targets}
        last: dict[str, str] = {}
        for _ in range(self.requests_per_url):
            for url, label in self.targets:
                now = time.monotonic()
                if budget_end - now <= 0:
                    break
                status, seconds = self._one(url, min(now + self.timeout_s, budget_end))
                last[label] = status
                self._totals[(label, status)] = self._totals.get((label, status), 0.0) + 1
                if seconds is None:
                    continue
                timed_out = status == "timeout"
                lat[label].append((seconds, timed_out))
                if not timed_out:
                    self._lat_sum[label] += seconds
                    self._lat_count[label] += 1
        ts = time.time()
        rows = []

        def add(metric, labels, value, kind, unit):
            rows.append({"timestamp": ts, "source": self.source, "metric": metric,
                         "labels": labels, "value": value, "kind": kind, "unit": unit})

        for _, label in self.targets:
            obs = sorted(lat[label])
            for q in PROBE_QUANTILES:
                value, censored = censored_percentile(obs, q)
                qs = format(q, "g")
                add("http_probe_latency_seconds", {"url": label, "quantile": qs}, value,
                    "gauge", "seconds")
                add("http_probe_latency_censored", {"url": label, "quantile": qs}, censored,
                    "gauge", "boolean")
            add("http_probe_latency_max_seconds", {"url": label},
                float(obs[-1][0]) if obs else math.nan, "gauge", "seconds")
            add("http_probe_sample_count", {"url": label}, float(len(obs)), "gauge", "requests")
            add("http_probe_timeout_count", {"url": label}, float(sum(t for _, t in obs)),
                "gauge", "requests")
            add("http_probe_latency_seconds_sum", {"url": label}, self._lat_sum[label], "counter",
                "seconds")
            add("http_probe_latency_seconds_count", {"url": label}, self._lat_count[label],
                "counter", "requests")
            st = last.get(label)
            up = math.nan if st is None else float(st.isdigit() and int(st) < 400)
            add("http_probe_up", {"url": label}, up, "gauge", "boolean")
        for (label, status), n in sorted(self._totals.items()):
            add("http_probe_requests_total", {"url": label, "status": status}, n, "counter",
                "requests")
        return make_frame(rows)

    def close(self) -> None:
        """Nothing stays open between requests (the opener keeps no connection); safe to call
        twice, and while a snapshot still runs."""


# -- exposition text -> contract ----------------------------------------------------------------
def _sanitize(name: str) -> str:
    out = "".join(c if c.isalnum() or c == "_" else "_" for c in name.lower())
    return out if out and not out[0].isdigit() else f"_{out}"


def _unit_of(name: str, family_type: str) -> str:
    if family_type == "info" or name.endswith("_info"):
        return "info"
    for suffix, unit in (("_timestamp_seconds", "timestamp_seconds"), ("_created", "timestamp_seconds"),
                         ("_bytes", "bytes"), ("_seconds", "seconds"), ("_ratio", "ratio"),
                         ("_percent", "percent")):
        if name.endswith(suffix):
            return unit
    return "count"


def _kind_unit(sample: str, family: str, ftype: str) -> tuple[str, str]:
    """Contract kind and unit of an unmapped sample of a family of type ``ftype``."""
    if ftype == "counter":
        if sample.endswith("_created"):
            return "gauge", "timestamp_seconds"
        return "counter", _unit_of(family, ftype)
    if ftype in ("histogram", "summary"):
        if sample.endswith(("_bucket", "_count")):
            return "counter", "count"
        if sample.endswith("_created"):
            return "gauge", "timestamp_seconds"
        return ("counter" if sample.endswith("_sum") else "gauge"), _unit_of(family, ftype)
    if ftype == "stateset":
        return "gauge", "boolean"
    return "gauge", _unit_of(sample, ftype)


_NAME_RE = re.compile(r"^[ \t]*([a-zA-Z_:][a-zA-Z0-9_:]*)", re.MULTILINE)


def _names_in(text: str) -> set[str]:
    """Sample names as written in exposition text (comment lines give ``HELP``/``TYPE``, skipped)."""
    return {m.group(1) for m in _NAME_RE.finditer(text)}


def _ts_seconds(ts: object) -> float | None:
    if ts is None:
        return None
    if hasattr(ts, "sec"):   # openmetrics Timestamp
        return float(ts.sec) + float(getattr(ts, "nsec", 0)) / 1e9
    return float(ts)


def parse_exposition(text: str, *, source: str, timestamp: float | None = None,
                     map_exporters: bool = True, keep_unmapped: bool = True,
                     include: Iterable[str] | None = None, openmetrics: bool = False,
                     where: str = "<exposition>") -> pd.DataFrame:
    """A contract frame from Prometheus exposition text (one scrape).

    ``timestamp`` (epoch seconds, default now) applies to samples without their own timestamp.
    With ``map_exporters``, series known to :mod:`capplan.collect.exporters` get capplan's names,
    labels, kinds and units (and derived ``pg_usable_connections``); ``keep_unmapped`` keeps the rest
    under their sample names, lower-cased with other characters turned into ``_``.

    How the parser's output is mapped (``prometheus_client`` renames, REFERENCE gotcha 7):

    * counter: the family name loses ``_total`` and each sample is named ``<family>_total`` (the
      suffix is *added* where the text lacked it).  The name as written in the text is kept --
      what a Prometheus server scraping the same endpoint stores -- so postgres_exporter's
      ``pg_stat_database_blks_hit`` stays without ``_total``.  ``kind=counter``.
    * histogram: ``_bucket{le}`` and ``_count`` are counters in unit ``count``; ``_sum`` a counter
      in the family's unit.  summary: ``{quantile}`` samples are gauges, ``_sum``/``_count`` as
      for histograms.  ``_created`` samples are gauges in ``timestamp_seconds``.
    * gauge, untyped (``unknown``), info, stateset: gauges.  Units come from the name suffix
      (``_bytes``, ``_seconds``, ``_ratio``...), else ``count``.

    ``+Inf``/``-Inf`` gauge values become NaN (the contract forbids infinities); counter samples
    that are NaN, infinite or negative are dropped (a counter cannot take them).  Raises
    :class:`ParseError` naming ``where`` when the text is not valid exposition format.
    """
    if openmetrics:
        from prometheus_client.openmetrics.parser import text_string_to_metric_families
    else:
        from prometheus_client.parser import text_string_to_metric_families
    now = time.time() if timestamp is None else float(timestamp)
    prefixes = tuple(include) if include else None
    raw = []   # (sample name, family name, family type, labels, ts, value)
    written = _names_in(text)
    try:
        for fam in text_string_to_metric_families(text):
            for s in fam.samples:
                ts = _ts_seconds(s.timestamp)
                name = s.name
                if fam.type == "counter" and name.endswith("_total") and name not in written \
                        and name[:-6] in written:
                    name = name[:-6]   # undo the parser's added suffix: Prometheus keeps the name
                raw.append((name, fam.name, fam.type, dict(s.labels),
                            now if ts is None else ts, float(s.value)))
    except (ValueError, TypeError, IndexError) as exc:
        raise ParseError(f"not valid Prometheus exposition text: {exc}", path=where,
                         hint="check that the URL serves /metrics in the text format") from exc

    rows: list[dict] = []
    unmapped = []
    mapped_in = []
    for item in raw:
        m = exporters.lookup(item[0], item[2]) if map_exporters else None
        (mapped_in if m is not None else unmapped).append((m, item))
    if mapped_in:
        pairs = [(m, (name, labels, ts, value)) for m, (name, _f, _t, labels, ts, value) in mapped_in]
        for metric, labels, ts, value, kind, unit in exporters.map_rows(pairs, keep=()):
            rows.append({"timestamp": ts, "source": source, "metric": metric, "labels": labels,
                         "value": value, "kind": kind, "unit": unit})
    if keep_unmapped:
        seen = {(r["metric"], exporters.label_text(r["labels"]), r["timestamp"]) for r in rows}
        for _m, (name, fam, ftype, labels, ts, value) in unmapped:
            metric = _sanitize(name)
            kind, unit = _kind_unit(name, fam, ftype)
            key = (metric, exporters.label_text(labels), ts)
            if key in seen:
                continue
            seen.add(key)
            rows.append({"timestamp": ts, "source": source, "metric": metric, "labels": labels,
                         "value": value, "kind": kind, "unit": unit})
    if prefixes:
        rows = [r for r in rows if r["metric"].startswith(prefixes)]
    clean = []
    for r in rows:
        v = r["value"]
        if r["kind"] == "counter" and (math.isnan(v) or math.isinf(v) or v < 0):
            continue
        if math.isinf(v):
            r["value"] = math.nan
        clean.append(r)
    return make_frame(clean)


def scrape_metrics(url: str, *, source: str | None = None, timeout_s: float = 10.0,
                   map_exporters: bool = True, keep_unmapped: bool = True,
                   include: Iterable[str] | None = None,
                   deadline: float | None = None) -> pd.DataFrame:
    """GET a ``/metrics`` endpoint once and return its samples as a contract frame.

    The whole request (connect, headers, body) ends within ``timeout_s`` seconds and by
    ``deadline`` (a ``time.monotonic()`` value) when given, however slowly the server sends.
    Raises :class:`SourceUnavailable` (unreachable, timeout, HTTP error, body over 64 MiB) and
    :class:`ParseError` (not exposition text).  See :func:`parse_exposition`.
    """
    safe = redact_url(url)
    src = source or f"metrics:{urllib.parse.urlsplit(url).netloc.rsplit('@', 1)[-1]}"
    req = urllib.request.Request(url, headers={
        "User-Agent": _USER_AGENT,
        "Accept": "text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5,*/*;q=0.1"})
    try:
        with open_url(req, timeout_s=timeout_s, deadline=deadline) as resp:
            body = resp.read(_MAX_SCRAPE_BODY + 1)
            ctype = resp.headers.get("Content-Type", "")
            charset = resp.headers.get_content_charset() or "utf-8"
    except urllib.error.HTTPError as exc:
        exc.close()
        raise SourceUnavailable(f"GET {safe} answered HTTP {exc.code} {scrub(exc.reason)}",
                                source=src,
                                hint="check the path (usually /metrics) and any auth") from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", exc)
        if isinstance(reason, TimeoutError):
            raise SourceUnavailable(f"GET {safe}: no complete answer within {timeout_s:g} s "
                                    "(slow or trickling server)", source=src,
                                    hint="check the exporter's load, or raise timeout_s") from exc
        raise SourceUnavailable(f"GET {safe} failed: {type(exc).__name__}: {scrub(reason)}",
                                source=src,
                                hint=f"check that the exporter runs and listens there; timeout_s="
                                     f"{timeout_s:g}") from exc
    ts = time.time()
    if len(body) > _MAX_SCRAPE_BODY:
        raise SourceUnavailable(f"GET {safe}: body larger than {_MAX_SCRAPE_BODY >> 20} MiB",
                                source=src, hint="scrape a narrower endpoint or filter with include")
    return parse_exposition(body.decode(charset, errors="replace"), source=src, timestamp=ts,
                            map_exporters=map_exporters, keep_unmapped=keep_unmapped,
                            include=include, openmetrics="openmetrics" in ctype, where=safe)


class MetricsEndpoint:
    """Scrapes one Prometheus text endpoint per snapshot; see the module docstring for params."""

    _KEYS = {"source", "name", "url", "timeout_s", "map_exporters", "keep_unmapped", "include"}

    def __init__(self, name: str = "metrics", **params):
        check_keys(params, self._KEYS, where=f"sources[{name}]")
        if params.get("source", "metrics_endpoint") != "metrics_endpoint":
            raise ConfigError(f"source must be 'metrics_endpoint', got {params['source']!r}",
                              key="source")
        self.name = str(name)
        self.source = f"metrics:{self.name}"
        w = f"sources[{self.name}]"
        self.url = _check_url(params.get("url"), f"{w}.url")
        self.timeout_s = positive_float(params.get("timeout_s", 5.0), key=f"{w}.timeout_s")
        self.map_exporters = bool(params.get("map_exporters", True))
        self.keep_unmapped = bool(params.get("keep_unmapped", True))
        inc = params.get("include")
        if inc is not None and (isinstance(inc, str) or not isinstance(inc, Sequence)):
            raise ConfigError("must be a list of metric-name prefixes", key=f"{w}.include")
        self.include = [str(p) for p in inc] if inc else None

    def __repr__(self) -> str:
        return f"MetricsEndpoint(name={self.name!r}, url={redact_url(self.url)!r})"

    def snapshot(self) -> pd.DataFrame:
        """Scrape once.  Raises :class:`SourceUnavailable` or :class:`ParseError`."""
        return scrape_metrics(self.url, source=self.source, timeout_s=self.timeout_s,
                              map_exporters=self.map_exporters, keep_unmapped=self.keep_unmapped,
                              include=self.include)

    def close(self) -> None:
        """Nothing stays open between scrapes; safe to call twice."""


register("http", HttpProbe)
register("metrics_endpoint", MetricsEndpoint)
