"""Conformal cutting of a tetrahedral mesh by the zero set of a level set ("warp then cut").

One cut splits every tetrahedron crossed by the zero set of a piecewise
linear function ``f`` into tetrahedra on its positive and negative side.
Vertices closer to the zero set than a fraction ``alpha`` of an edge are
first moved onto it (warped, as in isosurface stuffing: Labelle and
Shewchuk, *ACM Trans. Graph.* 26 (2007) 57), or, where they may not move
(box faces, earlier interfaces), the zero set is moved onto them (their
value is set to zero). Either way no cut point lies within ``alpha`` of a
vertex, which is what keeps tiny pieces and slivers out.

Conformity: the cut points are shared per global edge, and every quadrilateral
a cut leaves on a tetrahedron face is split through its vertex of smallest
global index, the same rule on both sides of the face. Each piece (a convex
polytope with at most six vertices) is then triangulated by pulling from its
smallest vertex, which honours that rule on every face (Dompierre et al.,
*Proc. 8th Int. Meshing Roundtable* (1999) 195). The 81 sign patterns of a
tetrahedron are tabulated once, from reference geometry, and applied to all
tetrahedra of a pattern at once.
"""

from __future__ import annotations

import functools
import itertools
import logging
from dataclasses import dataclass

import numpy as np
from scipy.spatial import ConvexHull

from tomofem.meshing.lattice import orient_positive, signed_volumes

log = logging.getLogger(__name__)

_EDGES = np.array([(0, 1), (0, 2), (0, 3), (1, 2), (1, 3), (2, 3)])
_FACES = ((1, 2, 3), (0, 2, 3), (0, 1, 3), (0, 1, 2))


def _polygon_order(ref: np.ndarray, ids: list[int]) -> list[int]:
    """Cyclic order of the coplanar convex polygon with vertices ``ids``."""
    p = ref[ids]
    c = p.mean(axis=0)
    n = np.cross(p[1] - p[0], p[2] - p[0])
    if np.linalg.norm(n) < 1e-12:  # first three collinear: find another normal
        for k in range(3, len(ids)):
            n = np.cross(p[1] - p[0], p[k] - p[0])
            if np.linalg.norm(n) > 1e-12:
                break
    u = p[0] - c
    v = np.cross(n, u)
    ang = np.arctan2((p - c) @ v, (p - c) @ u)
    return [ids[i] for i in np.argsort(ang)]


def _piece_tets(ref: np.ndarray, pts: list[int], faces: list[list[int]]) -> list[tuple]:
    """Triangulate a convex piece by pulling from its smallest vertex."""
    apex = min(pts)
    tets = []
    for face in faces:
        if apex in face:
            continue
        ring = _polygon_order(ref, face)
        m = ring.index(min(ring))
        ring = ring[m:] + ring[:m]  # fan from the polygon's smallest vertex
        for a, b in itertools.pairwise(ring[1:]):
            tets.append((apex, ring[0], a, b))
    return tets


@functools.cache
def _case_table() -> tuple[tuple[tuple[tuple[int, int, int, int], int], ...], ...]:
    """For each of the 81 sign patterns, the output tets (local ids 0..9) and their side.

    Local ids 0..3 are the tetrahedron's vertices sorted by global index, 4..9
    the cut points of the edges ``_EDGES``. The case code is
    ``sum((s_i + 1) * 3**i)`` for signs ``s_i`` in {-1, 0, 1}.
    """
    ref = np.array([[0.0, 0.0, 0.0], [1.0, 0.1, 0.0], [0.3, 1.0, 0.1], [0.2, 0.3, 1.0]])
    table = []
    for code in range(81):
        s = [(code // 3**i) % 3 - 1 for i in range(4)]
        pts_ref = np.zeros((10, 3))
        pts_ref[:4] = ref
        cuts = []
        for e, (a, b) in enumerate(_EDGES):
            if s[a] * s[b] < 0:
                cuts.append(4 + e)
                pts_ref[4 + e] = 0.5 * (ref[a] + ref[b])  # values are +-1: midpoint
        if not cuts:  # whole tet on one side; all-zero counts as positive
            side = -1 if max(s) == 0 and min(s) < 0 else 1
            table.append((((0, 1, 2, 3), side),))
            continue
        out = []
        for side in (1, -1):
            own = [i for i in range(4) if s[i] in (side, 0)]
            pts = own + cuts
            faces = []
            for f in _FACES:
                fp = [i for i in f if s[i] in (side, 0)]
                fp += [
                    4 + e for e, (a, b) in enumerate(_EDGES) if 4 + e in cuts and a in f and b in f
                ]
                if len(fp) >= 3:
                    faces.append(fp)
            cutface = [i for i in range(4) if s[i] == 0] + cuts
            if len(cutface) >= 3:
                faces.append(cutface)
            tets = _piece_tets(pts_ref, pts, faces)
            # the pieces must tile the tet: check the volume of this side
            vol = sum(abs(np.linalg.det(pts_ref[list(t[1:])] - pts_ref[t[0]])) for t in tets)
            hull = ConvexHull(pts_ref[pts])
            if abs(vol / 6.0 - hull.volume) > 1e-12:
                raise RuntimeError(f"cut table: case {s} side {side} does not tile its piece")
            out.extend((t, side) for t in tets)
        table.append(tuple(out))
    return tuple(table)


@functools.cache
def _case_arrays() -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Return the case table as arrays: per case, tets (T, 4) of local ids and sides (T,)."""
    tets, sides = [], []
    for entries in _case_table():
        tets.append(np.array([t for t, _ in entries], dtype=np.int64).reshape(-1, 4))
        sides.append(np.array([s for _, s in entries], dtype=np.int8))
    return tets, sides


@dataclass(frozen=True)
class CutResult:
    """Outcome of one level-set cut.

    Attributes
    ----------
    points
        Vertex coordinates after warping, with the cut points appended (N', 3).
    cells
        Positively oriented tetrahedra (M', 4).
    parent
        Index of the input tetrahedron each output one came from (M',).
    side
        +1 where the level set is positive on the cell, -1 where negative (M',).
    on_surface
        True for vertices on the zero set (cut points, warped or snapped vertices) (N',).
    moved, snapped
        Numbers of vertices moved onto the zero set, and of vertices whose
        value was set to zero in place.
    edges
        The two input vertices (smaller index first) of the edge each cut
        point was placed on, shape (N' - N, 2).
    """

    points: np.ndarray
    cells: np.ndarray
    parent: np.ndarray
    side: np.ndarray
    on_surface: np.ndarray
    moved: int
    snapped: int
    edges: np.ndarray | None = None


def _unique_inverse(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sorted unique values of an int64 array and the index of each entry in them."""
    order = np.argsort(keys, kind="stable")
    ks = keys[order]
    first = np.r_[True, ks[1:] != ks[:-1]] if len(ks) else np.zeros(0, dtype=bool)
    inv = np.empty(len(keys), dtype=np.int64)
    inv[order] = np.cumsum(first) - 1
    return ks[first], inv


def unique_edges(cells: np.ndarray) -> np.ndarray:
    """Return the unique edges (E, 2) of a tetrahedral mesh, each with the smaller index first."""
    e = np.sort(cells[:, _EDGES].reshape(-1, 2), axis=1).astype(np.int64)
    n = int(cells.max()) + 1
    key = np.sort(e[:, 0] * n + e[:, 1])
    key = key[np.r_[True, key[1:] != key[:-1]]]
    return np.stack([key // n, key % n], axis=1)


def cut(
    points: np.ndarray,
    cells: np.ndarray,
    values: np.ndarray,
    alpha: float,
    movable: np.ndarray,
    box: np.ndarray,
    frozen: np.ndarray | None = None,
) -> CutResult:
    """Warp then cut a tetrahedral mesh by the zero set of the vertex values ``values``.

    Parameters
    ----------
    points, cells
        The mesh.
    values
        Level-set value at each vertex; the cut follows its linear interpolant.
    alpha
        Warp threshold as a fraction of an edge: a vertex whose nearest cut
        point lies closer than ``alpha`` of the edge length is put on the zero
        set. Larger values give fewer slivers but move the surface more (up
        to ``alpha`` of an edge where the vertex may not move).
    movable
        Vertices allowed to move (False for vertices on earlier interfaces,
        which must stay on them). Vertices on box faces move only within them.
    box
        Lower and upper box corners (2, 3).
    frozen
        Vertices that neither move nor have their value zeroed here (default
        none): vertices on a face shared with another process's block, whose
        cut must depend only on the values both sides hold
        (:mod:`tomofem.meshing.distributed` zeroes them beforehand by a rule
        both sides agree on).
    """
    points = points.copy()
    f = np.asarray(values, dtype=float).copy()
    n = len(points)
    # int32 vertex indices where they fit: every (cells, k) array below halves
    idx_t = np.int32 if n + 6 * len(cells) < 2**31 else np.int64
    cells = cells.astype(idx_t, copy=False)
    # only cells with both signs hold crossing edges
    sgn = np.sign(f).astype(np.int8)[cells]
    straddle = (sgn.max(axis=1) > 0) & (sgn.min(axis=1) < 0)
    del sgn
    edges = unique_edges(cells[straddle]) if straddle.any() else np.zeros((0, 2), np.int64)
    fa, fb = f[edges[:, 0]], f[edges[:, 1]]
    crossing = fa * fb < 0
    ea, eb = edges[crossing, 0], edges[crossing, 1]
    t = fa[crossing] / (fa[crossing] - fb[crossing])  # from a towards b
    # candidate moves: (vertex, target vertex, fraction along the edge)
    vert = np.r_[ea, eb]
    other = np.r_[eb, ea]
    frac = np.r_[t, 1.0 - t]
    near = frac < alpha
    if frozen is not None:
        near &= ~frozen[vert]
    vert, other, frac = vert[near], other[near], frac[near]
    # the closest cut point per vertex wins
    order = np.lexsort((frac, vert))
    vert, other, frac = vert[order], other[order], frac[order]
    first = np.r_[True, vert[1:] != vert[:-1]] if len(vert) else np.zeros(0, bool)
    vert, other, frac = vert[first], other[first], frac[first]
    # box constraint: a vertex on a box plane may only move within that plane
    tol = 1e-9 * float(np.linalg.norm(box[1] - box[0]))
    d = points[other] - points[vert]
    on_plane = (np.abs(points[vert][:, None, :] - box[None, 0, :]) <= tol) | (
        np.abs(points[vert][:, None, :] - box[None, 1, :]) <= tol
    )
    leaves = np.any(on_plane[:, 0, :] & (np.abs(d) > tol), axis=1)
    can_move = movable[vert] & ~leaves
    original = points.copy()
    points[vert[can_move]] += frac[can_move, None] * d[can_move]
    # a move may invert a neighbouring cell: undo the moves of its vertices
    # (their value is still zeroed below, so the surface comes to them instead)
    star = np.zeros(n, dtype=bool)
    star[vert[can_move]] = True
    near_cells = cells[star[cells].any(axis=1)]
    for _ in range(10):
        bad = signed_volumes(points, near_cells) <= 0
        if not bad.any():
            break
        back = np.unique(near_cells[bad])
        points[back] = original[back]
        can_move &= ~np.isin(vert, back)
    f[vert] = 0.0
    on_surface = np.zeros(n, dtype=bool)
    on_surface[vert] = True
    moved, snapped = int(can_move.sum()), int((~can_move).sum())

    # cut points of edges that still cross
    s = np.sign(f).astype(np.int8)
    sgn = s[cells]
    mixed = (sgn.max(axis=1) > 0) & (sgn.min(axis=1) < 0)
    whole_side = np.where(sgn.max(axis=1) > 0, 1, np.where(sgn.min(axis=1) < 0, -1, 1))
    del sgn
    srt = np.sort(cells[mixed], axis=1)  # only the cells that are split
    sc = s[srt].astype(np.int64)
    code = (sc[:, 0] + 1) + 3 * (sc[:, 1] + 1) + 9 * (sc[:, 2] + 1) + 27 * (sc[:, 3] + 1)
    del sc
    le = srt[:, _EDGES]  # (K, 6, 2), smaller global index first
    lc = (s[le[..., 0]] * s[le[..., 1]]) < 0
    keys = le[..., 0][lc].astype(np.int64) * n + le[..., 1][lc]
    ukeys, inv = _unique_inverse(keys)
    a, b = ukeys // n, ukeys % n
    ta = f[a] / (f[a] - f[b])
    cut_pts = points[a] + ta[:, None] * (points[b] - points[a])
    local = np.full((int(mixed.sum()), 10), -1, dtype=idx_t)
    local[:, :4] = srt
    del srt, le, keys
    edge_ids = np.full(lc.shape, -1, dtype=idx_t)
    edge_ids[lc] = n + inv
    local[:, 4:] = edge_ids

    new_points = np.concatenate([points, cut_pts])
    on_surface = np.r_[on_surface, np.ones(len(cut_pts), dtype=bool)]

    tets_of, sides_of = _case_arrays()
    out_cells = [cells[~mixed]]
    out_side = [whole_side[~mixed].astype(np.int8)]
    out_parent = [np.flatnonzero(~mixed)]
    mixed_idx = np.flatnonzero(mixed)
    mcode = code
    for c in np.unique(mcode):
        sel = mcode == c
        loc = local[sel]
        tt = tets_of[c]
        out_cells.append(loc[:, tt].reshape(-1, 4))
        out_side.append(np.tile(sides_of[c], int(sel.sum())))
        out_parent.append(np.repeat(mixed_idx[sel], len(tt)))
    out_cells[1:] = [orient_positive(new_points, c) for c in out_cells[1:]]
    new_cells = np.concatenate(out_cells)
    return CutResult(
        points=new_points,
        cells=new_cells,
        parent=np.concatenate(out_parent),
        side=np.concatenate(out_side),
        on_surface=on_surface,
        moved=moved,
        snapped=snapped,
        edges=np.stack([a, b], axis=1),
    )
