"""``capplan init DIR``: a starter project for one's own services.

The folder it writes::

    DIR/
      params/demo.yaml         the demo report (synthetic data, no server): run this first
      params/services.yaml     your Redis and PostgreSQL, sampled live (credentials from the env)
      params/prometheus.yaml   months of history from your Prometheus
      notebooks/0N-*.ipynb     a copy of the pipeline's notebooks (open them in JupyterLab;
                               `capplan run` uses them when all four are there)
      outputs/                 run folders land here (git-ignored)
      .gitignore, README.md

``capplan run params/demo.yaml`` from DIR then resolves every relative path against DIR (see
:func:`capplan.runner.params.project_root`), with the installed package; nothing is looked up in
the package's own folder except the notebook templates.  Existing files are never overwritten
unless ``force`` is given.
"""

from __future__ import annotations

from pathlib import Path

from capplan.errors import ConfigError, OutputError
from capplan.runner.params import PIPELINE, packaged_dir

__all__ = ["init_project", "template_dir"]

_SERVICES = """\
# Your services, sampled live: Redis INFO and PostgreSQL statistics views every
# collect_interval_s seconds for collect_duration_s seconds, appended to the store below so that
# history builds up run after run (schedule it: see `capplan run --help` for exit codes).
#   capplan run params/services.yaml
# Credentials come from the environment, never from this file: PostgreSQL through the libpq
# variables (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, ~/.pgpass), Redis through REDIS_URL.
# A read-only PostgreSQL role needs only pg_monitor.
mode: live
store: .capplan/services.sqlite  # relative to this project folder; git-ignored
collect_duration_s: 60           # seconds to sample per run
collect_interval_s: 5            # seconds between samples
sources:
  - source: redis
    name: cache                  # samples get source "redis:cache"
    # url_env: REDIS_URL         # the default; the variable holding redis://host:port/db
    slowlog: true
    timeout_s: 2
  - source: postgres
    name: app                    # samples get source "postgres:app"
    # dsn_env: APP_PG_DSN        # default: the libpq environment
    statements_top: 20           # top statements from pg_stat_statements, when installed
    timeout_s: 2

service: my service              # who the handoff document is about
from_phase: "current phase"
to_phase: "next phase"
grain: "1h"                      # analysis grain of the forecasts
horizon_days: 30                 # how far ahead to look for a crossing
lookback_days: 30                # history used for fitting
capacity:                        # what can run out, and where its limit comes from
  - name: Redis memory
    metric: redis_used_memory_bytes
    limit_metric: redis_maxmemory_bytes   # maxmemory 0 (the Redis default) reads as "no limit"
  - name: PostgreSQL client connections
    metric: pg_client_backends_total
    statistic: max               # connections run out at the peak
    limit_metric: pg_usable_connections
  - name: PostgreSQL database size
    metric: pg_database_size_bytes
    limit: 10737418240           # bytes: set your volume's size
    limit_source: 10 GiB volume (edit me)
targets:                         # what "healthy" means; each gets meets / misses / at risk
  - {name: Redis hit ratio, metric: redis_keyspace_hit_ratio, min: 0.90, warn: 0.92}
  - {name: PostgreSQL buffer cache hit ratio, metric: pg_cache_hit_ratio, min: 0.98}
baseline_days: 1
current_days: 1
loadtest_file: ""                # a pgbench/k6/Locust/wrk/redis-benchmark result, or empty
"""

_PROMETHEUS = """\
# History from your Prometheus: redis_exporter, postgres_exporter and node_exporter series,
# mapped to capplan's metric names.  Its URL comes from an environment variable:
#   export PROMETHEUS_URL=http://127.0.0.1:9090
#   capplan run params/prometheus.yaml
mode: prometheus
prometheus:
  url_env: PROMETHEUS_URL        # the variable holding the base URL (never the URL itself)
  days: 30                       # how much history to load
  # selector: 'job="checkout"'   # label matchers added to every query

service: my service
from_phase: "current phase"
to_phase: "next phase"
grain: "1h"
horizon_days: 90
lookback_days: 30
capacity:
  - name: Redis memory
    metric: redis_used_memory_bytes
    limit_metric: redis_maxmemory_bytes
  - name: PostgreSQL client connections
    metric: pg_client_backends_total
    statistic: max
    limit_metric: pg_usable_connections
targets:
  - {name: Redis hit ratio, metric: redis_keyspace_hit_ratio, min: 0.90, warn: 0.92}
  - {name: PostgreSQL buffer cache hit ratio, metric: pg_cache_hit_ratio, min: 0.98}
loadtest_file: ""
"""

_GITIGNORE = """\
outputs/*
!outputs/.gitkeep
.capplan/
.ipynb_checkpoints/
credentials.yaml
.env
"""

_README = """\
# Capacity planning with capplan

    capplan run params/demo.yaml        # the demo report: synthetic data, no server needed
    capplan run params/services.yaml    # your Redis and PostgreSQL (credentials from the env)
    capplan run params/prometheus.yaml  # history from your Prometheus (PROMETHEUS_URL)

Each run writes `outputs/<params name>/<run id>/report.html` (and `latest` points at the newest
good run).  `capplan run --help` lists the options and exit codes.  Open `notebooks/` in
JupyterLab (`pip install 'capplan[lab]'`, then `jupyter lab`) to explore interactively; run
01-collect first, the others read what it stored.
"""


def template_dir(kind: str) -> Path:
    """Where the shipped templates are: the wheel's ``capplan/data/<kind>``, or the checkout's
    ``notebooks/`` / ``params/`` for an editable install."""
    packaged = packaged_dir(kind)
    if packaged is not None:
        return packaged
    checkout = Path(__file__).resolve().parents[3] / kind
    if checkout.is_dir():
        return checkout
    raise ConfigError(f"capplan's {kind} templates are missing from the installation",
                      hint="reinstall capplan (pip install --force-reinstall capplan)")


def init_project(folder: str | Path, *, force: bool = False) -> list[Path]:
    """Write a starter project into ``folder`` (created if needed); return the files written.

    Raises :class:`ConfigError` when files would be overwritten (lists them; ``force`` allows
    it) and :class:`OutputError` when the folder cannot be written.
    """
    root = Path(folder).expanduser()
    files: dict[Path, bytes] = {
        Path("params/demo.yaml"): (template_dir("params") / "demo.yaml").read_bytes(),
        Path("params/services.yaml"): _SERVICES.encode(),
        Path("params/prometheus.yaml"): _PROMETHEUS.encode(),
        Path(".gitignore"): _GITIGNORE.encode(),
        Path("README.md"): _README.encode(),
        Path("outputs/.gitkeep"): b"",
    }
    nb_src = template_dir("notebooks")
    for nb in PIPELINE:
        files[Path("notebooks") / f"{nb}.ipynb"] = (nb_src / f"{nb}.ipynb").read_bytes()
    clash = sorted(str(rel) for rel in files if (root / rel).exists())
    if clash and not force:
        raise ConfigError(f"{root} already holds {', '.join(clash)}",
                          hint="choose a new folder, or pass --force to overwrite those files")
    written = []
    try:
        for rel, data in files.items():
            dest = root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            tmp = dest.with_name(f".{dest.name}.tmp")
            tmp.write_bytes(data)
            tmp.replace(dest)
            written.append(dest)
    except OSError as exc:
        raise OutputError(f"cannot write the project folder {root}: {exc.strerror or exc}",
                          hint="choose a writable folder") from exc
    return written
