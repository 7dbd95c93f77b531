"""Particles, primary grains and crystal orientations of the active phase, per mesh cell.

Particles come from the watershed of the distance map of the active phase on
the image (:func:`tomofem.image.metrics.particle_sizes`); each particle may be
split into primary grains (Voronoi cells of seeds drawn inside it); every
grain gets a crystal orientation from a texture. Everything is decided on the
image and the seed, never on the partition, so every rank and every run with
the same seed sees the same grains; mesh cells take the id of the voxel that
contains their midpoint.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from scipy import ndimage
from scipy.spatial import cKDTree
from scipy.spatial.transform import Rotation

from tomofem._fenics import dolfinx
from tomofem.errors import ConfigError


def voronoi_grains(
    particles: npt.NDArray[np.integer], grain_volume: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Split every particle of a label image into Voronoi grains.

    Parameters
    ----------
    particles
        Particle id per voxel (0 = not a particle).
    grain_volume
        Mean grain volume [voxels]: a particle of ``V`` voxels gets
        ``max(1, round(V / grain_volume))`` seeds, drawn among its voxels.
    seed
        Seed of the random generator (record it with the results).

    Returns
    -------
    grains, grain_particle
        Grain id per voxel (0 outside, ids from 1), and the particle of each
        grain (index = grain id; entry 0 unused).
    """
    if grain_volume <= 0:
        raise ConfigError(f"grain_volume = {grain_volume} must be > 0 voxels")
    rng = np.random.default_rng(seed)
    ids = np.asarray(particles)
    flat = ids.ravel()
    order = np.argsort(flat, kind="stable")
    counts = np.bincount(flat)
    starts = np.concatenate([[0], np.cumsum(counts)])
    seeds, owner = [], [0]
    for p in range(1, len(counts)):
        if counts[p] == 0:
            continue
        k = max(1, int(np.rint(counts[p] / grain_volume)))
        pick = rng.choice(counts[p], size=min(k, counts[p]), replace=False)
        seeds.append(order[starts[p] + pick])
        owner.extend([p] * len(pick))
    owner_arr = np.asarray(owner, dtype=np.int64)
    if not seeds:
        return np.zeros_like(ids, dtype=np.int32), owner_arr
    seed_idx = np.concatenate(seeds)
    # A fourth coordinate keeps every voxel with the seeds of its own particle.
    big = 10.0 * float(sum(ids.shape))
    pts = np.stack(np.unravel_index(seed_idx, ids.shape), axis=1).astype(float)
    tree = cKDTree(np.c_[pts, big * owner_arr[1:]])
    vox = np.flatnonzero(flat)
    q = np.stack(np.unravel_index(vox, ids.shape), axis=1).astype(float)
    _, j = tree.query(np.c_[q, big * flat[vox]])
    grains = np.zeros(flat.size, dtype=np.int32)
    grains[vox] = j + 1
    return grains.reshape(ids.shape), owner_arr


def sample_orientations(
    n: int,
    seed: int,
    texture: str = "uniform",
    axis: npt.ArrayLike = (0.0, 0.0, 1.0),
    spread_deg: float = 10.0,
) -> np.ndarray:
    """Crystal-to-sample rotations ``(n, 3, 3)`` from a texture.

    Parameters
    ----------
    texture
        ``"uniform"``: uniformly random (Haar) rotations. ``"fibre"``: the
        crystal c axis (x3) scattered about ``axis`` with a tilt angle drawn
        from a half-normal of scale ``spread_deg``, azimuth and the rotation
        about c uniform.
    seed
        Seed of the generator (record it).
    """
    rng = np.random.default_rng(seed)
    if texture == "uniform":
        return Rotation.random(n, random_state=rng).as_matrix()
    if texture != "fibre":
        raise ConfigError(f"texture={texture!r}: choose 'uniform' or 'fibre'")
    a = np.asarray(axis, dtype=float)
    a = a / np.linalg.norm(a)
    spin = Rotation.from_rotvec(np.c_[np.zeros((n, 2)), rng.uniform(0, 2 * np.pi, n)])
    tilt = np.abs(rng.normal(0.0, np.radians(spread_deg), n))
    phi = rng.uniform(0, 2 * np.pi, n)
    tilt_r = Rotation.from_rotvec(np.c_[np.cos(phi), np.sin(phi), np.zeros(n)] * tilt[:, None])
    to_axis, _ = Rotation.align_vectors([a], [[0.0, 0.0, 1.0]])
    return (to_axis * tilt_r * spin).as_matrix()


def cell_ids(
    mesh: dolfinx.mesh.Mesh,
    active: npt.NDArray[np.bool_],
    image_ids: npt.NDArray[np.integer],
    spacing: float | npt.ArrayLike = 1.0,
) -> np.ndarray:
    """Id of the voxel containing each local cell's midpoint (active cells only, else -1).

    A midpoint in a voxel with id 0 (the mesh interface is not the voxel
    staircase) takes the id of the nearest voxel that has one.
    """
    ids = np.asarray(image_ids)
    h = np.broadcast_to(np.asarray(spacing, dtype=float), (3,))
    tdim = mesh.topology.dim
    n = active.size
    mid = dolfinx.mesh.compute_midpoints(mesh, tdim, np.arange(n, dtype=np.int32))
    ijk = np.clip(np.floor(mid / h).astype(np.int64), 0, np.array(ids.shape) - 1)
    _, nearest = ndimage.distance_transform_edt(ids == 0, return_indices=True)
    filled = ids[tuple(nearest)]
    out = np.full(n, -1, dtype=np.int64)
    sel = np.flatnonzero(active)
    out[sel] = filled[tuple(ijk[sel].T)]
    return out
