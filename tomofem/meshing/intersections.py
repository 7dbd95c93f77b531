"""Find pairs of triangles of a surface that cross each other.

A tetrahedral mesher needs a surface without self-intersections: gmsh's
Delaunay stops with "PLC Error: A segment and a facet intersect" and HXT with
"HXT 3D mesh failed". A remeshed surface can cross itself where two sheets lie
closer than the edge length (a pore throat one voxel wide between particles).
Finding the crossing triangles lets the mesher repair them or name where the
input is too thin, instead of failing inside gmsh.

Broad phase: triangle pairs whose bounding spheres (centroid, farthest
vertex) overlap, from a k-d tree of centroids. Narrow phase: two triangles
that share no edge intersect when an edge of one crosses the other
(segment-triangle test with signed volumes, vectorised over pairs).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree


def _orient(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Six times the signed volume of the tetrahedra (a, b, c, d), row-wise."""
    return np.einsum("ij,ij->i", np.cross(b - a, c - a), d - a)


def _edge_crosses(p: np.ndarray, q: np.ndarray, tri: np.ndarray) -> np.ndarray:
    """Whether the segments ``p``-``q`` cross the triangles ``tri`` (n, 3, 3), row-wise.

    Proper crossings only: touching configurations (a segment end on the
    triangle's plane, a segment through an edge) count as not crossing.
    """
    a, b, c = tri[:, 0], tri[:, 1], tri[:, 2]
    sp, sq = _orient(a, b, c, p), _orient(a, b, c, q)
    straddle = sp * sq < 0.0
    u, v, w = _orient(p, q, a, b), _orient(p, q, b, c), _orient(p, q, c, a)
    inside = ((u > 0) & (v > 0) & (w > 0)) | ((u < 0) & (v < 0) & (w < 0))
    return straddle & inside


def crossing_pairs(points: np.ndarray, tris: np.ndarray, chunk: int = 2_000_000) -> np.ndarray:
    """Pairs of triangles that cross or fold onto each other, ``(k, 2)`` indices into ``tris``.

    Crossing: the triangles share no edge and an edge of one passes through
    the other. Folded: they share an edge and lie on the same side of it
    within ``1`` degree (:func:`folded_pairs`). Each pair is listed once,
    smaller index first, in lexicographic order.

    Parameters
    ----------
    points
        Vertex coordinates (N, 3).
    tris
        Triangles (T, 3).
    chunk
        Candidate pairs tested at a time (bounds the memory).
    """
    x = points[tris]  # (T, 3, 3)
    cent = x.mean(axis=1)
    rad = np.linalg.norm(x - cent[:, None, :], axis=2).max(axis=1)
    # candidate pairs by size class (radius quantiles), so that a few coarse
    # triangles (box faces) do not widen the search for all the fine ones
    edges = np.unique(np.percentile(rad, [50, 90, 99, 100])) if len(rad) else np.zeros(0)
    cls = np.searchsorted(edges, rad)
    members = [np.flatnonzero(cls == k) for k in range(len(edges))]
    trees = [cKDTree(cent[m]) for m in members]
    pairs = [np.empty((0, 2), dtype=np.int64)]
    for a in range(len(edges)):
        for b in range(a, len(edges)):
            if not len(members[a]) or not len(members[b]):
                continue
            r = float(edges[a] + edges[b])
            if a == b:
                pr = trees[a].query_pairs(r, output_type="ndarray")
                i, j = members[a][pr[:, 0]], members[a][pr[:, 1]]
            else:
                sdm = trees[a].sparse_distance_matrix(trees[b], r, output_type="ndarray")
                i, j = members[a][sdm["i"]], members[b][sdm["j"]]
            pairs.append(np.stack([i, j], axis=1).astype(np.int64))
    pairs = np.concatenate(pairs)
    d = np.linalg.norm(cent[pairs[:, 0]] - cent[pairs[:, 1]], axis=1)
    pairs = pairs[d <= rad[pairs[:, 0]] + rad[pairs[:, 1]]]
    # triangles sharing an edge cannot cross; sharing one vertex they can
    # (the edge opposite it crosses; edges through the shared vertex touch
    # the other's plane there and test as not crossing)
    ta, tb = tris[pairs[:, 0]], tris[pairs[:, 1]]
    shared = (ta[:, :, None] == tb[:, None, :]).sum(axis=(1, 2))
    pairs = pairs[shared < 2]
    # a triangle wholly on one side of the other's plane cannot cross it
    nrm = np.cross(x[:, 1] - x[:, 0], x[:, 2] - x[:, 0])
    hits = [np.empty((0, 2), dtype=np.int64)]
    for s in range(0, len(pairs), chunk):
        pr = pairs[s : s + chunk]
        for u, v in ((0, 1), (1, 0)):
            side = np.einsum("ikj,ij->ik", x[pr[:, u]] - x[pr[:, v], :1], nrm[pr[:, v]])
            pr = pr[(side.min(axis=1) < 0.0) & (side.max(axis=1) > 0.0)]
        xa, xb = x[pr[:, 0]], x[pr[:, 1]]
        hit = np.zeros(len(pr), dtype=bool)
        for i, j in ((0, 1), (1, 2), (2, 0)):
            hit |= _edge_crosses(xa[:, i], xa[:, j], xb)
            hit |= _edge_crosses(xb[:, i], xb[:, j], xa)
        hits.append(pr[hit])
    hits.append(folded_pairs(points, tris))
    out = np.sort(np.concatenate(hits).astype(np.int64), axis=1)
    nt = np.int64(len(tris))
    key = np.unique(out[:, 0] * nt + out[:, 1])
    return np.stack([key // nt, key % nt], axis=1)


def folded_pairs(points: np.ndarray, tris: np.ndarray, tol_deg: float = 1.0) -> np.ndarray:
    """Pairs of triangles sharing an edge whose dihedral angle there is below ``tol_deg``.

    Such triangles overlap (gmsh: "two exactly self-intersecting facets"),
    e.g. an interface triangle lying in a box plane on top of a box-face
    triangle. Edges shared by more than two triangles (curves where three
    phases meet) are tested for every pair. Returns ``(k, 2)`` indices.
    """
    n = np.int64(len(points))
    e = tris[:, [[0, 1], [1, 2], [2, 0]]].reshape(-1, 2).astype(np.int64)
    opp = tris[:, [2, 0, 1]].reshape(-1).astype(np.int64)  # vertex opposite each edge
    tri = np.repeat(np.arange(len(tris)), 3)
    key = e.min(axis=1) * n + e.max(axis=1)
    order = np.argsort(key, kind="stable")
    key, e, opp, tri = key[order], e[order], opp[order], tri[order]
    out = [np.empty((0, 2), dtype=np.int64)]
    for k in range(1, 4):  # up to 4 triangles on one edge
        same = np.flatnonzero(key[k:] == key[:-k])
        if not len(same):
            break
        i, j = same, same + k
        p, q = points[e[i, 0]], points[e[i, 1]]
        d = (q - p) / np.linalg.norm(q - p, axis=1, keepdims=True)
        u, w = points[opp[i]] - p, points[opp[j]] - p
        u -= np.einsum("ij,ij->i", u, d)[:, None] * d
        w -= np.einsum("ij,ij->i", w, d)[:, None] * d
        cos = np.einsum("ij,ij->i", u, w) / np.maximum(
            np.linalg.norm(u, axis=1) * np.linalg.norm(w, axis=1), 1e-300
        )
        fold = cos > np.cos(np.radians(tol_deg))
        out.append(np.stack([tri[i[fold]], tri[j[fold]]], axis=1))
    return np.concatenate(out)
