"""Sphinx configuration of tidesim's documentation.

Build (from the repository root, with ``pip install ".[docs]"``)::

    sphinx-build -W --keep-going -b html docs docs/_build/html

The API reference (``api/*.rst``) is generated from the docstrings of the installed ``tidesim``; the
tutorials are the notebooks in ``tutorials/``, copied into ``docs/tutorials/`` at every build and
rendered as saved (never executed here: the test suite runs them).
"""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from pathlib import Path

from sphinx.ext import napoleon
from sphinx.pycode import ModuleAnalyzer, PycodeError

import tidesim  # the installed package: no sys.path edits (DESIGN.md: the repo root shadows `datasets`)

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

# -- Project -------------------------------------------------------------------------------------
project = "tidesim"
author = "tidesim developers"
copyright = "tidesim developers"
release = tidesim.__version__
version = ".".join(release.split(".")[:2])

# -- Extensions ----------------------------------------------------------------------------------
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_nb",  # Markdown pages (MyST) and notebooks; brings myst_parser with it
]

exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints", "jupyter_execute"]
templates_path = ["_templates"]
nitpicky = False
# No intersphinx: the build runs without network access (CI), so nothing links out to other projects.

# -- autodoc / autosummary / napoleon -----------------------------------------------------------------
autosummary_generate = True  # stub pages for every name listed in an autosummary table (api/generated/)
autodoc_default_options = {"member-order": "bysource"}
autodoc_typehints = "signature"
autodoc_preserve_defaults = True  # show `dt=1e-4`, `delay=0*ms` as written, not their repr
add_module_names = False
# numpy style is the house style; tidesim/encode.py and tidesim/loss.py use Google-style "Args:" sections.
napoleon_numpy_docstring = True
napoleon_google_docstring = True
napoleon_use_rtype = False
napoleon_use_ivar = True  # "Attributes" as a field list: no second description of a documented property



def _reexported_data_doc(app, what, name, obj, options, lines) -> None:
    """A constant re-exported by another module (``tidesim.sweep.BUILTIN`` is defined in
    ``tidesim.sweep.measures``) gets the ``#:`` comment written where it is defined: autodoc reads
    comments only in the module it documents, and would show the docstring of the value's type."""
    if what != "data" or "." not in name:
        return
    modname, attr = name.rsplit(".", 1)
    for candidate in [modname] + sorted(m for m in sys.modules if m.startswith("tidesim.")):
        module = sys.modules.get(candidate)
        if module is None or vars(module).get(attr, None) is not obj:
            continue
        try:
            analyzer = ModuleAnalyzer.for_module(candidate)
            analyzer.find_attr_docs()
        except PycodeError:
            continue
        comment = analyzer.attr_docs.get(("", attr))
        if comment:
            if candidate != modname:
                lines[:] = list(comment)
            return


def _napoleon_except_attributes(app, what, name, obj, options, lines) -> None:
    """Napoleon for everything but attributes, properties and data: for those it reads a first line
    ``text: more`` as ``type: description``, while tidesim's one-line docstrings are prose with colons
    ("Length of a sweep (s): ``n_steps * dt``.")."""
    if what not in ("attribute", "property", "data"):
        napoleon._process_docstring(app, what, name, obj, options, lines)


def setup(app) -> None:
    app.connect("autodoc-process-docstring", _reexported_data_doc)
    for listener in list(app.events.listeners.get("autodoc-process-docstring", [])):
        if listener.handler is napoleon._process_docstring:
            app.disconnect(listener.id)
    app.connect("autodoc-process-docstring", _napoleon_except_attributes)


# Stub pages are written anew at every build: a name removed from an API page leaves no stale page.
shutil.rmtree(DOCS / "api" / "generated", ignore_errors=True)

# -- Modules still being written: a page only once its module imports --------------------------------
# A module that is absent entirely drops its page; any other import error fails the build loudly.
OPTIONAL_PAGES = {
    "api/sweep": "tidesim.sweep",
    "api/dynamics": "tidesim.dynamics",
    "api/sbi": "tidesim.fitting.sbi",
}
for _page, _module in OPTIONAL_PAGES.items():
    try:
        importlib.import_module(_module)
    except ModuleNotFoundError as exc:
        if exc.name != _module:
            raise
        exclude_patterns.append(f"{_page}.rst")

# -- Tutorials: the notebooks of tutorials/, rendered without running them ---------------------------
nb_execution_mode = "off"
myst_enable_extensions = ["dollarmath"]  # $...$ and $$...$$ math in Markdown cells and pages
nb_merge_streams = True  # one stdout/stderr block per cell, not one per print


def _copy_tutorials() -> None:
    """Copy ``tutorials/*.ipynb`` into ``docs/tutorials/`` (Sphinx reads only below ``docs/``) and write
    the tutorials index listing them; a notebook removed from ``tutorials/`` disappears here too.

    A notebook saved without kernel metadata (jupytext writes none) gets Python's in the copy, so that its
    cells are highlighted as Python: every tidesim tutorial is a Python notebook."""
    src, dst = ROOT / "tutorials", DOCS / "tutorials"
    dst.mkdir(exist_ok=True)
    notebooks = sorted(src.glob("*.ipynb"))
    names = {nb.name for nb in notebooks}
    for old in dst.glob("*.ipynb"):
        if old.name not in names:
            old.unlink()
    for nb in notebooks:
        data = json.loads(nb.read_text(encoding="utf-8"))
        meta = data.setdefault("metadata", {})
        if not meta.get("kernelspec") and not meta.get("language_info"):
            meta["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
            meta["language_info"] = {"name": "python", "pygments_lexer": "ipython3"}
        _write_if_changed(dst / nb.name, json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    entries = "\n".join(nb.stem for nb in notebooks)
    body = (f"```{{toctree}}\n:maxdepth: 1\n\n{entries}\n```\n" if notebooks
            else "No tutorial notebooks yet.\n")
    _write_if_changed(dst / "index.md", (
        "# Tutorials\n\n"
        "Lab tutorials, the notebooks in the repository's `tutorials/` folder, shown here as they were "
        "saved (the documentation build does not run them; the test suite does). To work through one, "
        "open it with Jupyter from a checkout of tidesim: `jupyter lab tutorials/`.\n\n"
        "`python tutorials/digits_snn.py` trains a spiking network on scikit-learn's digits "
        "(surrogate gradients, `ts.nn`).\n\n" + body
    ))


def _write_if_changed(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` unless it is there already (an unchanged file keeps its mtime, so
    Sphinx does not read it again)."""
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")


_copy_tutorials()

# -- HTML --------------------------------------------------------------------------------------------
html_theme = "furo"
html_title = f"tidesim {release}"
