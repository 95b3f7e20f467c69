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
of ``scheme://user:pass@`` URLs, ``password=...`` conninfo pairs, ``?password=`` queries, bearer
tokens, the token libpq quotes in ``invalid percent-encoded token: "..."`` and any literal secret
given.  Shapes are not enough (libpq quotes a bad password without saying it is one), so
:func:`known_secrets` gathers the actual secret values in play -- password-named environment
variables (``PGPASSWORD``, ``*_TOKEN`` ...), the passwords inside every URL or DSN held by an
environment variable (``REDIS_URL``, the variables params name with ``url_env``/``dsn_env``),
``~/.pgpass`` (``PGPASSFILE``), ``pg_service.conf`` and the capplan credentials file -- each in
its raw, percent-decoded, percent-encoded, JSON-escaped and HTML-escaped form, and
:func:`scrub_all` masks them all.  Everything capplan writes goes through :func:`scrub_all`.

:func:`check_no_secrets` refuses params that hold a secret (a password-like key with a value, a URL
or DSN with an inline password, a ``?password=`` query, an ``Authorization``/bearer value).

Environment and file reads happen when a function is called, never at import.
"""

from __future__ import annotations

import html
import json
import logging
import os
import re
import stat
import urllib.parse
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from capplan.errors import ConfigError

__all__ = [
    "MASK",
    "MIN_SECRET_LEN",
    "scrub",
    "scrub_all",
    "known_secrets",
    "dsn_passwords",
    "secret_variants",
    "check_no_secrets",
    "credentials_path",
    "load_profile",
    "resolve_redis_url",
    "resolve_pg_conninfo",
    "pg_password",
]

log = logging.getLogger(__name__)

MASK = "***"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"

#: Literal secrets shorter than this are not masked by value (masking "pw" everywhere would
#: mangle every output); their URL/conninfo shapes are still masked.
MIN_SECRET_LEN = 4

_URL_PASS = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^:@/\s]*):(?P<pw>[^@\s]*)@")
_KV_PASS = re.compile(r"(?P<key>\b(?:password|passwd|pwd)\s*=\s*)(?P<pw>'(?:[^'\\]|\\.)*'|[^\s]+)",
                      re.IGNORECASE)
_QUERY_PASS = re.compile(r"(?P<key>[?&;](?:password|passwd|pwd|pass)=)(?P<pw>[^&\s]+)", re.IGNORECASE)
# libpq quotes a URI component it cannot percent-decode -- often the password itself
_PCT_TOKEN = re.compile(r'(?P<key>invalid percent-encoded token:\s*")(?P<pw>[^"]*)"', re.IGNORECASE)
_BEARER = re.compile(r"(?P<key>\bbearer\s+)(?P<pw>[A-Za-z0-9._~+/=-]{8,})", re.IGNORECASE)
_AUTH_HEADER = re.compile(r"(?P<key>\b(?:authorization|x-api-key|api[_-]?key)[\"']?\s*[:=]\s*[\"']?"
                          r"(?:(?:bearer|basic|token)\s+)?)(?P<pw>[^\s\"',;}]+)", re.IGNORECASE)


def scrub(text: object, secrets: Iterable[str | None] = ()) -> str:
    """``text`` with every password masked as ``***``.

    Masks ``scheme://user:PASS@`` in URLs, ``password=PASS`` in conninfo strings and
    ``?password=PASS`` in URI queries, and every literal in ``secrets`` (empty ones ignored);
    e.g. a conninfo ``host=h password='a b'`` becomes ``host=h password=***`` (tests show the
    URL form).
    """
    out = str(text)
    for s in sorted({s for s in secrets if s and len(s) >= MIN_SECRET_LEN}, key=len, reverse=True):
        out = out.replace(s, MASK)
    out = _URL_PASS.sub(lambda m: f"{m['scheme']}{m['user']}:{MASK}@", out)
    out = _KV_PASS.sub(lambda m: f"{m['key']}{MASK}", out)
    out = _QUERY_PASS.sub(lambda m: f"{m['key']}{MASK}", out)
    out = _PCT_TOKEN.sub(lambda m: f'{m["key"]}{MASK}"', out)
    out = _AUTH_HEADER.sub(lambda m: m["key"] + (m["pw"] if m["pw"] == MASK else MASK), out)
    out = _BEARER.sub(lambda m: f"{m['key']}{MASK}", out)
    return out


def scrub_all(text: object, secrets: Iterable[str] | None = None, *,
              environ: Mapping[str, str] | None = None, params: Any = None) -> str:
    """``text`` with every secret in play masked: :func:`scrub` fed with :func:`known_secrets`.

    This is the call for everything capplan writes (manifest, logs, summary, findings,
    notebooks).  Pass ``secrets`` (a :func:`known_secrets` result) when scrubbing many strings,
    so the environment and credential files are read once.
    """
    if secrets is None:
        secrets = known_secrets(environ=environ, params=params)
    return scrub(text, secrets)


# -- the secret values in play -------------------------------------------------------------------
_SECRET_ENV_NAME = re.compile(r"(PASSWORD|PASSWD|PWD|SECRET|TOKEN|API_?KEY|APIKEY|PRIVATE_?KEY|"
                              r"AUTH_?KEY)", re.IGNORECASE)
_NOT_A_SECRET_ENV = re.compile(r"(FILE|PATH|DIR|_ENV|_NAME|_USER)$|^(OLDPWD|PWD)$", re.IGNORECASE)
_URLISH = re.compile(r"://|(^|\s)[a-z_]+\s*=", re.IGNORECASE)


def secret_variants(secret: str) -> set[str]:
    """``secret`` as it may appear in an output: raw, percent-decoded, percent-encoded (as in a
    URL or form), JSON-escaped and HTML-escaped; forms shorter than :data:`MIN_SECRET_LEN` dropped."""
    if not secret:
        return set()
    out = {secret, secret.strip()}
    try:
        out.add(urllib.parse.unquote(secret, errors="strict"))
    except UnicodeDecodeError:
        pass
    out |= {urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret, safe="")}
    for v in list(out):
        out.add(json.dumps(v, ensure_ascii=False)[1:-1])
        out.add(json.dumps(v)[1:-1])
        out.add(html.escape(v, quote=True))
        out.add(html.escape(v, quote=False))
    return {v for v in out if len(v) >= MIN_SECRET_LEN}


def _conninfo_unquote(value: str) -> str:
    if len(value) >= 2 and value[0] == "'" and value[-1] == "'":
        return re.sub(r"\\(.)", r"\1", value[1:-1])
    return value


def dsn_passwords(text: str | None) -> list[str]:
    """Every password written in a URL/URI or libpq conninfo string, raw as written.

    Works on strings libpq itself refuses (an invalid percent escape, an unknown keyword), so
    the password a refused DSN carries can still be masked in the error libpq prints.
    """
    if not text:
        return []
    out: list[str] = []
    for m in _URL_PASS.finditer(text):
        out.append(m["pw"])
    for m in _QUERY_PASS.finditer(text):
        out.append(m["pw"])
    for m in _KV_PASS.finditer(text):
        out.append(_conninfo_unquote(m["pw"]))
        out.append(m["pw"])
    try:   # a well-formed conninfo: libpq's own reading (quoting and escapes done right)
        from psycopg.conninfo import conninfo_to_dict
        import psycopg

        try:
            pw = conninfo_to_dict(text).get("password")
        except psycopg.ProgrammingError:
            pw = None
        if pw:
            out.append(str(pw))
    except ImportError:   # pragma: no cover - psycopg is a dependency
        pass
    return [p for p in dict.fromkeys(out) if p]


def _split_pgpass(line: str) -> list[str]:
    fields, cur, esc = [], [], False
    for ch in line:
        if esc:
            cur.append(ch)
            esc = False
        elif ch == "\\":
            esc = True
        elif ch == ":":
            fields.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    fields.append("".join(cur))
    return fields


def _read_text(path: Path) -> str:
    try:
        if path.is_file():
            return path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        pass
    return ""


def _pgpass_passwords(path: Path) -> list[str]:
    out = []
    for line in _read_text(path).splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            fields = _split_pgpass(line)
            if len(fields) >= 5:
                out.append(":".join(fields[4:]))
    return out


def _service_file_passwords(path: Path) -> list[str]:
    out = []
    for line in _read_text(path).splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip().lower() in ("password", "passwd", "pwd"):
            out.append(value.strip())
        elif sep:
            out += dsn_passwords(value.strip())
    return out


def _mapping_secrets(obj: Any, out: list[str], key: str = "") -> None:
    """Secrets in a credentials-file mapping: values under password-like keys, URL/DSN passwords."""
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            _mapping_secrets(v, out, str(k))
    elif isinstance(obj, list):
        for v in obj:
            _mapping_secrets(v, out, key)
    elif obj is not None and not isinstance(obj, bool):
        text = str(obj)
        if _SECRET_KEY.search(key) or key.lower() in ("pass", "pwd"):
            out.append(text)
        out += dsn_passwords(text)


def _credential_files(env: Mapping[str, str]) -> list[tuple[str, Path]]:
    home = Path(env.get("HOME") or Path.home())
    files = [("pgpass", Path(env.get("PGPASSFILE") or home / ".pgpass")),
             ("service", Path(env.get("PGSERVICEFILE") or home / ".pg_service.conf"))]
    if env.get("PGSYSCONFDIR"):
        files.append(("service", Path(env["PGSYSCONFDIR"]) / "pg_service.conf"))
    cred = env.get("CAPPLAN_CREDENTIALS")
    for cand in ([Path(cred)] if cred else []) + [Path("credentials.yaml"),
                                                    home / ".config" / "capplan" / "credentials.yaml"]:
        files.append(("capplan", cand))
    return files


def _params_pointers(obj: Any, env_names: list[str], files: list[str]) -> None:
    """Collect the ``*_env`` variable names and ``credentials_file`` paths a params tree names."""
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            key = str(k)
            if key.endswith("_env") and isinstance(v, str) and v:
                env_names.append(v)
            elif key == "credentials_file" and isinstance(v, (str, os.PathLike)) and v:
                files.append(str(v))
            else:
                _params_pointers(v, env_names, files)
    elif isinstance(obj, (list, tuple)):
        for v in obj:
            _params_pointers(v, env_names, files)


def known_secrets(*, environ: Mapping[str, str] | None = None,
                  extra: Iterable[str | None] = (), params: Any = None) -> frozenset[str]:
    """The secret values in play now, in every form they may take in an output.

    Gathered from: environment variables named like a secret (``PGPASSWORD``, ``*_TOKEN``,
    ``*_SECRET``, ``*_API_KEY`` ...; not ``*_FILE``/``*_PATH``/``*_ENV``), the passwords inside
    every URL or conninfo held by any environment variable (``REDIS_URL``, ``APP_PG_DSN``, whatever
    ``url_env``/``dsn_env`` name), ``~/.pgpass`` (or ``PGPASSFILE``), ``~/.pg_service.conf`` (or
    ``PGSERVICEFILE``), ``$PGSYSCONFDIR/pg_service.conf``, the capplan credentials file
    (``CAPPLAN_CREDENTIALS``, ``./credentials.yaml``, ``~/.config/capplan/credentials.yaml``) and
    ``extra``.  With ``params`` (a params mapping), also the whole value of every variable a
    ``*_env`` key names when it is a bare token (``bearer_token_env: PROM_TOKEN``), and every
    ``credentials_file`` it names.  Each value comes with its :func:`secret_variants`.
    Unreadable files are skipped.
    """
    env = os.environ if environ is None else environ
    raw: list[str] = [s for s in extra if s]
    env_names: list[str] = []
    extra_files: list[str] = []
    if params is not None:
        _params_pointers(params, env_names, extra_files)
    for name in env_names:
        value = env.get(name)
        if value and not _URLISH.search(value) and not re.search(r"\s", value.strip()):
            raw.append(value)   # a bare token; URL/DSN values give their passwords below
    for name, value in env.items():
        if not value:
            continue
        if _SECRET_ENV_NAME.search(name) and not _NOT_A_SECRET_ENV.search(name):
            raw.append(value)
        if _URLISH.search(value):
            raw += dsn_passwords(value)
    for kind, path in _credential_files(env) + [("capplan", Path(f)) for f in extra_files]:
        if kind == "pgpass":
            raw += _pgpass_passwords(path)
        elif kind == "service":
            raw += _service_file_passwords(path)
        else:
            text = _read_text(path)
            if text:
                try:
                    import yaml

                    _mapping_secrets(yaml.safe_load(text), raw)
                except Exception:   # noqa: BLE001 - a broken file holds no secret we can name;
                    # its password-looking lines still count (a YAML error must not unmask them)
                    for line in text.splitlines():
                        k, sep, v = line.partition(":")
                        if sep and _SECRET_KEY.search(k.strip().strip("{ ")):
                            raw.append(v.strip().strip("'\"{} "))
                        raw += dsn_passwords(line)
    out: set[str] = set()
    for s in raw:
        out |= secret_variants(str(s))
    return frozenset(out)


# -- params must not hold secrets ----------------------------------------------------------------
_SECRET_KEY = re.compile(r"(password|passwd|pwd|secret|token|api[_-]?key|apikey|authorization|"
                         r"private[_-]?key|cookie)$|(^|[_.-])pass$", re.IGNORECASE)
_INLINE_PASSWORD = re.compile(r"://[^:/@\s]*:[^@\s]+@")
_DSN_PASSWORD = re.compile(r"(^|\s)(password|passwd|pwd)\s*=", re.IGNORECASE)
_QUERY_SECRET = re.compile(r"[?&;](password|passwd|pwd|pass|token|access_token|api[_-]?key|apikey|"
                           r"secret|sig|signature)=[^&\s]", re.IGNORECASE)
_AUTH_VALUE = re.compile(r"^\s*(bearer|basic|token)\s+\S{6,}\s*$", re.IGNORECASE)


def check_no_secrets(obj: Any, *, path: str, where: str = "") -> None:
    """Raise :class:`ConfigError` if a params value looks like a secret.

    Refused: a key named like a secret (``password``, ``pwd``, ``token``, ``api_key``,
    ``X-Api-Key``, ``authorization`` ...) with a value; a string holding a URL with
    ``user:password@``, a conninfo ``password=``, a query ``?password=``/``?token=``/``?api_key=``,
    or an ``Authorization`` value (``Bearer ...``).  Keys naming where a secret lives
    (``url_env``, ``dsn_env``, ``bearer_token_env``, ``credentials_file``) are fine.  The message
    names the file and key, never the value.
    """
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            here = f"{where}.{k}" if where else str(k)
            if _SECRET_KEY.search(str(k)) and v not in (None, "", False):
                raise ConfigError("a secret written in a params file", path=path, key=here,
                                  hint=f"remove it and name the environment variable that holds "
                                       f"it instead, e.g. '{k}_env: MY_{str(k).upper()}' or use "
                                       "PGPASSWORD / REDIS_URL in the environment")
            check_no_secrets(v, path=path, where=here)
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            check_no_secrets(v, path=path, where=f"{where}[{i}]")
    elif isinstance(obj, str) and (_INLINE_PASSWORD.search(obj) or _DSN_PASSWORD.search(obj)
                                   or _QUERY_SECRET.search(obj) or _AUTH_VALUE.search(obj)):
        raise ConfigError("a connection string or header value with an inline password or token", path=path,
                          key=where or None,
                          hint="put the URL/DSN/token in an environment variable and give its "
                               "name (e.g. url_env: REDIS_URL, dsn_env: APP_PG_DSN)")


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
        except psycopg.ProgrammingError as exc:  # an unknown keyword
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
