"""Issue 11: the package tree is the architecture, and CI keeps it so.

* ``lint-imports`` (contracts in pyproject.toml: layers, models pure, nothing -> cli, ...) passes;
* at most six modules sit directly in ``lib/capplan/``;
* no import cycle between modules (Tarjan over every ``import``, including function-level ones);
* no module imports another module's ``_private`` name (a package's own private submodules are
  its internals and may be imported inside that package).
"""
import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LIB = ROOT / "lib"
PKG = LIB / "capplan"


def _modules() -> dict[str, Path]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = p.relative_to(LIB).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def _imports(mods):
    edges, private = defaultdict(set), []
    for name, p in mods.items():
        pkg = name if p.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(ast.parse(p.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("capplan"):
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    edges[name].add(full if full in mods else node.module)
                    is_sub = full in mods
                    if a.name.startswith("_") and not a.name.startswith("__") and \
                            node.module != name and not (is_sub and node.module == pkg):
                        private.append(f"{name} imports {node.module}.{a.name}")
            elif isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.startswith("capplan"):
                        edges[name].add(a.name)
    return edges, private


def test_lint_imports_contracts_pass():
    exe = Path(sys.executable).with_name("lint-imports")
    out = subprocess.run([str(exe), "--config", str(ROOT / "pyproject.toml")], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
    assert "broken" in out.stdout and " 0 broken" in out.stdout


def test_at_most_six_modules_at_the_package_root():
    root = sorted(p.name for p in PKG.glob("*.py"))
    assert len(root) <= 6, root


def test_no_import_cycles_between_modules():
    mods = _modules()
    edges, _ = _imports(mods)
    index, low, stack, on, cycles = {}, {}, [], set(), []
    counter = [0]

    def strong(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in mods or w == v:
                continue
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            # a package's __init__ importing its own submodules (a registry) is not a cycle
            # of the architecture; anything else is
            real = [m for m in comp if not any(o != m and o.startswith(m + ".") for o in comp)]
            if len(real) > 1:
                cycles.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in mods:
        if v not in index:
            strong(v)
    assert not cycles, cycles


def test_no_module_imports_another_modules_private_names():
    _, private = _imports(_modules())
    assert not private, private
