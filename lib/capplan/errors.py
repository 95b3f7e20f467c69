"""Every error capplan raises, in one hierarchy.

::

    CapplanError
    ├── ConfigError            bad params file, key or value (exit code 2)
    ├── SourceUnavailable      a server or endpoint cannot be reached or refused us
    ├── DataContractError      a frame breaks the metrics contract (all violations listed)
    ├── ParseError             a malformed or truncated result file (names file and line)
    ├── InsufficientData       too little data for the asked conclusion (says how much is needed)
    ├── FitError               a model could not be fitted to data that was otherwise sufficient
    ├── StoreError             the metrics store cannot be opened, migrated or written
    ├── RunError               a report run failed (names the notebook and the output folder)
    │   └── LockBusy           another run of the same params holds the lock
    └── OutputError            the output directory cannot be written (read-only, full)

Messages say what went wrong, where (file, key, host, metric) and how to fix it.  Third-party
errors are wrapped at the boundary with ``raise ... from exc`` so the cause stays visible.
"""

from __future__ import annotations

__all__ = [
    "CapplanError",
    "ConfigError",
    "SourceUnavailable",
    "DataContractError",
    "ParseError",
    "InsufficientData",
    "FitError",
    "StoreError",
    "RunError",
    "LockBusy",
    "OutputError",
]


class CapplanError(Exception):
    """Base of every capplan error.  ``hint`` says how to fix it."""

    def __init__(self, message: str, *, hint: str | None = None):
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message}\n  how to fix: {hint}")


class ConfigError(CapplanError):
    """A params file, key or value is wrong.  ``path`` and ``key`` say where."""

    def __init__(self, message: str, *, path: str | None = None, key: str | None = None,
                 hint: str | None = None, errors: list[dict] | None = None):
        self.path = path
        self.key = key
        #: every problem found, ``[{"key": "capacity[2].limit", "message": ..., "hint": ...}]``
        self.errors = errors if errors is not None else (
            [{"key": key or "", "message": message, "hint": hint or ""}])
        where = ""
        if path and key:
            where = f"{path}: key '{key}': "
        elif path:
            where = f"{path}: "
        elif key:
            where = f"key '{key}': "
        super().__init__(where + message, hint=hint)


class SourceUnavailable(CapplanError):
    """A data source (server, endpoint, file) could not be reached or answered with an error."""

    def __init__(self, message: str, *, source: str | None = None, hint: str | None = None):
        self.source = source
        super().__init__(f"{source}: {message}" if source else message, hint=hint)


class DataContractError(CapplanError):
    """A frame violates the metrics contract.  ``violations`` lists every one of them."""

    def __init__(self, violations: list[dict], *, where: str = "frame"):
        self.violations = violations
        lines = [f"{where} breaks the metrics contract ({len(violations)} violation(s)):"]
        for v in violations:
            ex = v.get("examples")
            lines.append(f"  - column '{v['column']}': {v['reason']}" + (f" (e.g. {ex})" if ex else ""))
        super().__init__("\n".join(lines),
                         hint="build frames with capplan.core.frame.make_frame() and see "
                              "capplan.core.frame.COLUMNS for the contract")


class ParseError(CapplanError):
    """A result file is malformed or truncated.  ``path`` and ``line`` (1-based) say where."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None,
                 hint: str | None = None):
        self.path = path
        self.line = line
        where = str(path) if path else "<input>"
        if line is not None:
            where += f":{line}"
        super().__init__(f"{where}: {message}", hint=hint)


class InsufficientData(CapplanError):
    """Too little data to support the conclusion asked for.

    ``needed`` and ``have`` are counts in the unit named by ``unit`` (points, days, requests).
    """

    def __init__(self, message: str, *, needed: float | None = None, have: float | None = None,
                 unit: str = "points", hint: str | None = None):
        self.needed = needed
        self.have = have
        self.unit = unit
        if needed is not None and have is not None:
            message = f"{message} (have {have:g} {unit}, need at least {needed:g})"
        super().__init__(message, hint=hint)


class FitError(CapplanError):
    """A model fit failed on data that was otherwise sufficient (no convergence, degenerate data)."""


class StoreError(CapplanError):
    """The metrics store cannot be opened, migrated, read or written."""


class RunError(CapplanError):
    """A report run failed.  ``run_dir`` holds the error-marked notebook."""

    def __init__(self, message: str, *, run_dir: str | None = None, hint: str | None = None):
        self.run_dir = run_dir
        super().__init__(message, hint=hint)


class LockBusy(RunError):
    """Another run of the same params holds the run lock."""


class OutputError(CapplanError):
    """The output directory cannot be written (read-only, full, not a directory)."""
