"""Many series on Dask with memory bounded by the chunk, not the fleet (issue 16 item 3).

The per-series growth model (:func:`capplan.models.growth.fit_forecast`: change detection,
Theil-Sen trends, a rolling-origin backtest, cross-fitted conformal intervals) is fitted one
series at a time; it is *not* vectorised across series here.  What this module bounds is the
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
"""

from __future__ import annotations

import csv
import gc
import json
import os
import resource
import time
from pathlib import Path
from typing import Callable, Iterable

__all__ = ["ROW_FIELDS", "fit_chunk", "stream_map", "SeriesSink", "fit_series_fleet",
           "peak_rss_mb", "rss_mb"]

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


def fit_chunk(keys: list, *, load: Callable, horizon: int, grain: str = "1h",
              bounds: tuple = (0, None)) -> dict:
    """Load and fit ``keys`` on a worker; returns ``{"rows", "cpu_s", "peak_rss_mb", "rss_mb"}``.

    One row per key (:data:`ROW_FIELDS`); a series the model refuses (CapplanError) is a row with
    ``status: refused`` and the error, never an exception.
    """
    from capplan.errors import CapplanError
    from capplan.models.growth import fit_forecast, time_to_limit

    t0 = time.process_time()
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
    # The chunk's histories and fits are garbage now; reference cycles in them would otherwise
    # pile up between the collector's rare full passes (worker RSS grew ~30 KiB a series).
    gc.collect()
    return {"rows": rows, "cpu_s": time.process_time() - t0, "peak_rss_mb": peak_rss_mb(),
            "rss_mb": rss_mb()}


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
    summary: counts by status and runway status, and the ``top`` most urgent rows (over the limit,
    then earliest crossing, then higher P(cross))."""

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
        self.worker_peak_rss_mb = 0.0

    @staticmethod
    def _urgency(row: dict) -> tuple:
        return (_RANK.get(row.get("runway"), 3), row.get("crossing") or "9999",
                -(row.get("p_cross") or 0.0), str(row["key"]))

    def add(self, result: dict) -> None:
        self._csv.writerows(result["rows"])
        self._fh.flush()
        self.cpu_s += result.get("cpu_s", 0.0)
        self.worker_peak_rss_mb = max(self.worker_peak_rss_mb, result.get("peak_rss_mb", 0.0))
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
        return {"series": self.n, "counts": dict(sorted(self.counts.items())), "top": top,
                "cpu_s": round(self.cpu_s, 3), "worker_peak_rss_mb": round(self.worker_peak_rss_mb, 1)}

    def close(self) -> None:
        self._fh.close()


def fit_series_fleet(client, load: Callable, keys: Iterable, *, out_dir: str | Path,
                     chunk: int = 100, in_flight: int | None = None, horizon: int = 168,
                     grain: str = "1h", bounds: tuple = (0, None), top: int = 20,
                     progress: bool = False) -> dict:
    """Fit every series of ``keys`` in chunks on the cluster; rows stream to
    ``out_dir/series.csv``, the summary (also written to ``out_dir/series-summary.json``) is
    returned: ``series``, ``counts``, ``top`` rows, ``cpu_s``, ``worker_peak_rss_mb``,
    ``client_peak_rss_mb``, ``wall_s``.  ``in_flight`` defaults to 2 chunks per worker thread.
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

    if in_flight is None:
        in_flight = 2 * max(1, sum(client.nthreads().values()))
    fn = functools.partial(fit_chunk, load=load, horizon=horizon, grain=grain, bounds=bounds)
    sink = SeriesSink(Path(out_dir), top=top)
    t0 = time.perf_counter()
    try:
        stream_map(client, fn, chunks(), in_flight=in_flight,
                   on_result=lambda _item, res: sink.add(res), progress=progress,
                   desc="series chunks")
    finally:
        sink.close()
    out = {**sink.summary(), "wall_s": round(time.perf_counter() - t0, 3),
           "client_peak_rss_mb": round(peak_rss_mb(), 1), "chunk": chunk, "in_flight": in_flight}
    tmp = Path(out_dir) / ".series-summary.json.tmp"
    tmp.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, Path(out_dir) / "series-summary.json")
    return out
