"""Checks a runner makes before any notebook runs, beyond the params file's own shape.

* ``mode: prometheus``: Prometheus parses every PromQL query (no evaluation), so an invalid
  query is refused with Prometheus's own message and the query (exit 2) instead of failing
  inside 01-collect (:func:`capplan.collect.promql.validate_queries`);
* ``mode: files``: every export file is opened and its mapped columns checked
  (:func:`capplan.collect.exports.validate_files`);
* ``worker_pools``: every entry's keys and values (:func:`capplan.analysis.workers.parse_worker_pools`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

__all__ = ["preflight"]


def preflight(values: Mapping, *, path: str | None = None) -> None:
    """Raise :class:`~capplan.errors.ConfigError` (exit 2) for what would fail later."""
    mode = values.get("mode")
    if mode == "prometheus":
        from capplan.collect.promql import validate_queries

        validate_queries(values.get("prometheus"), path=path)
    elif mode == "files":
        from capplan.collect.exports import validate_files

        validate_files(values.get("files"), path=path, base=_project(path))
    if values.get("worker_pools"):
        from capplan.analysis.workers import parse_worker_pools

        parse_worker_pools(values["worker_pools"], path=path or "params")


def _project(path: str | None) -> Path | None:
    """The folder relative paths resolve against: the nearest one at or above the params file
    holding ``params/`` or ``notebooks/``, else the file's own folder."""
    if not path:
        return None
    here = Path(path).expanduser().resolve().parent
    for folder in (here, *here.parents):
        if (folder / "params").is_dir() or (folder / "notebooks").is_dir():
            return folder
    return here
