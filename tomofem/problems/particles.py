"""Connected particles of the active phase on a distributed mesh."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components


def interior_facet_cells(mesh) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Owned interior facets and their two local cells ``(facets, first, second)``."""
    tdim = mesh.topology.dim
    mesh.topology.create_connectivity(tdim - 1, tdim)
    f2c = mesh.topology.connectivity(tdim - 1, tdim)
    nf = mesh.topology.index_map(tdim - 1).size_local
    off = f2c.offsets[: nf + 1]
    two = np.flatnonzero(np.diff(off) == 2)
    return two, f2c.array[off[two]], f2c.array[off[two] + 1]


def particle_labels(mesh, is_active: np.ndarray) -> tuple[np.ndarray, int]:
    """Label of the connected active particle of every local cell (-1 elsewhere).

    Two active cells belong to the same particle when they share a facet. The
    graph is gathered on rank 0 (one edge per facet, cheap next to the solve)
    and the labels broadcast, so every rank agrees on the numbering.

    Returns
    -------
    labels, n_particles
        Label per local cell (owned and ghost), and the global particle count.
    """
    comm = mesh.comm
    tdim = mesh.topology.dim
    _, a, b = interior_facet_cells(mesh)
    keep = is_active[a] & is_active[b]
    cmap = mesh.topology.index_map(tdim)
    n_local = cmap.size_local + cmap.num_ghosts
    glob = cmap.local_to_global(np.arange(n_local, dtype=np.int32))
    edges = np.stack([glob[a[keep]], glob[b[keep]]], axis=1)
    own_active = glob[: cmap.size_local][is_active[: cmap.size_local]]
    all_edges = comm.gather(edges, root=0)
    all_active = comm.gather(own_active, root=0)
    n_glob = cmap.size_global
    if comm.rank == 0:
        e = np.concatenate(all_edges) if all_edges else np.empty((0, 2), np.int64)
        act = np.concatenate(all_active)
        g = sp.coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(n_glob, n_glob))
        _, lab = connected_components(g, directed=False)
        full = np.full(n_glob, -1, dtype=np.int64)
        _, dense = np.unique(lab[act], return_inverse=True)
        full[act] = dense
        n_part = int(dense.max() + 1) if len(dense) else 0
    else:
        full, n_part = None, 0
    full = comm.bcast(full, root=0)
    n_part = comm.bcast(n_part, root=0)
    return full[glob], n_part
