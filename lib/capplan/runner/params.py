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
import io
import json
import os
import re
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from capplan.core.credentials import check_no_secrets
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
    "read_yaml",
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


def type_ok(value: Any, type_name: str) -> bool:
    base = type_name.replace("typing.", "").split("[")[0].strip()
    if base in ("None", "Unknown type", "Any", ""):
        return True
    if value is None:
        return "Optional" in type_name or "None" in type_name
    if base == "Optional":
        inner = type_name[type_name.index("[") + 1:-1]
        return type_ok(value, inner)
    checks = _TYPE_CHECKS.get(base)
    if checks is None:
        return True
    if base in ("int", "float") and isinstance(value, bool):
        return False
    return isinstance(value, checks)


def _check_sections(raw: dict, *, path: str) -> None:
    """Structured sections get their own checks here too, so that a bad capacity entry or
    target fails before any kernel starts (exit 2), not inside a notebook (exit 1)."""
    if raw.get("capacity"):
        from capplan.analysis.runway import parse_capacity

        parse_capacity(raw["capacity"], path=path)
    if raw.get("targets"):
        from capplan.analysis.targets import parse_targets

        parse_targets(raw["targets"], path=path)


#: Limits of a params file: a params file is a page of settings, never a data dump.
MAX_PARAMS_BYTES = 1_000_000
MAX_ALIASES = 50
MAX_DEPTH = 32
MAX_NODES = 100_000
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def _bounded_loader():
    """A ``yaml.SafeLoader`` that refuses alias bombs, deep nesting and huge documents while it
    composes (before anything is expanded), so a hostile file is refused in milliseconds."""
    import yaml
    from yaml.composer import Composer
    from yaml.events import AliasEvent

    class Loader(yaml.SafeLoader):
        def __init__(self, stream):
            super().__init__(stream)
            self._aliases = 0
            self._depth = 0
            self._nodes = 0

        def compose_node(self, parent, index):
            if self.check_event(AliasEvent):
                self._aliases += 1
                if self._aliases > MAX_ALIASES:
                    raise ConfigError(f"more than {MAX_ALIASES} YAML aliases (*name)",
                                      hint="write the values out; params files need no anchors")
            self._nodes += 1
            if self._nodes > MAX_NODES:
                raise ConfigError(f"more than {MAX_NODES:,} YAML nodes",
                                  hint="a params file holds settings, not data")
            self._depth += 1
            try:
                if self._depth > MAX_DEPTH:
                    raise ConfigError(f"nested deeper than {MAX_DEPTH} levels",
                                      hint="flatten the structure; see params/demo.yaml")
                return Composer.compose_node(self, parent, index)
            finally:
                self._depth -= 1

    return Loader


def read_yaml(p: Path, *, what: str = "params file") -> Any:
    """Read a YAML file within the limits above; :class:`ConfigError` for anything unreadable."""
    import yaml

    try:
        data = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the {what}: {exc.strerror or exc}", path=str(p),
                          hint="check the path and its permissions") from exc
    if len(data) > MAX_PARAMS_BYTES:
        raise ConfigError(f"the {what} is {len(data):,} bytes; the limit is {MAX_PARAMS_BYTES:,}",
                          path=str(p), hint="a params file holds settings, not data")
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data:
        raise ConfigError(f"the {what} is not UTF-8 (UTF-16 or binary)", path=str(p),
                          hint="save it as UTF-8")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"the {what} is not UTF-8 (byte {exc.start + 1} cannot be decoded)",
                          path=str(p), hint="save it as UTF-8") from None
    try:
        return yaml.load(text, Loader=_bounded_loader())  # noqa: S506 - a SafeLoader subclass
    except ConfigError as exc:
        raise ConfigError(exc.message, path=str(p), hint=exc.hint) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f" at line {mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or type(exc).__name__
        raise ConfigError(f"not valid YAML{line}: {problem}", path=str(p),
                          hint="check indentation and quoting") from None
    except (ValueError, RecursionError, OverflowError) as exc:  # e.g. a 5000-digit integer
        raise ConfigError(f"a value cannot be read: {str(exc)[:200]}", path=str(p),
                          hint="write numbers with at most a few dozen digits") from None


def load_params(path: str | Path, *, pipeline: tuple[str, ...] = PIPELINE,
                nb_dir: Path | None = None, name: str | None = None) -> Params:
    """Read and check a params file before any kernel starts.

    Raises :class:`ConfigError` naming the file and every bad key at once (the typed model in
    :mod:`capplan.runner.schema` is the one validation), for secret-looking values, and for a
    run name (``name`` or the file's stem) that is not a plain folder name.
    """
    from capplan.runner.schema import validate_params

    p = Path(path)
    if not p.is_file():
        raise ConfigError("params file not found", path=str(p),
                          hint="give the path of a YAML file, e.g. params/demo.yaml")
    raw = read_yaml(p)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"must be a mapping of parameter names to values, got "
                          f"{type(raw).__name__}", path=str(p),
                          hint="write one 'name: value' per line, as in params/demo.yaml")
    bad_keys = [k for k in raw if not isinstance(k, str)]
    if bad_keys:
        raise ConfigError(f"keys must be names, got {bad_keys[0]!r}", path=str(p),
                          hint="write one 'name: value' per line, as in params/demo.yaml")
    check_no_secrets(raw, path=str(p))
    run_name = name or raw.get("name") or p.stem
    if not isinstance(run_name, str) or not NAME_RE.match(run_name) or run_name == "latest":
        raise ConfigError(f"the run name {run_name!r} is not a plain folder name", path=str(p),
                          key="name",
                          hint="use letters, digits, '-', '_' and '.', not starting with a dot: "
                               "rename the params file or pass --name NAME")
    model = validate_params(raw, path=str(p))
    nb_dir = nb_dir or notebooks_dir(project_root(p))   # the notebooks this run executes
    declared = {nb: notebook_parameters(nb, nb_dir) for nb in pipeline}
    allowed = {k for decl in declared.values() for k in decl} - RUNNER_KEYS
    unknown = sorted(set(raw) - allowed - {"name"})
    if unknown:  # the model knows a key that no notebook of this pipeline declares
        raise ConfigError(f"unknown parameter '{unknown[0]}' for notebooks {', '.join(pipeline)}",
                          path=str(p), key=unknown[0],
                          hint=f"allowed keys: {', '.join(sorted(allowed))}")
    _check_sections(raw, path=str(p))
    _check_files(model, p)
    values = {k: v for k, v in raw.items() if k != "name"}
    per_nb = {nb: {k: v for k, v in values.items() if k in decl} for nb, decl in declared.items()}
    return Params(name=run_name, path=str(p), values=values, per_notebook=per_nb)


def _check_files(model, p: Path) -> None:
    """Input files the params name must exist before any kernel starts."""
    base = project_root(p)
    for key in ("loadtest_file", "previous_summary", "baseline_loadtest", "candidate_loadtest"):
        v = getattr(model, key, "")
        if not v or (key != "previous_summary" and v == "demo") or any(c in v for c in "*?["):
            continue
        f = Path(v).expanduser()
        f = f if f.is_absolute() else base / f
        if not (f.is_file() or (key.endswith("_loadtest") and f.is_dir())):
            raise ConfigError(f"{key}: file not found: {v}", path=str(p), key=key,
                              hint=f"give a path relative to {base} or an absolute path"
                                   + (", or 'demo', or '' to skip" if key == "loadtest_file" else ""))
