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
* retention: ``keep`` prunes all but the newest N finished runs (never the one ``latest`` names),
  and abandoned ``.partial`` folders of killed runs.  It only ever deletes folders the runner
  itself marked as runs (a ``.capplan-run`` file inside): a user's notes beside the runs, or a
  folder named like a run but not made by one, are never touched;
* containment: the run name is a plain folder name (letters, digits, ``-_.``), every path the
  runner writes or deletes resolves inside ``outputs/<name>/`` after symlinks are resolved, and
  the lock file is opened with ``O_NOFOLLOW``;
* every failure to write (full disk, read-only folder) is an :class:`OutputError` naming the
  file and a fix; ``latest`` and the store stay as they were;
* every output file (notebooks, manifest, log, summary, findings) is scrubbed of the secret
  values in play (:func:`capplan.core.credentials.known_secrets`);
* a log file per run (``run.log``).

Exit codes: 0 success, 1 failed, 2 bad params, 3 finished with degraded data.
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import platform
import re
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
#: The file that marks a folder as a run made by this runner (retention deletes nothing else).
RUN_MARKER = ".capplan-run"
RUN_ID_RE = re.compile(r"^\d{8}T\d{6}Z-[0-9a-f]{4}$")
PARTIAL_RE = re.compile(r"^\.(\d{8}T\d{6}Z-[0-9a-f]{4})\.partial$")
#: Abandoned ``.partial`` folders older than this are pruned when no run timeout is given.
DEFAULT_STALE_PARTIAL_S = 6 * 3600
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
    #: sources that failed during collection: ``{"source", "error", "hint", "produced", ...}``
    failed_sources: list[dict] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.status]

    @property
    def report_html(self) -> Path:
        return self.run_dir / "report.html"


def _git_revision(project: Path | None = None) -> str | None:
    project = project or project_root()
    try:
        out = subprocess.run(["git", "-C", str(project), "rev-parse", "HEAD"],
                             capture_output=True, text=True, timeout=5)
        rev = out.stdout.strip()
        if not rev:
            return None
        dirty = subprocess.run(["git", "-C", str(project), "status", "--porcelain",
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
    try:
        nb = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise OutputError(f"the executed notebook {path.name} is unreadable or truncated "
                          f"({type(exc).__name__}); the disk may be full",
                          hint=f"free space under {path.parent.parent} and run again") from None
    pm = nb.get("metadata", {}).get("papermill", {})
    for key in ("input_path", "output_path"):
        if pm.get(key):
            pm[key] = Path(pm[key]).name
    pm.pop("environment_variables", None)
    _write_text(path, json.dumps(_scrub_json(nb, secret_values), indent=1, ensure_ascii=False) + "\n")


def _scrub_json(obj, secret_values: tuple[str, ...]):
    """``obj`` with every string (keys too) scrubbed, one by one, so that a masked value can
    never break the JSON around it."""
    from capplan.core.credentials import scrub

    if isinstance(obj, str):
        return scrub(obj, secret_values)
    if isinstance(obj, list):
        return [_scrub_json(v, secret_values) for v in obj]
    if isinstance(obj, dict):
        return {scrub(str(k), secret_values): _scrub_json(v, secret_values) for k, v in obj.items()}
    return obj


def _write_text(path: Path, text: str) -> None:
    """Write ``path`` whole (temp file + rename) or raise :class:`OutputError`."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise _output_error(exc, path) from None


def _output_error(exc: OSError, path: Path) -> OutputError:
    why = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is used up",
           errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied",
           errno.EPERM: "permission denied", errno.EISDIR: "a directory is in the way",
           errno.ELOOP: "it is a symbolic link (refused)",
           errno.ENOTDIR: "a file is in the way"}.get(exc.errno, exc.strerror or str(exc))
    return OutputError(f"cannot write {path}: {why}",
                       hint="free some disk space, make the outputs folder writable, or pass "
                            "--outputs DIR; the previous report and the store are untouched")


def _env_secrets(params_values: dict | None = None) -> tuple[str, ...]:
    """The secret values in play (environment, credential files, DSN parts, and the variables
    the params' ``*_env`` keys name) in every form."""
    from capplan.core.credentials import known_secrets

    return tuple(known_secrets(params=params_values))


def _scrub_file(path: Path, secret_values: tuple[str, ...]) -> None:
    """Mask secrets in one text output file in place (JSON stays valid: string by string)."""
    from capplan.core.credentials import scrub

    if not path.is_file() or path.is_symlink():
        return
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return
    if path.suffix == ".json":
        try:
            obj = json.loads(text)
        except json.JSONDecodeError:
            obj = None
        if obj is not None:
            cleaned = _scrub_json(obj, secret_values)
            if cleaned != obj:
                _write_text(path, json.dumps(cleaned, indent=2, ensure_ascii=False) + "\n")
            return
    new = scrub(text, secret_values)
    if new != text:
        _write_text(path, new)


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

        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            raise OutputError(f"cannot open the run lock {self.path}: "
                              f"{_output_error(exc, self.path).message.split(': ', 1)[-1]}",
                              hint=f"remove {self.path} (it must be a plain file made by capplan) "
                                   "or pass --outputs DIR") from None
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
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"pid {os.getpid()} since {datetime.now(timezone.utc).isoformat()}".encode(), 0)
        except OSError:
            pass  # the flock is what matters; the holder text is a courtesy
        self._fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None


def name_folder(outputs: Path, name: str) -> Path:
    """``outputs/<name>``, checked to be a real folder inside ``outputs`` (symlinks resolved)."""
    from capplan.runner.params import NAME_RE

    if not NAME_RE.match(name) or name == "latest":
        raise OutputError(f"the run name {name!r} is not a plain folder name",
                          hint="use letters, digits, '-', '_' and '.', not starting with a dot "
                               "(rename the params file or pass --name NAME)")
    try:
        outputs.mkdir(parents=True, exist_ok=True)
        root = outputs.resolve(strict=True)
        name_dir = root / name
        if name_dir.is_symlink():
            raise OutputError(f"{name_dir} is a symbolic link; capplan writes runs only into "
                              "folders it created", hint="remove the link or pass --outputs DIR")
        name_dir.mkdir(exist_ok=True)
    except OSError as exc:
        raise _output_error(exc, outputs / name) from None
    if name_dir.resolve().parent != root or not name_dir.is_dir():
        raise OutputError(f"{name_dir} resolves outside {root}",
                          hint="pass --outputs DIR pointing at a plain folder")
    return name_dir


def _inside(path: Path, name_dir: Path) -> bool:
    try:
        return path.resolve().parent == name_dir.resolve() and not path.is_symlink()
    except OSError:
        return False


def _prepare_dir(name_dir: Path, run_id: str) -> Path:
    work = name_dir / f".{run_id}.partial"
    try:
        (work / "figures").mkdir(parents=True)
        (work / "findings").mkdir()
        _write_text(work / RUN_MARKER, json.dumps({"run_id": run_id, "pid": os.getpid(),
                                                   "host": platform.node()}) + "\n")
        probe = work / ".write-test"
        probe.write_bytes(b"x" * 65536)
        probe.unlink()
    except OutputError:
        raise
    except OSError as exc:
        raise _output_error(exc, work) from None
    return work


def run_report(params_path: str | Path, *, outputs: str | Path | None = None,
               cell_timeout_s: float = 600, run_timeout_s: float | None = None,
               wait_s: float = 0.0, keep: int | None = None, kernel: str = "python3",
               pipeline: tuple[str, ...] = PIPELINE, log_output: bool = False,
               name: str | None = None) -> RunResult:
    """Run the pipeline for one params file; see the module docstring for what is written.

    Raises :class:`~capplan.errors.ConfigError` (bad params, before any kernel starts),
    :class:`~capplan.errors.LockBusy` (another run of the same params name) and
    :class:`~capplan.errors.OutputError` (unwritable outputs).  A failing notebook does not
    raise: the result's ``status`` is ``failed`` and its folder keeps the error notebook.
    """
    params: Params = load_params(params_path, pipeline=pipeline, name=name)
    from capplan.runner.preflight import preflight  # issue 14: PromQL, files, worker pools
    preflight(params.values, path=params.path)
    if keep is not None and keep < 1:
        raise RunError("--keep must be at least 1", hint="keep at least the run being made")
    outputs = Path(outputs) if outputs else project_root(params.path) / "outputs"
    name_dir = name_folder(outputs, params.name)
    with RunLock(name_dir, wait_s=wait_s):
        res = _run_locked(params, name_dir, cell_timeout_s=cell_timeout_s,
                          run_timeout_s=run_timeout_s, kernel=kernel, pipeline=pipeline,
                          log_output=log_output)
        if keep is not None and res.status in ("ok", "degraded"):
            prune_runs(name_dir, keep, stale_partial_s=run_timeout_s or DEFAULT_STALE_PARTIAL_S)
    return res


def _run_locked(params: Params, name_dir: Path, *, cell_timeout_s: float,
                run_timeout_s: float | None, kernel: str, pipeline: tuple[str, ...],
                log_output: bool) -> RunResult:
    secrets_ = _env_secrets(params.values)
    project = project_root(params.path)
    collected: dict = {}
    run_id = new_run_id()
    work = _prepare_dir(name_dir, run_id)
    started = time.time()
    log = logging.getLogger("capplan.runner.run")
    try:
        handler = logging.FileHandler(work / "run.log", encoding="utf-8")
    except OSError as exc:
        raise _output_error(exc, work / "run.log") from None
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
        for entry in results:
            p = work / entry["notebook"]
            if p.exists():
                try:
                    scrub_notebook(p, secret_values=secrets_)
                except OutputError as exc:
                    status = "failed"
                    entry.update(status="failed", error=f"{exc.message} — how to fix: {exc.hint}")
        for p in [*(work / "findings").glob("*.json"), work / "summary.json", work / "report.md",
                  work / "report.html"]:
            _scrub_file(p, secrets_)
        collected = _collect_meta(work)
        if status == "ok":
            summary = work / "summary.json"
            try:
                doc = json.loads(summary.read_text()) if summary.exists() else None
            except (OSError, UnicodeDecodeError, json.JSONDecodeError):
                doc = None
            if collected.get("no_data"):
                status = "failed"
                results.append({"notebook": "01-collect.ipynb", "status": "failed", "duration_s": 0,
                                "error": "no source produced data in this run: "
                                         + "; ".join(collected.get("failed", [])[:5])})
            elif doc is None or not (work / "report.html").exists():
                status = "failed"
                results.append({"notebook": "-", "status": "failed", "duration_s": 0,
                                "error": "the pipeline ended without a readable summary.json and "
                                         "report.html (is the disk full?)"})
            elif doc.get("degraded"):
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
            "params_file": os.path.relpath(Path(params.path).resolve(), project)
            if Path(params.path).resolve().is_relative_to(project) else Path(params.path).name,
            "params": params.values,
            "started": datetime.fromtimestamp(started, timezone.utc).isoformat(),
            "finished": datetime.now(timezone.utc).isoformat(),
            "duration_s": round(time.time() - started, 3),
            "notebooks": results,
            "git_revision": _git_revision(project),
            "versions": _versions(),
            "kernel": kernel,
            "cell_timeout_s": cell_timeout_s,
        }
        manifest = json.loads(json.dumps(manifest, default=str))   # dates and paths as text
        _write_text(work / "manifest.json",
                    json.dumps(_scrub_json(manifest, secrets_), indent=2) + "\n")
    finally:
        for lg in (log, logging.getLogger("papermill")):
            lg.removeHandler(handler)
        handler.close()
        with contextlib.suppress(OSError):
            _scrub_file(work / "run.log", secrets_)
    final = name_dir / run_id
    try:
        os.rename(work, final)
        if status in ("ok", "degraded"):
            point_latest(name_dir, run_id)
    except OSError as exc:
        raise _output_error(exc, final) from None
    return RunResult(name=params.name, run_id=run_id, run_dir=final, status=status,
                     notebooks=results, duration_s=round(time.time() - started, 3),
                     failed_sources=collected.get("entries", []))


def _collect_meta(work: Path) -> dict:
    """What 01-collect recorded about its sources: ``no_data`` when it ran a collection in which
    no source produced a sample (then the run fails and ``latest`` stays)."""
    try:
        meta = json.loads((work / "findings" / "01-collect.json").read_text()).get("meta", {})
    except (OSError, ValueError):
        return {}
    entries = [f for f in meta.get("failed_sources", []) or [] if isinstance(f, dict)]
    failed = [f"{f.get('source')}: {f.get('error')}" for f in entries]
    produced = meta.get("produced_samples")
    return {"no_data": produced is not None and produced == 0 and meta.get("mode") != "store",
            "failed": failed, "entries": entries}


def _is_marked_run(p: Path) -> bool:
    m = p / RUN_MARKER
    return p.is_dir() and not p.is_symlink() and m.is_file() and not m.is_symlink()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def prune_runs(name_dir: Path, keep: int, *,
               stale_partial_s: float = DEFAULT_STALE_PARTIAL_S) -> list[Path]:
    """Delete all but the newest ``keep`` finished runs (never the one ``latest`` points to),
    and abandoned ``.partial`` folders (their run's process is gone, or older than
    ``stale_partial_s``).  Only folders directly in ``name_dir`` that carry the runner's mark
    are ever deleted.  Call it holding the run lock."""
    if keep < 1:
        raise RunError("retention must keep at least one run", hint="set keep >= 1")
    latest = (name_dir / "latest").resolve() if (name_dir / "latest").exists() else None
    runs, partials = [], []
    for p in name_dir.iterdir():
        if not _inside(p, name_dir) or not _is_marked_run(p):
            continue
        if RUN_ID_RE.match(p.name):
            runs.append(p)
        elif PARTIAL_RE.match(p.name):
            partials.append(p)
    runs.sort(key=lambda p: p.name)
    removed = []
    for p in runs[:-keep]:
        if latest is not None and p.resolve() == latest:
            continue
        shutil.rmtree(p, ignore_errors=True)
        removed.append(p)
    now = time.time()
    for p in partials:
        try:
            info = json.loads((p / RUN_MARKER).read_text())
            pid = int(info.get("pid", 0))
            same_host = info.get("host") == platform.node()
            age = now - p.stat().st_mtime
        except (OSError, ValueError, TypeError):
            continue
        if age > stale_partial_s or (same_host and pid and not _pid_alive(pid)):
            shutil.rmtree(p, ignore_errors=True)
            removed.append(p)
    return removed
