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


class TricklingServer:
    """Answers every connection slowly, one byte every ``gap_s`` seconds: "a server that trickles".

    ``mode="body"`` sends the status line and headers at once (``Content-Length: n_bytes``) and
    then the body a byte at a time; ``mode="headers"`` trickles the status line itself;
    ``mode="redis"`` answers any command with a bulk string of ``n_bytes`` trickled a byte at a
    time (RESP); ``mode="pg"`` completes a PostgreSQL start-up at once (no SSL, trust) and then
    trickles the reply to the first query.  Each connection stops by itself after ``n_bytes`` bytes or when the client goes
    away, and ``close()`` stops everything, so the server is bounded in time.
    """

    def __init__(self, *, mode: str = "body", gap_s: float = 1.0, n_bytes: int = 60):
        self.mode, self.gap_s, self.n_bytes = mode, gap_s, n_bytes
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def url(self, path: str = "/metrics") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except (TimeoutError, OSError):
                continue
            self.connections += 1
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        try:
            conn.settimeout(2.0)
            try:
                conn.recv(65536)   # the request (or the first command, or SSLRequest)
                if self.mode == "pg":
                    conn.sendall(b"N")    # no SSL
                    conn.recv(65536)      # the start-up message
                    conn.sendall(_pg_startup_reply())
                    conn.recv(65536)      # the first query
            except OSError:
                return
            if self.mode == "pg":
                payload = _pg_msg(b"C", b"SET\0") * max(1, self.n_bytes // 9)
            elif self.mode == "body":
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n"
                             b"Content-Length: %d\r\n\r\n" % self.n_bytes)
                payload = b"#" * self.n_bytes
            elif self.mode == "headers":
                payload = b"HTTP/1.1 200 OK\r\nX-Slow: " + b"a" * self.n_bytes
            else:   # redis
                conn.sendall(b"$%d\r\n" % self.n_bytes)
                payload = b"x" * self.n_bytes
            for i in range(len(payload)):
                if self._stop.wait(self.gap_s):
                    return
                conn.sendall(payload[i:i + 1])
        except OSError:
            pass   # the client hung up: what a bounded client does
        finally:
            conn.close()

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=2)
        self.sock.close()
        for t in self._threads:
            t.join(timeout=2)


def _pg_msg(kind: bytes, body: bytes) -> bytes:
    import struct

    return kind + struct.pack("!I", len(body) + 4) + body


def _pg_startup_reply() -> bytes:
    """AuthenticationOk, the parameters libpq/psycopg read, BackendKeyData, ReadyForQuery."""
    import struct

    out = _pg_msg(b"R", struct.pack("!I", 0))
    for k, v in (("server_version", "16.0"), ("client_encoding", "UTF8"),
                 ("standard_conforming_strings", "on"), ("integer_datetimes", "on"),
                 ("DateStyle", "ISO, MDY")):
        out += _pg_msg(b"S", k.encode() + b"\0" + v.encode() + b"\0")
    return out + _pg_msg(b"K", struct.pack("!II", 1, 2)) + _pg_msg(b"Z", b"I")
