"""The documentation builds with warnings as errors, and its generated pages follow the code.

One full Sphinx build (autodoc over the whole package, ~15 s) of a copy of
``docs/`` whose demo folder holds the repository's demos plus a sample
jupytext-light demo, so demo rendering is checked even before the real demos
exist. Skipped when the ``docs`` extra (sphinx, myst-parser, jupytext) is not
installed.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx")
pytest.importorskip("myst_parser")
pytest.importorskip("jupytext")

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"

SAMPLE_DEMO = """\
# # Sample demo
#
# Light format: Markdown in comments, maths in MyST,
#
# $$
# \\tau = \\frac{\\varepsilon k}{k_\\mathrm{eff}} .
# $$

import numpy as np

x = np.linspace(0.0, 1.0, 5)

# ## A second section
#
# With a table:
#
# | a | b |
# |---|---|
# | 1 | 2 |

print(x.sum())
"""


def _ext():
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        import tomofem_docs
    finally:
        sys.path.pop(0)
    return tomofem_docs


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Build the docs once (``-W --keep-going -n``) into a temporary folder."""
    tmp = tmp_path_factory.mktemp("docs")
    src = tmp / "docs"
    shutil.copytree(DOCS, src, ignore=shutil.ignore_patterns("_generated", "_build"))
    root = tmp / "repo"
    (root / "demos").mkdir(parents=True)
    for demo in (REPO / "demos").glob("*.py"):
        shutil.copy(demo, root / "demos" / demo.name)
    (root / "demos" / "zz_sample_demo.py").write_text(SAMPLE_DEMO)
    out = tmp / "html"
    env = {**os.environ, "TOMOFEM_ROOT": str(root), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [sys.executable, "-m", "sphinx", "-b", "html", "-W", "--keep-going", "-n", "-q", src, out],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return src, out


def test_build_has_every_part(built):
    _, out = built
    for page in (
        "index.html",
        "theory/homogenization.html",
        "theory/electrochemistry.html",
        "howto/mpi.html",
        "_generated/config.html",
        "_generated/cli.html",
        "_generated/api/tomofem.homogenization.results.html",
        "_generated/demos/zz_sample_demo.html",
    ):
        assert (out / page).is_file(), page
    html = (out / "_generated/api/tomofem.homogenization.results.html").read_text()
    assert "tortuosity_factor" in html  # autodoc really documented the members


def test_config_reference_lists_every_key(built):
    from tomofem.config import RunConfig, describe

    src, _ = built
    page = (src / "_generated" / "config.md").read_text()
    missing = [key for key, _, _ in describe(RunConfig) if f"| `{key}` |" not in page]
    assert not missing


def test_cli_reference_has_every_subcommand(built):
    from tomofem.cli import build_parser

    src, _ = built
    page = (src / "_generated" / "cli.md").read_text()
    names = _ext()._subparsers(build_parser())
    assert names and all(f"## `tomofem {n}`" in page for n in names)
    assert "### `tomofem export pybamm`" in page


def test_sample_demo_rendered_without_executing(built):
    src, out = built
    md = (src / "_generated" / "demos" / "zz_sample_demo.md").read_text()
    assert md.startswith("# Sample demo")
    assert "```python\nimport numpy as np\n\nx = np.linspace" in md
    nb = json.loads((src / "_generated" / "demos" / "zz_sample_demo.ipynb").read_text())
    assert [c["cell_type"] for c in nb["cells"]].count("code") >= 2
    assert all(not c.get("outputs") for c in nb["cells"] if c["cell_type"] == "code")
    html = (out / "_generated" / "demos" / "zz_sample_demo.html").read_text()
    assert "math" in html and "zz_sample_demo.ipynb" in html


def test_demo_index_without_demos(tmp_path):
    (tmp_path / "demos").mkdir()
    text = _ext().demos_index(tmp_path, tmp_path / "out")
    assert "no demo notebooks" in text and "toctree" not in text
