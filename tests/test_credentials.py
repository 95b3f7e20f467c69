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


# -- issue 10, item 3: the actual secret values in play ----------------------------------------
def test_dsn_passwords_reads_refused_dsns_too():
    from capplan.core.credentials import dsn_passwords

    assert dsn_passwords("postgresql://u:Bad%zzPass@h/db") == ["Bad%zzPass"]
    assert dsn_passwords("postgresql://u@h/db?sslmode=off&password=Q%zzuery") == ["Q%zzuery"]
    assert "a'b c" in dsn_passwords("host=h password='a\\'b c' user=x")
    assert dsn_passwords("redis://:r3d-pw@h:6379/0") == ["r3d-pw"]
    assert dsn_passwords("host=h user=u") == [] and dsn_passwords(None) == []


def test_known_secrets_from_environment_and_credential_files(tmp_path, monkeypatch):
    from capplan.core.credentials import known_secrets

    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")   # ./credentials.yaml is one of the places looked at

    pgpass = tmp_path / "pgpass"
    pgpass.write_text("# comment\nh:5432:db:u:pgpass-Secret\\:with-colon\n*:*:*:*:Star-Pw-1\n")
    service = tmp_path / "pg_service.conf"
    service.write_text("[app]\nhost=h\npassword=Service-Pw-2\n")
    cred = tmp_path / "credentials.yaml"
    cred.write_text("profiles:\n  db: {host: h, password: 'Profile Pw 3'}\n"
                    "  cache: {url: 'redis://:Profile-Url-4@h:6379/0'}\n")
    env = {"HOME": str(tmp_path / "nohome"), "PGPASSFILE": str(pgpass),
           "PGSERVICEFILE": str(service), "CAPPLAN_CREDENTIALS": str(cred),
           "PGPASSWORD": "Pg%zzEnv-5", "APP_PG_DSN": "postgresql://u:Dsn%zz-6@h/db",
           "REDIS_URL": "redis://:Redis%40Env-7@h:6379/0", "PROM_TOKEN": "tok-abcdef-8",
           "PGPASSFILE_UNUSED_PATH": "/not/a/secret", "PWD": "/work/dir"}
    got = known_secrets(environ=env)
    for s in ("pgpass-Secret:with-colon", "Star-Pw-1", "Service-Pw-2", "Profile Pw 3",
              "Profile-Url-4", "Pg%zzEnv-5", "Dsn%zz-6", "Redis%40Env-7", "Redis@Env-7",
              "tok-abcdef-8"):
        assert s in got, s
    # the forms a secret takes in outputs: percent-encoded, JSON-escaped, HTML-escaped
    assert "Pg%25zzEnv-5" in got and "Profile%20Pw%203" in got
    assert "/work/dir" not in got and "/not/a/secret" not in got
    assert known_secrets(environ={"HOME": str(tmp_path / "nohome")}) == frozenset()


def test_scrub_all_masks_libpq_echo_of_a_bad_percent_escape():
    from capplan.core.credentials import scrub_all

    env = {"HOME": "/nonexistent", "APP_PG_DSN": "postgresql://capmon:Hunt%zz3r-99@h/db"}
    libpq = 'invalid percent-encoded token: "Hunt%zz3r-99"'
    assert "Hunt" not in scrub(libpq)   # the shape alone is masked too
    msg = "connecting failed: Hunt%zz3r-99 was refused; json \"Hunt%25zz3r-99\""
    out = scrub_all(msg, environ=env)
    assert "Hunt" not in out and out.count("***") == 2


def test_scrub_masks_headers_and_bearer_tokens():
    out = scrub('Authorization: Bearer abcdefghijk; {"X-Api-Key": "k-123456"} api_key=zzz9999')
    assert "abcdefghijk" not in out and "k-123456" not in out and "zzz9999" not in out
    assert scrub("a plain sentence about tokens and passwords") == \
        "a plain sentence about tokens and passwords"


@pytest.mark.parametrize("params, key", [
    ({"store": "postgresql://u@h/db?password=X1234"}, "store"),
    ({"sources": [{"source": "http", "urls": ["http://h/?password=abc"]}]}, "sources[0].urls[0]"),
    ({"headers": {"Authorization": "Bearer abc.def.ghi"}}, "headers.Authorization"),
    ({"headers": {"X-Api-Key": "k-123"}}, "headers.X-Api-Key"),
    ({"pwd": "hunter22"}, "pwd"),
    ({"note": "Bearer abcdefghij"}, "note"),
    ({"dsn": "host=h password=zz"}, "dsn"),
    ({"url": "redis://:pw@h:6379/0"}, "url"),
])
def test_check_no_secrets_refuses_every_shape_without_quoting_it(params, key):
    from capplan.core.credentials import check_no_secrets

    with pytest.raises(ConfigError) as ei:
        check_no_secrets(params, path="p.yaml")
    assert f"'{key}'" in str(ei.value)
    for v in ("X1234", "abc.def.ghi", "k-123", "hunter22", "abcdefghij", "zz"):
        if v in repr(params):
            assert v not in str(ei.value)


def test_check_no_secrets_allows_where_secrets_live():
    from capplan.core.credentials import check_no_secrets

    check_no_secrets({"sources": [{"source": "postgres", "dsn_env": "APP_PG_DSN",
                                   "credentials_file": "credentials.yaml", "profile": "db"},
                                  {"source": "prometheus", "bearer_token_env": "PROM_TOKEN",
                                   "url_env": "PROMETHEUS_URL"}],
                      "store": "env:CAP_STORE_DSN", "password": None, "token": "",
                      "service": "a checkout api on redis://127.0.0.1:6379/0"}, path="p.yaml")


def test_known_secrets_follows_what_params_point_at(tmp_path):
    from capplan.core.credentials import known_secrets

    cred = tmp_path / "team-creds.yaml"
    cred.write_text("profiles:\n  db: {password: Team-File-Pw-9}\n")
    env = {"HOME": str(tmp_path / "nohome"), "MY_PROM_CREDS": "bare-token-value-10",
           "CACHE_URL": "redis://127.0.0.1:6379/0"}
    params = {"prometheus": {"bearer_token_env": "MY_PROM_CREDS"},
              "sources": [{"source": "redis", "url_env": "CACHE_URL"},
                          {"source": "postgres", "credentials_file": str(cred)}]}
    assert "bare-token-value-10" not in known_secrets(environ=env)   # not named like a secret
    got = known_secrets(environ=env, params=params)
    assert {"bare-token-value-10", "Team-File-Pw-9"} <= got
    assert "redis://127.0.0.1:6379/0" not in got   # a URL without password is no secret


def test_a_profile_with_an_unknown_libpq_keyword_is_a_config_error(tmp_path):
    f = tmp_path / "credentials.yaml"
    f.write_text("profiles:\n  db: {host: h, passwrd: 'S3cretPw'}\n")
    f.chmod(0o600)
    with pytest.raises(ConfigError, match="unusable libpq keyword") as ei:
        resolve_pg_conninfo(profile="db", credentials_file=f, environ={})
    assert "S3cretPw" not in str(ei.value)
