"""Label image -> validated tetrahedral mesh, through an ordered chain of routes.

A route is a function ``mesh(labels, spacing, options) -> TetMesh``. Routes
are tried in registry order (or ``options.routes`` order); each result is
measured with :func:`check_mesh` and rejected if it is not conformal,
watertight and tagged, has too-flat elements, too many cells, or phase
fractions off the image's. Falling back to the next route is normal, so a
route that fails, is rejected, would exceed ``max_cells`` or runs out of its
time budget is logged at info level, and the log says which route produced
the mesh; only when every route fails is there a warning, and the
``MeshingError`` lists each reason.

The default chain is ``levelset`` (the most accurate and the fastest in the
ground-truth study, deterministic bit for bit) then ``surface-nets-gmsh`` as
a fallback. Before any route runs, each route's cell count is estimated from
the image and the sizes (:func:`route_estimates`); a route whose estimate is
above ``max_cells`` is skipped, and if every route is, the call is refused at
once. Each route has a time budget that grows with the voxel count
(:func:`route_budget`, or ``MeshOptions.time_budget``); routes of this
package run in a child Python process that is stopped when the budget is
spent (a gmsh run once took 38 minutes on a 100^3 crop without a result),
and the next route takes over.

Adding a route is one call, e.g. in ``tomofem/meshing/levelset.py``::

    from tomofem.meshing.pipeline import register_route
    register_route("levelset", mesh)

or one line in :data:`ROUTES` below.
"""

from __future__ import annotations

import logging
import math
import os
import pickle
import signal
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from tomofem import errors, tags
from tomofem.errors import MeshingError, ResourceError
from tomofem.image._checks import spacing3
from tomofem.meshing import gmsh_route, levelset, periodic
from tomofem.meshing.options import MeshOptions
from tomofem.meshing.tetmesh import MeshReport, TetMesh, check_mesh

log = logging.getLogger(__name__)

Route = Callable[[np.ndarray, tuple[float, float, float], MeshOptions], TetMesh]

#: Meshing routes in the order they are tried.
ROUTES: dict[str, Route] = {"levelset": levelset.mesh, "surface-nets-gmsh": gmsh_route.mesh}
#: Fewest voxels along any axis of an image the routes mesh (thinner images: MeshingError).
MIN_EDGE_VOXELS = 4
#: Routes whose meshes are periodic (used instead of ROUTES with ``MeshOptions(periodic=True)``).
PERIODIC_ROUTES: dict[str, Route] = {periodic.ROUTE: periodic.mesh}


def register_route(name: str, route: Route, before: str | None = None) -> None:
    """Add ``route`` to the chain, at the end or just before route ``before``."""
    items = [(k, v) for k, v in ROUTES.items() if k != name]
    keys = [k for k, _ in items]
    i = keys.index(before) if before in keys else len(items)
    items.insert(i, (name, route))
    ROUTES.clear()
    ROUTES.update(items)


def validate_labels(labels: np.ndarray) -> np.ndarray:
    """Check a label image for meshing; return it as an integer array.

    Raises
    ------
    MeshingError
        Naming the problem and the fix: not 3D, an axis thinner than
        :data:`MIN_EDGE_VOXELS`, not integer, negative or too many labels,
        fewer than two phases, a label index with no voxels, or a phase of a
        single voxel.
    """
    arr = np.asarray(labels)
    if arr.ndim != 3:
        raise MeshingError(
            f"input: labels have shape {arr.shape}; meshing needs a 3D label image (stack 2D "
            "slices with np.stack, or add an axis with arr[None])"
        )
    thin = [f"{'xyz'[a]} ({n} voxel{'s' * (n != 1)})" for a, n in enumerate(arr.shape)]
    thin = [t for t, n in zip(thin, arr.shape, strict=True) if n < MIN_EDGE_VOXELS]
    if thin:
        which = f"axis {thin[0]} is" if len(thin) == 1 else f"axes {' and '.join(thin)} are"
        raise MeshingError(
            f"input: the label image is {' x '.join(map(str, arr.shape))} voxels; {which} "
            f"thinner than the {MIN_EDGE_VOXELS} voxels a conformal 3D "
            "mesh needs (its interfaces are smoothed over a few voxels). Mesh a region at "
            f"least {MIN_EDGE_VOXELS} voxels thick along every axis, or use the voxel solver "
            "for such a thin sample (tomofem homogenize --voxel-only)"
        )
    if arr.dtype == bool:
        arr = arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        raise MeshingError(
            f"input: labels have dtype {arr.dtype}; give integer label indices (0 = pore, "
            "1 = solid/active, 2 = CBD): segment first, or cast with .astype(np.uint8)"
        )
    if arr.min() < 0 or arr.max() >= tags.MAX_PHASES:
        raise MeshingError(
            f"input: label indices span {arr.min()}..{arr.max()}; they must lie in "
            f"0..{tags.MAX_PHASES - 1} (relabel with np.unique(..., return_inverse=True))"
        )
    counts = np.bincount(arr.ravel(), minlength=int(arr.max()) + 1)
    if np.count_nonzero(counts) < 2:
        raise MeshingError(
            f"input: label {int(arr.flat[0])} fills the whole volume; there is no interface "
            "to mesh (use tomofem.meshing.structured_tetmesh for a plain box mesh)"
        )
    empty = [i for i, c in enumerate(counts) if c == 0]
    if empty:
        raise MeshingError(
            f"input: label index(es) {empty} have no voxels although higher indices exist; "
            "relabel the phases consecutively from 0"
        )
    tiny = [i for i, c in enumerate(counts) if c < 2]
    if tiny:
        raise MeshingError(
            f"input: phase label(s) {tiny} have a single voxel; such a feature is below any "
            "mesh size: remove it (image cleanup) or merge it into a neighbouring phase"
        )
    return arr


def _gmsh_estimate(lab: np.ndarray, options: MeshOptions) -> int:
    """Fewest tetrahedra the gmsh route needs for ``options``' sizes (a lower bound).

    Two tetrahedra per interface triangle of edge ``interface_size`` (the
    interface area taken as the voxel-face count / 1.5, the staircase
    over-estimate of a smooth surface) plus the box filled with regular
    tetrahedra of edge ``max_size``. gmsh-route meshes of a 32^3 sphere
    lattice had 2.95, 3.26 and 4.08 times more cells (interface/max sizes
    1.5/4, 3/6, 2.25/8 voxels).
    """
    faces = sum(int(np.count_nonzero(np.diff(lab, axis=a))) for a in range(3))
    triangles = (faces / 1.5) / (np.sqrt(3.0) / 4.0 * options.interface_size**2)
    fill = lab.size / (options.max_size**3 / (6.0 * np.sqrt(2.0)))
    return int(2.0 * triangles + fill)


def levelset_step(options: MeshOptions) -> float:
    """Lattice step [voxels] the level-set route uses for ``options`` (see ``levelset.mesh``)."""
    return max(float(options.interface_size), levelset.LevelSetOptions.lattice_step)


def _levelset_estimate(lab: np.ndarray, options: MeshOptions) -> int:
    """Cells of the level-set route's background lattice: 12 per BCC cube.

    The lattice step fixes the count: cutting only splits cells (the meshes
    of 40^3 and 64^3 sphere packings had 1.17-1.32 times the lattice count),
    so this is a lower bound of the first mesh the route builds.
    """
    from tomofem.meshing.lattice import lattice_counts

    counts = lattice_counts(np.asarray(lab.shape, dtype=float), levelset_step(options))
    return int(12 * np.prod(counts))


#: Cell-count estimate of each route that has one (others are not checked up front).
ESTIMATES: dict[str, Callable[[np.ndarray, MeshOptions], int]] = {
    "levelset": _levelset_estimate,
    "surface-nets-gmsh": _gmsh_estimate,
}


def route_estimates(labels: np.ndarray, options: MeshOptions) -> dict[str, int]:
    """Estimated cell count of each route of the chain that has an estimate, in O(voxels)."""
    lab = np.asarray(labels)
    chain = list(ROUTES) if options.routes is None else list(options.routes)
    return {name: ESTIMATES[name](lab, options) for name in chain if name in ESTIMATES}


def estimate_cells(labels: np.ndarray, options: MeshOptions) -> int:
    """Fewest tetrahedra any route of the chain needs for ``options``' sizes (a lower bound)."""
    est = route_estimates(labels, options)
    if not est:
        return _gmsh_estimate(np.asarray(labels), options)
    return min(est.values())


#: Seconds per route before the voxel-dependent part of its budget.
BUDGET_BASE_S = 120.0
#: Budget per voxel [s], about 10x the rate measured on this project's 2-core machines
#: under load (levelset 45-75 us/voxel on 40^3-64^3 packings at load 10; gmsh 17.7 s for
#: a 100^3 packing, 136 s for 200^3).
BUDGET_PER_VOXEL_S: dict[str, float] = {"levelset": 5e-4, "surface-nets-gmsh": 2e-4}


def route_budget(name: str, labels: np.ndarray, options: MeshOptions) -> float | None:
    """Wall-clock budget [s] of route ``name`` on ``labels`` (``None``: unlimited).

    ``options.time_budget`` overrides it: a number of seconds per route, or
    0 for no budget (routes then run in this process).
    """
    if options.time_budget is not None:
        return float(options.time_budget) or None
    rate = BUDGET_PER_VOXEL_S.get(name, max(BUDGET_PER_VOXEL_S.values()))
    return BUDGET_BASE_S + rate * float(np.asarray(labels).size)


def _rejection(report: MeshReport, labels: np.ndarray, options: MeshOptions) -> str | None:
    """Why ``report``'s mesh is unfit, or ``None`` if it passes."""
    if not report.conformal:
        return (
            f"not conformal ({report.inverted_cells} inverted cells, "
            f"{report.nonmanifold_facets} non-manifold facets)"
        )
    if abs(report.box_volume_error) > 1e-9:
        return f"not watertight (box volume error {report.box_volume_error:.2e})"
    if report.untagged_interface_facets:
        return f"{report.untagged_interface_facets} untagged interface facets"
    if report.num_cells > options.max_cells:
        return f"{report.num_cells} cells above max_cells={options.max_cells}"
    if report.min_dihedral_deg < options.min_dihedral_deg:
        return (
            f"min dihedral angle {report.min_dihedral_deg:.2f} deg below "
            f"{options.min_dihedral_deg} deg"
        )
    counts = np.bincount(labels.ravel())
    total = sum(report.volume_by_phase.values())
    for i, c in enumerate(counts):
        ph = tags.phase_id(i)
        err = report.volume_by_phase.get(ph, 0.0) / total - c / labels.size
        if abs(err) > options.max_fraction_error:
            return f"phase {ph} volume fraction off the image's by {err:+.4f}"
    return None


def component_cell_tags(tm: TetMesh) -> np.ndarray:
    """``tags.component_tag(phase, k)`` of each cell of a phase-tagged mesh.

    Components are the face-connected regions of cells of one phase, numbered
    from 1 in order of decreasing volume (ties: lowest first cell), so the
    numbering depends on the mesh only, not on the partition.

    Raises
    ------
    MeshingError
        If a phase has 10000 or more components (their tags would run into
        the next phase's): clean small islands from the image first.
    """
    from tomofem.meshing.connectivity import mesh_components
    from tomofem.meshing.tetmesh import tet_volumes

    comp = mesh_components(tm)
    vol = np.bincount(comp, weights=tet_volumes(tm.points, tm.cells))
    first = np.full(len(vol), tm.num_cells, dtype=np.int64)
    np.minimum.at(first, comp, np.arange(tm.num_cells))
    phase_of = np.zeros(len(vol), dtype=np.int64)
    phase_of[comp] = tm.cell_tags
    ctag = np.empty(len(vol), dtype=np.int32)
    for ph in np.unique(phase_of):
        mine = np.flatnonzero(phase_of == ph)
        if len(mine) >= 10000:
            raise MeshingError(
                f"component tags: phase {ph} has {len(mine)} connected components, more than "
                "the 9999 a component tag can number; remove small islands (image cleanup)"
            )
        order = mine[np.lexsort((first[mine], -vol[mine]))]
        ctag[order] = [tags.component_tag(int(ph), k) for k in range(1, len(mine) + 1)]
    return ctag[comp]


def default_phase_names(num_phases: int) -> dict[int, str]:
    """``{1: "pore", 2: "solid"}`` for two phases, pore/active/cbd for three, phaseN beyond."""
    names = {int(k): v for k, v in tags.PHASE_NAMES.items()}
    if num_phases == 2:
        names[int(tags.SOLID)] = "solid"
    return {
        tags.phase_id(i): names.get(tags.phase_id(i), f"phase{i + 1}") for i in range(num_phases)
    }


_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
_BOOT = "from tomofem.meshing.pipeline import _child; _child()"


def _importable(route: Route) -> str | None:
    """``module:function`` of a module-level function of this package, else ``None``."""
    mod, name = getattr(route, "__module__", ""), getattr(route, "__qualname__", "")
    if not mod.startswith("tomofem.") or not name.isidentifier():
        return None
    return f"{mod}:{name}"


def _run_route(name: str, route: Route, args: tuple, budget: float | None) -> TetMesh:
    """Run ``route(*args)``; in a child process stopped after ``budget`` seconds if it has one.

    Only a plain child process (the parent's interpreter and environment,
    the package put first on ``PYTHONPATH``) that can be killed: a gmsh call
    cannot be interrupted in this process. Routes defined outside this
    package (tests, user plugins) and ``budget=None`` run here.

    Raises
    ------
    MeshingError
        The route failed, or ran out of its budget (``"time budget"`` in the message).
    KeyboardInterrupt
        Ctrl-C/SIGTERM reached the child (not a failure to fall back from).
    """
    target = _importable(route)
    if budget is None or target is None:
        t0 = time.perf_counter()
        tm = route(*args)
        if budget is not None and time.perf_counter() - t0 > budget:
            log.info(
                "meshing route %s took %.0f s, beyond its budget of %.0f s",
                name,
                time.perf_counter() - t0,
                budget,
            )
        return tm
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (_PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
    payload = pickle.dumps((target, args), protocol=pickle.HIGHEST_PROTOCOL)
    proc = subprocess.Popen(
        [sys.executable, "-c", _BOOT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    try:
        out, err = proc.communicate(payload, timeout=budget)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise MeshingError(
            f"{name}: stopped after its time budget of {budget:.0f} s for a "
            f"{'x'.join(map(str, np.shape(args[0])))} image (MeshOptions.time_budget sets it)"
        ) from None
    except BaseException:  # KeyboardInterrupt in the parent: do not leave the child running
        proc.kill()
        proc.communicate()
        raise
    if proc.returncode in (-signal.SIGINT, -signal.SIGTERM):
        raise KeyboardInterrupt(signal.Signals(-proc.returncode).name)
    if proc.returncode != 0 or not out:
        raise MeshingError(
            f"{name}: the meshing process ended with exit code {proc.returncode} (killed for "
            f"memory if -9: coarsen the mesh or crop the image): "
            f"{err.decode(errors='replace')[-2000:]}"
        )
    res = pickle.loads(out)
    for logger, level, msg in res["records"]:
        logging.getLogger(logger).log(level, msg)
    if res["error"] is not None:
        kind, message, tb = res["error"]
        if kind == "KeyboardInterrupt":
            raise KeyboardInterrupt(message or "SIGINT")
        cls = getattr(errors, kind, None)
        if isinstance(cls, type) and issubclass(cls, errors.TomofemError):
            raise cls(message)
        raise MeshingError(f"{name}: {kind}: {message}\n{tb}")
    return res["result"]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, record.levelno, record.getMessage()))


def _child() -> None:
    """Child side of :func:`_run_route`: call from stdin, outcome to stdout (nothing else)."""
    import importlib

    out_fd = os.dup(1)
    os.dup2(2, 1)  # stray prints of C libraries go to stderr, not into the result
    handler = _Collect()
    root = logging.getLogger("tomofem")
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    result: Any = None
    error = None
    try:
        target, args = pickle.loads(sys.stdin.buffer.read())
        module, fn = target.split(":")
        result = getattr(importlib.import_module(module), fn)(*args)
    except BaseException as exc:  # everything goes back to the parent
        error = (type(exc).__name__, str(exc), traceback.format_exc())
    data = pickle.dumps(
        {"result": result, "error": error, "records": handler.records},
        protocol=pickle.HIGHEST_PROTOCOL,
    )
    with os.fdopen(out_fd, "wb") as f:
        f.write(data)


def refuse_oversize(lab: np.ndarray, opts: MeshOptions, chain: list[str]) -> dict[str, int]:
    """Estimate each route's cells before meshing; refuse at once if every route is too big.

    Returns
    -------
    dict
        ``{route: estimated cells}`` of the routes above ``opts.max_cells``
        (they are skipped).

    Raises
    ------
    ResourceError
        When every route of ``chain`` is estimated above ``max_cells``, with
        the interface size that would fit.
    """
    estimates = {} if opts.periodic else route_estimates(lab, replace(opts, routes=tuple(chain)))
    over = {r: e for r, e in estimates.items() if e > opts.max_cells}
    if over and len(over) == len(chain):  # refuse before a route allocates anything
        est = min(over.values())
        hint = ""
        if "levelset" in over:
            need = levelset_step(opts) * (over["levelset"] / opts.max_cells) ** (1.0 / 3.0)
            hint = (
                f" (the level-set lattice step is max(interface_size, "
                f"{levelset.LevelSetOptions.lattice_step}) voxels and its cells go as "
                f"1/step^3: interface_size = {math.ceil(need * 10) / 10:g} fits)"
            )
        raise ResourceError(
            f"meshing: interface_size = {opts.interface_size} and max_size = {opts.max_size} "
            f"voxels on a {'x'.join(map(str, lab.shape))} image need at least ~{est:.3g} "
            f"tetrahedra ({', '.join(f'{r}: ~{e:.3g}' for r, e in over.items())}), above "
            f"max_cells = {opts.max_cells}; raise mesh.interface_size / mesh.max_size, crop "
            f"the image, or raise mesh.max_cells if the memory allows. A LARGER size makes "
            f"fewer cells{hint}"
        )
    return over


def _next(chain: list[str], name: str) -> str:
    """`` (trying route X next)`` for the log, or ``""`` after the last route."""
    rest = chain[chain.index(name) + 1 :]
    return f" (trying route {rest[0]} next)" if rest else ""


def mesh_image(
    labels: np.ndarray,
    spacing: tuple[float, float, float] | float = (1.0, 1.0, 1.0),
    options: MeshOptions | None = None,
    phase_names: dict[int, str] | None = None,
) -> TetMesh:
    """Mesh a segmented image into a conformal, tagged, multi-phase tetrahedral mesh.

    Parameters
    ----------
    labels
        3D array of label indices: 0 = pore, 1 = solid (active), 2 = CBD, ...
        Cell tag of label ``i`` is ``tomofem.tags.phase_id(i)``.
    spacing
        Voxel size per axis (or one value) [length]; the mesh is in these units.
    options
        Sizes, smoothing and route settings (defaults: :class:`MeshOptions`).
    phase_names
        Name of each phase id, e.g. ``{1: "pore", 2: "nmc"}``; defaults to
        pore/solid (two phases) or pore/active/cbd.

    Returns
    -------
    TetMesh
        Mesh on this process with phase cell tags, interface and per-phase box
        facet tags; ``route`` names the route that produced it.

    Raises
    ------
    MeshingError
        For unfit input, or when every route failed or was rejected (the
        message lists each route's reason).

    Notes
    -----
    Serial and deterministic: call it on one rank and distribute with
    :func:`tomofem.meshing.to_dolfinx` (or write it once with
    :mod:`tomofem.io.mesh_io` and load it under MPI: idle ranks busy-wait and
    slow gmsh down otherwise).
    """
    opts = MeshOptions() if options is None else options
    lab = validate_labels(labels)
    h = spacing3(spacing, "input: spacing", MeshingError)
    routes = PERIODIC_ROUTES if opts.periodic else ROUTES
    chain = list(routes) if opts.routes is None or opts.periodic else list(opts.routes)
    unknown = [r for r in chain if r not in routes]
    if unknown:
        raise MeshingError(f"options: unknown route(s) {unknown}; registered: {list(routes)}")
    over = refuse_oversize(lab, opts, chain)
    names = default_phase_names(int(lab.max()) + 1) if phase_names is None else phase_names
    reasons: list[str] = []
    hxyz = (float(h[0]), float(h[1]), float(h[2]))
    for name in chain:
        if name in over:
            why = f"~{over[name]:.3g} cells estimated, above max_cells={opts.max_cells}"
            reasons.append(f"{name}: skipped: {why}")
            log.info("meshing route %s skipped: %s%s", name, why, _next(chain, name))
            continue
        budget = route_budget(name, lab, opts)
        try:
            tm = _run_route(name, routes[name], (lab, hxyz, opts), budget)
        except MeshingError as exc:
            reasons.append(f"{name}: failed: {exc}")
            log.info("meshing route %s failed: %s%s", name, exc, _next(chain, name))
            continue
        report = check_mesh(tm)
        why = _rejection(report, lab, opts)
        if why is not None:
            reasons.append(f"{name}: rejected: {why}")
            log.info("meshing route %s rejected: %s%s", name, why, _next(chain, name))
            continue
        log.info(
            "meshing route %s produced %d vertices, %d tets (min dihedral %.1f deg)%s",
            name,
            report.num_vertices,
            report.num_cells,
            report.min_dihedral_deg,
            "; earlier routes: " + "; ".join(reasons) if reasons else "",
        )
        if opts.component_tags:
            tm = replace(tm, cell_tags=component_cell_tags(tm))
        return replace(tm, phase_names=names, route=name)
    log.warning("meshing: every route failed or was rejected: %s", "; ".join(reasons))
    raise MeshingError(
        "meshing: every route failed or was rejected:\n  "
        + "\n  ".join(reasons)
        + "\nTry cleaning the image (small islands, one-voxel features), more smoothing, or a "
        "smaller interface_size"
    )
