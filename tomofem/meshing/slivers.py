"""Remove the few slivers a cut leaves, by collapsing one of their short edges.

After warp-then-cut, about one tetrahedron in 10^4 has a dihedral angle below
5 degrees and a handful per million below 1 degree: flat tetrahedra whose four
vertices all lie on interfaces (where a thin feature crosses a lattice cell).
No vertex of such a tetrahedron is free to move, so they are removed
topologically: an edge of the sliver is collapsed (one vertex merged into the
other) when the cells around it stay positively oriented, better shaped,
face-conformal, and box vertices stay on their box planes. The cells keep
their phases; the interfaces move by less than the collapsed edge's length.
A flat cell with four long edges (a lattice cell pressed onto an interface:
one in 16M cells of the 256^3 electrode, 0.32 degrees, every collapse
inverted a neighbour) is instead fixed by lifting one of its vertices off
the cell's plane by up to 0.3 of its mean edge, where that improves the
vertex's star.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import numpy as np

from tomofem.meshing.lattice import signed_volumes
from tomofem.meshing.tetmesh import _unique_faces, min_dihedral_angles

log = logging.getLogger(__name__)

_EDGES = ((0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3))
_FACES = ((1, 2, 3), (0, 2, 3), (0, 1, 3), (0, 1, 2))


def _box_planes(points: np.ndarray, box: np.ndarray) -> np.ndarray:
    """Bit mask of the box planes each vertex lies on (bit 2*axis + upper)."""
    tol = 1e-9 * float(np.linalg.norm(box[1] - box[0]))
    bits = np.zeros(len(points), dtype=np.int64)
    for ax in range(3):
        bits |= (np.abs(points[:, ax] - box[0, ax]) <= tol).astype(np.int64) << (2 * ax)
        bits |= (np.abs(points[:, ax] - box[1, ax]) <= tol).astype(np.int64) << (2 * ax + 1)
    return bits


def collapse_slivers(
    points: np.ndarray,
    cells: np.ndarray,
    cell_tags: np.ndarray,
    box: np.ndarray,
    threshold_deg: float = 5.0,
    max_passes: int = 3,
    quality: Callable[[np.ndarray, np.ndarray], np.ndarray] = min_dihedral_angles,
    floor: float = 5.0,
    frozen: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """Collapse a short edge of every cell whose quality is below a threshold.

    Parameters
    ----------
    points, cells, cell_tags
        The mesh (positively oriented cells) and the phase of each cell.
    box
        Box corners (2, 3): vertices on box planes may only merge into
        vertices on the same planes.
    threshold_deg
        Cells below this quality are treated (smallest dihedral angle
        [degrees] by default).
    max_passes
        Sweeps over the remaining bad cells.
    quality
        Quality of each cell, ``quality(points, cells)``, higher is better:
        :func:`~tomofem.meshing.tetmesh.min_dihedral_angles` (default) or
        :func:`~tomofem.meshing.tetmesh.sicn` (then ``threshold_deg`` and
        ``floor`` are SICN values). A collapse must raise the worst quality
        around it, and leave no new cell below ``floor`` that was not there.
        Flat cells with four long edges are lifted only with the default.
    floor
        See ``quality``.
    frozen
        Vertices that must neither move nor be merged away (default none):
        vertices on a face shared with another process's block
        (:mod:`tomofem.meshing.distributed`). Other vertices may merge into them.

    Returns
    -------
    points, cells, cell_tags, collapsed
        The mesh with unused vertices removed, and the number of collapses.
    """
    out = _collapse_slivers(
        points, cells, cell_tags, box, threshold_deg, max_passes, quality, floor, frozen
    )
    return out[:4]


_FROZEN_BIT = np.int64(1) << 62  # in the box-plane bit mask: the vertex may not go


def _collapse_slivers(
    points: np.ndarray,
    cells: np.ndarray,
    cell_tags: np.ndarray,
    box: np.ndarray,
    threshold_deg: float = 5.0,
    max_passes: int = 3,
    quality: Callable[[np.ndarray, np.ndarray], np.ndarray] = min_dihedral_angles,
    floor: float = 5.0,
    frozen: np.ndarray | None = None,
    known: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int, np.ndarray, np.ndarray]:
    """:func:`collapse_slivers`, also returning the input index of each kept vertex.

    The last item is ``quality`` of each kept cell (kept up to date by every
    collapse and lift, so equal to ``quality`` of the returned mesh).
    ``known`` gives ``quality`` of some input cells beforehand (NaN where
    not known); only the others are computed.
    """
    points = points.copy()
    cells = cells.copy()
    alive = np.ones(len(cells), dtype=bool)
    planes = _box_planes(points, box)
    if frozen is not None:
        planes[np.asarray(frozen, dtype=bool)] |= _FROZEN_BIT
    # vertex -> cells (CSR), extended by merges as they happen
    order = np.argsort(cells.ravel(), kind="stable")
    starts = np.searchsorted(cells.ravel()[order], np.arange(len(points) + 1))
    extra: dict[int, set[int]] = {}

    def star(v: int) -> set[int]:
        s = set((order[starts[v] : starts[v + 1]] // 4).tolist()) | extra.get(v, set())
        return {c for c in s if alive[c] and v in cells[c]}

    judge = (quality, floor)
    collapsed = 0
    # kept up to date by each collapse; computed in chunks to bound memory
    dih = np.full(len(cells), np.nan) if known is None else np.array(known, dtype=float)
    todo = np.flatnonzero(np.isnan(dih))
    for i in range(0, len(todo), 2**20):
        dih[todo[i : i + 2**20]] = quality(points, cells[todo[i : i + 2**20]])
    for _ in range(max_passes):
        bad = np.flatnonzero(alive & (dih < threshold_deg))
        if not len(bad):
            break
        done = 0
        for c in bad[np.argsort(dih[bad])]:
            if not alive[c]:
                continue
            v = cells[c]
            lens = [np.linalg.norm(points[v[i]] - points[v[j]]) for i, j in _EDGES]
            for e in np.argsort(lens):
                a, b = int(v[_EDGES[e][0]]), int(v[_EDGES[e][1]])
                if _try_collapse(a, b, points, cells, alive, planes, star, extra, dih, judge):
                    done += 1
                    break
                if _try_collapse(b, a, points, cells, alive, planes, star, extra, dih, judge):
                    done += 1
                    break
        collapsed += done
        if not done:
            break
    # flat slivers with four long edges (a lattice cell pressed onto an
    # interface) have no collapsible edge: lift one vertex off their plane
    lifted = 0
    flat = np.flatnonzero(alive & (dih < min(threshold_deg, 1.0)))
    for c in flat if quality is min_dihedral_angles else ():
        lifted += _lift(c, points, cells, planes, star, dih)
    if lifted:
        log.debug("slivers: %d vertices lifted off flat slivers", lifted)
    cells, cell_tags = cells[alive], cell_tags[alive]
    used = np.flatnonzero(np.bincount(cells.ravel(), minlength=len(points)))  # np.unique, O(n)
    remap = np.full(len(points), -1, dtype=np.int64)
    remap[used] = np.arange(len(used))
    log.debug("slivers: %d edge collapses", collapsed)
    return points[used], remap[cells], cell_tags, collapsed, used, dih[alive]


def _lift(c, points, cells, planes, star, dih) -> int:
    """Move one vertex of a flat cell along the cell's normal if its star gets better.

    The vertex moves by at most 0.3 of the cell's mean edge length (the
    interface it lies on moves as much locally, less than the warp's
    ``alpha`` of a lattice edge); vertices on box planes stay. Returns 1 if a
    move was applied.
    """
    v = cells[c]
    p = points[v]
    centred = p - p.mean(axis=0)
    normal = np.linalg.svd(centred)[2][-1]  # normal of the best-fit plane
    size = float(np.mean([np.linalg.norm(p[i] - p[j]) for i, j in _EDGES]))
    best = None
    for k in range(4):
        x = int(v[k])
        if planes[x]:
            continue
        s = sorted(star(x))
        current = float(dih[s].min())
        for step in (0.1, 0.2, 0.3, -0.1, -0.2, -0.3):
            moved = points[x] + step * size * normal
            old = points[x].copy()
            points[x] = moved
            ok = np.all(signed_volumes(points, cells[s]) > 0)
            quality = float(min_dihedral_angles(points, cells[s]).min()) if ok else -1.0
            points[x] = old
            if quality > current and (best is None or quality > best[0]):
                best = (quality, x, moved, s)
    if best is None:
        return 0
    _, x, moved, s = best
    points[x] = moved
    dih[s] = min_dihedral_angles(points, cells[s])
    return 1


def _try_collapse(keep, gone, points, cells, alive, planes, star, extra, dih, judge) -> bool:
    """Merge vertex ``gone`` into ``keep`` if the result is valid and better; apply it.

    ``judge`` is ``(quality function, floor)``, see :func:`collapse_slivers`.
    """
    quality, floor = judge
    if planes[gone] & _FROZEN_BIT:
        return False  # frozen: on a face another process shares
    if planes[gone] & ~planes[keep]:
        return False  # a box vertex would leave its plane
    s_keep, s_gone = star(keep), star(gone)
    removed = s_keep & s_gone
    moved = sorted(s_gone - removed)
    if not moved:
        return False
    new = cells[moved].copy()
    new[new == gone] = keep
    vol = signed_volumes(points, new)
    if np.any(vol <= 0):
        return False
    new_q = quality(points, new)
    new_min = float(new_q.min())
    affected = sorted(s_keep | s_gone)
    old_min = float(dih[affected].min())
    moved_min = float(dih[moved].min())
    if new_min <= old_min or new_min < min(moved_min, floor) * 0.999:
        return False
    # face conformity around keep: every face through keep used by at most two cells
    others = cells[sorted(s_keep - removed)]
    faces = np.concatenate([new, others])[:, list(_FACES)].reshape(-1, 3)
    faces = np.sort(faces[np.any(faces == keep, axis=1)], axis=1)
    _, cnt = np.unique(faces, axis=0, return_counts=True)
    if np.any(cnt > 2):
        return False
    # faces used once must lie on the box (no holes opened)
    uniq, cnt = np.unique(faces, axis=0, return_counts=True)
    single = uniq[cnt == 1]
    if len(single) and np.any(np.bitwise_and.reduce(planes[single], axis=1) == 0):
        return False
    cells[moved] = new
    alive[sorted(removed)] = False
    dih[moved] = new_q
    extra.setdefault(keep, set()).update(moved)
    return True


def relocate_vertices(
    points: np.ndarray,
    cells: np.ndarray,
    cell_tags: np.ndarray,
    threshold: float,
    quality: Callable[[np.ndarray, np.ndarray], np.ndarray] = min_dihedral_angles,
) -> tuple[np.ndarray, int]:
    """Move free vertices of cells below ``threshold`` to improve their worst cell.

    A vertex is free when no boundary face (used by one cell) and no face
    between cells of different ``cell_tags`` holds it: moving it changes
    neither the box nor an interface. Each free vertex of a bad cell is tried
    at points between its position and the centroid of its star (smart
    Laplacian smoothing) and kept where the smallest ``quality`` of its star
    is highest, if that beats the current one. Collapses cannot fix a cell
    whose edges are all long enough (a needle pressed against an interface);
    this can. Returns the new points and the number of vertices moved.
    """
    points = points.copy()
    faces, face_of, count = _unique_faces(cells)
    tag = np.repeat(cell_tags, 4)
    tmin = np.full(len(faces), np.iinfo(np.int64).max)
    tmax = np.full(len(faces), np.iinfo(np.int64).min)
    np.minimum.at(tmin, face_of.ravel(), tag)
    np.maximum.at(tmax, face_of.ravel(), tag)
    fixed_face = faces[(count == 1) | (tmin != tmax)]
    free = np.ones(len(points), dtype=bool)
    free[fixed_face.ravel()] = False
    q = quality(points, cells)
    bad = np.flatnonzero(q < threshold)
    if not len(bad):
        return points, 0
    corder = np.argsort(cells.ravel(), kind="stable")
    starts = np.searchsorted(cells.ravel()[corder], np.arange(len(points) + 1))
    moved = 0
    for c in bad[np.argsort(q[bad])]:
        for v in cells[c]:
            if not free[v]:
                continue
            star = corder[starts[v] : starts[v + 1]] // 4
            current = float(quality(points, cells[star]).min())
            if current >= threshold:
                continue
            home = points[v].copy()
            ring = np.unique(cells[star])
            target = points[ring[ring != v]].mean(axis=0)
            best, best_q = None, current
            for t in (0.2, 0.4, 0.6, 0.8, 1.0):
                points[v] = home + t * (target - home)
                vq = quality(points, cells[star])
                if np.all(signed_volumes(points, cells[star]) > 0) and vq.min() > best_q:
                    best, best_q = points[v].copy(), float(vq.min())
            points[v] = home if best is None else best
            moved += best is not None
    log.debug("slivers: %d vertices relocated", moved)
    return points, moved
