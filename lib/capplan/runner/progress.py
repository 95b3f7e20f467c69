"""Progress of ``capplan run`` on the terminal, and a quiet kernel.

Two halves that meet through one small JSON file in the run folder:

* in the runner process, :class:`RunProgress` (activated by the CLI with ``with
  RunProgress(...)``) prints one line per notebook as it finishes and, on a TTY, a live status
  line with the elapsed and the remaining time.  The remaining time of a notebook comes from the
  progress the kernel reports (collection rounds) or else from the previous run's manifest;
* in the kernel, :func:`collection_bar` is what the collection step draws its progress with:
  a ``tqdm.auto`` bar in JupyterLab, or, under ``capplan run``, writes to the progress file the
  runner watches (so the executed notebook holds no widget noise).

:func:`notebook_step` wraps each ``papermill.execute_notebook`` call: it tells the kernel where
the project is (``CAPPLAN_PROJECT_DIR``) and where to report progress, and returns the extra
kernel arguments that silence ipykernel's transport warning ("Kernel is running over TCP without
encryption", harmless on loopback; REFERENCE 5.6) and the "KeyboardInterrupt caught" line a
kernel logs when it is interrupted during shutdown.  Errors the kernel logs still get through.
Nothing here runs at import time.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
from pathlib import Path

__all__ = ["RunProgress", "notebook_step", "collection_bar", "kernel_arguments",
           "install_kernel_log_filter", "format_duration", "PROGRESS_ENV"]

#: Environment variable naming the progress file a kernel writes to (set only by the runner).
PROGRESS_ENV = "CAPPLAN_PROGRESS_FILE"
_ACTIVE: list["RunProgress"] = []


def format_duration(seconds: float | None) -> str:
    """``75`` -> ``1:15``; ``3725`` -> ``1:02:05``; None -> ``?``."""
    if seconds is None or seconds != seconds or seconds < 0:
        return "?"
    s = int(round(seconds))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def kernel_arguments() -> list[str]:
    """Extra ipykernel arguments: warnings of the kernel app off (errors stay on), and a log
    filter for the shutdown-interrupt line installed as the kernel's first line of code."""
    return ["--IPKernelApp.log_level=ERROR",
            "--IPKernelApp.exec_lines=__import__('capplan.runner.progress').runner.progress"
            ".install_kernel_log_filter()"]


class _ShutdownNoise(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith("KeyboardInterrupt caught in kernel")


def install_kernel_log_filter() -> None:
    """Drop ipykernel's "KeyboardInterrupt caught in kernel" record (the interrupt jupyter_client
    sends while shutting a finished kernel down); every other record passes."""
    try:
        from ipykernel.kernelapp import IPKernelApp
    except ImportError:  # not in a kernel
        return
    if not IPKernelApp.initialized():
        return
    app = IPKernelApp.instance()
    for lg in {app.log, getattr(app.kernel, "log", None)} - {None}:
        if not any(isinstance(f, _ShutdownNoise) for f in lg.filters):
            lg.addFilter(_ShutdownNoise())
        for h in lg.handlers:
            if not any(isinstance(f, _ShutdownNoise) for f in h.filters):
                h.addFilter(_ShutdownNoise())


# --- kernel side --------------------------------------------------------------------------------

class _FileBar:
    """The tqdm methods the collection loop uses, written to the runner's progress file."""

    def __init__(self, path: Path, total: int, desc: str, unit: str):
        self.path, self.total, self.desc, self.unit = path, total, desc, unit
        self.n = 0
        self.started = time.monotonic()
        self._last = 0.0
        self._write(force=True)

    def _write(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < 0.5:
            return
        self._last = now
        doc = {"desc": self.desc, "unit": self.unit, "n": self.n, "total": self.total,
               "elapsed_s": round(now - self.started, 3)}
        tmp = self.path.with_name(self.path.name + ".tmp")
        try:
            tmp.write_text(json.dumps(doc))
            os.replace(tmp, self.path)
        except OSError:
            pass  # progress is a courtesy; never fail the collection over it

    def update(self, n: int = 1) -> None:
        self.n += n
        self._write(force=self.n >= self.total)

    def set_postfix(self, *args, **kwargs) -> None:
        pass

    def close(self) -> None:
        self._write(force=True)


def collection_bar(total: int, desc: str = "collect", unit: str = "round"):
    """A progress bar for ``total`` steps: written to the runner's progress file under
    ``capplan run``, a ``tqdm.auto`` bar (a widget in JupyterLab) otherwise."""
    path = os.environ.get(PROGRESS_ENV)
    if path:
        return _FileBar(Path(path), total, desc, unit)
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit)


# --- runner side --------------------------------------------------------------------------------

def _previous_durations(outputs: Path | None, name: str | None) -> dict[str, float]:
    """Notebook durations of the last good run of this params name (for remaining time)."""
    if outputs is None or not name:
        return {}
    try:
        manifest = json.loads((Path(outputs) / name / "latest" / "manifest.json").read_text())
        return {Path(nb["notebook"]).stem: float(nb["duration_s"])
                for nb in manifest.get("notebooks", []) if nb.get("duration_s")}
    except (OSError, ValueError, KeyError, TypeError):
        return {}


class RunProgress:
    """Terminal progress for one run (see the module docstring).

    ``quiet`` (``--quiet``) or a stream that is not a TTY: only one line per finished notebook.
    """

    def __init__(self, notebooks: tuple[str, ...] | list[str], *, stream=None,
                 quiet: bool = False, outputs: str | Path | None = None, name: str | None = None,
                 interval_s: float = 0.5):
        self.notebooks = [Path(n).stem for n in notebooks]
        self.stream = stream if stream is not None else sys.stderr
        self.live = not quiet and bool(getattr(self.stream, "isatty", lambda: False)())
        self.quiet = quiet
        self.previous = _previous_durations(Path(outputs) if outputs else None, name)
        self.interval_s = interval_s
        self.started = time.monotonic()
        self.done: dict[str, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._width = 0

    def __enter__(self) -> "RunProgress":
        _ACTIVE.append(self)
        return self

    def __exit__(self, *exc) -> None:
        if self in _ACTIVE:
            _ACTIVE.remove(self)

    # remaining time: this notebook's own estimate (from the rounds the kernel reports, else
    # from the last run) and, when the last run timed every later notebook, the whole run's
    def _remaining(self, nb: str, elapsed: float, inner: dict | None) -> tuple[float | None,
                                                                              float | None]:
        later = self.notebooks[self.notebooks.index(nb) + 1:] if nb in self.notebooks else []
        if inner and inner.get("total") and inner.get("n"):
            frac = min(1.0, inner["n"] / inner["total"])
            own = inner["elapsed_s"] / frac - inner["elapsed_s"]
        elif nb in self.previous:
            own = max(0.0, self.previous[nb] - elapsed)
        else:
            own = None
        if own is None or any(n not in self.previous for n in later):
            return own, None
        return own, own + sum(self.previous[n] for n in later)

    def status_line(self, nb: str, elapsed: float, inner: dict | None) -> str:
        k = self.notebooks.index(nb) + 1 if nb in self.notebooks else 0
        parts = [f"capplan run: [{k}/{len(self.notebooks)}] {nb}"]
        if inner and inner.get("total"):
            parts.append(f"{inner.get('desc', '')} {inner.get('n', 0)}/{inner['total']} "
                         f"{inner.get('unit', '')}".strip())
        parts.append(f"elapsed {format_duration(time.monotonic() - self.started)}")
        own, total = self._remaining(nb, elapsed, inner)
        if total is not None:
            parts.append(f"remaining ~{format_duration(total)}")
        elif own is not None:
            parts.append(f"~{format_duration(own)} left in {nb}")
        else:
            parts.append("remaining ~? (first run)")
        return " · ".join(parts)

    def _write_status(self, text: str) -> None:
        pad = max(0, self._width - len(text))
        self.stream.write("\r" + text + " " * pad)
        self.stream.flush()
        self._width = len(text)

    def _clear(self) -> None:
        if self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()
            self._width = 0

    def _watch(self, nb: str, t0: float, progress_file: Path) -> None:
        while not self._stop.wait(self.interval_s):
            inner = None
            try:
                inner = json.loads(progress_file.read_text())
            except (OSError, ValueError):
                pass
            self._write_status(self.status_line(nb, time.monotonic() - t0, inner))

    @contextlib.contextmanager
    def notebook(self, nb: str, progress_file: Path, entry: dict | None = None):
        t0 = time.monotonic()
        if self.live:
            self._stop.clear()
            self._write_status(self.status_line(nb, 0.0, None))
            self._thread = threading.Thread(target=self._watch, args=(nb, t0, progress_file),
                                            name="capplan-progress", daemon=True)
            self._thread.start()
        outcome = entry if entry is not None else {}
        try:
            yield outcome
        except BaseException:
            outcome["status"] = "failed"
            raise
        finally:
            if self._thread is not None:
                self._stop.set()
                self._thread.join(timeout=2)
                self._thread = None
            self._clear()
            took = time.monotonic() - t0
            self.done[nb] = took
            self.stream.write(f"capplan run: {nb:<12} {outcome.get('status', 'ok'):<7} "
                              f"{took:6.1f} s (elapsed {format_duration(time.monotonic() - self.started)})\n")
            self.stream.flush()


@contextlib.contextmanager
def notebook_step(nb: str, run_dir: str | Path, project: str | Path | None = None,
                  entry: dict | None = None):
    """Around one ``papermill.execute_notebook``: yields the extra keyword arguments to pass it
    (``extra_arguments`` for a quiet kernel).  Sets ``CAPPLAN_PROJECT_DIR`` and the progress
    file for the kernel and reports to the active :class:`RunProgress`, if any (``entry``: the
    runner's result dict for this notebook; its ``status`` is printed when the step ends)::

        with notebook_step(nb, work, project_root(params.path), entry) as extra:
            pm.execute_notebook(..., **extra)
    """
    progress_file = Path(run_dir) / ".progress.json"
    saved = {k: os.environ.get(k) for k in (PROGRESS_ENV, "CAPPLAN_PROJECT_DIR")}
    os.environ[PROGRESS_ENV] = str(progress_file)
    if project is not None:
        os.environ["CAPPLAN_PROJECT_DIR"] = str(Path(project).resolve())
    reporter = _ACTIVE[-1] if _ACTIVE else None
    try:
        ctx = reporter.notebook(nb, progress_file, entry) if reporter else contextlib.nullcontext()
        with ctx:
            yield {"extra_arguments": kernel_arguments()}
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        with contextlib.suppress(OSError):
            progress_file.unlink()
