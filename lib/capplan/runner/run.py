"""The runner: one params file in, one immutable run folder out.

The story of :func:`run_report`: check the params (before any kernel starts), run the pipeline's
notebooks in order with papermill (kernel ``python3``, a per-cell timeout), scrub what papermill
copied into the executed notebooks (absolute paths, environment), write ``manifest.json``, then
publish atomically:

* everything is written into ``outputs/<name>/.<run-id>.partial/``;
* the folder is renamed to ``outputs/<name>/<run-id>/`` in one step when the run ends, whatever
  its status, so a half-written run is never visible under its final name;
* ``outputs/<name>/latest`` (a relative symlink, replaced atomically with ``os.replace``) moves
  only when the run succeeded (or finished with degraded data), so the last good report is never
  clobbered by a failed one.  A failed run keeps papermill's error-marked notebook.

Scheduled runs (cron, systemd timers, CI):

* a lock per params name (``outputs/<name>/.lock``, ``flock``) so overlapping runs never
  collide: the second waits up to ``wait_s`` and then fails with :class:`LockBusy` naming the
  holder; the kernel releases the lock if the holder dies, even by ``kill -9``;
* a per-cell timeout and a whole-run timeout (each cell gets at most what is left of the run);
* retention: ``keep`` prunes all but the newest N finished runs (never the one ``latest`` names);
* a log file per run (``run.log``).

Exit codes: 0 success, 1 failed, 2 bad params, 3 finished with degraded data.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import secrets
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from capplan.errors import LockBusy, OutputError, RunError
from capplan.runner.params import PIPELINE, Params, load_params, notebooks_dir, project_root
from capplan.runner.progress import notebook_step

__all__ = ["RunResult", "run_report", "scrub_notebook", "EXIT_CODES"]

EXIT_CODES = {"ok": 0, "failed": 1, "bad_params": 2, "degraded": 3}
MANIFEST_SCHEMA = 1
_VERSIONS = ("capplan", "papermill", "pandas", "numpy", "scipy", "statsmodels", "matplotlib",
             "redis", "psycopg", "nbconvert", "ipykernel", "dask")


@dataclass
class RunResult:
    """What a run produced.  ``status`` is ``ok``, ``degraded`` or ``failed``."""

    name: str
    run_id: str
    run_dir: Path
    status: str
    notebooks: list[dict] = field(default_factory=list)
    duration_s: float = 0.0

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    @property
    def report_html(self) -> Path:
        return self.run_dir / "report.html"


def _git_revision() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(project_root()), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        rev = out.stdout.strip()
        if not rev:
            return None
        dirty = subprocess.run(["git", "-C", str(project_root()), "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True, timeout=5)
        return rev + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


def _versions() -> dict[str, str]:
    out = {}
    for name in _VERSIONS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    out["python"] = platform.python_version()
    return out


def scrub_notebook(path: Path, *, secret_values: tuple[str, ...] = ()) -> None:
    """Remove what papermill copies into an executed notebook that may leak (gotcha 27).

    Absolute input/output paths become file names, the environment snapshot is dropped, and
    :func:`capplan.core.credentials.scrub` masks URL and conninfo passwords and every given secret
    value wherever they appear.  Parameters themselves are kept: params files hold no secrets
    by construction (:func:`capplan.runner.params.check_no_secrets`).
    """
    from capplan.core.credentials import scrub

    nb = json.loads(path.read_text(encoding="utf-8"))
    pm = nb.get("metadata", {}).get("papermill", {})
    for key in ("input_path", "output_path"):
        if pm.get(key):
            pm[key] = Path(pm[key]).name
    pm.pop("environment_variables", None)
    def clean(obj):  # string by string, so a masked value can never break the JSON around it
        if isinstance(obj, str):
            return scrub(obj, secret_values)
        if isinstance(obj, list):
            return [clean(v) for v in obj]
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items()}
        return obj

    path.write_text(json.dumps(clean(nb), indent=1, ensure_ascii=False) + "\n", encoding="utf-8")


def _env_secrets() -> tuple[str, ...]:
    """Values of password-like environment variables, so they can be scrubbed from outputs."""
    keys = [k for k in os.environ if any(w in k.upper() for w in ("PASSWORD", "SECRET", "TOKEN"))]
    # passwords inside URLs (REDIS_URL, url_env variables) are masked by scrub() by their shape
    return tuple(os.environ[k] for k in keys if len(os.environ[k]) >= 4)


def new_run_id() -> str:
    return datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(2)


def point_latest(name_dir: Path, run_id: str) -> None:
    tmp = name_dir / f".latest.{run_id}.tmp"
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(run_id, tmp)
    os.replace(tmp, name_dir / "latest")


class RunLock:
    """An exclusive ``flock`` on ``<name_dir>/.lock``; released on close or process death."""

    def __init__(self, name_dir: Path, *, wait_s: float = 0.0, poll_s: float = 0.2):
        self.path = name_dir / ".lock"
        self.wait_s = wait_s
        self.poll_s = poll_s
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + max(0.0, self.wait_s)
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "unknown"
                    os.close(fd)
                    raise LockBusy(f"another run of '{self.path.parent.name}' holds the lock "
                                   f"({holder}); waited {self.wait_s:g} s",
                                   run_dir=str(self.path.parent),
                                   hint="let it finish, or pass --wait SECONDS to queue behind it")
                time.sleep(self.poll_s)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {datetime.now(timezone.utc).isoformat()}".encode(), 0)
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None


def _prepare_dir(outputs: Path, name: str, run_id: str) -> tuple[Path, Path]:
    name_dir = outputs / name
    try:
        name_dir.mkdir(parents=True, exist_ok=True)
        work = name_dir / f".{run_id}.partial"
        (work / "figures").mkdir(parents=True)
        (work / "findings").mkdir()
        probe = work / ".write-test"
        probe.write_bytes(b"x" * 65536)
        probe.unlink()
    except OSError as exc:
        raise OutputError(f"cannot write the run folder under {name_dir}: {exc.strerror or exc}",
                          hint="make the outputs directory writable, free some disk space, or "
                               "pass --outputs DIR") from exc
    return name_dir, work


def run_report(params_path: str | Path, *, outputs: str | Path | None = None,
               cell_timeout_s: float = 600, run_timeout_s: float | None = None,
               wait_s: float = 0.0, keep: int | None = None, kernel: str = "python3",
               pipeline: tuple[str, ...] = PIPELINE, log_output: bool = False) -> RunResult:
    """Run the pipeline for one params file; see the module docstring for what is written.

    Raises :class:`~capplan.errors.ConfigError` (bad params, before any kernel starts),
    :class:`~capplan.errors.LockBusy` (another run of the same params name) and
    :class:`~capplan.errors.OutputError` (unwritable outputs).  A failing notebook does not
    raise: the result's ``status`` is ``failed`` and its folder keeps the error notebook.
    """
    params: Params = load_params(params_path, pipeline=pipeline)
    from capplan.runner.preflight import preflight  # issue 14: PromQL, files, worker pools
    preflight(params.values, path=params.path)
    if keep is not None and keep < 1:
        raise RunError("--keep must be at least 1", hint="keep at least the run being made")
    outputs = Path(outputs) if outputs else project_root(params.path) / "outputs"
    try:
        (outputs / params.name).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"cannot create {outputs / params.name}: {exc.strerror or exc}",
                          hint="make the outputs directory writable or pass --outputs DIR") from exc
    with RunLock(outputs / params.name, wait_s=wait_s):
        res = _run_locked(params, outputs, cell_timeout_s=cell_timeout_s,
                          run_timeout_s=run_timeout_s, kernel=kernel, pipeline=pipeline,
                          log_output=log_output)
        if keep is not None and res.status in ("ok", "degraded"):
            prune_runs(res.run_dir.parent, keep)
    return res


def _run_locked(params: Params, outputs: Path, *, cell_timeout_s: float,
                run_timeout_s: float | None, kernel: str, pipeline: tuple[str, ...],
                log_output: bool) -> RunResult:
    run_id = new_run_id()
    name_dir, work = _prepare_dir(outputs, params.name, run_id)
    started = time.time()
    log = logging.getLogger("capplan.runner.run")
    handler = logging.FileHandler(work / "run.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    for lg in (log, logging.getLogger("papermill")):
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    results: list[dict] = []
    status = "ok"
    try:
        import papermill as pm
        from papermill.exceptions import PapermillExecutionError

        log.info("run %s of %s: notebooks %s", run_id, params.path, ", ".join(pipeline))
        for nb in pipeline:
            t0 = time.time()
            entry = {"notebook": f"{nb}.ipynb", "status": "ok", "duration_s": None, "error": None}
            parameters = dict(params.per_notebook.get(nb, {}))
            parameters["run_dir"] = str(work)
            timeout = cell_timeout_s
            if run_timeout_s is not None:
                left = run_timeout_s - (time.time() - started)
                if left <= 1:
                    entry.update(status="failed", duration_s=0.0,
                                 error=f"run timeout: {run_timeout_s:g} s used up before {nb}")
                    results.append(entry)
                    status = "failed"
                    break
                timeout = min(timeout, left)
            project = project_root(params.path)
            # progress on the terminal, project folder and quiet kernel (runner/progress.py)
            with notebook_step(nb, work, project, entry) as extra:
                try:
                    pm.execute_notebook(str(notebooks_dir(project) / f"{nb}.ipynb"),
                                        str(work / f"{nb}.ipynb"),
                                        parameters=parameters, kernel_name=kernel,
                                        progress_bar=False, log_output=log_output,
                                        execution_timeout=int(max(1, timeout)), cwd=str(work),
                                        request_save_on_cell_execute=True, **extra)
                except PapermillExecutionError as exc:
                    entry["status"] = "failed"
                    entry["error"] = f"{exc.ename}: {exc.evalue}".strip()[:2000]
                    status = "failed"
                except Exception as exc:  # kernel death, timeouts, missing kernel: all end the run
                    entry["status"] = "failed"
                    entry["error"] = f"{type(exc).__name__}: {exc}"[:2000]
                    status = "failed"
            entry["duration_s"] = round(time.time() - t0, 3)
            log.info("%s: %s in %.1f s%s", nb, entry["status"], entry["duration_s"],
                     f" ({entry['error']})" if entry["error"] else "")
            results.append(entry)
            if status == "failed":
                break
        secrets_ = _env_secrets()
        for entry in results:
            p = work / entry["notebook"]
            if p.exists():
                scrub_notebook(p, secret_values=secrets_)
        if status == "ok":
            summary = work / "summary.json"
            if not summary.exists() or not (work / "report.html").exists():
                status = "failed"
                results.append({"notebook": "-", "status": "failed", "duration_s": 0,
                                "error": "the pipeline ended without summary.json/report.html"})
            elif json.loads(summary.read_text()).get("degraded"):
                status = "degraded"
        if status != "failed":
            from capplan.report.render import write_pdf

            pdf = write_pdf(work / "report.html")
            log.info("report.pdf: %s", "written" if pdf else "skipped (no headless Chromium found)")
        manifest = {
            "schema_version": MANIFEST_SCHEMA,
            "name": params.name,
            "run_id": run_id,
            "status": status,
            "params_file": os.path.relpath(params.path, project_root())
            if Path(params.path).resolve().is_relative_to(project_root()) else Path(params.path).name,
            "params": params.values,
            "started": datetime.fromtimestamp(started, timezone.utc).isoformat(),
            "finished": datetime.now(timezone.utc).isoformat(),
            "duration_s": round(time.time() - started, 3),
            "notebooks": results,
            "git_revision": _git_revision(),
            "versions": _versions(),
            "kernel": kernel,
            "cell_timeout_s": cell_timeout_s,
        }
        (work / "manifest.json").write_text(json.dumps(manifest, indent=2, default=str) + "\n")
    finally:
        for lg in (log, logging.getLogger("papermill")):
            lg.removeHandler(handler)
        handler.close()
    final = name_dir / run_id
    try:
        os.rename(work, final)
        if status in ("ok", "degraded"):
            point_latest(name_dir, run_id)
    except OSError as exc:
        raise OutputError(f"cannot publish the run folder {final}: {exc}",
                          hint="check free space and permissions of the outputs directory") from exc
    return RunResult(name=params.name, run_id=run_id, run_dir=final, status=status,
                     notebooks=results, duration_s=round(time.time() - started, 3))


def prune_runs(name_dir: Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` finished runs (never the one ``latest`` points to)."""
    if keep < 1:
        raise RunError("retention must keep at least one run", hint="set keep >= 1")
    latest = (name_dir / "latest").resolve() if (name_dir / "latest").exists() else None
    runs = sorted([p for p in name_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
                   and not p.is_symlink()], key=lambda p: p.name)
    removed = []
    for p in runs[:-keep]:
        if latest is not None and p.resolve() == latest:
            continue
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    return removed
