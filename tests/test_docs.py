"""The API reference (docs/api/*.rst): every name it lists exists and has a docstring, and every public
name of a documented module is listed. Fast: reads the pages and imports the modules, runs no Sphinx."""

from __future__ import annotations

import ast
import dataclasses
import importlib
import inspect
import re
import sys
import types
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
API = DOCS / "api"


def _optional_pages() -> dict[str, str]:
    """docs/conf.py's OPTIONAL_PAGES (pages of modules still being written), read without Sphinx."""
    tree = ast.parse((DOCS / "conf.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "OPTIONAL_PAGES" for t in node.targets):
            return ast.literal_eval(node.value)
    return {}


def _importable(module: str) -> bool:
    try:
        importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name != module:
            raise
        return False
    return True


def _pages() -> list[Path]:
    skipped = {f"{page.split('/', 1)[1]}.rst" for page, module in _optional_pages().items()
               if not _importable(module)}
    return [p for p in sorted(API.glob("*.rst")) if p.name not in skipped]


_DIRECTIVE = re.compile(r"^\.\. (currentmodule|automodule|autosummary|auto\w+)::\s*(\S*)")


def _entries(page: Path) -> list[tuple[str, str, str | None]]:
    """``(module, name, members)`` for every object a page documents: autosummary entries and auto*
    directives under the current module; an ``automodule`` with ``:members:`` gives ``name=""`` and
    members ``"*"`` (every name in the module's ``__all__``) or its comma-separated list."""
    out: list[tuple[str, str, str | None]] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    module = None
    i = 0
    while i < len(lines):
        m = _DIRECTIVE.match(lines[i])
        i += 1
        if not m:
            continue
        kind, arg = m.groups()
        body = []
        while i < len(lines) and (not lines[i].strip() or lines[i].startswith(" ")):
            body.append(lines[i].strip())
            i += 1
        options = {b.split(":")[1]: b.split(":", 2)[2].strip() for b in body if b.startswith(":")}
        if kind in ("currentmodule", "automodule"):
            module = arg
            out.append((arg, "", None))
            if kind == "automodule" and "members" in options:
                out.append((arg, "", options["members"] or "*"))
        elif kind == "autosummary":
            out += [(module, b.lstrip("~"), None) for b in body if b and not b.startswith(":")]
        else:
            out.append((module, arg, None))
    return out


def _resolve(module: str, name: str):
    """The object ``module.name`` as autodoc finds it (attributes, or sub-modules not imported yet)."""
    obj = importlib.import_module(module)
    for part in filter(None, name.split(".")):
        if not hasattr(obj, part) and isinstance(obj, types.ModuleType):
            importlib.import_module(f"{obj.__name__}.{part}")
        obj = getattr(obj, part)
    return obj


def _data_documented(module: types.ModuleType, name: str) -> bool:
    """Whether the constant ``name`` has a ``#:`` comment or a docstring where it is defined (the module
    documenting it, or the tidesim module it is re-exported from)."""
    value = getattr(module, name)
    for mod in [module] + [m for k, m in sorted(sys.modules.items()) if k.startswith("tidesim.") and m]:
        if vars(mod).get(name, None) is not value or not getattr(mod, "__file__", None):
            continue
        source = Path(mod.__file__).read_text(encoding="utf-8")
        lines = source.splitlines()
        body = ast.parse(source).body
        for k, node in enumerate(body):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(
                node, ast.AnnAssign) else []
            if any(getattr(t, "id", None) == name for t in targets):
                before = lines[node.lineno - 2].strip() if node.lineno > 1 else ""
                after = body[k + 1] if k + 1 < len(body) else None
                if before.startswith("#:") or (isinstance(after, ast.Expr) and isinstance(
                        getattr(after, "value", None), ast.Constant) and isinstance(after.value.value, str)):
                    return True
    return False


def _has_docstring(module: str, name: str) -> bool:
    obj = _resolve(module, name)
    if isinstance(obj, (types.ModuleType, type)) or callable(obj):
        doc = obj.__doc__ if isinstance(obj, (types.ModuleType, type)) else inspect.getdoc(obj)
        if isinstance(obj, type) and dataclasses.is_dataclass(obj) and doc and doc.startswith(f"{obj.__name__}("):
            return False  # the signature dataclasses write when the class has no docstring
        return bool(doc and doc.strip())
    owner, _, attr = f"{module}.{name}".rpartition(".")
    return _data_documented(_resolve(owner, ""), attr)


def _documented() -> list[tuple[str, str]]:
    names = []
    for page in _pages():
        for module, name, members in _entries(page):
            if members is None:
                names.append((module, name))
            else:
                listed = getattr(importlib.import_module(module), "__all__", []) if members == "*" else [
                    m.strip() for m in members.split(",")]
                names += [(module, m) for m in listed]
    return names


def test_api_pages_list_names():
    names = _documented()
    assert len(names) > 100, names
    for module in ("tidesim", "tidesim.models", "tidesim.models.synapses", "tidesim.models.plasticity",
                   "tidesim.datasets", "tidesim.fitting", "tidesim.analysis", "tidesim.nn", "tidesim.nn.encode",
                   "tidesim.nn.loss", "tidesim.network.plasticity", "tidesim.network.connectivity",
                   "tidesim.nn.nir", "tidesim.core.surrogate"):
        assert (module, "") in names, f"no API page documents {module}"
    for module, name in [("tidesim", "NeuronModel"), ("tidesim", "simulate"), ("tidesim", "fit"),
                         ("tidesim.fitting", "FitResult"), ("tidesim.datasets", "Recording")]:
        assert (module, name) in names, f"{module}.{name} is not in the API reference"


@pytest.mark.parametrize("module, name", _documented(), ids=lambda v: v or "<module>")
def test_documented_name_exists_and_has_docstring(module, name):
    try:
        _resolve(module, name)
    except (ImportError, AttributeError) as exc:
        pytest.fail(f"the API reference lists {module}.{name}, which does not exist: {exc}")
    assert _has_docstring(module, name), f"{module}{'.' + name if name else ''} has no docstring"


def test_zoo_module_functions_have_docstrings():
    import tidesim as ts

    for model in ts.models.available():
        mod = ts.models.module(model)
        for name, obj in vars(mod).items():
            if inspect.isfunction(obj) and obj.__module__ == mod.__name__ and not name.startswith("_"):
                assert inspect.getdoc(obj), f"tidesim.models.{model}.{name} has no docstring"


def test_every_public_name_is_documented():
    """Each name in a documented module's ``__all__`` appears in the API reference (under this or another
    name: ``tidesim.FitResult`` is documented as ``tidesim.fitting.FitResult``). Sub-modules and
    re-exported third-party objects (``ts.nn.Linear`` is torch's) are not tidesim's to document."""
    documented = _documented()
    objects = {id(_resolve(m, n)) for m, n in documented}
    # the modules whose names the pages list (``currentmodule``), not those shown for their docstring only
    modules = {m.group(1) for page in _pages()
               for m in re.finditer(r"^\.\. currentmodule:: (\S+)", page.read_text(encoding="utf-8"), re.M)}
    missing = []
    for module in sorted(modules):
        mod = importlib.import_module(module)
        for name in getattr(mod, "__all__", []):
            obj = getattr(mod, name)
            if isinstance(obj, types.ModuleType):
                continue
            third_party = not getattr(obj, "__module__", "").startswith("tidesim")
            if (inspect.isclass(obj) or callable(obj)) and third_party:
                continue
            if id(obj) not in objects:
                missing.append(f"{module}.{name}")
    assert not missing, f"public names missing from docs/api/*.rst: {', '.join(missing)}"


def _member_doc(cls: type, name: str) -> str | None:
    """The docstring autodoc shows for ``cls.name``: its own, else that of the same member of a base class."""
    for base in cls.__mro__:
        member = vars(base).get(name)
        if member is None:
            continue
        func = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
        if getattr(func, "__doc__", None):
            return func.__doc__
    return None


def test_public_methods_of_documented_classes_have_docstrings():
    """The class pages list members that have docstrings: a public method or property without one would
    be missing from the reference."""
    missing = []
    for module, name in _documented():
        obj = _resolve(module, name)
        if not inspect.isclass(obj) or not obj.__module__.startswith("tidesim"):
            continue
        for attr, member in vars(obj).items():
            if attr.startswith("_") or attr == "extra_repr":  # extra_repr: torch's repr hook
                continue
            func = member.fget if isinstance(member, property) else getattr(member, "__func__", member)
            if inspect.isfunction(func) and not _member_doc(obj, attr):
                missing.append(f"{module}.{name}.{attr}")
    assert not missing, f"public methods without a docstring: {', '.join(missing)}"
