"""Interior-facet integration data between two groups of cells, with fixed side order.

DOLFINx integrates an interior facet over the pair ``(cell0, local_facet0,
cell1, local_facet1)`` and calls the first cell's side ``"+"``. For an interface
between two groups of cells (solid and electrolyte, or two phases of a cell
problem) we build these quadruples ourselves so that the first group's cell
always comes first: :data:`FIRST_SIDE` is ``"+"`` here and nowhere else, and
the restrictions below are the only way the rest of tomofem restricts interface
quantities. Every physics that couples submeshes across an interface
(electrochemistry, contact resistance in homogenization) uses this module.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

FIRST_SIDE = "+"
"""Restriction of the first group's cell of every interface facet."""
SECOND_SIDE = "-"
"""Restriction of the second group's cell of every interface facet."""
SOLID_SIDE = FIRST_SIDE
"""Restriction of the solid (first) cell of every solid-electrolyte facet."""
ELECTROLYTE_SIDE = SECOND_SIDE
"""Restriction of the electrolyte (second) cell of every solid-electrolyte facet."""


def on_solid(expr):
    """``expr`` evaluated on the solid side of the interface."""
    return expr(SOLID_SIDE)


def on_electrolyte(expr):
    """``expr`` evaluated on the electrolyte side of the interface."""
    return expr(ELECTROLYTE_SIDE)


def phase_sides(a: int, b: int) -> dict[int, str]:
    """Restriction of each phase on the facets of :func:`phase_interface_data` ``(a, b)``."""
    return {a: FIRST_SIDE, b: SECOND_SIDE}


def phase_interface_data(
    mesh, cell_phase: npt.NDArray[np.integer], a: int, b: int
) -> npt.NDArray[np.int32]:
    """Integration entities of the facets between phases ``a`` and ``b``, ``a`` first.

    Parameters
    ----------
    mesh
        Parent ``dolfinx.mesh.Mesh`` (shared-facet ghosting).
    cell_phase
        Phase tag of every local cell (owned and ghost).
    a, b
        The two phases; ``a``'s cells are on :data:`FIRST_SIDE`
        (:func:`phase_sides`).
    """
    return interface_integration_data(mesh, cell_phase == a, cell_phase == b)


def interface_integration_data(
    mesh, solid: npt.NDArray[np.bool_], electrolyte: npt.NDArray[np.bool_]
) -> npt.NDArray[np.int32]:
    """Integration entities of the facets between ``solid`` and ``electrolyte`` cells.

    Parameters
    ----------
    mesh
        Parent ``dolfinx.mesh.Mesh``; needs shared-facet ghosting so that both
        cells of each owned facet are on the rank.
    solid, electrolyte
        Boolean per local cell (owned and ghost) marking the two groups.

    Returns
    -------
    numpy.ndarray
        Flat int32 array ``[c_s, lf_s, c_e, lf_e, ...]`` over the facets owned
        by this rank, solid cell first (the ``"+"`` side).
    """
    tdim = mesh.topology.dim
    mesh.topology.create_connectivity(tdim - 1, tdim)
    mesh.topology.create_connectivity(tdim, tdim - 1)
    f2c = mesh.topology.connectivity(tdim - 1, tdim)
    c2f = mesh.topology.connectivity(tdim, tdim - 1)
    n_owned = mesh.topology.index_map(tdim - 1).size_local
    offsets = f2c.offsets[: n_owned + 1]
    counts = np.diff(offsets)
    facets = np.flatnonzero(counts == 2)
    pair = np.stack([f2c.array[offsets[facets]], f2c.array[offsets[facets] + 1]], axis=1)
    s0, s1 = solid[pair[:, 0]], solid[pair[:, 1]]
    e0, e1 = electrolyte[pair[:, 0]], electrolyte[pair[:, 1]]
    keep = (s0 & e1) | (s1 & e0)
    facets, pair = facets[keep], pair[keep]
    swap = ~solid[pair[:, 0]]
    pair[swap] = pair[swap][:, ::-1]
    n_per_cell = c2f.offsets[1] - c2f.offsets[0]
    cf = c2f.array.reshape(-1, n_per_cell)
    lf0 = np.argmax(cf[pair[:, 0]] == facets[:, None], axis=1)
    lf1 = np.argmax(cf[pair[:, 1]] == facets[:, None], axis=1)
    return np.stack([pair[:, 0], lf0, pair[:, 1], lf1], axis=1).astype(np.int32).ravel()
