"""Structured background tetrahedral lattices of a box (the canvas a level set cuts).

A lattice fills the box ``[0, L]`` exactly with positively oriented
tetrahedra whose vertices include the box corners, so the box faces are
planes of lattice vertices and stay planar through cutting.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from tomofem.errors import MeshingError

# Corner c of a cube has offsets (c >> 2 & 1, c >> 1 & 1, c & 1); the six Kuhn
# (Freudenthal) tetrahedra share the main diagonal 0-7 and tile the cube so
# that neighbouring cubes match face by face.
_KUHN = np.array(
    [(0, 1, 3, 7), (0, 1, 5, 7), (0, 2, 3, 7), (0, 2, 6, 7), (0, 4, 5, 7), (0, 4, 6, 7)]
)


def signed_volumes(points: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Six times the signed volume of each tetrahedron (cheap orientation test)."""
    p = points[cells]
    return np.einsum("ij,ij->i", p[:, 1] - p[:, 0], np.cross(p[:, 2] - p[:, 0], p[:, 3] - p[:, 0]))


def orient_positive(points: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """Return ``cells`` with rows swapped where needed so every volume is positive."""
    cells = cells.copy()
    flip = signed_volumes(points, cells) < 0
    cells[flip, 1], cells[flip, 2] = cells[flip, 2], cells[flip, 1].copy()
    return cells


def lattice_counts(extent: npt.ArrayLike, step: float) -> np.ndarray:
    """Return lattice intervals per axis giving a spacing as close to ``step`` as fits.

    Parameters
    ----------
    extent
        Box edge lengths, shape (3,).
    step
        Wanted lattice spacing, same unit; the actual spacing per axis is
        ``extent / counts`` (at least one interval per axis).
    """
    extent = np.asarray(extent, dtype=float)
    if not step > 0:
        raise MeshingError(f"lattice: spacing {step} must be positive")
    return np.maximum(np.rint(extent / step).astype(np.int64), 1)


def kuhn_lattice(counts: npt.ArrayLike, extent: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Kuhn (Freudenthal) lattice: each lattice cube split into 6 tetrahedra.

    Parameters
    ----------
    counts
        Number of cubes per axis, shape (3,).
    extent
        Box edge lengths, shape (3,); the lower corner is the origin.

    Returns
    -------
    points, cells
        Vertex coordinates (N, 3) and positively oriented tetrahedra (6 per cube).
        Vertex ``(i, j, k)`` has index ``(i * (ny + 1) + j) * (nz + 1) + k``.
    """
    n = np.asarray(counts, dtype=np.int64)
    h = np.asarray(extent, dtype=float) / n
    axes = [np.arange(m + 1) * hh for m, hh in zip(n, h, strict=True)]
    axes = [np.r_[a[:-1], e] for a, e in zip(axes, np.asarray(extent, dtype=float), strict=True)]
    g = np.meshgrid(*axes, indexing="ij")
    points = np.stack([a.ravel() for a in g], axis=1)
    vid = np.arange(points.shape[0], dtype=np.int64).reshape(tuple(n + 1))
    corners = np.stack(
        [
            vid[i : i + n[0], j : j + n[1], k : k + n[2]].ravel()
            for i in (0, 1)
            for j in (0, 1)
            for k in (0, 1)
        ],
        axis=1,
    )
    cells = corners[:, _KUHN].reshape(-1, 4)
    return points, orient_positive(points, cells)
