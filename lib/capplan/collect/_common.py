"""Small helpers shared by the collectors (not public API): frames, params checks, and network
reads bounded by a total deadline (:func:`open_url`, :class:`Watchdog`)."""

from __future__ import annotations

import http.client
import io
import math
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping

import numpy as np
import pandas as pd

from capplan.errors import ConfigError
from capplan.core.frame import COLUMNS, labels_key

#: One sample before it becomes a frame row: (metric, labels, value, kind, unit).
Row = tuple[str, Mapping[str, object] | None, float, str, str]


def build_frame(ts_epoch: float, source: str, rows: Iterable[Row]) -> pd.DataFrame:
    """A contract frame for one read of one source (all rows share ``ts_epoch``, seconds UTC).

    Built column-wise rather than through :func:`capplan.core.frame.make_frame` because snapshots are
    on the collection hot path (bench/collect_cost.py); the tests validate every frame.
    Values are converted with ``float()`` so a stray ``Decimal``/``int`` never reaches a frame.
    """
    rows = list(rows)
    n = len(rows)
    values = np.empty(n, dtype="float64")
    for i, r in enumerate(rows):
        v = r[2]
        values[i] = math.nan if v is None else float(v)
    ts = pd.Timestamp(ts_epoch, unit="s", tz="UTC")
    df = pd.DataFrame({
        "timestamp": pd.DatetimeIndex([ts] * n).astype("datetime64[ns, UTC]"),
        "source": np.full(n, source, dtype=object),
        "metric": np.array([r[0] for r in rows], dtype=object),
        "labels": np.array([labels_key(r[1]) for r in rows], dtype=object),
        "value": values,
        "kind": np.array([r[3] for r in rows], dtype=object),
        "unit": np.array([r[4] for r in rows], dtype=object),
    }, columns=list(COLUMNS))
    return df


def check_keys(section: Mapping[str, object], allowed: Iterable[str], *, where: str) -> None:
    """Raise :class:`ConfigError` naming any key of a params section that is not ``allowed``."""
    allowed = set(allowed)
    unknown = sorted(str(k) for k in section if k not in allowed)
    if unknown:
        raise ConfigError(f"unknown key(s) {', '.join(unknown)}", key=where,
                          hint=f"allowed keys: {', '.join(sorted(allowed))}")


def positive_float(value: object, *, key: str) -> float:
    """``value`` as a float > 0, else :class:`ConfigError` on ``key``."""
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"must be a number, got {value!r}", key=key) from None
    if not out > 0 or math.isinf(out):
        raise ConfigError(f"must be a positive number, got {value!r}", key=key)
    return out


# -- network reads bounded by a total deadline ---------------------------------------------------
# A socket timeout bounds each recv(), not a request: a server that trickles one byte per second
# never trips a 3 s timeout and can hold a read for minutes.  Here every recv() gets the time left
# before a deadline (time.monotonic()), so status line, headers and body together end by it.

class _DeadlineIO(io.RawIOBase):
    """A response's raw stream whose every read ends by ``deadline`` (raises TimeoutError)."""

    def __init__(self, raw, sock, deadline: float, op_timeout: float | None):
        super().__init__()
        self._raw, self._sock, self._deadline, self._op = raw, sock, deadline, op_timeout

    def readable(self) -> bool:
        return True

    def readinto(self, b) -> int:
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no complete answer before the deadline (slow or trickling server)")
        self._sock.settimeout(left if self._op is None else min(self._op, left))
        return self._raw.readinto(b)

    def close(self) -> None:
        if not self.closed:
            self._raw.close()   # drops the socket reference the response holds
        super().close()


class _DeadlineResponse(http.client.HTTPResponse):
    def __init__(self, sock, *args, deadline: float, op_timeout: float | None, **kwargs):
        super().__init__(sock, *args, **kwargs)
        raw = self.fp.detach()   # keep the socket's SocketIO (and its reference), re-buffer it
        self.fp = io.BufferedReader(_DeadlineIO(raw, sock, deadline, op_timeout))


class _Deadline:
    """When the request in flight must end (``at``, monotonic) and the per-operation timeout."""

    __slots__ = ("at", "op")

    def __init__(self) -> None:
        self.at, self.op = math.inf, None


_CONN_CLASSES: dict[type, type] = {}


def _deadline_connection(base: type) -> type:
    """``base`` (HTTPConnection or HTTPSConnection) whose connect and reads end by a deadline."""
    cls = _CONN_CLASSES.get(base)
    if cls is not None:
        return cls

    class _Conn(base):   # type: ignore[misc, valid-type]
        def __init__(self, *args, capplan_deadline: _Deadline, **kwargs):
            super().__init__(*args, **kwargs)
            self._end, op = capplan_deadline.at, capplan_deadline.op
            self.response_class = lambda sock, *a, **kw: _DeadlineResponse(
                sock, *a, deadline=self._end, op_timeout=op, **kw)

        def connect(self):
            left = self._end - time.monotonic()
            if left <= 0:
                raise TimeoutError("no time left before the deadline to connect")
            self.timeout = left if self.timeout is None else min(self.timeout, left)
            super().connect()
            self.sock.settimeout(min(self.timeout, max(0.001, self._end - time.monotonic())))

    _Conn.__name__ = f"Deadline{base.__name__}"
    _CONN_CLASSES[base] = _Conn
    return _Conn


class _DeadlineHTTPHandler(urllib.request.HTTPHandler):
    def __init__(self, state: _Deadline):
        super().__init__()
        self._state = state

    def do_open(self, http_class, req, **kw):
        return super().do_open(_deadline_connection(http_class), req, capplan_deadline=self._state,
                               **kw)


class _DeadlineHTTPSHandler(urllib.request.HTTPSHandler):
    def __init__(self, state: _Deadline):
        super().__init__()
        self._state = state

    def do_open(self, http_class, req, **kw):
        return super().do_open(_deadline_connection(http_class), req, capplan_deadline=self._state,
                               **kw)


class DeadlineOpener:
    """A reusable ``urllib`` opener whose every request ends by a total deadline (see
    :func:`open_url`).  One request at a time per opener (the deadline is the opener's state);
    building it once saves ~0.5 ms per request over ``build_opener`` each time."""

    def __init__(self, handlers: Iterable[urllib.request.BaseHandler] = ()):
        self._state = _Deadline()
        self._opener = urllib.request.build_opener(_DeadlineHTTPHandler(self._state),
                                                   _DeadlineHTTPSHandler(self._state), *handlers)

    def open(self, req: urllib.request.Request | str, *, timeout_s: float,
             deadline: float | None = None):
        """Open ``req``; connect, headers and every body read end by ``deadline`` (a
        ``time.monotonic()`` value) and within ``timeout_s`` from now, whichever is first."""
        now = time.monotonic()
        end = now + timeout_s if deadline is None else min(deadline, now + timeout_s)
        if end - now <= 0:
            raise TimeoutError("no time left before the deadline")
        self._state.at, self._state.op = end, timeout_s
        return self._opener.open(req, timeout=min(timeout_s, end - now))


def open_url(req: urllib.request.Request | str, *, timeout_s: float, deadline: float | None = None,
             handlers: Iterable[urllib.request.BaseHandler] = ()):
    """``urllib`` open whose connect, status line, headers and every body read end by a total
    deadline: ``deadline`` (a ``time.monotonic()`` value) or ``timeout_s`` from now, whichever
    comes first.

    ``timeout_s`` also bounds each socket operation.  Extra ``handlers`` (e.g. one refusing
    redirects) go to ``urllib.request.build_opener``; a redirect shares the deadline.  Reading
    the returned response past the deadline raises :class:`TimeoutError`; opening raises what
    ``urlopen`` raises (``URLError`` wrapping ``TimeoutError``, ``HTTPError`` ...).  For many
    requests, keep a :class:`DeadlineOpener`.
    """
    return DeadlineOpener(handlers).open(req, timeout_s=timeout_s, deadline=deadline)


class Watchdog:
    """Calls ``action`` (e.g. closing a client's sockets) if the ``with`` block is still running
    after ``seconds``; :attr:`fired` says whether it did.  For clients whose reads only know a
    per-operation socket timeout (redis-py), so a trickling server cannot hold a snapshot."""

    def __init__(self, seconds: float, action: Callable[[], object]):
        self.seconds, self.action = float(seconds), action
        self.fired = False
        self._timer: threading.Timer | None = None

    def _fire(self) -> None:
        self.fired = True
        try:
            self.action()
        except Exception:  # noqa: BLE001 - closing a broken client may fail; the read fails anyway
            pass

    def __enter__(self) -> "Watchdog":
        self._timer = threading.Timer(self.seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        if self._timer is not None:
            self._timer.cancel()
