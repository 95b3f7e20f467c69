"""Many series on Dask with memory bounded by the chunk, not the fleet (issue 16 item 3).

The per-series growth model (:func:`capplan.models.growth.fit_forecast`: change detection,
Theil-Sen trends, a rolling-origin backtest, cross-fitted conformal intervals) is fitted one
series at a time (its backtest over all origins is one numpy pass, but series are not batched
together: :mod:`capplan.models.growth_windows`).  What this module bounds is the
memory and the shipping: series are loaded on the worker, fitted in chunks, and each chunk comes
back as a few small rows (no history, no sample paths) that are appended to ``series.csv`` as
they arrive, while the fleet summary keeps only counts and the ``top`` most urgent rows.  At
most ``in_flight`` chunks are submitted at a time, so neither the scheduler's task graph nor
the client's results grow with the number of series.

    with dask_client(...) as client:
        summary = fit_series_fleet(client, load, keys, out_dir=path, chunk=100, horizon=168)

``load(keys) -> {key: (series, limit)}`` runs on the worker (it must be picklable: a module-level
function, or a ``functools.partial`` of one) and reads the series from wherever they live (a
store, a generator); ``limit`` may be None (no runway then).  A lost worker's chunk is resubmitted
by Dask like any task.

Worker memory: Dask's statistical profiler (``distributed.worker.profile``, on by default)
samples the task thread's stack every 10 ms and keeps one call tree per second for the last
``distributed.admin.low-level-log-length`` (1,000) seconds.  On these deep numpy stacks that is
~0.9 MiB of dicts per second of fitting, i.e. a worker grows with the time it has spent fitting,
up to roughly 0.9 GiB after ~17 minutes, whatever the chunk size (measured: 140k -> 169k Python
objects, 216 -> 239 MiB over 100 chunks of 5 series; without the profiler 210.9 -> 215.5 MiB
over 200 chunks).
:func:`capplan.runner.fleet.dask_client` starts LocalCluster workers without it; on an existing
cluster start the workers with ``DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False``.
:func:`fit_series_fleet` counts the workers that still profile (``worker_profiler_on``) and warns.
"""

from __future__ import annotations

import csv
import gc
import json
import os
import resource
import socket
import time
import warnings
from pathlib import Path
from typing import Callable, Iterable

__all__ = ["ROW_FIELDS", "fit_chunk", "stream_map", "SeriesSink", "fit_series_fleet",
           "peak_rss_mb", "rss_mb", "profiling_workers", "WORKER_ENV"]

# The environment a `dask worker` needs for bounded memory and one core per process (a Nanny,
# the default, already sets the BLAS threads; `--no-nanny` workers do not).  Not
# MALLOC_TRIM_THRESHOLD_ (a Nanny sets 65536): it doubled the CPU per series (see
# capplan.runner.fleet.LOCAL_CLUSTER_CONFIG).
WORKER_ENV = {"DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED": "False", "OMP_NUM_THREADS": "1",
              "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

ROW_FIELDS = ("key", "status", "error", "model", "n_obs", "last", "mean_end", "lo95_end",
              "hi95_end", "limit", "runway", "crossing", "p_cross")
_RANK = {"already over limit": 0, "crosses": 1, "not within horizon": 2}


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MiB (Linux ru_maxrss is in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def rss_mb() -> float:
    """This process's resident set size now, in MiB (Linux /proc/self/statm)."""
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2 ** 20
    except (OSError, ValueError, IndexError):
        return 0.0


def _fmt(x) -> float | None:
    return None if x is None else float(x)


_GC_EVERY_S = 5.0
_last_gc = [float("-inf")]


def _collect_garbage() -> None:
    """A full garbage collection at most every :data:`_GC_EVERY_S` seconds of this process.

    The fits leave reference cycles that hold their arrays (pandas frames, cached properties);
    left to the collector's own full passes, which wait until a quarter of a Dask worker's ~140k
    long-lived objects are new, they piled up: 2 workers, 200 chunks of 20 series, resident
    214 -> 248 and 210 -> 224 MiB.  A full pass costs 60-90 ms, 15 % of a 10-series chunk if
    run after every chunk; once per 5 s it is ~1.5 % and the garbage is at most 5 s of fits.
    """
    now = time.monotonic()
    if now - _last_gc[0] >= _GC_EVERY_S:
        gc.collect()
        _last_gc[0] = time.monotonic()


def _worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def fit_chunk(keys: list, *, load: Callable, horizon: int, grain: str = "1h",
              bounds: tuple = (0, None)) -> dict:
    """Load and fit ``keys`` on a worker.

    Returns ``{"rows", "cpu_s", "worker_cpu_s", "start", "stop", "worker", "rss_mb",
    "peak_rss_mb"}``: one row per key (:data:`ROW_FIELDS`; a series the model refuses
    (CapplanError) is a row with ``status: refused`` and the error, never an exception); the CPU
    seconds of this task's thread (load + fits) and of the whole worker process meanwhile (its
    event loop, heartbeats, a profiler if on); wall-clock start and stop (epoch s); which worker
    process (host:pid); its resident and peak resident size after the chunk, MiB.
    """
    from capplan.errors import CapplanError
    from capplan.models.growth import fit_forecast, time_to_limit

    start, c0, p0 = time.time(), time.thread_time(), time.process_time()
    rows = []
    for key, (y, limit) in load(keys).items():
        row = dict.fromkeys(ROW_FIELDS)
        row["key"] = key
        try:
            fc = fit_forecast(y, horizon=horizon, grain=grain, bounds=bounds)
        except CapplanError as exc:
            row.update(status="refused", error=" ".join(str(exc).split()))
            rows.append(row)
            continue
        end = fc.frame.iloc[-1]
        row.update(status="ok", model=fc.model, n_obs=int(fc.n_obs),
                   last=_fmt(fc.history.dropna().iloc[-1]), mean_end=_fmt(end["mean"]),
                   lo95_end=_fmt(end["lo95"]), hi95_end=_fmt(end["hi95"]), limit=_fmt(limit))
        if limit is not None:
            rw = time_to_limit(fc, float(limit))
            row.update(runway=rw.status, p_cross=_fmt(rw.p_cross_within_horizon),
                       crossing=rw.crossing.isoformat() if rw.crossing is not None else None)
        rows.append(row)
    cpu = time.thread_time() - c0
    _collect_garbage()
    return {"rows": rows, "cpu_s": cpu, "worker_cpu_s": time.process_time() - p0,
            "start": start, "stop": time.time(), "worker": _worker_id(),
            "rss_mb": rss_mb(), "peak_rss_mb": peak_rss_mb()}


def _profiler_running(dask_worker=None) -> bool:
    pc = getattr(dask_worker, "periodic_callbacks", {}).get("profile")
    return bool(pc is not None and pc.is_running())


def profiling_workers(client) -> list[str]:
    """Addresses of the cluster's workers whose statistical profiler is running (see the module
    docstring: it costs ~0.9 MiB of worker memory per second of fitting, up to ~1,000 s)."""
    return sorted(a for a, on in client.run(_profiler_running).items() if on)


def stream_map(client, fn: Callable, items: Iterable, *, in_flight: int,
               on_result: Callable, progress: bool = False, desc: str = "chunks") -> int:
    """Run ``fn(item)`` for every item with at most ``in_flight`` tasks submitted at a time and
    hand each result to ``on_result(item, result)`` as it completes (completion order).

    Items are consumed lazily, results are not kept: the client's memory is bounded by
    ``in_flight`` results.  A task that raises re-raises here.  Returns the number of items.
    """
    from dask.distributed import as_completed

    it = iter(items)
    pending: dict = {}

    def submit() -> bool:
        try:
            item = next(it)
        except StopIteration:
            return False
        fut = client.submit(fn, item, pure=False)
        pending[fut.key] = item
        ac.add(fut)
        return True

    ac = as_completed()
    for _ in range(max(1, int(in_flight))):
        if not submit():
            break
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(desc=desc, unit="chunk")
    done = 0
    try:
        for fut in ac:
            item = pending.pop(fut.key)
            result = fut.result()
            fut.release()
            on_result(item, result)
            done += 1
            if bar is not None:
                bar.update(1)
            submit()
    finally:
        if bar is not None:
            bar.close()
    return done


class SeriesSink:
    """Appends result rows to ``<out_dir>/series.csv`` as they arrive and keeps a bounded
    summary: counts by status and runway status, the ``top`` most urgent rows (over the limit,
    then earliest crossing, then higher P(cross)), and per worker process (bounded by the number
    of workers, not of chunks) its chunks, busy seconds, CPU, and resident size after its first,
    its last and its largest chunk, and ``rss_trace``: ``[chunk, MiB]`` after its chunks 1, 2,
    4, 8, ... and its last."""

    def __init__(self, out_dir: Path, *, top: int = 20):
        self.out_dir = Path(out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.top = int(top)
        self._fh = open(self.out_dir / "series.csv", "w", newline="", encoding="utf-8")
        self._csv = csv.DictWriter(self._fh, fieldnames=ROW_FIELDS)
        self._csv.writeheader()
        self._top: list[dict] = []
        self.counts: dict[str, int] = {}
        self.n = 0
        self.cpu_s = 0.0
        self.worker_cpu_s = 0.0
        self.worker_peak_rss_mb = 0.0
        self.workers: dict[str, dict] = {}

    @staticmethod
    def _urgency(row: dict) -> tuple:
        return (_RANK.get(row.get("runway"), 3), row.get("crossing") or "9999",
                -(row.get("p_cross") or 0.0), str(row["key"]))

    def add(self, result: dict) -> None:
        self._csv.writerows(result["rows"])
        self._fh.flush()
        self.cpu_s += result.get("cpu_s", 0.0)
        self.worker_cpu_s += result.get("worker_cpu_s", 0.0)
        self.worker_peak_rss_mb = max(self.worker_peak_rss_mb, result.get("peak_rss_mb", 0.0))
        wid = result.get("worker")
        if wid is not None:
            rss = round(result.get("rss_mb", 0.0), 1)
            w = self.workers.setdefault(wid, {"chunks": 0, "busy_s": 0.0, "cpu_s": 0.0,
                                              "first_start": result["start"],
                                              "rss_first_mb": rss, "rss_max_mb": rss})
            w["chunks"] += 1
            if w["chunks"] & (w["chunks"] - 1) == 0:     # after chunk 1, 2, 4, 8, ...: bounded
                w.setdefault("rss_trace", []).append([w["chunks"], rss])
            w["busy_s"] += result["stop"] - result["start"]
            w["cpu_s"] += result.get("cpu_s", 0.0)
            w["first_start"] = min(w["first_start"], result["start"])
            w["last_stop"] = max(w.get("last_stop", 0.0), result["stop"])
            w["rss_last_mb"] = rss
            w["rss_max_mb"] = max(w["rss_max_mb"], rss)
            w["peak_rss_mb"] = round(result.get("peak_rss_mb", 0.0), 1)
        for row in result["rows"]:
            self.n += 1
            k = row["runway"] or row["status"]
            self.counts[k] = self.counts.get(k, 0) + 1
            if row["status"] != "ok" or row["runway"] not in ("already over limit", "crosses"):
                continue
            self._top.append(row)
        if len(self._top) > 4 * self.top:        # bounded: sort and keep the most urgent
            self._top = sorted(self._top, key=self._urgency)[: self.top]

    def summary(self) -> dict:
        top = sorted(self._top, key=self._urgency)[: self.top]
        workers = {}
        for wid, w in sorted(self.workers.items()):
            span = w["last_stop"] - w["first_start"]
            workers[wid] = {"chunks": w["chunks"], "busy_s": round(w["busy_s"], 3),
                            "cpu_s": round(w["cpu_s"], 3),
                            # share of the worker's span (first start to last stop) in tasks,
                            # and of that busy time it got on a core
                            "busy_share": round(w["busy_s"] / span, 3) if span > 0 else None,
                            "cpu_share": (round(w["cpu_s"] / w["busy_s"], 3) if w["busy_s"]
                                          else None),
                            "rss_first_mb": w["rss_first_mb"], "rss_last_mb": w["rss_last_mb"],
                            "rss_max_mb": w["rss_max_mb"], "peak_rss_mb": w["peak_rss_mb"],
                            "rss_trace": w["rss_trace"] + [[w["chunks"], w["rss_last_mb"]]]}
        return {"series": self.n, "counts": dict(sorted(self.counts.items())), "top": top,
                "cpu_s": round(self.cpu_s, 3), "worker_cpu_s": round(self.worker_cpu_s, 3),
                "worker_peak_rss_mb": round(self.worker_peak_rss_mb, 1), "workers": workers}

    def close(self) -> None:
        self._fh.close()


def fit_series_fleet(client, load: Callable, keys: Iterable, *, out_dir: str | Path,
                     chunk: int = 100, in_flight: int | None = None, horizon: int = 168,
                     grain: str = "1h", bounds: tuple = (0, None), top: int = 20,
                     progress: bool = False) -> dict:
    """Fit every series of ``keys`` in chunks on the cluster; rows stream to
    ``out_dir/series.csv``, the summary (also written to ``out_dir/series-summary.json``) is
    returned: ``series``, ``counts``, ``top`` rows, ``cpu_s`` (task threads) and
    ``worker_cpu_s`` (worker processes) in the chunks, ``worker_peak_rss_mb``, ``workers`` (per
    worker process: chunks, busy and CPU seconds, RSS after its first / last / largest chunk,
    peak), ``client_peak_rss_mb``, ``wall_s``, ``busy_share`` (time in tasks / (wall x worker
    threads)), ``worker_profiler_on``.  ``in_flight`` defaults to 2 chunks per worker thread.

    Warns (RuntimeWarning) when workers run Dask's statistical profiler (module docstring).
    """
    import functools

    def chunks():
        buf = []
        for k in keys:
            buf.append(k)
            if len(buf) == chunk:
                yield buf
                buf = []
        if buf:
            yield buf

    nthreads = max(1, sum(client.nthreads().values()))
    if in_flight is None:
        in_flight = 2 * nthreads
    profiling = profiling_workers(client)
    if profiling:
        warnings.warn(f"{len(profiling)} Dask worker(s) run the statistical profiler "
                      f"({profiling[0]}{', ...' if len(profiling) > 1 else ''}): it keeps "
                      "~0.9 MiB a second of fitting for ~1,000 s, so worker memory is not "
                      "bounded by the chunk. Start the workers with "
                      "DASK_DISTRIBUTED__WORKER__PROFILE__ENABLED=False "
                      "(capplan.runner.fleet.dask_client does for a LocalCluster)",
                      RuntimeWarning, stacklevel=2)
    fn = functools.partial(fit_chunk, load=load, horizon=horizon, grain=grain, bounds=bounds)
    sink = SeriesSink(Path(out_dir), top=top)
    t0 = time.perf_counter()
    try:
        stream_map(client, fn, chunks(), in_flight=in_flight,
                   on_result=lambda _item, res: sink.add(res), progress=progress,
                   desc="series chunks")
    finally:
        sink.close()
    wall = time.perf_counter() - t0
    summ = sink.summary()
    busy = sum(w["busy_s"] for w in summ["workers"].values())
    out = {**summ, "wall_s": round(wall, 3), "client_peak_rss_mb": round(peak_rss_mb(), 1),
           "chunk": chunk, "in_flight": in_flight, "nthreads": nthreads,
           # the share of (wall x worker threads) spent inside fit_chunk: below 1 by start-up,
           # scheduling gaps and the last chunks' tail, whatever the machine's load
           "busy_share": round(busy / (wall * nthreads), 3) if wall > 0 else None,
           "worker_profiler_on": len(profiling)}
    tmp = Path(out_dir) / ".series-summary.json.tmp"
    tmp.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, Path(out_dir) / "series-summary.json")
    return out
