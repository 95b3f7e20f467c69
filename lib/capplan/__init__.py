"""capplan: capacity-planning notebooks for web services on PostgreSQL and Redis.

The public surface is small; everything else is reached through its module
(``capplan.models.usl``, ``capplan.collect``, ...).  Nothing happens at import time.
"""

from capplan.errors import (CapplanError, ConfigError, DataContractError, FitError,
                            InsufficientData, OutputError, ParseError, RunError, SourceUnavailable,
                            StoreError)
from capplan.core.frame import make_frame, validate_frame

__version__ = "0.1.0"

#: Public functions re-exported where users reach them; imported on first use, so that
#: ``import capplan`` stays light (no numpy/scipy/pandas import at import time).
_LAZY = {
    "fit_usl": ("capplan.models.usl", "fit_usl"),
    "forecast": ("capplan.models.growth", "fit_forecast"),
    "time_to_limit": ("capplan.models.growth", "time_to_limit"),
    "open_store": ("capplan.store", "open_store"),
    "read_loadtest": ("capplan.loadtest", "read_loadtest"),
    "run_report": ("capplan.runner.run", "run_report"),
    "load_params": ("capplan.runner.params", "load_params"),
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        mod, attr = _LAZY[name]
        value = getattr(importlib.import_module(mod), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'capplan' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    "__version__",
    "fit_usl",
    "forecast",
    "time_to_limit",
    "open_store",
    "read_loadtest",
    "run_report",
    "load_params",
    "CapplanError",
    "ConfigError",
    "DataContractError",
    "FitError",
    "InsufficientData",
    "OutputError",
    "ParseError",
    "RunError",
    "SourceUnavailable",
    "StoreError",
    "make_frame",
    "validate_frame",
]
