"""Fleet mode: one report per service for many services, and a fleet summary of the top risks.

``capplan fleet PARAMS`` reads a *fleet params file* (see ``params/fleets/fleet-demo.yaml``)::

    scheduler: ""            # Dask scheduler address (tcp://host:8786); empty = a LocalCluster
    workers: 2               # LocalCluster worker processes (1 thread each)
    top: 10                  # risks shown in the fleet summary
    defaults:                # params shared by every service (any key of a `capplan run` params
      mode: demo             # file: mode, store, capacity, targets, horizon_days, ...)
      demo_days: 30
    services:                # one entry per service; its keys override `defaults`
      - {service: checkout-api, seed: 7}
      - {service: search-api, seed: 11, demo_scale: {redis_used_memory_bytes: 1.25}}
    discover:                # and/or: one service per value of a label on Prometheus
      prometheus: {url_env: PROMETHEUS_URL, selector: 'job="redis"', by: instance, days: 30}

A service's params are the notebooks' own defaults, then ``defaults``, then its entry (the same
keys, names and types as a ``capplan run`` params file, checked the same way), plus ``name`` (its
folder; default: a slug of ``service``) and ``demo_scale`` (demo mode only: multiply stored
metrics by a factor, so demo services differ in load).  Each service runs the library steps of
the pipeline (:mod:`capplan.runner.pipeline`: collect, growth, scaling when ``loadtest_file`` is set,
report) in a scratch folder on a Dask worker, and returns its files; the client writes them.  So
the code path is the same on a LocalCluster and on a remote scheduler (whose workers need
capplan installed and the sources/stores reachable).

Outputs, published atomically like :mod:`capplan.runner.run` (``.partial`` folder + rename, ``latest``
moved only when at least one service succeeded; the same per-name lock and the same
``.capplan-run`` marker, so retention treats fleet runs like any run)::

    outputs/<fleet-name>/<run-id>/fleet.json, fleet.md, fleet.html, manifest.json
    outputs/<fleet-name>/<run-id>/services/<name>/report.md, report.html, summary.json, ...

A worker lost mid-run costs only its running task: Dask resubmits it elsewhere
(``tests/test_fleet_cluster.py``).  Thousands of single series rather than services:
:mod:`capplan.runner.fleet_series`.

Ranking (:func:`rank_risks`): already over a limit and missed targets first (critical misses
first), then runway crossings by earliest projected date (then higher probability), then targets
at risk, then runways that do not cross in the horizon by probability, then unknowns.
Status: ``ok`` (exit 0), ``degraded`` (exit 3: some service failed or had degraded data),
``failed`` (exit 1: no service produced a report).
"""

from __future__ import annotations

import ast
import contextlib
import difflib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Iterable

from capplan.errors import CapplanError, ConfigError, OutputError, SourceUnavailable
from capplan.report.fleet_document import build_fleet_document, rank_risks

__all__ = ["FLEET_SCHEMA", "FleetSpec", "FleetResult", "load_fleet", "notebook_defaults",
           "discover_services", "discovery_query", "dask_client", "LOCAL_CLUSTER_CONFIG",
           "map_tasks", "analyse_service", "rank_risks", "build_fleet_document", "run_fleet"]

FLEET_SCHEMA = 1
_FLEET_KEYS = ("scheduler", "workers", "top", "defaults", "services", "discover")
_EXTRA_SERVICE_KEYS = ("name", "demo_scale")
_DISCOVER_KEYS = ("url_env", "selector", "by", "days", "step", "metrics", "timeout_s")


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-") or "service"


@dataclass(frozen=True)
class FleetSpec:
    """A checked fleet params file: one params dict per service, plus how to run them."""

    name: str
    path: str
    services: tuple[dict, ...]
    scheduler: str = ""
    workers: int = 2
    top: int = 10
    discover: dict | None = None


def notebook_defaults() -> dict[str, Any]:
    """What a notebook parameter is when a params file omits it (literal defaults, by name)."""
    return _notebook_params()[0]


def _notebook_params() -> tuple[dict[str, Any], dict[str, str]]:
    """The notebooks' parameter defaults (literal values) and declared types, by name."""
    from capplan.runner.params import PIPELINE, RUNNER_KEYS, notebook_parameters

    defaults, types = {}, {}
    for nb in PIPELINE:
        for k, meta in notebook_parameters(nb).items():
            if k in RUNNER_KEYS or k in types:
                continue
            types[k] = meta["type"]
            try:
                defaults[k] = ast.literal_eval(meta["default"]) if meta["default"] else None
            except (ValueError, SyntaxError):
                defaults[k] = None
    return defaults, types


def _check_service(raw: Any, *, path: str, key: str, types: dict[str, str]) -> dict:
    from capplan.runner.params import type_ok, check_no_secrets

    if not isinstance(raw, dict):
        raise ConfigError(f"must be a mapping, got {type(raw).__name__}", path=path, key=key)
    allowed = list(types) + list(_EXTRA_SERVICE_KEYS)
    for k, v in raw.items():
        if k not in allowed:
            close = difflib.get_close_matches(str(k), allowed, n=1)
            raise ConfigError(f"unknown key '{k}'", path=path, key=f"{key}.{k}",
                              hint=(f"did you mean '{close[0]}'? " if close else "")
                              + "allowed: the keys of a capplan run params file, name, demo_scale")
        if k in types and not type_ok(v, types[k]):
            raise ConfigError(f"expected {types[k]}, got {type(v).__name__} {v!r}", path=path,
                              key=f"{key}.{k}")
    scale = raw.get("demo_scale")
    if scale is not None and (not isinstance(scale, dict) or not all(
            isinstance(f, (int, float)) and not isinstance(f, bool) and f > 0
            for f in scale.values())):
        raise ConfigError("demo_scale must map metric names to positive factors", path=path,
                          key=f"{key}.demo_scale", hint="e.g. {redis_used_memory_bytes: 1.2}")
    check_no_secrets(raw, path=path, where=key)
    return dict(raw)


def _positive_int(raw: dict, key: str, default: int, path: str) -> int:
    v = raw.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or v < 1:
        raise ConfigError(f"must be a positive integer, got {v!r}", path=path, key=key)
    return v


def load_fleet(path: str | Path, *, scheduler: str | None = None,
               workers: int | None = None) -> FleetSpec:
    """Read and check a fleet params file; ``scheduler``/``workers`` override the file's.

    Raises :class:`ConfigError` naming the file and key (unknown key, wrong type, secret, no
    services, duplicate service names).  Prometheus discovery happens later, in
    :func:`run_fleet`.
    """
    from capplan.runner.params import read_yaml
    from capplan.runner.schema import validate_fleet

    p = Path(path)
    if not p.is_file():
        raise ConfigError("fleet params file not found", path=str(p),
                          hint="give a YAML file such as params/fleets/fleet-demo.yaml")
    raw = read_yaml(p, what="fleet params file") or {}   # bounded: aliases, depth, size
    if not isinstance(raw, dict):
        raise ConfigError("must be a mapping (scheduler, workers, defaults, services, ...)",
                          path=str(p))
    from capplan.core.credentials import check_no_secrets as _no_secrets

    _no_secrets(raw, path=str(p))
    validate_fleet(raw, path=str(p))   # the typed model: every key and value, all errors at once
    for k in raw:
        if k not in _FLEET_KEYS:
            close = difflib.get_close_matches(str(k), _FLEET_KEYS, n=1)
            raise ConfigError(f"unknown key '{k}'", path=str(p), key=str(k),
                              hint=(f"did you mean '{close[0]}'? " if close else "")
                              + f"allowed keys: {', '.join(_FLEET_KEYS)}")
    nb_defaults, types = _notebook_params()
    shared = _check_service(raw.get("defaults") or {}, path=str(p), key="defaults", types=types)
    entries = raw.get("services") or []
    if not isinstance(entries, list):
        raise ConfigError("'services' must be a list of mappings", path=str(p), key="services")
    services, seen = [], {}
    for i, item in enumerate(entries):
        svc = {**nb_defaults, **shared,
               **_check_service(item, path=str(p), key=f"services[{i}]", types=types)}
        svc["name"] = _slug(svc.get("name") or svc.get("service") or f"service-{i + 1}")
        if svc["name"] in seen:
            raise ConfigError(f"duplicate service name '{svc['name']}' (also services"
                              f"[{seen[svc['name']]}])", path=str(p), key=f"services[{i}].name",
                              hint="give each service its own 'name' or 'service'")
        seen[svc["name"]] = i
        services.append(svc)
    disc = raw.get("discover")
    if disc is not None:
        if not isinstance(disc, dict) or set(disc) != {"prometheus"} or \
                not isinstance(disc["prometheus"], dict):
            raise ConfigError("discover must be {prometheus: {selector: ..., by: ...}}",
                              path=str(p), key="discover")
        bad = set(disc["prometheus"]) - set(_DISCOVER_KEYS)
        if bad:
            raise ConfigError(f"unknown key(s) {sorted(bad)}", path=str(p),
                              key="discover.prometheus", hint=f"allowed: {', '.join(_DISCOVER_KEYS)}")
        disc = {"prometheus": dict(disc["prometheus"]), "defaults": {**nb_defaults, **shared}}
    if not services and disc is None:
        raise ConfigError("no services: give a 'services' list or a 'discover' section",
                          path=str(p), key="services")
    sched = scheduler if scheduler is not None else raw.get("scheduler") or ""
    if not isinstance(sched, str):
        raise ConfigError(f"must be an address string, got {sched!r}", path=str(p), key="scheduler")
    return FleetSpec(name=p.stem, path=str(p), services=tuple(services), scheduler=sched,
                     workers=workers if workers is not None else _positive_int(raw, "workers", 2, str(p)),
                     top=_positive_int(raw, "top", 10, str(p)), discover=disc)


def discover_services(disc: dict) -> list[dict]:
    """One service per value of label ``by`` among the series matching ``selector``.

    Asks Prometheus (URL from the environment variable ``url_env``, default PROMETHEUS_URL) for
    ``count by (<by>) ({<selector>})``; each value becomes a service in mode ``prometheus``
    whose selector adds ``<by>="<value>"``.  Raises ConfigError / SourceUnavailable.
    """
    from capplan.collect.prometheus import instant_query

    cfg = disc["prometheus"]
    by, selector = str(cfg.get("by", "instance")), str(cfg.get("selector", "")).strip()
    if not selector:
        raise ConfigError("discover.prometheus.selector is required", key="discover.prometheus",
                          hint="e.g. selector: 'job=\"redis\"'")
    var = cfg.get("url_env", "PROMETHEUS_URL")
    url = os.environ.get(var)
    if not url:
        raise ConfigError(f"environment variable {var} is not set", key="discover.prometheus.url_env",
                          hint=f"export {var}=http://127.0.0.1:9090")
    rows, _warnings = instant_query(url, discovery_query(selector, by),
                                    timeout_s=float(cfg.get("timeout_s", 30)))
    values = sorted({r["metric"][by] for r in rows if by in r.get("metric", {})})
    prom = {k: v for k, v in cfg.items() if k in ("url_env", "days", "step", "metrics", "timeout_s")}
    return [{**disc["defaults"], "mode": "prometheus", "service": v, "name": _slug(v),
             "prometheus": {**prom, "selector": f'{selector},{by}="{v}"'}} for v in values]


def discovery_query(selector: str, by: str) -> str:
    """The PromQL that lists the values of label ``by`` among series matching ``selector``."""
    if not re.fullmatch(r"[a-zA-Z_][a-zA-Z0-9_]*", by):
        raise ConfigError(f"'{by}' is not a Prometheus label name", key="discover.prometheus.by")
    return f"count by ({by}) ({{{selector.strip().strip('{}')}}})"


# --- Dask ----------------------------------------------------------------------------------------

# The LocalCluster's Dask settings.  No statistical profiler: it keeps a call tree per second
# of work for ~1,000 s, ~0.9 MiB/s on the growth fit's stacks (capplan.runner.fleet_series).
# Slower housekeeping (defaults 20 ms, 500 ms, 100 ms, 100 ms): an idle 2-worker cluster used
# 0.073 of a core for it, 0.015 with these; the tasks are seconds long, so nothing waits on it.
LOCAL_CLUSTER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",                 # event-loop blocked watchdog
    "distributed.admin.system-monitor.interval": "2s",       # dashboard CPU/memory samples
    "distributed.worker.memory.monitor-interval": "1s",      # nanny's memory-limit check
    "distributed.scheduler.work-stealing-interval": "1s",
    # Dask's nannies set MALLOC_TRIM_THRESHOLD_=65536 in every worker: glibc then gives freed
    # memory back at once and stops adapting its mmap threshold, so each of the fit's arrays
    # above 128 KiB is a fresh mmap with page faults -- it doubled the CPU per series (15.3 ->
    # 30.1 ms, bench/fleet_speed.py's series in one process).  None unsets it (distributed's
    # rule for pre-spawn-environ); worker RSS stays bounded by the chunk (the bench prints it).
    "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,
    # Dask keeps the last N messages of every batched stream (scheduler -> each worker, client ->
    # scheduler), each with its task spec, and N stimuli/transitions per worker: at the default
    # 1,000 the client process grew ~8 KiB a task (client peak 199 -> 217 MiB over 1,000 chunks);
    # 100 cut a no-op stream's growth from ~13 to ~3 MiB per 1,500 tasks (the rest: not found).
    "distributed.admin.low-level-log-length": 100,
}


@contextlib.contextmanager
def dask_client(scheduler: str = "", *, workers: int = 2, timeout_s: float = 30.0):
    """A ``dask.distributed.Client``: to ``scheduler`` when given, else to a new LocalCluster
    of ``workers`` processes with one thread each and :data:`LOCAL_CLUSTER_CONFIG` (Dask's
    statistical profiler off: its memory grows with the work done, see
    :mod:`capplan.runner.fleet_series`; slower housekeeping), listening on 127.0.0.1 only
    (closed on exit).

    Scripts that call this must guard their entry point with ``if __name__ == "__main__":``:
    worker processes are spawned and re-import the main module.

    Raises :class:`SourceUnavailable` when the scheduler cannot be reached, and
    :class:`ConfigError` when dask.distributed is not installed (it is the ``fleet`` extra).
    """
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as exc:
        raise ConfigError("capplan fleet runs on dask.distributed, which is not installed",
                          hint="pip install 'capplan[fleet]' (in a checkout: make setup-dev)") from exc

    if scheduler:
        try:
            client = Client(scheduler, timeout=timeout_s)
        except (OSError, TimeoutError) as exc:
            raise SourceUnavailable(f"cannot reach the Dask scheduler: {exc}", source=scheduler,
                                    hint="check the address (tcp://host:8786) or leave "
                                         "scheduler empty for a LocalCluster") from exc
        try:
            yield client
        finally:
            client.close()
        return
    import warnings

    import dask

    # Nannies copy this config into the worker processes (also when they restart one); they
    # already set OMP/OPENBLAS/MKL_NUM_THREADS=1 (distributed.nanny.pre-spawn-environ).
    # A nanny started earlier in this process (another LocalCluster) left Dask's value in our own
    # environment, which new workers would inherit: drop Dask's value (a user's own stays).
    if os.environ.get("MALLOC_TRIM_THRESHOLD_") == "65536":
        del os.environ["MALLOC_TRIM_THRESHOLD_"]
    with warnings.catch_warnings(), dask.config.set(LOCAL_CLUSTER_CONFIG):
        # "Port 8787 is already in use": it picks another, fine
        warnings.filterwarnings("ignore", message=r"Port \d+ is already in use")
        cluster = LocalCluster(n_workers=int(workers), threads_per_worker=1, processes=True,
                               host="127.0.0.1", dashboard_address=None,
                               silence_logs=logging.ERROR)
        client = Client(cluster)
    try:
        yield client
    finally:
        client.close()
        cluster.close()


def map_tasks(client, fn: Callable, items: Iterable, *, progress: bool = False,
              desc: str = "tasks", on_error: Callable | None = None) -> list:
    """``[fn(x) for x in items]`` on the cluster, in input order, with an optional tqdm bar.

    A task that raises (or whose worker died) re-raises here, unless ``on_error(item, exc)``
    is given: its return value then stands for that item's result.
    """
    from dask.distributed import as_completed

    items = list(items)
    futures = client.map(fn, items, pure=False)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(futures), desc=desc, unit="task")
    try:
        for _fut in as_completed(futures):
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    results = []
    for item, fut in zip(items, futures):
        try:
            results.append(fut.result())
        except Exception as exc:  # task error or dead worker: reported per item when asked
            if on_error is None:
                raise
            results.append(on_error(item, exc))
    return results


# --- one service (runs on a worker) --------------------------------------------------------------

def analyse_service(params: dict) -> dict:
    """Run collect → growth → (scaling) → report for one service in a scratch folder.

    Returns ``{"name", "service", "status": ok|degraded|failed, "error", "duration_s",
    "summary", "files": {relative path: bytes}}`` (the store file is not returned).  Never
    raises for a service's own failure: the error is in the result.
    """
    from capplan.runner import pipeline

    t0 = time.time()
    p = dict(params)
    out: dict[str, Any] = {"name": p["name"], "service": p.get("service") or p["name"],
                           "status": "failed", "error": None, "summary": None, "files": {}}
    tmp = Path(tempfile.mkdtemp(prefix=f"capplan-fleet-{p['name']}-"))
    try:
        run_dir = pipeline.run_folder(str(tmp))
        store = p.get("store") or ""
        pipeline.collect_step(mode=p["mode"], store=store, run_dir=run_dir, seed=p["seed"],
                              demo_days=p["demo_days"], demo_latency_factor=p["demo_latency_factor"],
                              sources=p.get("sources"), duration_s=p["collect_duration_s"],
                              interval_s=p["collect_interval_s"], prometheus=p.get("prometheus"))
        if p.get("demo_scale"):
            _apply_demo_scale(store, run_dir, p["demo_scale"], mode=p["mode"])
        pipeline.growth_step(store=store, run_dir=run_dir, capacity=p["capacity"],
                             grain=p["grain"], horizon_days=p["horizon_days"],
                             lookback_days=p["lookback_days"])
        if p.get("loadtest_file"):
            pipeline.scaling_step(run_dir=run_dir, store=store, loadtest_file=p["loadtest_file"],
                                  loadtest_tool=p.get("loadtest_tool", ""),
                                  load_metric=p.get("load_metric", ""),
                                  load_multiplier=p.get("load_multiplier", 10.0),
                                  latency_target_s=p.get("latency_target_s", 0.0))
        res = pipeline.report_step(run_dir=run_dir, store=store, service=out["service"],
                                   from_phase=p.get("from_phase", ""), to_phase=p.get("to_phase", ""),
                                   targets=p.get("targets"), previous_summary=p.get("previous_summary", ""),
                                   baseline_days=p["baseline_days"], current_days=p["current_days"],
                                   params_name=p["name"])
        out["summary"] = res.summary
        out["status"] = "degraded" if res.summary.get("degraded") else "ok"
    except CapplanError as exc:
        out["error"] = " ".join(str(exc).split())
    except Exception as exc:  # a bug in one service must not lose the others' reports
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        for f in sorted(tmp.rglob("*")):
            if f.is_file() and not f.name.startswith("metrics.sqlite") and not f.name.endswith(".tmp"):
                out["files"][str(f.relative_to(tmp))] = f.read_bytes()
        shutil.rmtree(tmp, ignore_errors=True)
        out["duration_s"] = round(time.time() - t0, 3)
    return out


def _task_failed(params: dict, exc: BaseException) -> dict:
    """The result of a service whose task itself failed (worker killed, unpicklable result)."""
    return {"name": params["name"], "service": params.get("service") or params["name"],
            "status": "failed", "error": f"{type(exc).__name__}: {exc}", "summary": None,
            "files": {}, "duration_s": None}


def _apply_demo_scale(store: str, run_dir: Path, scale: dict, *, mode: str) -> None:
    """Multiply stored demo metrics by their factors (replace-on-append keeps one copy)."""
    from capplan.runner.pipeline import open_run_store

    if mode != "demo":
        raise ConfigError("demo_scale only applies to mode: demo", key="demo_scale")
    with open_run_store(store, run_dir) as st:
        for metric, factor in scale.items():
            frame = st.query(metric)
            if frame.empty:
                raise ConfigError(f"demo_scale: no metric '{metric}' in the demo history",
                                  key="demo_scale", hint="see capplan.collect.demo.DEMO_SERIES for names")
            frame["value"] = frame["value"] * float(factor)
            st.append(frame)


def _write_atomic(path: Path, data: bytes | str) -> None:
    """Write a file (temp + rename); a full or read-only disk becomes :class:`OutputError`."""
    tmp = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
        os.replace(tmp, path)
    except OSError as exc:
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}",
                          hint="free some disk space or make the outputs directory writable; "
                               "the unfinished run stays in its .partial folder") from exc


@dataclass
class FleetResult:
    """What a fleet run produced; ``status`` is ok, degraded or failed (see module docstring)."""

    name: str
    run_id: str
    run_dir: Path
    status: str
    services: list[dict]
    risks: list[dict]
    duration_s: float

    @property
    def exit_code(self) -> int:
        return {"ok": 0, "failed": 1, "degraded": 3}[self.status]

    @property
    def html(self) -> Path:
        return self.run_dir / "fleet.html"


def _prepare(name_dir: Path, run_id: str) -> Path:
    """``<name_dir>/.<run_id>.partial`` with the run marker (retention deletes marked runs only)."""
    import platform

    from capplan.runner.run import RUN_MARKER

    work = name_dir / f".{run_id}.partial"
    try:
        (work / "services").mkdir(parents=True)
        (work / RUN_MARKER).write_text(json.dumps({"run_id": run_id, "pid": os.getpid(),
                                                   "host": platform.node()}) + "\n")
        probe = work / ".write-test"
        probe.write_bytes(b"x" * 65536)
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"cannot write the fleet folder under {name_dir}: "
                          f"{exc.strerror or exc}", hint="make the outputs directory writable, "
                          "free some disk space, or pass --outputs DIR") from exc
    return work


def run_fleet(path: str | Path, *, outputs: str | Path | None = None, scheduler: str | None = None,
              workers: int | None = None, progress: bool = False, wait_s: float = 0.0) -> FleetResult:
    """Analyse every service of a fleet params file on Dask and publish the fleet folder.

    Raises ConfigError (bad fleet params), SourceUnavailable (scheduler or Prometheus
    unreachable), LockBusy (another fleet run of the same name) and OutputError.
    """
    from capplan.analysis.findings import jsonable
    from capplan.runner.params import project_root
    from capplan.report.render import to_html, to_markdown
    from capplan.runner.run import RunLock, name_folder, new_run_id, point_latest

    spec = load_fleet(path, scheduler=scheduler, workers=workers)
    services = list(spec.services)
    if spec.discover:
        services += discover_services(spec.discover)
    if not services:
        raise ConfigError("discovery found no services", path=spec.path, key="discover",
                          hint="check the selector and the 'by' label")
    outputs = Path(outputs) if outputs else project_root() / "outputs"
    name_dir = name_folder(outputs, spec.name)
    started = time.time()
    with RunLock(name_dir, wait_s=wait_s):
        run_id = new_run_id()
        work = _prepare(name_dir, run_id)
        with dask_client(spec.scheduler, workers=spec.workers) as client:
            results = map_tasks(client, analyse_service, services, progress=progress,
                                desc="services", on_error=_task_failed)
        rows = []
        for res in results:
            for rel, data in res.pop("files").items():
                _write_atomic(work / "services" / res["name"] / rel, data)
            summ = res.get("summary") or {}
            counts: dict[str, int] = {}
            for sec in ("runway", "targets"):
                for f in summ.get("sections", {}).get(sec, []):
                    counts[f.get("status")] = counts.get(f.get("status"), 0) + 1
            has_report = (work / "services" / res["name"] / "report.html").exists()
            rows.append({"name": res["name"], "service": res["service"], "status": res["status"],
                         "error": res["error"], "duration_s": res["duration_s"], "counts": counts,
                         "synthetic": bool(summ.get("synthetic")),
                         "report": f"services/{res['name']}/report.html" if has_report else None})
        risks = rank_risks(results)
        good = [r for r in rows if r["status"] != "failed"]
        status = "failed" if not good else ("ok" if all(r["status"] == "ok" for r in rows)
                                            else "degraded")
        fleet = jsonable({"schema_version": FLEET_SCHEMA, "name": spec.name, "run_id": run_id,
                        "generated_at": datetime.now(timezone.utc).isoformat(), "status": status,
                        "top": spec.top, "services": rows, "risks": risks,
                        "scheduler": spec.scheduler or f"LocalCluster({spec.workers} workers)",
                        "duration_s": round(time.time() - started, 3)})
        _write_atomic(work / "fleet.json", json.dumps(fleet, indent=2, allow_nan=False) + "\n")
        blocks = build_fleet_document(fleet)
        _write_atomic(work / "fleet.md", to_markdown(blocks))
        _write_atomic(work / "fleet.html", to_html(blocks, run_dir=work, title=blocks[0][1]))
        _write_atomic(work / "manifest.json", json.dumps(jsonable(
            {"schema_version": 1, "kind": "fleet", "name": spec.name, "run_id": run_id,
             "status": status, "params_file": Path(spec.path).name, "services": len(rows),
             "started": datetime.fromtimestamp(started, timezone.utc).isoformat(),
             "finished": datetime.now(timezone.utc).isoformat(),
             "duration_s": round(time.time() - started, 3)}), indent=2) + "\n")
        final = name_dir / run_id
        try:
            os.rename(work, final)
            if status != "failed":
                point_latest(name_dir, run_id)
        except OSError as exc:
            raise OutputError(f"cannot publish the fleet folder {final}: {exc}",
                              hint="check free space and permissions of the outputs directory") from exc
    return FleetResult(spec.name, run_id, final, status, rows, risks, round(time.time() - started, 3))
