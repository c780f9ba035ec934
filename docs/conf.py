"""Sphinx configuration of the attention-flows documentation.

Build (warnings are errors, as in CI)::

    .venv/bin/python -m sphinx -W --keep-going -b html docs docs/_build/html

Every package is imported for real (only Triton and transformers are mocked, and only
where they are not installed); the build needs no network and executes no figure script.
"""

from __future__ import annotations

import io
import re
import sys
from importlib.metadata import PackageNotFoundError, metadata
from importlib.util import find_spec
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the packages of this checkout, installed or not

# -- project metadata, read from the installed package (else from pyproject.toml) -------------

try:
    _meta = dict(metadata("attention-flows").items())
except PackageNotFoundError:
    import tomllib

    _project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    _meta = {"Name": _project["name"], "Version": _project["version"],
             "License": _project.get("license", {}).get("text")}
project = _meta["Name"]
release = _meta["Version"]
version = ".".join(release.split(".")[:2])
author = "The attention-flows developers"  # CITATION.cff
copyright = f"{author} ({_meta.get('License') or 'MIT'} licence)"

# -- extensions ------------------------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
]

autodoc_default_options = {
    "members": True,
    "undoc-members": False,
    "show-inheritance": True,
    # each object once, in the module that defines it (packages re-export through __all__)
    "ignore-module-all": True,
}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "all"
autodoc_preserve_defaults = True
# optional extras, mocked only where they are not installed (CI installs both)
autodoc_mock_imports = [m for m in ("triton", "transformers") if find_spec(m) is None]
autosummary_generate = False  # the API pages list their modules by hand
nitpicky = False

templates_path: list[str] = []
exclude_patterns = ["_build"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
default_role = "literal"  # `x` in a docstring is code, as ``x``

# -- HTML --------------------------------------------------------------------------------------

html_theme = "furo"
html_title = f"{project} {release}"
html_static_path: list[str] = []


# -- the docstrings: plain prose with reST literals --------------------------------------------
#
# The docstrings write norms and absolute values as |x|, which reST reads as substitution
# references: those bars are escaped (outside ``literals``, roles and literal blocks). A
# docstring that still is not clean reST (an indented formula right after a line, a bare
# ``*``) is shown as it is written, preformatted, instead of being reflowed: the build stays
# free of warnings without rewriting the sources.

PACKAGES = ("attention", "dynamics", "experiments", "paper_repro")
_CODE = re.compile(r"(``.+?``|(?::[\w.-]+)+:`[^`]*`|`[^`]*`_{0,2})")
_ROLE = re.compile(r"(?::[\w.-]+)+:`([^`]*)`")


def _escape_bars(lines: list[str]) -> list[str]:
    out, literal_indent = [], None
    for line in lines:
        indent = len(line) - len(line.lstrip())
        if literal_indent is not None and line.strip() and indent <= literal_indent:
            literal_indent = None
        if literal_indent is not None:
            out.append(line)
            continue
        parts = _CODE.split(line)
        out.append("".join(p if i % 2 else p.replace("|", "\\|") for i, p in enumerate(parts)))
        if line.rstrip().endswith("::"):
            literal_indent = indent
    return out


def _rest_problems(text: str) -> str:
    """docutils' warnings and errors for ``text`` (Sphinx roles read as literals)."""
    from docutils.core import publish_doctree

    stream = io.StringIO()
    publish_doctree(_ROLE.sub(r"``\1``", text), settings_overrides={
        "report_level": 2, "halt_level": 5, "warning_stream": stream,
        "file_insertion_enabled": False, "raw_enabled": False})
    return stream.getvalue()


def process_docstring(app, what, name, obj, options, lines: list[str]) -> None:
    if not lines:
        return
    escaped = _escape_bars(lines)
    if _rest_problems("\n".join(escaped)):
        escaped = ["::", ""] + ["    " + line if line.strip() else "" for line in lines] + [""]
    lines[:] = escaped


def skip_member(app, what, name, obj, skip, options):
    """Skip callables that come from another library (imported into a module's namespace)."""
    module = getattr(obj, "__module__", None)
    if callable(obj) and isinstance(module, str) and module.split(".")[0] not in PACKAGES:
        return True
    return None


def setup(app) -> None:
    app.connect("autodoc-process-docstring", process_docstring)
    app.connect("autodoc-skip-member", skip_member)
