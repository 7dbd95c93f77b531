"""The package's import graph follows the data flow of STYLE.md, checked on the source.

``image -> meshing -> (materials, forms) -> problems -> solvers -> homogenization /
post -> io / viz -> cli``: a module never imports from one downstream of it, also
not lazily inside a function. Read with ``ast``, so nothing is imported to check it.
"""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "tomofem"
LAYER = {
    "image": 0,
    "meshing": 1,
    "materials": 2,
    "forms": 2,
    "problems": 3,
    "solvers": 4,
    "homogenization": 5,
    "post": 5,
    "io": 6,
    "viz": 6,
    "pipeline": 7,
    "cli": 7,
}


def imports(path: Path) -> list[tuple[int, str]]:
    """``(line, module)`` of every tomofem import in ``path``, nested ones included."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out += [(node.lineno, node.module)]
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return [(n, m) for n, m in out if m.startswith("tomofem.")]


def layer_of(module: str) -> int | None:
    return LAYER.get(module.split(".")[1])


def upstream_violations(package: str) -> list[str]:
    own = LAYER[package]
    bad = []
    for path in sorted((PKG / package).rglob("*.py")):
        for line, mod in imports(path):
            other = layer_of(mod)
            if other is not None and other > own:
                bad.append(f"{path.relative_to(PKG.parent)}:{line} imports {mod}")
    return bad


def test_the_checker_sees_a_nested_import(tmp_path):
    src = tmp_path / "m.py"
    src.write_text("def f():\n    from tomofem.io import checkpoint\n")
    assert imports(src) == [(2, "tomofem.io"), (2, "tomofem.io.checkpoint")]
    assert layer_of("tomofem.io.checkpoint") > LAYER["solvers"]


@pytest.mark.parametrize("package", ["solvers", "problems", "forms", "materials"])
def test_no_import_from_downstream(package):
    assert upstream_violations(package) == []


def test_time_loop_writes_no_files():
    """solvers/ hands accepted states to observers; io/ and viz/ are never imported."""
    for path in (PKG / "solvers").rglob("*.py"):
        for line, mod in imports(path):
            assert not mod.startswith(("tomofem.io", "tomofem.viz")), f"{path}:{line} {mod}"


FORBIDDEN = ("KSP", "LinearProblem", "NonlinearProblem", "setOptionsPrefix", "Options")


def test_homogenization_makes_no_solver_of_its_own():
    """KSPs come from tomofem.solvers.linear, interface sides from tomofem.problems."""
    for path in (PKG / "homogenization").rglob("*.py"):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
                assert node.func.attr not in FORBIDDEN, (
                    f"{path.name}:{node.lineno} calls {node.func.attr}; use tomofem.solvers.linear"
                )


PETSC_MODULES = ("petsc4py", "dolfinx.fem.petsc", "tomofem._fenics.PETSc")
#: Methods that make or fill PETSc vectors and matrices (problems/ and solvers/ do that).
PETSC_CALLS = (
    "createVecLeft",
    "createVecRight",
    "createAIJ",
    "createNest",
    "NullSpace",
    "ghostUpdate",
    "localForm",
    "zeroRowsColumns",
    "PtAP",
)


def petsc_uses(path: Path) -> list[str]:
    """Every import of PETSc (petsc4py, ``dolfinx.fem.petsc``, ``tomofem._fenics.PETSc``),
    every ``dolfinx.fem.petsc`` attribute chain and every :data:`PETSC_CALLS` method in
    ``path``, nested ones included."""
    bad = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        elif isinstance(node, ast.Attribute) and ast.unparse(node) == "dolfinx.fem.petsc":
            names = ["dolfinx.fem.petsc"]
        elif isinstance(node, ast.Attribute) and node.attr in PETSC_CALLS:
            bad.append(f"{path.name}:{node.lineno} {node.attr}")
        hits = [n for n in names if any(n == m or n.startswith(m + ".") for m in PETSC_MODULES)]
        if hits:
            bad.append(f"{path.name}:{node.lineno} {hits[0]}")
    return bad


def test_the_petsc_checker_sees_imports_and_attribute_chains(tmp_path):
    src = tmp_path / "m.py"
    src.write_text(
        "import petsc4py.PETSc\nfrom tomofem._fenics import MPI, PETSc\n"
        "def f(a):\n    from dolfinx.fem.petsc import assemble_matrix\n"
        "    return dolfinx.fem.petsc.create_vector(a)\n"
        "def g(A):\n    return A.createVecLeft()\n"
    )
    found = sorted(s.split(" ")[0] for s in petsc_uses(src))
    assert found == ["m.py:1", "m.py:2", "m.py:4", "m.py:5", "m.py:7"]


def test_homogenization_does_not_touch_petsc():
    """Forms meet PETSc in problems/ and solvers/; homogenization only orchestrates."""
    bad = [s for path in sorted((PKG / "homogenization").rglob("*.py")) for s in petsc_uses(path)]
    assert bad == []
