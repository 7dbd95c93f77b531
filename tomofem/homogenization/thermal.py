"""Effective thermal properties: conductivity tensor, heat capacity, heat source.

Heat conduction is the same elliptic problem as diffusion, so the effective
thermal conductivity tensor (W m-1 K-1) comes from
:func:`tomofem.homogenization.tensor.effective_tensor` with per-phase
conductivities; the volumetric heat capacity and a homogenized heat source
are volume (and interface-area) averages, exact for a quasi-static RVE
(e.g. Hashin, J. Appl. Mech. 50 (1983) 481, for the averaging rules).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

from tomofem._fenics import MPI, dolfinx, ufl
from tomofem.errors import ConfigError
from tomofem.homogenization.domain import mesh_box, phase_volumes
from tomofem.homogenization.results import TensorResult
from tomofem.homogenization.tensor import effective_tensor
from tomofem.tags import interface_phases


def interface_areas(mesh: dolfinx.mesh.Mesh, facet_tags: dolfinx.mesh.MeshTags) -> dict[int, float]:
    """Global area of each interface tag (``interface_tag(a, b)``, m2), each facet once."""
    tags = sorted(
        {int(t) for t in mesh.comm.allreduce(set(facet_tags.values.tolist()), op=MPI.BOR)}
        & set(range(112, 200))
    )
    dS = ufl.Measure("dS", domain=mesh, subdomain_data=facet_tags)
    one = dolfinx.fem.Constant(mesh, 1.0)
    out = {}
    for t in tags:
        local = dolfinx.fem.assemble_scalar(dolfinx.fem.form(ufl.avg(one) * dS(t)))
        out[t] = float(mesh.comm.allreduce(local, op=MPI.SUM))
    return out


@dataclass(frozen=True)
class ThermalProperties:
    """Homogenized thermal properties of a box.

    Attributes
    ----------
    conductivity
        Effective thermal conductivity tensor result (W m-1 K-1).
    heat_capacity
        Effective volumetric heat capacity ``sum eps_i (rho c_p)_i`` (J m-3 K-1).
    heat_source
        Effective volumetric heat source (W m-3): volume-averaged phase sources plus
        interfacial sources times specific interface area.
    specific_interface_area
        Interface area per box volume for each interface tag (m-1).
    fractions
        Volume fraction of each phase tag.
    """

    conductivity: TensorResult
    heat_capacity: float
    heat_source: float
    specific_interface_area: dict
    fractions: dict

    def to_dict(self) -> dict:
        """JSON-ready mapping."""
        d = asdict(self)
        d["conductivity"] = self.conductivity.to_dict()
        d["specific_interface_area"] = {str(k): v for k, v in self.specific_interface_area.items()}
        d["fractions"] = {str(k): v for k, v in self.fractions.items()}
        return d


def effective_thermal_properties(
    mesh: dolfinx.mesh.Mesh,
    cell_tags: dolfinx.mesh.MeshTags,
    facet_tags: dolfinx.mesh.MeshTags,
    conductivity: Mapping[int, float],
    rho_cp: Mapping[int, float],
    *,
    volumetric_source: Mapping[int, float] | None = None,
    interfacial_source: Mapping[int, float] | None = None,
    bc: str = "dirichlet",
    degree: int = 1,
) -> ThermalProperties:
    """Effective conductivity tensor, heat capacity and heat source of the box.

    Parameters
    ----------
    conductivity
        ``{phase tag: lambda}`` (W m-1 K-1); every phase conducts heat, so list them all.
    rho_cp
        ``{phase tag: rho c_p}`` (J m-3 K-1) for every phase present.
    volumetric_source
        ``{phase tag: q}`` (W m-3), e.g. Joule heating per phase.
    interfacial_source
        ``{interface tag: q_s}`` (W m-2), e.g. reaction heat on the active surface.
    bc
        Boundary conditions of the tensor (see :mod:`tomofem.homogenization.tensor`).
    """
    vols = phase_volumes(mesh, cell_tags)
    missing = sorted(set(vols) - set(rho_cp))
    if missing:
        raise ConfigError(f"rho_cp has no value for phases {missing} (present: {sorted(vols)})")
    lo, hi = mesh_box(mesh)
    box = float((hi - lo).prod())
    areas = interface_areas(mesh, facet_tags)
    for t in interfacial_source or {}:
        interface_phases(int(t))  # validates the tag
    q = sum(vols.get(int(p), 0.0) * v for p, v in (volumetric_source or {}).items())
    q += sum(areas.get(int(t), 0.0) * v for t, v in (interfacial_source or {}).items())
    return ThermalProperties(
        conductivity=effective_tensor(mesh, cell_tags, conductivity, bc, degree=degree),
        heat_capacity=sum(vols[p] * rho_cp[p] for p in vols) / box,
        heat_source=q / box,
        specific_interface_area={t: a / box for t, a in areas.items()},
        fractions={p: v / box for p, v in vols.items()},
    )
