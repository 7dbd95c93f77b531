"""Sphinx configuration of the tomofem documentation (MyST markdown + autodoc).

``make docs`` builds it with warnings as errors (``-W --keep-going -n``).
Pages that must not drift from the code are generated at build time by the
local extension ``_ext/tomofem_docs.py``: the configuration reference (from
the dataclasses of :mod:`tomofem.config`), the command-line help (from
:func:`tomofem.cli.build_parser`) and the demo pages (``demos/*.py``, jupytext
light format, converted without executing).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

#: The repository root (demos/, examples/); the docs test builds a copy of docs/
#: elsewhere and points here with TOMOFEM_ROOT.
ROOT = Path(os.environ.get("TOMOFEM_ROOT", HERE.parent)).resolve()

project = "tomofem"
author = "tomofem developers"
copyright = "tomofem developers, MIT licence"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "tomofem_docs",
]

source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**/*.ipynb"]

# --- MyST ------------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
# Demo notebooks and the theory pages jump heading levels now and then; the
# generated demo pages are not ours to restructure.
suppress_warnings = ["myst.header"]

# --- autodoc / autosummary / napoleon ------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "ignore-module-all": True}
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_description_target = "documented_params"
autodoc_preserve_defaults = True
autodoc_class_signature = "separated"
napoleon_numpy_docstring = True
napoleon_google_docstring = False
napoleon_use_rtype = False
napoleon_use_ivar = True
napoleon_preprocess_types = False
napoleon_attr_annotations = True

# There is no network for intersphinx here, so references to the stack's own
# classes (numpy, DOLFINx, UFL, PETSc, MPI, ...) cannot resolve: nitpicky mode
# still checks every tomofem reference, and ignores these.
nitpick_ignore_regex = [
    (r"py:.*", r"(numpy|scipy|dolfinx|ufl|basix|petsc4py|mpi4py|gmsh|meshio|pyvista)\..*"),
    (r"py:.*", r"(collections\.abc|os|argparse|pathlib|typing)\..*"),
    (r"py:class", r"T"),  # type variables of generic functions (PEP 695)
]

# --- HTML -----------------------------------------------------------------
html_theme = "alabaster"
html_title = "tomofem"
html_theme_options = {
    "description": "From tomograms of porous electrodes to verified answers",
    "fixed_sidebar": True,
    "page_width": "1100px",
    "sidebar_width": "260px",
}
html_sidebars = {"**": ["about.html", "navigation.html", "searchbox.html"]}

# --- generated pages (see _ext/tomofem_docs.py) --------------------------------
tomofem_root = str(ROOT)
# ``python -m tomofem`` runs the CLI on import; autosummary imports every module.
autosummary_mock_imports = ["tomofem.__main__"]
