"""A small instrumented HTTP service on loopback and a bounded load generator, for the real-stack
tests: the generator knows the truth (every request's injected delay and completion time) that
capplan must recover from the service's Prometheus metrics.

``ApiService().start()`` serves on a free 127.0.0.1 port:

* ``GET /work?d=<seconds>`` sleeps ``d`` seconds, then answers 200.  Each request increments
  ``http_requests_total{handler="/work",code="200"}`` and observes its measured duration in the
  histogram ``http_request_duration_seconds{handler="/work"}`` (buckets :data:`BUCKETS`);
* ``GET /metrics`` is the prometheus_client exposition of its own registry (no process or
  platform collectors, so the numbers are only the service's).

``run_load(url, seconds, workers, delays)`` runs ``workers`` closed-loop client threads for about
``seconds``, each drawing its next delay from ``delays`` (a seeded callable), and returns
:class:`LoadTruth` with every completed request's delay and completion time.
"""

from __future__ import annotations

import random
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

#: Histogram bounds (seconds): 25 ms wide up to 200 ms, then coarser.
BUCKETS = (0.025, 0.05, 0.075, 0.1, 0.125, 0.15, 0.175, 0.2, 0.25, 0.5, 1.0)


class ApiService:
    """The instrumented service (see the module docstring)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("http_requests", "requests served", ["handler", "code"],
                                registry=self.registry)
        self.latency = Histogram("http_request_duration_seconds", "request duration",
                                 ["handler"], buckets=BUCKETS, registry=self.registry)
        # children exist from the start (value 0), as prometheus_client's docs advise: a series
        # that appears mid-window would lose the counts before its first scrape
        self.requests.labels("/work", "200")
        self.latency.labels("/work")
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ApiService":
        from prometheus_client import generate_latest

        svc = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802
                parts = urllib.parse.urlsplit(self.path)
                if parts.path == "/metrics":
                    body = generate_latest(svc.registry)
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if parts.path == "/work":
                    t0 = time.perf_counter()
                    d = float(urllib.parse.parse_qs(parts.query).get("d", ["0"])[0])
                    time.sleep(max(0.0, d))
                    body = b"ok"
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(body)
                    svc.latency.labels("/work").observe(time.perf_counter() - t0)
                    svc.requests.labels("/work", "200").inc()
                    return
                self.send_response(404)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> "ApiService":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass
class LoadTruth:
    """What the generator did: per completed request its delay and completion (epoch seconds)."""

    delays: list[float] = field(default_factory=list)
    done_at: list[float] = field(default_factory=list)
    started: float = 0.0
    ended: float = 0.0

    def rate(self, t0: float, t1: float) -> float:
        """Completed requests per second in ``(t0, t1]``."""
        d = np.asarray(self.done_at)
        return float(((d > t0) & (d <= t1)).sum() / (t1 - t0))

    def quantile(self, q: float, t0: float = -np.inf, t1: float = np.inf) -> float:
        d, x = np.asarray(self.done_at), np.asarray(self.delays)
        return float(np.quantile(x[(d > t0) & (d <= t1)], q))


def uniform_delays(lo: float, hi: float, seed: int):
    rng = random.Random(seed)
    lock = threading.Lock()

    def draw() -> float:
        with lock:
            return rng.uniform(lo, hi)
    return draw


def run_load(url: str, *, seconds: float, workers: int, delays) -> LoadTruth:
    """``workers`` closed-loop clients against ``url/work`` for ``seconds`` (bounded)."""
    truth = LoadTruth()
    lock = threading.Lock()
    stop_at = time.time() + seconds

    def client():
        while time.time() < stop_at:
            d = delays()
            with urllib.request.urlopen(f"{url}/work?d={d:.6f}", timeout=10) as r:  # noqa: S310
                r.read()
            now = time.time()
            with lock:
                truth.delays.append(d)
                truth.done_at.append(now)

    truth.started = time.time()
    threads = [threading.Thread(target=client, daemon=True) for _ in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 30)
    truth.ended = time.time()
    return truth
