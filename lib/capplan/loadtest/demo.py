"""The recorded demo sweep shipped with capplan (``capplan/data/demo_pgbench_sweep.csv``).

A real ``capplan sweep --tool pgbench`` run on a project machine; the sidecar
``demo_pgbench_sweep.json`` says where, when and how (machine, versions, command line).
"""

from __future__ import annotations

import io
import json
from importlib import resources

import pandas as pd

from capplan.loadtest.points import make_points

__all__ = ["demo_pgbench_sweep", "demo_pgbench_sweep_info", "DEMO_SWEEP_CSV"]

DEMO_SWEEP_CSV = "demo_pgbench_sweep.csv"


def _data(name: str) -> str:
    return resources.files("capplan").joinpath("data", name).read_text(encoding="utf-8")


def demo_pgbench_sweep() -> pd.DataFrame:
    """The recorded pgbench sweep as load points (one row per level and replicate)."""
    return make_points(pd.read_csv(io.StringIO(_data(DEMO_SWEEP_CSV)), keep_default_na=True,
                                   dtype={"scenario": str}))


def demo_pgbench_sweep_info() -> dict:
    """Provenance of the demo sweep: machine, date, pgbench and server versions, command."""
    return json.loads(_data(DEMO_SWEEP_CSV.replace(".csv", ".json")))
