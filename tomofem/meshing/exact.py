"""Conformal meshes of an exactly known geometry: level-set cutting by a function.

Ground truth for the image-based routes. A microstructure given analytically
(:mod:`tomofem.image.phantoms`: per-phase level sets ``phi_k(x)``, phase =
argmax) is meshed by the same warp-and-cut of a BCC lattice as the level-set
route (:mod:`tomofem.meshing.levelset`), but the level sets are evaluated at
the lattice vertices themselves instead of being interpolated from a voxel
field, so no image is involved: the only geometric error is the piecewise
planar interface through points found by linear interpolation along lattice
edges and the warp of vertices within ``alpha`` of an edge onto it (both
O(h^2) for smooth interfaces, ``h`` the lattice step). Refining ``h`` and
extrapolating (:func:`tomofem.homogenization.truth.richardson`) gives effective
properties of the exact geometry with a stated uncertainty.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from tomofem import tags
from tomofem.errors import MeshingError
from tomofem.meshing.cutting import cut
from tomofem.meshing.lattice import bcc_lattice, kuhn_lattice, signed_volumes
from tomofem.meshing.slivers import collapse_slivers
from tomofem.meshing.tetmesh import TetMesh, tag_facets

log = logging.getLogger(__name__)

ROUTE = "exact-levelset"

#: ``phi(points (m, 3)) -> (n_phases, m)``: per-phase level sets, phase = argmax.
LevelSets = Callable[[np.ndarray], np.ndarray]


def _counts(extent: np.ndarray, step: float) -> np.ndarray:
    """Lattice cells per axis: the box edge over ``step``, rounded, at least 1."""
    return np.maximum(1, np.rint(extent / step)).astype(int)


def mesh_level_sets(
    phi: LevelSets,
    extent: npt.ArrayLike,
    step: float,
    *,
    n_phases: int,
    order: Sequence[int] | None = None,
    lattice: str = "bcc",
    alpha: float = 0.3,
    collapse_below_deg: float = 5.0,
    phase_names: dict[int, str] | None = None,
    project: bool = True,
) -> TetMesh:
    """Mesh the box ``[0, extent]`` conformally to the phases of ``phi``.

    Parameters
    ----------
    phi
        Per-phase level sets: ``phi(points)`` returns ``(n_phases, m)``; the
        phase at a point is the argmax (label index ``k``, phase id
        ``tags.phase_id(k)``). Continuous, about a signed distance near the
        interfaces (the cut points are linear interpolants along edges).
    extent
        Box edge lengths (3,) [length].
    step
        Lattice step [length]: the mesh size everywhere (uniform, no grading).
    n_phases
        Number of phases ``phi`` returns.
    order
        Cutting order (label indices); default 0, 1, ... Cut thick phases first.
    lattice
        ``"bcc"`` or ``"kuhn"`` background lattice.
    alpha
        Warp threshold (fraction of an edge), as in the level-set route.
    collapse_below_deg
        Collapse short edges of cells below this dihedral angle [degrees].
    phase_names
        Name per phase id (default from :mod:`tomofem.tags`).
    project
        Move each new interface vertex onto the exact zero set (two Newton
        steps along the numerical gradient; box-face vertices stay in their
        planes; a move that would invert a cell is undone). The cut points
        of linear interpolation lie O(h^2) off a curved interface, and which
        vertices the warp moves changes erratically with ``h``; on the
        interface, only the planar facets' chordal error is left, which
        converges smoothly (Richardson extrapolation needs that).

    Returns
    -------
    TetMesh
        Tagged mesh, ``route == "exact-levelset"``.

    Raises
    ------
    MeshingError
        If ``phi`` returns the wrong shape or non-finite values, or the cut
        leaves inverted cells.
    """
    extent = np.broadcast_to(np.asarray(extent, dtype=float), (3,)).copy()
    if not step > 0 or not np.all(extent > 0):
        raise MeshingError(f"exact mesh: step={step} and extent={extent} must be positive")
    order = list(range(n_phases)) if order is None else [int(k) for k in order]
    if sorted(order) != list(range(n_phases)):
        raise MeshingError(f"exact mesh: order={order} must be a permutation of 0..{n_phases - 1}")
    make = bcc_lattice if lattice == "bcc" else kuhn_lattice
    points, cells = make(_counts(extent, step), extent)
    box = np.array([[0.0, 0.0, 0.0], extent])
    which = np.full(len(cells), -1, dtype=np.int64)
    movable = np.ones(len(points), dtype=bool)
    for pos, k in enumerate(order[:-1]):
        vals = _evaluate(phi, points, n_phases)
        later = order[pos + 1 :]
        f = vals[k] - vals[later].max(axis=0)
        # vertices whose cells all belong to earlier phases: keep those cells uncut
        done = np.zeros(len(points), dtype=bool)
        if pos > 0:
            free = np.zeros(len(points), dtype=bool)
            free[cells[which < 0].ravel()] = True
            done = ~free
        f[done] = -1.0
        res = cut(points, cells, f, alpha, movable, box)
        points, cells = res.points, res.cells
        if project:
            surf = res.on_surface & np.r_[movable, np.ones(len(points) - len(movable), bool)]
            points = _project(phi, n_phases, k, later, points, cells, np.flatnonzero(surf), box)
        which = which[res.parent]
        which[(which < 0) & (res.side > 0)] = k
        movable = np.r_[movable, np.ones(len(points) - len(movable), dtype=bool)] & ~res.on_surface
    which[which < 0] = order[-1]
    if np.any(signed_volumes(points, cells) <= 0):
        raise MeshingError("exact mesh: the cut left inverted cells; lower alpha")
    phase_tag = np.array([tags.phase_id(k) for k in range(n_phases)], dtype=np.int32)[which]
    if collapse_below_deg > 0:
        points, cells, phase_tag, _ = collapse_slivers(
            points, cells, phase_tag, box, collapse_below_deg
        )
    present = np.unique(phase_tag)
    facets, ftags = tag_facets(points, cells.astype(np.int64), phase_tag, box)
    names = {int(p): tags.PHASE_NAMES.get(int(p), f"phase{p}") for p in present}
    if phase_names:
        names.update({int(p): n for p, n in phase_names.items() if int(p) in names})
    return TetMesh(
        points=points,
        cells=cells.astype(np.int64),
        cell_tags=phase_tag,
        facets=facets,
        facet_tags=ftags,
        box=box,
        phase_names=names,
        route=ROUTE,
    )


def _project(
    phi: LevelSets,
    n_phases: int,
    k: int,
    later: list[int],
    points: np.ndarray,
    cells: np.ndarray,
    ids: np.ndarray,
    box: np.ndarray,
) -> np.ndarray:
    """Newton-project vertices ``ids`` onto ``phi_k = max(phi_later)``; keep cells positive."""
    if len(ids) == 0:
        return points

    def f(x: np.ndarray) -> np.ndarray:
        v = _evaluate(phi, x, n_phases)
        return v[k] - v[later].max(axis=0)

    tol = 1e-9 * float(np.linalg.norm(box[1] - box[0]))
    on_plane = (np.abs(points[ids, None, :] - box[None, :, :]) <= tol).any(axis=1)  # (m, 3)
    eps = 1e-6 * float(np.linalg.norm(box[1] - box[0]))
    x = points[ids].copy()
    for _ in range(2):
        fx = f(x)
        grad = np.stack([(f(x + eps * e) - fx) / eps for e in np.eye(3)], axis=1)
        grad[on_plane] = 0.0
        g2 = np.einsum("ij,ij->i", grad, grad)
        ok = g2 > 1e-12
        x[ok] -= (fx[ok] / g2[ok])[:, None] * grad[ok]
    new = points.copy()
    new[ids] = x
    # undo moves that invert a cell (rare: the move is O(h^2) of a cut point)
    for _ in range(5):
        bad = signed_volumes(new, cells) <= 0
        if not bad.any():
            break
        back = np.intersect1d(np.unique(cells[bad]), ids)
        new[back] = points[back]
    return new


def _evaluate(phi: LevelSets, points: np.ndarray, n_phases: int) -> np.ndarray:
    vals = np.asarray(phi(points), dtype=float)
    if vals.shape != (n_phases, len(points)):
        raise MeshingError(
            f"exact mesh: phi returned shape {vals.shape}, expected ({n_phases}, {len(points)})"
        )
    if not np.all(np.isfinite(vals)):
        raise MeshingError("exact mesh: phi returned non-finite values")
    return vals
