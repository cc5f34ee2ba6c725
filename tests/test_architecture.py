"""The house rules that keep the package's design readable: sub-packages that import downwards only,
no import cycles, short modules and functions, private names kept inside their package, imports of
tidesim modules at the top of a module, and every documented ``ts.`` path reachable from
``import tidesim as ts``."""

from __future__ import annotations

import ast
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# folder -> import name (models/, fitting/ and datasets/ install as tidesim.models etc.)
FOLDERS = {"tidesim": "tidesim", "models": "tidesim.models", "fitting": "tidesim.fitting",
           "datasets": "tidesim.datasets"}


def _modules() -> dict[str, Path]:
    out = {}
    for folder, name in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            parts = list(path.relative_to(ROOT / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([name, *parts])] = path
    return out


MODULES = _modules()


def _package(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _imports(module: str, path: Path):
    """(target module, imported names, line, inside a function?) for every import of a tidesim module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    functions = [n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))]
    inner = {id(sub) for f in functions for sub in ast.walk(f)}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = _package(module, path).split(".")
                base = base[:len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != "tidesim":
                continue
            names = [a.name for a in node.names]
            # `from tidesim.x import y` where y is a module imports that module
            subs = [f"{target}.{n}" for n in names if f"{target}.{n}" in MODULES]
            yield (subs[0] if len(subs) == len(names) and len(subs) == 1 else target), names, node.lineno, \
                id(node) in inner
            for sub in subs[1:] if len(subs) == len(names) else subs:
                yield sub, [], node.lineno, id(node) in inner
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "tidesim":
                    yield alias.name, [], node.lineno, id(node) in inner


def _graph() -> dict[str, set[str]]:
    graph = {m: set() for m in MODULES}
    for module, path in MODULES.items():
        for target, _, _, _ in _imports(module, path):
            if target in MODULES and target != module:
                graph[module].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
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
            if len(comp) > 1:
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_finds_a_cycle_when_there_is_one():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_import_cycles():
    assert _cycles(_graph()) == []


def test_tidesim_modules_are_imported_at_the_top():
    """An import of a tidesim module inside a function hides a cycle or a layering mistake."""
    inner = [f"{path.relative_to(ROOT)}:{line}: {target}" for module, path in MODULES.items()
             for target, _, line, in_function in _imports(module, path) if in_function]
    assert not inner, "\n".join(inner)


def test_private_names_stay_inside_their_package():
    bad = []
    for module, path in MODULES.items():
        package = _package(module, path)
        for target, names, line, _ in _imports(module, path):
            target_package = target if MODULES.get(target, Path()).name == "__init__.py" else \
                target.rpartition(".")[0]
            for name in names:
                if name.startswith("_") and not name.startswith("__") and target_package != package:
                    bad.append(f"{path.relative_to(ROOT)}:{line}: {name} from {target}")
    assert not bad, "\n".join(bad)


def test_no_module_over_600_lines():
    long = {str(p.relative_to(ROOT)): n for p in MODULES.values()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > 600}
    assert not long, long


def test_no_function_over_80_lines():
    long = []
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body
                first = body[0]
                has_doc = isinstance(first, ast.Expr) and isinstance(getattr(first, "value", None), ast.Constant)
                start = body[1].lineno if has_doc and len(body) > 1 else body[0].lineno
                if node.end_lineno - start + 1 > 80:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name}")
    assert not long, long


def test_layers_import_downwards():
    """The torch printer (``codegen.torch_source``) imports nothing of tidesim, the reader of Brian2's
    statements (``codegen.brian2_code``) only that printer; core imports only itself and these two (a
    model owns its generated torch functions); the C generators import core; engines
    import core and codegen; nothing below the top-level face imports ``tidesim`` itself, but the command
    line, which (like a user's script) sits above it."""
    rules = [("tidesim.codegen.torch_source", set()),
             ("tidesim.codegen.brian2_code", {"tidesim.codegen.torch_source"}),
             ("tidesim.core", {"tidesim.core", "tidesim.codegen.torch_source", "tidesim.codegen.brian2_code"}),
             ("tidesim.codegen", {"tidesim.core", "tidesim.codegen"}),
             ("tidesim.engines", {"tidesim.core", "tidesim.codegen", "tidesim.engines"})]
    bad = []
    for module, path in MODULES.items():
        if module == "tidesim" or module.startswith("tidesim.cli"):
            continue
        layer = next((r for r in rules if module == r[0] or module.startswith(r[0] + ".")), None)
        for target, _, line, _ in _imports(module, path):
            if target == "tidesim" or (layer is not None and target != "tidesim.version"
                                       and not any(target == a or target.startswith(a + ".") for a in layer[1])):
                bad.append(f"{path.relative_to(ROOT)}:{line}: {target}")
    assert not bad, "\n".join(bad)


def test_every_module_imports_on_its_own_in_any_order():
    """All modules imported in a fresh interpreter in a random order: an order-dependent import (a cycle
    that happens to work from the top) fails here."""
    order = list(MODULES)
    seed = random.randrange(10**6)
    random.Random(seed).shuffle(order)
    code = "import importlib\nfor m in %r:\n    importlib.import_module(m)\n" % order
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, f"order seed {seed}:\n{proc.stderr[-3000:]}"


def _documented_paths() -> list[str]:
    """``ts.a.b...`` paths written in the README and the docs' pages."""
    texts = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "docs").glob("*/*.md"))]
    paths = set()
    for text in texts:
        for m in re.finditer(r"(?<![\w.])ts\.([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)", text.read_text(encoding="utf-8")):
            paths.add(m.group(1))
    return sorted(paths)


def test_documented_paths_resolve_after_import_tidesim():
    """Each ``ts.<module>...<name>`` path of the README and docs, resolved in a fresh interpreter after
    only ``import tidesim as ts`` (the tests' own imports cannot make a lazy path look present). A path
    is followed while it names modules; the first name that is not a module (a function, a class)
    ends it, since what follows may be an attribute of a result."""
    paths = _documented_paths()
    assert "models.plasticity.stdp_pair" in paths or "models.plasticity" in paths, paths
    code = f"""
import types
import tidesim as ts
bad = []
for path in {paths!r}:
    obj = ts
    for part in path.split("."):
        if not hasattr(obj, part):
            bad.append(path)
            break
        obj = getattr(obj, part)
        if not isinstance(obj, types.ModuleType):
            break
print("\\n".join(bad))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/")
    assert proc.returncode == 0, proc.stderr[-3000:]
    missing = proc.stdout.split()
    assert not missing, f"documented paths that do not resolve after `import tidesim as ts`: {missing}"


@pytest.mark.parametrize("package", ["core", "codegen", "engines", "network", "validation", "dynamics", "sweep",
                                     "nn", "analysis", "cli", "models", "fitting", "datasets"])
def test_tests_mirror_the_layout(package):
    assert any((ROOT / "tests" / package).glob("test_*.py")), f"tests/{package}/ has no tests"


def test_python_started_in_the_checkout_imports_every_sub_package():
    """Python started in the source tree finds its tidesim/ folder before the installed package; the
    sub-packages kept beside it (models/, fitting/, datasets/) must still import from there."""
    code = ("import tidesim, tidesim.models, tidesim.fitting, tidesim.datasets\n"
            "print(tidesim.__file__); print(tidesim.datasets.__file__)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    package, datasets = proc.stdout.split()
    assert Path(package).parent.parent == ROOT and Path(datasets).parent.parent == ROOT, proc.stdout
