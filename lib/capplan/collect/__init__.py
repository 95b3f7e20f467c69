"""Collectors, one module per data source, registered by name.

A collector is created from a params section (``{"source": "redis", "name": "cache", ...}``) and
returns contract frames (:mod:`capplan.core.frame`).  Params say ``source: redis``; adding a backend is
one class and one :func:`register` call in its module.  Nothing connects at import time: clients
are created lazily on the first :meth:`Collector.snapshot` and may be injected.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import pandas as pd

from capplan.errors import ConfigError

__all__ = ["Collector", "register", "create", "available"]


@runtime_checkable
class Collector(Protocol):
    """What every source provides."""

    name: str  # the instance name from params, e.g. "cache"; used in the frame's ``source``

    def snapshot(self) -> pd.DataFrame:
        """Read the source once and return a contract frame (one timestamp per read)."""

    def close(self) -> None:
        """Release connections; safe to call twice."""


_REGISTRY: dict[str, Callable[..., Collector]] = {}
# Modules that register built-in sources; imported on first use, never at package import.
_BUILTIN_MODULES = {
    "redis": "capplan.collect.redis",
    "postgres": "capplan.collect.postgres",
    "http": "capplan.collect.http",
    "metrics_endpoint": "capplan.collect.http",
    "prometheus": "capplan.collect.prometheus",
}


def register(kind: str, factory: Callable[..., Collector]) -> None:
    """Register ``factory(**config) -> Collector`` under ``kind`` (the params ``source`` value)."""
    _REGISTRY[kind] = factory


def _load(kind: str) -> None:
    mod = _BUILTIN_MODULES.get(kind)
    if mod and kind not in _REGISTRY:
        importlib.import_module(mod)


def available() -> list[str]:
    """Names a params ``source:`` may take."""
    return sorted(set(_REGISTRY) | set(_BUILTIN_MODULES))


def create(kind: str, **config) -> Collector:
    """Instantiate the collector registered as ``kind`` with its params section."""
    _load(kind)
    if kind not in _REGISTRY:
        raise ConfigError(f"unknown source '{kind}'", key="source",
                          hint=f"use one of: {', '.join(available())}")
    return _REGISTRY[kind](**config)
