"""A throw-away Prometheus + redis_exporter + postgres_exporter on loopback, for tests.

``PromStack(redis_url, pg_dsn).start()`` runs the three Debian binaries on free 127.0.0.1 ports in a
temporary directory (Prometheus scrapes both exporters every ``scrape_interval_s``, jobs "redis"
and "postgres", plus any ``extra_targets`` given as job -> host:port), waits until
Prometheus reports both targets up, and ``stop()`` ends exactly the processes it started and
removes the directory.  Nothing listens on anything but 127.0.0.1.

Missing binaries raise :class:`StackError` whose message says to run ``.ci/install-system-deps.sh``;
tests turn that into a failure (never a skip).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

BINARIES = {
    "prometheus": "prometheus",
    "redis_exporter": "prometheus-redis-exporter",
    "postgres_exporter": "prometheus-postgres-exporter",
}
INSTALL_HINT = ("run `.ci/install-system-deps.sh` as root (Debian packages prometheus, "
                "prometheus-redis-exporter, prometheus-postgres-exporter)")


class StackError(RuntimeError):
    """The test stack could not be started (binary missing, port taken, target never up)."""


def missing_binaries() -> list[str]:
    """Debian binaries of the stack that are not on PATH."""
    return [exe for exe in BINARIES.values() if shutil.which(exe) is None]


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1 (small race window before the child binds it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_url(dsn: str) -> str:
    """A ``postgresql://`` URL (what postgres_exporter's DATA_SOURCE_NAME expects) from a DSN."""
    if dsn.startswith(("postgres://", "postgresql://")):
        url = dsn
    else:
        from psycopg.conninfo import conninfo_to_dict

        d = conninfo_to_dict(dsn)
        auth = urllib.parse.quote(str(d.get("user", "postgres")), safe="")
        if d.get("password"):
            auth += ":" + urllib.parse.quote(str(d["password"]), safe="")
        url = (f"postgresql://{auth}@{d.get('host', '127.0.0.1')}:{d.get('port', 5432)}/"
               f"{urllib.parse.quote(str(d.get('dbname', 'postgres')), safe='')}")
    if "sslmode=" not in url:
        url += ("&" if "?" in url else "?") + "sslmode=disable"
    return url


def _get(url: str, timeout: float = 2.0) -> bytes:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback only
        return resp.read()


@dataclass
class PromStack:
    """Prometheus scraping redis_exporter and postgres_exporter, all on 127.0.0.1."""

    redis_url: str
    pg_dsn: str
    scrape_interval_s: float = 1.0
    startup_timeout_s: float = 30.0
    extra_targets: dict[str, str] = field(default_factory=dict)   # job -> "127.0.0.1:port"
    exporters: bool = True          # False: Prometheus and extra_targets only (no Redis/PG needed)
    workdir: Path | None = None
    ports: dict[str, int] = field(default_factory=dict)
    _procs: dict[str, subprocess.Popen] = field(default_factory=dict)
    _tmp: str | None = None

    # -- addresses -----------------------------------------------------------------------------
    @property
    def prometheus_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['prometheus']}"

    @property
    def redis_exporter_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['redis_exporter']}/metrics"

    @property
    def postgres_exporter_url(self) -> str:
        return f"http://127.0.0.1:{self.ports['postgres_exporter']}/metrics"

    # -- lifecycle -----------------------------------------------------------------------------
    def start(self) -> "PromStack":
        missing = missing_binaries() if self.exporters else \
            [b for b in [BINARIES["prometheus"]] if shutil.which(b) is None]
        if missing:
            raise StackError(f"missing {', '.join(missing)}: {INSTALL_HINT}")
        self._tmp = tempfile.mkdtemp(prefix="capplan-promstack-")
        self.workdir = Path(self._tmp)
        try:
            if self.exporters:
                self._start_exporters()
            self._start_prometheus()
            self.wait_targets_up()
        except BaseException:
            self.stop()
            raise
        return self

    def _spawn(self, name: str, argv: list[str], env: dict[str, str] | None = None) -> None:
        log = open(self.workdir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        base_env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.workdir)}
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=self.workdir,
                                env={**base_env, **(env or {})}, start_new_session=True)
        log.close()
        self._procs[name] = proc

    def _start_exporters(self) -> None:
        self.ports["redis_exporter"] = free_port()
        self._spawn("redis_exporter", [   # address in the environment: a password stays out of ps
            BINARIES["redis_exporter"],
            "-web.listen-address", f"127.0.0.1:{self.ports['redis_exporter']}",
        ], env={"REDIS_ADDR": self.redis_url})
        self.ports["postgres_exporter"] = free_port()
        self._spawn("postgres_exporter", [
            BINARIES["postgres_exporter"],
            f"--web.listen-address=127.0.0.1:{self.ports['postgres_exporter']}",
            "--log.level=warn",
        ], env={"DATA_SOURCE_NAME": pg_url(self.pg_dsn)})
        for name in ("redis_exporter", "postgres_exporter"):
            self._wait_http(name, f"http://127.0.0.1:{self.ports[name]}/metrics")

    def _start_prometheus(self) -> None:
        self.ports["prometheus"] = free_port()
        iv = f"{self.scrape_interval_s:g}s"
        cfg = {
            "global": {"scrape_interval": iv, "scrape_timeout": iv, "evaluation_interval": iv},
            "scrape_configs": ([
                {"job_name": "redis",
                 "static_configs": [{"targets": [f"127.0.0.1:{self.ports['redis_exporter']}"]}]},
                {"job_name": "postgres",
                 "static_configs": [{"targets": [f"127.0.0.1:{self.ports['postgres_exporter']}"]}]},
            ] if self.exporters else []) + [{"job_name": job, "static_configs": [{"targets": [target]}]}
                 for job, target in self.extra_targets.items()],
        }
        cfg_path = self.workdir / "prometheus.yml"
        cfg_path.write_text(json.dumps(cfg, indent=1))  # JSON is valid YAML
        self._spawn("prometheus", [
            BINARIES["prometheus"], f"--config.file={cfg_path}",
            f"--storage.tsdb.path={self.workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.ports['prometheus']}",
            "--log.level=warn",
        ])
        self._wait_http("prometheus", f"{self.prometheus_url}/-/ready")

    def _wait_http(self, name: str, url: str) -> None:
        deadline = time.monotonic() + self.startup_timeout_s
        last = None
        while time.monotonic() < deadline:
            proc = self._procs[name]
            if proc.poll() is not None:
                raise StackError(f"{name} exited with code {proc.returncode}: {self.log(name)}")
            try:
                _get(url)
                return
            except (urllib.error.URLError, OSError) as exc:
                last = exc
            time.sleep(0.1)
        raise StackError(f"{name} not answering at {url} after {self.startup_timeout_s}s "
                         f"({last}): {self.log(name)}")

    def wait_targets_up(self) -> None:
        """Block until Prometheus has scraped every target successfully (``up == 1``)."""
        deadline = time.monotonic() + self.startup_timeout_s
        q = urllib.parse.urlencode({"query": "up"})
        seen: dict = {}
        while time.monotonic() < deadline:
            try:
                body = json.loads(_get(f"{self.prometheus_url}/api/v1/query?{q}"))
                seen = {r["metric"]["job"]: r["value"][1] for r in body["data"]["result"]}
                jobs = (["redis", "postgres"] if self.exporters else []) + list(self.extra_targets)
                if all(seen.get(j) == "1" for j in jobs):
                    return
            except (urllib.error.URLError, OSError, KeyError, ValueError):
                pass
            time.sleep(0.2)
        raise StackError(f"targets not up after {self.startup_timeout_s}s: {seen}; "
                         f"logs: {self.log('redis_exporter')} {self.log('postgres_exporter')}")

    def log(self, name: str, tail: int = 2000) -> str:
        if self.workdir is None:
            return ""
        p = self.workdir / f"{name}.log"
        return p.read_text(errors="replace")[-tail:] if p.exists() else ""

    def stop(self) -> None:
        """Stop the processes this stack started (by pid) and remove its directory."""
        for _name, proc in list(self._procs.items()):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for _name, proc in list(self._procs.items()):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        self._procs.clear()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    def __enter__(self) -> "PromStack":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
