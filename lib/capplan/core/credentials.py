"""Where connection secrets come from, and how they are kept out of everything capplan writes.

Params never hold a password.  A source section names *where* the secret is:

* Redis: ``url_env: NAME`` (an environment variable holding the whole ``redis://`` URL, user and
  password in its userinfo part),
  else ``profile: NAME`` (a profile in the credentials file), else the ``REDIS_URL`` environment
  variable, else ``redis://127.0.0.1:6379/0`` -- the convention of redis-py, RQ and Celery users.
  A ``url:`` in params is accepted only when it carries no password.
* PostgreSQL: ``dsn_env: NAME`` (an environment variable holding a libpq conninfo string or a
  ``postgresql://`` URI), else ``profile: NAME``, else *nothing*: libpq itself then reads
  PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE, PGSERVICE, PGPASSFILE (``~/.pgpass``), as every
  PostgreSQL tool does.

The credentials file is YAML, git-ignored (``credentials.yaml`` is in the project's
``.gitignore``), and looked up in this order: the ``credentials_file`` argument, the
``CAPPLAN_CREDENTIALS`` environment variable, ``./credentials.yaml``,
``~/.config/capplan/credentials.yaml``::

    profiles:
      prod-cache:            # for a redis source: one key, url
        url: ...             # the whole redis:// URL, password included (this file only)
      prod-db:               # for a postgres source: libpq keywords (or dsn: "...")
        host: db.internal
        port: 5432
        user: capmon
        password: s3cret
        dbname: app

Every message that may contain a URL or DSN goes through :func:`scrub`, which masks the password
of ``scheme://user:pass@`` URLs, ``password=...`` conninfo pairs and any literal secret given.
Environment reads happen when a function is called, never at import.
"""

from __future__ import annotations

import logging
import os
import re
import stat
from collections.abc import Iterable, Mapping
from pathlib import Path

from capplan.errors import ConfigError

__all__ = [
    "MASK",
    "scrub",
    "credentials_path",
    "load_profile",
    "resolve_redis_url",
    "resolve_pg_conninfo",
    "pg_password",
]

log = logging.getLogger(__name__)

MASK = "***"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

_URL_PASS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/\s]*):(?P<pw>[^@\s]*)@")
_KV_PASS = re.compile(r"(?P<key>\bpassword\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|[^\s]+)", re.IGNORECASE)
_QUERY_PASS = re.compile(r"(?P<key>[?&]password=)(?P<pw>[^&\s]+)", re.IGNORECASE)


def scrub(text: object, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every password masked as ``***``.

    Masks ``scheme://user:PASS@`` in URLs, ``password=PASS`` in conninfo strings and
    ``?password=PASS`` in URI queries, and every literal in ``secrets`` (empty ones ignored);
    e.g. a conninfo ``host=h password='a b'`` becomes ``host=h password=***`` (tests show the
    URL form).
    """
    out = str(text)
    for s in sorted({s for s in secrets if s}, key=len, reverse=True):
        out = out.replace(s, MASK)
    out = _URL_PASS.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", out)
    out = _KV_PASS.sub(lambda m: f"{m['key']}{MASK}", out)
    out = _QUERY_PASS.sub(lambda m: f"{m['key']}{MASK}", out)
    return out


def credentials_path(credentials_file: str | os.PathLike | None = None, *,
                     environ: Mapping[str, str] | None = None) -> Path | None:
    """The credentials file to use, or None when there is none (see the module docstring)."""
    env = os.environ if environ is None else environ
    if credentials_file:
        return Path(credentials_file)
    if env.get("CAPPLAN_CREDENTIALS"):
        return Path(env["CAPPLAN_CREDENTIALS"])
    for cand in (Path("credentials.yaml"), Path.home() / ".config" / "capplan" / "credentials.yaml"):
        if cand.is_file():
            return cand
    return None


def load_profile(profile: str, credentials_file: str | os.PathLike | None = None, *,
                 environ: Mapping[str, str] | None = None) -> dict[str, object]:
    """The mapping stored under ``profiles.<profile>`` in the credentials file.

    Raises :class:`ConfigError` when the file or the profile is missing or malformed (the
    message names the file and the profile, never a value).  Warns when the file is readable by
    group or others, like libpq does for ``~/.pgpass``.
    """
    import yaml

    path = credentials_path(credentials_file, environ=environ)
    if path is None or not path.is_file():
        raise ConfigError(f"profile '{profile}' asked for, but no credentials file found"
                          + (f" at {path}" if path else ""), key="profile",
                          hint="create credentials.yaml (git-ignored) with 'profiles: {"
                               f"{profile}: {{...}}}}' or set CAPPLAN_CREDENTIALS to its path")
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            log.warning("credentials file %s is readable by group/others; chmod 600 it", path)
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        # a YAML error quotes the offending line (maybe a password): no chaining, no text
        raise ConfigError(f"cannot read credentials file ({type(exc).__name__})", path=str(path),
                          hint="check that it is readable YAML with a top-level 'profiles:' map"
                          ) from None
    profiles = data.get("profiles") if isinstance(data, dict) else None
    if not isinstance(profiles, dict) or profile not in profiles:
        known = ", ".join(sorted(profiles)) if isinstance(profiles, dict) else "none"
        raise ConfigError(f"profile '{profile}' not found (profiles: {known})", path=str(path),
                          key="profile", hint="add it under 'profiles:' or fix the name in params")
    entry = profiles[profile]
    if not isinstance(entry, dict):
        raise ConfigError(f"profile '{profile}' must be a mapping", path=str(path), key="profile")
    return dict(entry)


def _env_value(name: str, key: str, env: Mapping[str, str]) -> str:
    value = env.get(name)
    if not value:
        raise ConfigError(f"environment variable {name} is not set or empty", key=key,
                          hint=f"export {name}=... before running, or remove '{key}' to use "
                               "the default (REDIS_URL / libpq PG* variables)")
    return value


def resolve_redis_url(*, url: str | None = None, url_env: str | None = None,
                      profile: str | None = None, credentials_file: str | os.PathLike | None = None,
                      environ: Mapping[str, str] | None = None) -> str:
    """The Redis URL for a source: ``url_env`` > ``profile`` > ``url`` > ``REDIS_URL`` > default.

    The result may contain a password: keep it private and pass messages through :func:`scrub`.
    Raises :class:`ConfigError` when a named variable/profile is missing or ``url`` embeds a
    password.
    """
    env = os.environ if environ is None else environ
    if url and scrub(url) != url:
        raise ConfigError("the url in params embeds a password", key="url",
                          hint="use url_env: REDIS_URL (or another variable) or a profile")
    if url_env:
        return _env_value(url_env, "url_env", env)
    if profile:
        entry = load_profile(profile, credentials_file, environ=env)
        if not entry.get("url"):
            raise ConfigError(f"profile '{profile}' has no 'url' for a redis source", key="profile",
                              hint="write 'url:' (the whole redis:// URL, password in its userinfo) in the profile")
        return str(entry["url"])
    if url:
        return url
    return env.get("REDIS_URL") or DEFAULT_REDIS_URL


def resolve_pg_conninfo(*, dsn_env: str | None = None, profile: str | None = None,
                        credentials_file: str | os.PathLike | None = None,
                        environ: Mapping[str, str] | None = None) -> str:
    """A libpq conninfo string for a source (may be empty: libpq then reads the PG* variables).

    ``dsn_env`` names a variable holding a conninfo or URI; ``profile`` reads libpq keywords
    (host, port, user, password, dbname, sslmode, service ...) or a single ``dsn`` key from the
    credentials file.  The result may contain a password: never log it unscrubbed.
    """
    env = os.environ if environ is None else environ
    if dsn_env:
        return _env_value(dsn_env, "dsn_env", env)
    if profile:
        import psycopg
        from psycopg.conninfo import make_conninfo

        entry = load_profile(profile, credentials_file, environ=env)
        if "dsn" in entry:
            return str(entry["dsn"])
        try:
            return make_conninfo("", **{str(k): str(v) for k, v in entry.items()})
        except psycopg.ProgrammingError:  # an unknown keyword
            raise ConfigError(f"profile '{profile}' has an unusable libpq keyword "
                              f"({type(exc).__name__})", key="profile",
                              hint="use libpq keywords: host, port, user, password, dbname, "
                                   "sslmode, service") from None
    return ""


def pg_password(conninfo: str, *, environ: Mapping[str, str] | None = None) -> str | None:
    """The password a conninfo (or PGPASSWORD) would use, for scrubbing messages only."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    env = os.environ if environ is None else environ
    try:
        pw = conninfo_to_dict(conninfo).get("password") if conninfo else None
    except psycopg.ProgrammingError:  # unparseable conninfo: libpq will say so; fall back to the variable
        pw = None
    return str(pw) if pw else env.get("PGPASSWORD") or None
