"""Issue 10, item 3, must show: no secret string in any output file, for every case of item 3.

Each case runs the real ``capplan run`` in a subprocess (exit code checked) with a secret in play,
then reads EVERY file under the outputs folder -- run folders, ``.partial`` leftovers, ``latest``,
the metrics store and its journal files -- and the working directory, as bytes, and looks for the
secret in every form it could take there: raw, percent-decoded/-encoded, JSON- and HTML-escaped.
Each secret carries a random core (``uuid4().hex``) that survives all of those encodings, so the
scan also looks for the core alone.

The cases:

* live collection with a PostgreSQL password that libpq cannot percent-decode (its error quotes
  the token), in a DSN's userinfo and in a ``?password=`` query, plus ``PGPASSWORD`` and a
  ``REDIS_URL`` password -- the run completes and writes nothing of them;
* params values that look like secrets (``?password=`` in a URL, ``Authorization: Bearer``,
  ``X-Api-Key``, ``pwd``) and ``store: postgresql://...?password=`` -- refused before any kernel
  starts with exit 2, and nothing is written;
* a load-test file pointing at a secret file -- the parse error does not quote its first line.
"""

from __future__ import annotations

import html
import json
import os
import subprocess
import sys
import urllib.parse
import uuid
from pathlib import Path

import pytest

import capplan

LIB = Path(capplan.__file__).resolve().parents[1]   # the capplan under test, for subprocesses
ROOT = LIB.parent


def _secret(prefix: str) -> tuple[str, str]:
    core = uuid.uuid4().hex[:16]
    return f"{prefix}%zz{core}", core   # "%zz": an escape libpq refuses to decode


def _forms(secret: str) -> set[bytes]:
    forms = {secret, urllib.parse.unquote(secret), urllib.parse.quote(secret, safe=""),
             urllib.parse.quote_plus(secret), json.dumps(secret)[1:-1], html.escape(secret)}
    return {f.encode() for f in forms}


def _scan(roots: list[Path], secrets: dict[str, str]) -> list[str]:
    """Every (file, secret) where a form of a secret or its core occurs; [] when clean."""
    hits = []
    for root in roots:
        if not root.exists():
            continue
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for p in files:
            data = p.read_bytes()
            for secret, core in secrets.items():
                for form in _forms(secret) | {core.encode()}:
                    if form in data:
                        hits.append(f"{p} holds {form!r}")
    return hits


def _capplan(args: list[str], *, cwd: Path, env: dict[str, str], timeout: float = 300):
    return subprocess.run([sys.executable, "-m", "capplan", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PG", "REDIS_URL"))}
    env.update(PYTHONPATH=str(LIB), **extra)
    return env


def _all_files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def test_issue10_item3_live_run_with_undecodable_pg_passwords_writes_them_nowhere(tmp_path):
    pg_user_pw, c1 = _secret("UserInfo-")
    pg_query_pw, c2 = _secret("Query-")
    pgpassword, c3 = _secret("PgEnv-")
    redis_pw, c4 = _secret("RedisPw-")
    secrets = {pg_user_pw: c1, pg_query_pw: c2, pgpassword: c3, redis_pw: c4}
    env = _env(
        CAP_T_DSN_USERINFO=f"postgresql://capmon:{pg_user_pw}@127.0.0.1:5432/postgres",
        CAP_T_DSN_QUERY=f"postgresql://capmon@127.0.0.1:5432/postgres?password={pg_query_pw}",
        PGPASSWORD=pgpassword, PGHOST="127.0.0.1", PGPORT="5432", PGDATABASE="postgres",
        CAP_T_REDIS=f"redis://:{urllib.parse.quote(redis_pw, safe='')}@127.0.0.1:6379/0")
    params = tmp_path / "live.yaml"
    params.write_text(
        "mode: live\ncollect_duration_s: 2\ncollect_interval_s: 1\n"
        "sources:\n"
        "  - {source: postgres, name: userinfo, dsn_env: CAP_T_DSN_USERINFO}\n"
        "  - {source: postgres, name: query, dsn_env: CAP_T_DSN_QUERY}\n"
        "  - {source: postgres, name: libpqenv, statements_top: 0, tables_limit: 0}\n"
        "  - {source: redis, name: cache, url_env: CAP_T_REDIS}\n"
        "capacity: []\nloadtest_file: ''\n")
    outputs = tmp_path / "outputs"
    out = _capplan(["run", str(params), "--outputs", str(outputs), "--quiet",
                    "--cell-timeout", "120"], cwd=tmp_path, env=env)
    # the refused DSNs are gaps (degraded); a run that cannot finish at all is exit 1
    assert out.returncode in (0, 3), out.stderr[-3000:]
    files = _all_files(outputs)
    names = {p.name for p in files}
    assert {"manifest.json", "summary.json", "01-collect.ipynb", "metrics.sqlite"} <= names, names
    assert _scan([outputs, tmp_path], secrets) == []
    assert not any(form in (out.stdout + out.stderr).encode()
                   for s in secrets for form in _forms(s) | {secrets[s].encode()})
    # the failures were recorded (so the error texts did reach the outputs, scrubbed)
    collect_nb = next(p for p in files if p.name == "01-collect.ipynb").read_text()
    failed = json.loads(next(p for p in files if p.name == "summary.json").read_text())[
        "failed_sources"]
    assert "userinfo" in collect_nb and "***" in (collect_nb + "".join(
        p.read_text(errors="replace") for p in files if p.suffix in (".json", ".log", ".md"))), \
        failed


@pytest.mark.parametrize("case, yaml_text", [
    ("url_query_password",
     "mode: live\nsources:\n  - {source: http, name: web, urls: "
     "['http://127.0.0.1:9/health?password=SECRET']}\n"),
    ("authorization_bearer",
     "mode: prometheus\nprometheus: {url_env: CAP_T_PROM, authorization: 'Bearer SECRET'}\n"),
    ("headers_x_api_key",
     "mode: live\nsources:\n  - {source: http, name: web, urls: ['http://127.0.0.1:9/'], "
     "headers: {X-Api-Key: SECRET}}\n"),
    ("pwd_key",
     "mode: live\nsources:\n  - {source: postgres, name: app, pwd: SECRET}\n"),
    ("store_uri_with_password",
     "mode: demo\ndemo_days: 2\nstore: 'postgresql://u@127.0.0.1:5432/postgres?password=SECRET'\n"),
])
def test_issue10_item3_secret_looking_params_refused_with_exit_2_and_nothing_written(
        tmp_path, case, yaml_text):
    """The lead's params-side refusal: exit 2 before any kernel, no file written anywhere."""
    secret, core = _secret("Param-")
    params = tmp_path / f"{case}.yaml"
    params.write_text(yaml_text.replace("SECRET", secret))
    outputs = tmp_path / "outputs"
    before = {p for p in tmp_path.rglob("*")}
    out = _capplan(["run", str(params), "--outputs", str(outputs), "--quiet"], cwd=tmp_path,
                   env=_env(CAP_T_PROM="http://127.0.0.1:9"), timeout=120)
    assert out.returncode == 2, (out.returncode, out.stderr[-2000:])
    assert _all_files(outputs) == [], _all_files(outputs)
    assert {p for p in tmp_path.rglob("*")} == before   # no store file named after the URI
    assert core not in out.stderr + out.stdout
    params.unlink()   # the only place the secret may be: the file the user wrote
    assert _scan([tmp_path], {secret: core}) == []


def test_issue10_item3_loadtest_file_pointing_at_a_secret_file_does_not_echo_it(tmp_path):
    secret, core = _secret("FileLine-")
    # a first line that sniffs as a k6 CSV header, so a parser gets as far as quoting it
    secret_file = tmp_path / "secret.env"
    secret_file.write_text(f"metric_name,{secret}\nOTHER,1\n")
    params = tmp_path / "lt.yaml"
    params.write_text(f"mode: demo\ndemo_days: 2\nloadtest_file: '{secret_file}'\n")
    outputs = tmp_path / "outputs"
    out = _capplan(["run", str(params), "--outputs", str(outputs), "--quiet",
                    "--cell-timeout", "120"], cwd=tmp_path, env=_env())
    assert out.returncode in (1, 2), (out.returncode, out.stderr[-2000:])   # an unusable file
    manifests = [p.read_text() for p in _all_files(outputs) if p.name == "manifest.json"]
    assert "secret.env" in out.stderr + "".join(manifests), out.stderr[-2000:]   # it was read
    assert core not in out.stderr + out.stdout
    assert _scan([outputs], {secret: core}) == []
