"""Secrets: where they come from (env vars, libpq variables, a git-ignored profile file) and
that no message ever repeats them."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from capplan.core.credentials import (
    DEFAULT_REDIS_URL,
    load_profile,
    pg_password,
    resolve_pg_conninfo,
    resolve_redis_url,
    scrub,
)
from capplan.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_scrub_masks_urls_conninfo_queries_and_literals():
    text = ("redis://user:p%40ss@h:6379/0 rediss://:tok@h postgresql://u:pw1@h/db?password=pw2 "
            "host=h password='a b c' user=u; PASSWORD=xyz and literal Sekrit")
    out = scrub(text, ["Sekrit", None, ""])
    for secret in ("p%40ss", "tok", "pw1", "pw2", "a b c", "xyz", "Sekrit"):
        assert secret not in out
    assert "redis://user:***@h:6379/0" in out and "host=h" in out and "user=u" in out
    assert scrub("redis://h:6379/0 host=h") == "redis://h:6379/0 host=h"


def test_redis_url_precedence():
    env = {"REDIS_URL": "redis://from-env:6379/1", "MY_URL": "redis://:pw@named:6379/2"}
    assert resolve_redis_url(environ={}) == DEFAULT_REDIS_URL
    assert resolve_redis_url(environ=env) == "redis://from-env:6379/1"
    assert resolve_redis_url(url="redis://inline:6379/0", environ=env) == "redis://inline:6379/0"
    assert resolve_redis_url(url_env="MY_URL", url="redis://inline", environ=env) == \
        "redis://:pw@named:6379/2"


def test_missing_variable_and_inline_password_are_config_errors():
    with pytest.raises(ConfigError, match="MY_URL is not set"):
        resolve_redis_url(url_env="MY_URL", environ={})
    with pytest.raises(ConfigError) as ei:
        resolve_redis_url(url="redis://:hunter2@h:6379/0", environ={})
    assert "hunter2" not in str(ei.value)
    with pytest.raises(ConfigError, match="APP_DSN"):
        resolve_pg_conninfo(dsn_env="APP_DSN", environ={})


def test_pg_conninfo_defaults_to_libpq_environment():
    assert resolve_pg_conninfo(environ={"PGHOST": "h"}) == ""   # libpq reads PG* itself
    assert resolve_pg_conninfo(dsn_env="D", environ={"D": "host=x password=y"}) == \
        "host=x password=y"
    assert pg_password("host=x password=y", environ={}) == "y"
    assert pg_password("", environ={"PGPASSWORD": "z"}) == "z"
    assert pg_password("host=x", environ={}) is None


def test_profiles_from_credentials_file(tmp_path):
    f = tmp_path / "credentials.yaml"
    f.write_text("profiles:\n"
                 "  cache: {url: 'redis://:c4che@h:6379/0'}\n"
                 "  db: {host: h, port: 5433, user: mon, password: 'd b!', dbname: app}\n"
                 "  rawdsn: {dsn: 'host=q password=r'}\n")
    f.chmod(0o600)
    env = {"CAPPLAN_CREDENTIALS": str(f)}
    assert resolve_redis_url(profile="cache", environ=env) == "redis://:c4che@h:6379/0"
    info = resolve_pg_conninfo(profile="db", environ=env)
    assert pg_password(info, environ={}) == "d b!" and "port=5433" in info
    assert resolve_pg_conninfo(profile="rawdsn", credentials_file=f, environ={}) == \
        "host=q password=r"
    with pytest.raises(ConfigError, match="profiles: cache, db, rawdsn") as ei:
        load_profile("nope", f, environ={})
    assert "c4che" not in str(ei.value)
    with pytest.raises(ConfigError, match="no 'url'"):
        resolve_redis_url(profile="db", environ=env)


def test_broken_credentials_file_never_quotes_its_content(tmp_path):
    f = tmp_path / "credentials.yaml"
    f.write_text("profiles:\n  db: {password: 'unterminated-S3cret\n")
    with pytest.raises(ConfigError) as ei:
        load_profile("db", f)
    assert "S3cret" not in str(ei.value) and str(f) in str(ei.value)
    with pytest.raises(ConfigError, match="no credentials file"):
        load_profile("db", tmp_path / "absent.yaml")


def test_project_credentials_file_is_git_ignored():
    out = subprocess.run(["git", "-C", str(ROOT), "check-ignore", "-q", "credentials.yaml"])
    assert out.returncode == 0, "credentials.yaml must be listed in .gitignore"
