"""Tiny loopback HTTP servers for the HTTP and Prometheus collector tests.

``LocalServer(routes)`` serves ``{path: handler}`` on a free 127.0.0.1 port in a daemon thread; a
handler gets the request and returns ``(status, headers, body)``.  ``SilentSocket`` listens and
accepts connections (through the kernel backlog) but never answers: "a server that accepts but
never answers".  Both stop what they started in ``close()``.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

Handler = Callable[[BaseHTTPRequestHandler], tuple[int, dict, bytes]]


class LocalServer:
    def __init__(self, routes: dict[str, Handler]):
        self.routes = routes
        self.hits: dict[str, int] = {}
        self.last_form: dict[str, list[str]] = {}   # the last POSTed form, decoded
        outer = self

        class _H(BaseHTTPRequestHandler):
            def _serve(self):
                path = self.path.split("?", 1)[0]
                outer.hits[path] = outer.hits.get(path, 0) + 1
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    outer.last_form = parse_qs(self.rfile.read(n).decode())
                route = outer.routes.get(path)
                if route is None:
                    status, headers, body = 404, {"Content-Type": "text/plain"}, b"not found\n"
                else:
                    status, headers, body = route(self)
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_POST = do_HEAD = _serve

            def log_message(self, *args):   # keep test output clean
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), _H)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class SilentSocket:
    """Listens on 127.0.0.1 and never accepts or answers."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]

    def url(self, path: str = "") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def close(self) -> None:
        self.sock.close()


def closed_port() -> int:
    """A port on 127.0.0.1 with (almost certainly) nothing listening."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
