"""Params files: read, check against the notebooks' own ``parameters`` cells, split per notebook.

A params file is YAML whose top-level keys are the parameters the pipeline's notebooks declare
(papermill's ``inspect_notebook`` reads names, types and help from the annotated ``parameters``
cells).  Before any kernel starts :func:`load_params` rejects

* a key no notebook declares (the error names the key, the file, close matches and the allowed
  keys; papermill itself would only warn and run on, REFERENCE gotcha 29);
* a value of the wrong type (from the annotation: ``int``, ``float``, ``str``, ``bool``,
  ``list``, ``dict``);
* anything that looks like a secret: a key named password/secret/token with a value, or a URL or
  DSN with an inline password.  Params carry only the *names* of environment variables
  (``dsn_env: APP_PG_DSN``); the library reads the value at run time, so papermill never copies a
  secret into the executed notebooks (gotcha 27).

The params file's stem is the run's name: ``params/demo.yaml`` runs into ``outputs/demo/``.
"""

from __future__ import annotations

import ast
import difflib
import io
import json
import os
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from capplan.errors import ConfigError

__all__ = [
    "PIPELINE",
    "RUNNER_KEYS",
    "project_root",
    "notebooks_dir",
    "notebook_parameters",
    "Params",
    "load_params",
    "check_no_secrets",
]

#: The notebooks a run executes, in order (file stems under ``notebooks/``).
PIPELINE: tuple[str, ...] = ("01-collect", "02-growth", "03-scaling", "04-report")
#: Parameters the runner injects itself; a params file may not set them.
RUNNER_KEYS: frozenset[str] = frozenset({"run_dir"})

_TYPE_CHECKS: dict[str, tuple[type, ...]] = {
    "int": (int,),
    "float": (int, float),
    "str": (str,),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}
_SECRET_KEY = re.compile(r"(password|passwd|secret|token|api_key|apikey)$", re.I)
_INLINE_PASSWORD = re.compile(r"://[^:/@\s]*:[^@\s]+@")
_DSN_PASSWORD = re.compile(r"(^|\s)password\s*=", re.I)


#: Environment variable naming the project folder; ``capplan run`` sets it for its kernels.
PROJECT_ENV = "CAPPLAN_PROJECT_DIR"


def _is_project(folder: Path) -> bool:
    """A capplan project: a checkout or a ``capplan init`` folder (notebooks/ or params/)."""
    return (folder / "notebooks" / f"{PIPELINE[0]}.ipynb").is_file() or (folder / "params").is_dir()


def project_root(start: str | Path | None = None) -> Path:
    """The project folder that relative paths (store, outputs, load-test files) resolve against.

    With ``start`` (a params file or a folder): the nearest folder at or above it that is a
    project (holds ``notebooks/`` or ``params/``), else the params file's own folder.  Without:
    ``$CAPPLAN_PROJECT_DIR`` (set by ``capplan run`` for its kernels), else the nearest project at
    or above the working directory, else the checkout this package was imported from (an
    editable install), else the working directory.  Never the installed package's folder.
    """
    if start is not None:
        s = Path(start).expanduser().resolve()
        s = s.parent if s.is_file() or s.suffix in (".yaml", ".yml") else s
        for folder in (s, *s.parents):
            if _is_project(folder):
                return folder
        return s
    if os.environ.get(PROJECT_ENV):
        return Path(os.environ[PROJECT_ENV]).expanduser().resolve()
    cwd = Path.cwd().resolve()
    for folder in (cwd, *cwd.parents):
        if _is_project(folder):
            return folder
    checkout = Path(__file__).resolve().parents[3]
    if (checkout / "lib" / "capplan").is_dir() and _is_project(checkout):
        return checkout
    return cwd


def packaged_dir(kind: str) -> Path | None:
    """``capplan/data/<kind>`` of an installed wheel (notebooks, params), or None (checkout)."""
    p = Path(__file__).resolve().parents[1] / "data" / kind
    return p if p.is_dir() else None


def notebooks_dir(project: str | Path | None = None) -> Path:
    """The project's own ``notebooks/`` when it holds the whole pipeline (a checkout, or a
    ``capplan init`` copy the user may have edited), else the templates shipped in the wheel."""
    own = (Path(project) if project is not None else project_root()) / "notebooks"
    if all((own / f"{nb}.ipynb").is_file() for nb in PIPELINE):
        return own
    checkout = Path(__file__).resolve().parents[3] / "notebooks"   # an editable install
    if all((checkout / f"{nb}.ipynb").is_file() for nb in PIPELINE):
        return packaged_dir("notebooks") or checkout
    return packaged_dir("notebooks") or own


def _parameters_cell(path: Path) -> str:
    nb = json.loads(path.read_text(encoding="utf-8"))
    for cell in nb.get("cells", []):
        if cell.get("cell_type") == "code" and "parameters" in cell.get("metadata", {}).get("tags", []):
            src = cell.get("source", "")
            return "".join(src) if isinstance(src, list) else src
    raise ConfigError(f"{path.name} has no cell tagged 'parameters'",
                      hint="tag the cell that holds the defaults (papermill convention)")


def _parse_parameters(source: str) -> dict[str, dict]:
    """Names, annotated types, defaults and ``# help`` comments of a parameters cell.

    The same reading as papermill's ``inspect_notebook`` (a test checks they agree), without
    importing papermill and nbformat, so that bad params fail in well under two seconds.
    """
    tree = ast.parse(source)
    comments: dict[int, str] = {}
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    out: dict[str, dict] = {}
    for node in tree.body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            out[node.target.id] = {"type": ast.unparse(node.annotation),
                                   "default": ast.unparse(node.value) if node.value else None,
                                   "help": comments.get(node.end_lineno, "")}
        elif isinstance(node, ast.Assign):
            for tgt in node.targets:
                if isinstance(tgt, ast.Name):
                    out[tgt.id] = {"type": "None", "default": ast.unparse(node.value),
                                   "help": comments.get(node.end_lineno, "")}
    return out


_CACHE: dict[tuple[str, float], dict] = {}


def notebook_parameters(name: str, nb_dir: Path | None = None) -> dict[str, dict]:
    """``{param: {"type": str, "default": str, "help": str}}`` from a notebook's parameters cell."""
    path = (nb_dir or notebooks_dir()) / f"{name}.ipynb"
    if not path.exists():
        raise ConfigError(f"notebook not found: {path}", hint="run from a capplan checkout")
    key = (str(path), path.stat().st_mtime)
    if key not in _CACHE:
        _CACHE[key] = _parse_parameters(_parameters_cell(path))
    return _CACHE[key]


@dataclass(frozen=True)
class Params:
    """A checked params file: ``values`` as read, ``per_notebook`` the subset each one declares."""

    name: str
    path: str
    values: dict[str, Any]
    per_notebook: dict[str, dict[str, Any]] = field(default_factory=dict)

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)


def _type_ok(value: Any, type_name: str) -> bool:
    base = type_name.replace("typing.", "").split("[")[0].strip()
    if base in ("None", "Unknown type", "Any", ""):
        return True
    if value is None:
        return "Optional" in type_name or "None" in type_name
    if base == "Optional":
        inner = type_name[type_name.index("[") + 1:-1]
        return _type_ok(value, inner)
    checks = _TYPE_CHECKS.get(base)
    if checks is None:
        return True
    if base in ("int", "float") and isinstance(value, bool):
        return False
    return isinstance(value, checks)


def check_no_secrets(obj: Any, *, path: str, where: str = "") -> None:
    """Raise :class:`ConfigError` if a params value looks like a secret (see module doc)."""
    if isinstance(obj, dict):
        for k, v in obj.items():
            here = f"{where}.{k}" if where else str(k)
            if _SECRET_KEY.search(str(k)) and v not in (None, ""):
                raise ConfigError("a secret written in a params file", path=path, key=here,
                                  hint=f"remove it and name the environment variable that holds "
                                       f"it instead, e.g. '{k}_env: MY_{str(k).upper()}' or use "
                                       "PGPASSWORD / REDIS_URL in the environment")
            check_no_secrets(v, path=path, where=here)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            check_no_secrets(v, path=path, where=f"{where}[{i}]")
    elif isinstance(obj, str) and (_INLINE_PASSWORD.search(obj) or _DSN_PASSWORD.search(obj)):
        raise ConfigError("a connection string with an inline password", path=path, key=where,
                          hint="put the URL/DSN in an environment variable and give its name "
                               "(e.g. url_env: REDIS_URL, dsn_env: APP_PG_DSN)")


def _check_sections(raw: dict, *, path: str) -> None:
    """Structured sections get their own checks here too, so that a bad capacity entry or
    target fails before any kernel starts (exit 2), not inside a notebook (exit 1)."""
    if raw.get("capacity"):
        from capplan.analysis.runway import parse_capacity

        parse_capacity(raw["capacity"], path=path)
    if raw.get("targets"):
        from capplan.analysis.targets import parse_targets

        parse_targets(raw["targets"], path=path)


def load_params(path: str | Path, *, pipeline: tuple[str, ...] = PIPELINE,
                nb_dir: Path | None = None) -> Params:
    """Read and check a params file; raises :class:`ConfigError` naming the file and key."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise ConfigError("params file not found", path=str(p),
                          hint="give the path of a YAML file, e.g. params/demo.yaml")
    try:
        raw = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"not valid YAML{line}: {getattr(exc, 'problem', exc)}", path=str(p),
                          hint="check indentation and quoting") from exc
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"must be a mapping of parameter names to values, got "
                          f"{type(raw).__name__}", path=str(p),
                          hint="write one 'name: value' per line, as in params/demo.yaml")
    nb_dir = nb_dir or notebooks_dir(project_root(p))   # the notebooks this run executes
    declared = {nb: notebook_parameters(nb, nb_dir) for nb in pipeline}
    allowed: dict[str, str] = {}
    for nb, decl in declared.items():
        for k, meta in decl.items():
            if k not in RUNNER_KEYS:
                allowed.setdefault(k, meta["type"])
    unknown = [k for k in raw if k not in allowed]
    if unknown:
        k = str(unknown[0])
        close = difflib.get_close_matches(k, list(allowed), n=1)
        hint = (f"did you mean '{close[0]}'? " if close else "") + \
            f"allowed keys: {', '.join(sorted(allowed))}"
        raise ConfigError(f"unknown parameter '{k}'" + (
            f" (and {len(unknown) - 1} more: {', '.join(map(str, unknown[1:]))})"
            if len(unknown) > 1 else ""), path=str(p), key=k, hint=hint)
    for k, v in raw.items():
        if not _type_ok(v, allowed[k]):
            raise ConfigError(f"expected {allowed[k]}, got {type(v).__name__} {v!r}",
                              path=str(p), key=k,
                              hint="quote strings such as versions and durations in YAML")
    check_no_secrets(raw, path=str(p))
    _check_sections(raw, path=str(p))
    per_nb = {nb: {k: v for k, v in raw.items() if k in decl} for nb, decl in declared.items()}
    return Params(name=p.stem, path=str(p), values=dict(raw), per_notebook=per_nb)
