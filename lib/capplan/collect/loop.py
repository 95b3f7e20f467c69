"""The sampling loop: read every configured source each interval for a bounded time, write the
samples to the store in batches, and carry on when a source fails.

Params (top-level keys of the same YAML file the report runner reads, so the ``01-collect``
notebook can declare them as papermill parameters)::

    store: .capplan/metrics.sqlite   # where samples go (capplan.store.open_store); --store wins
    collect_duration_s: 60           # the CLI's --duration / --interval win
    collect_interval_s: 1
    collect_batch_size: 5000         # at most this many rows per store.append()
    sources:
      - {source: redis, name: cache, url_env: REDIS_URL, queues: ["rq:queue:default"]}
      - {source: postgres, name: app, statements_top: 20}

Each round reads all sources concurrently (one thread per source, each bounded by its own
timeout_s).  Besides the sources' samples every round writes, per source, the gauges
``capplan_collect_up{source}`` (1 read / 0 failed, unit boolean) and
``capplan_collect_duration_seconds{source}`` (time of a successful read), both with frame source
``capplan``.  A failure is a gap: up = 0, its scrubbed error text in
:attr:`CollectResult.failures` and the log, and the loop goes on.  SIGINT (Ctrl-C) and SIGTERM
stop the loop after the current round; everything read so far is written before returning.

Every round's samples are appended to the store at the end of that round (and a batch is split
when it reaches ``collect_batch_size`` rows), so a ``kill -9`` loses at most the round in flight:
one interval of samples.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass, field
from datetime import datetime, timezone

import pandas as pd

from capplan.collect import Collector, create
from capplan.collect._common import build_frame, positive_float
from capplan.core.credentials import check_no_secrets, known_secrets, scrub, scrub_all
from capplan.errors import CapplanError, ConfigError, StoreError
from capplan.core.frame import concat_frames, validate_frame

__all__ = ["CollectResult", "collect", "build_collectors", "collect_settings"]

log = logging.getLogger(__name__)

DEFAULT_BATCH_ROWS = 5000
MAX_FAILURES_KEPT = 1000   # per call; the per-source counts and the up gauge stay complete


@dataclass(frozen=True)
class CollectResult:
    """What one :func:`collect` call did.  Times are UTC; ``failures`` are dicts
    ``{"timestamp", "source", "error"}`` with passwords scrubbed (the first
    :data:`MAX_FAILURES_KEPT`; ``sources`` counts every one)."""

    started_at: datetime
    ended_at: datetime
    interval_s: float
    rounds_planned: int
    rounds: int
    samples_written: int
    batches_written: int
    interrupted: bool
    sources: dict = field(default_factory=dict)     # source -> {"ok": n, "failed": n}
    failures: tuple = ()
    notes: tuple = ()

    @property
    def degraded(self) -> bool:
        """True when any read failed (the data has gaps)."""
        return bool(self.failures)

    def to_dict(self) -> dict:
        return {
            "started_at": self.started_at.isoformat(), "ended_at": self.ended_at.isoformat(),
            "interval_s": self.interval_s, "rounds_planned": self.rounds_planned,
            "rounds": self.rounds, "samples_written": self.samples_written,
            "batches_written": self.batches_written, "interrupted": self.interrupted,
            "degraded": self.degraded, "sources": {k: dict(v) for k, v in self.sources.items()},
            "failures": [dict(f) for f in self.failures], "notes": list(self.notes),
        }


LATE_GRACE_S = 2.0


def _source_of(c: Collector) -> str:
    return str(getattr(c, "source", None) or c.name)


class _Writer:
    """Buffers frames; appends them when ``batch_size`` rows are buffered and at every
    :meth:`flush` (the loop calls it once per round)."""

    def __init__(self, store, batch_size: int):
        self.store, self.batch_size = store, batch_size
        self.frames: list[pd.DataFrame] = []
        self.rows = self.written = self.batches = 0

    def add(self, frame: pd.DataFrame) -> None:
        self.frames.append(frame)
        self.rows += len(frame)
        if self.rows >= self.batch_size:
            self.flush(final=False)

    def flush(self, *, final: bool) -> None:
        if not self.frames:
            return
        batch = concat_frames(self.frames)
        try:
            self.store.append(batch)
        except (CapplanError, OSError) as exc:
            if final:
                raise StoreError(f"{len(batch)} collected samples could not be written to the "
                                 f"store: {exc}", hint="check the store path and free space, "
                                 "then collect again") from exc
            log.warning("store append failed (%s); keeping %d samples to retry", exc, len(batch))
            return
        self.frames, self.rows = [], 0
        self.written += len(batch)
        self.batches += 1


def collect(collectors: Sequence[Collector], store, *, duration_s: float, interval_s: float = 1.0,
            batch_size: int = DEFAULT_BATCH_ROWS, progress: bool = True,
            stop_event: threading.Event | None = None) -> CollectResult:
    """Sample every collector each ``interval_s`` seconds for ``duration_s`` seconds.

    ``round(duration_s / interval_s)`` rounds (at least one) start at ``t0 + k * interval_s``.
    Each round's frames go to ``store.append(frame)`` at the end of the round (earlier when
    ``batch_size`` rows are buffered), so a killed process loses at most one interval.  A failing or invalid source is recorded as a gap and the loop goes on; a read still
    running at the next round is reported as failed for that round and its frame, if it arrives,
    is kept.  Setting ``stop_event`` (or SIGINT/SIGTERM, when called from the main thread) ends
    the loop after the current round.  Raises :class:`ConfigError` on bad arguments and
    :class:`StoreError` when the final write fails.  Collectors are not closed.
    """
    duration_s = positive_float(duration_s, key="duration_s")
    interval_s = positive_float(interval_s, key="interval_s")
    if not collectors:
        raise ConfigError("no sources to collect from", key="sources",
                          hint="list at least one source under 'sources:' in the params file")
    names = [_source_of(c) for c in collectors]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"source names must be unique, repeated: {', '.join(dupes)}",
                          key="sources", hint="give each source its own 'name:'")
    n_rounds = max(1, int(round(duration_s / interval_s)))
    stop = stop_event or threading.Event()
    writer = _Writer(store, int(batch_size))
    stats = {n: {"ok": 0, "failed": 0} for n in names}
    failures: list[dict] = []
    pending: dict[str, Future] = {}
    started = datetime.now(timezone.utc)
    restore = _install_signal_handlers(stop)
    # progress: a bool (tqdm.auto bar) or a factory total -> bar (the runner's progress file)
    bar = progress(n_rounds) if callable(progress) else _progress_bar(n_rounds, progress)
    rounds = 0
    interrupted = False
    pool = ThreadPoolExecutor(max_workers=len(collectors), thread_name_prefix="capplan-collect")
    try:
        t0 = time.monotonic()
        for k in range(n_rounds):
            delay = t0 + k * interval_s - time.monotonic()
            if delay > 0 and stop.wait(delay):
                break
            if stop.is_set():
                break
            _round(collectors, names, pool, pending, writer, stats, failures,
                   deadline=t0 + (k + 1) * interval_s)
            writer.flush(final=False)   # durable every interval: kill -9 loses one round at most
            rounds += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(failed=sum(s["failed"] for s in stats.values()), refresh=False)
    except KeyboardInterrupt:
        stop.set()
    finally:
        interrupted = stop.is_set() and rounds < n_rounds
        # reads still running get a short grace (at least 2 s), so that their data or the reason
        # they failed is kept rather than dropped; a hung source cannot hold the exit longer
        _harvest(pending, names, writer, stats, failures, wait=True,
                 timeout=max(interval_s, LATE_GRACE_S))
        pool.shutdown(wait=False, cancel_futures=True)
        restore()
        if bar is not None:
            bar.close()
        writer.flush(final=True)
    notes = []
    secrets = known_secrets()
    for c in collectors:   # notes may quote a server's error text: scrubbed like failures
        notes += [scrub(f"{_source_of(c)}: {n}", secrets) for n in getattr(c, "notes", [])]
    if interrupted:
        log.info("collection stopped after %d of %d rounds; %d samples written", rounds, n_rounds,
                 writer.written)
    return CollectResult(started_at=started, ended_at=datetime.now(timezone.utc),
                         interval_s=interval_s, rounds_planned=n_rounds, rounds=rounds,
                         samples_written=writer.written, batches_written=writer.batches,
                         interrupted=interrupted,
                         sources={k: {"ok": v["ok"], "failed": v["failed"]} for k, v in stats.items()},
                         failures=tuple(failures),
                         notes=tuple(notes))


def _round(collectors, names, pool, pending, writer, stats, failures, *, deadline: float) -> None:
    """One round: start every idle collector, wait until all answer or ``deadline``."""
    _harvest(pending, names, writer, stats, failures, wait=False)
    ts = time.time()
    started: dict[str, Future] = {}
    up_rows = []
    for c, name in zip(collectors, names):
        if name in pending:   # the previous read has not returned: a gap for this round
            _fail(name, "previous read still running (source slower than the interval)",
                  stats, failures, ts)
            up_rows.append(("capplan_collect_up", {"source": name}, 0.0, "gauge", "boolean"))
            continue
        started[name] = pool.submit(_timed_snapshot, c)
    done, _ = wait_futures(list(started.values()), timeout=max(0.0, deadline - time.monotonic()))
    for name, fut in started.items():
        if fut in done:
            ok, dur = _take(fut, name, writer, stats, failures)
            up_rows.append(("capplan_collect_up", {"source": name}, float(ok), "gauge", "boolean"))
            if ok:
                up_rows.append(("capplan_collect_duration_seconds", {"source": name}, dur,
                                "gauge", "seconds"))
        else:
            pending[name] = fut
            _fail(name, "no answer within the interval", stats, failures, ts)
            up_rows.append(("capplan_collect_up", {"source": name}, 0.0, "gauge", "boolean"))
    writer.add(build_frame(ts, "capplan", up_rows))


def _timed_snapshot(c: Collector):
    t = time.perf_counter()
    frame = c.snapshot()
    return frame, time.perf_counter() - t


def _take(fut: Future, name, writer, stats, failures) -> tuple[bool, float]:
    """Store a finished read; returns (ok, seconds)."""
    exc = fut.exception()
    if exc is None:
        frame, dur = fut.result()
        try:
            validate_frame(frame, where=f"snapshot of {name}")
        except CapplanError as bad:
            exc = bad
        else:
            writer.add(frame)
            if stats[name]["failed"] and stats[name].get("_down"):
                log.info("%s: reading again", name)
            stats[name]["_down"] = False
            stats[name]["ok"] += 1
            return True, dur
    _fail(name, f"{type(exc).__name__}: {exc}", stats, failures, time.time())
    if not isinstance(exc, CapplanError):
        log.debug("%s: unexpected error from snapshot", name, exc_info=exc)
    return False, math.nan


def _fail(name, text, stats, failures, ts, *, count: bool = True) -> None:
    text = scrub_all(text)
    if count:
        stats[name]["failed"] += 1
    if not stats[name].get("_down"):
        log.warning("%s: read failed (recorded as a gap; collection goes on): %s", name, text)
    stats[name]["_down"] = True
    if len(failures) < MAX_FAILURES_KEPT:
        failures.append({"timestamp": datetime.fromtimestamp(ts, timezone.utc).isoformat(),
                         "source": name, "error": text})


def _harvest(pending, names, writer, stats, failures, *, wait: bool, timeout: float = 0) -> None:
    """Keep the frames of reads that finished after their round (they are still good data)."""
    if wait and pending:
        wait_futures(list(pending.values()), timeout=timeout)
    for name, fut in list(pending.items()):
        if fut.done():
            del pending[name]
            exc = fut.exception()
            if exc is not None:   # the round already counted the gap; keep the reason it failed
                _fail(name, f"{type(exc).__name__}: {exc} (answered after its round)", stats,
                      failures, time.time(), count=False)
                continue
            frame, _ = fut.result()
            try:
                writer.add(validate_frame(frame, where=f"snapshot of {name}"))
            except CapplanError as bad:
                _fail(name, str(bad), stats, failures, time.time(), count=False)


def _install_signal_handlers(stop: threading.Event):
    """Make SIGINT/SIGTERM set ``stop`` (main thread only); returns a function restoring them."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous = {}

    def handler(signum, _frame):
        log.info("signal %s: stopping after this round", signal.Signals(signum).name)
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        previous[sig] = signal.getsignal(sig)
        signal.signal(sig, handler)

    def restore():
        for sig, h in previous.items():
            signal.signal(sig, h)
    return restore


def _progress_bar(total: int, enabled: bool):
    if not enabled:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, desc="collect", unit="round")


def build_collectors(sources: object, *, path: str | None = None) -> list[Collector]:
    """Collectors for the ``sources:`` list of a params file (each section checked for secrets).

    Raises :class:`ConfigError` naming the file and key on a malformed section or a password.
    """
    if not isinstance(sources, Sequence) or isinstance(sources, (str, bytes)) or not sources:
        raise ConfigError("'sources' must be a non-empty list of source sections", path=path,
                          key="sources", hint="e.g. sources: [{source: redis, name: cache}]")
    out: list[Collector] = []
    try:
        for i, sec in enumerate(sources):
            if not isinstance(sec, Mapping) or not sec.get("source"):
                raise ConfigError("each source needs a 'source:' kind", path=path,
                                  key=f"sources[{i}]", hint="e.g. {source: postgres, name: app}")
            check_no_secrets(dict(sec), path=path or "params", where=f"sources[{i}]")
            cfg = dict(sec)
            cfg.setdefault("name", str(sec["source"]))
            out.append(create(str(sec["source"]), **cfg))
    except ConfigError as exc:
        for c in out:
            c.close()
        if path and not exc.path:
            raise ConfigError(exc.message, path=path, hint=exc.hint) from exc
        raise
    return out


def collect_settings(params: Mapping, *, duration_s=None, interval_s=None, store=None) -> dict:
    """Merge the ``collect_*``/``store`` keys of params with overrides (None = keep params').

    Returns ``{"duration_s", "interval_s", "batch_size", "store"}`` (defaults 60 s, 5 s, 5000,
    ``.capplan/metrics.sqlite``).  Raises :class:`ConfigError` on a non-positive number.
    """
    def pick(override, key, default):
        return override if override is not None else params.get(key, default)

    return {
        "duration_s": positive_float(pick(duration_s, "collect_duration_s", 60),
                                     key="collect_duration_s"),
        "interval_s": positive_float(pick(interval_s, "collect_interval_s", 5),
                                     key="collect_interval_s"),
        "batch_size": int(positive_float(params.get("collect_batch_size", DEFAULT_BATCH_ROWS),
                                         key="collect_batch_size")),
        "store": str(store or params.get("store") or ".capplan/metrics.sqlite"),
    }
