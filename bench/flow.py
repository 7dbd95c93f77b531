"""Stokes permeability (conformal Taylor-Hood) and the pore network beside the DNS.

Cases:

* ``real``: the real electrode's crop [78:178]^3 (pore = label 0; skipped
  without ../shared/data/electrode.tiff), default level-set mesh (lattice step
  ``--step`` voxels): per-axis pressure-drop permeability (symmetry sides,
  fieldsplit Schur), FEM P1 tortuosity, SNOW2/OpenPNM network tau and K.
* ``truth``: a truth structure of :mod:`tomofem.image.phantoms` (overlapping
  spheres, the accuracy issue's default) meshed exactly
  (:mod:`tomofem.meshing.exact`) for the DNS and imaged at ``--n`` voxels for
  the network.
* ``scaling``: fieldsplit iterations of the periodic SC sphere cell against
  the mesh size (the iteration counts the issue asks for).
* ``real-h``: fieldsplit iterations of the real crop's pressure-drop problem
  along one axis (``--h-axis``) against the lattice step (``--h-steps``).

Run: ``OMP_NUM_THREADS=1 nice -n 10 mpirun -n 2 python bench/flow.py real real-h``
(the network part runs on rank 0 only; it is serial).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import record

from tomofem._fenics import MPI  # loads dolfinx first
from tomofem.homogenization.permeability import permeability_axis, permeability_tensor
from tomofem.homogenization.tortuosity import tortuosity_fem
from tomofem.meshing.tetmesh import to_dolfinx
from tomofem.tags import Phase

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "electrode.tiff"
COMM = MPI.COMM_WORLD


def say(*a) -> None:
    if COMM.rank == 0:
        print(*a, flush=True)


RTOL = [1e-5]


def dns(dm, axes=(0, 1, 2)) -> dict:
    """Per-axis pressure-drop K and P1 tau on a distributed mesh."""
    from tomofem.solvers.presets import stokes_fieldsplit

    out: dict = {"axes": {}, "rtol": RTOL[0]}
    for ax in axes:
        t, c = time.perf_counter(), time.process_time()
        r = permeability_axis(
            dm.mesh, dm.cell_tags, ax, petsc_options=stokes_fieldsplit(rtol=RTOL[0])
        )
        t_k = time.perf_counter() - t
        cpu = COMM.allreduce(time.process_time() - c, op=MPI.MAX)  # the slower rank
        t = time.perf_counter()
        tau = tortuosity_fem(dm.mesh, dm.cell_tags, {int(Phase.PORE): 1.0}, ax)
        t_tau = time.perf_counter() - t
        out["axes"][ax] = {
            "k": r.k(ax),
            "iterations": r.iterations,
            "unknowns": list(r.unknowns),
            "kozeny_carman": r.kozeny_carman[0],
            "flowing_fraction": r.flowing_fraction,
            "hydraulic_tortuosity": r.hydraulic_tortuosity[0],
            "timings": r.timings,
            "wall_k_s": t_k,
            "cpu_k_s_max_rank": cpu,
            "tau_fem_p1": tau.tau,
            "wall_tau_s": t_tau,
        }
        out["porosity"] = r.porosity
        out["specific_surface"] = r.specific_surface
        say(
            f"  axis {ax}: k {r.k(ax):.5g} ({t_k:.1f} s, its {r.iterations}, dofs {r.unknowns}),"
            f" tau {tau.tau:.4f} ({t_tau:.1f} s), T {r.hydraulic_tortuosity[0]:.3f}"
        )
    return out


def network(pore: np.ndarray, drain: bool = False) -> dict | None:
    """SNOW2 + OpenPNM on rank 0 (None elsewhere); with ``drain`` the drainage curve along x."""
    if COMM.rank != 0:
        return None
    from tomofem.homogenization.network import drainage, network_transport

    t = time.perf_counter()
    r, pn, phase = network_transport(pore, 1.0, keep_network=True)
    d = r.to_dict() | {"wall_s": time.perf_counter() - t}
    if drain:  # lengths in voxels: pressures in Pa for a voxel of 1 m; scale by 1/voxel size
        t = time.perf_counter()
        d["drainage_voxel_1m"] = drainage(pn, phase, 0).to_dict()
        d["drainage_wall_s"] = time.perf_counter() - t
    say(
        f"  network: {r.pores} pores, tau {np.round(r.tau, 4).tolist()}, "
        f"K {np.round(r.permeability, 5).tolist()}, {d['wall_s']:.1f} s {r.seconds}"
    )
    return d


def case_real(step: float, axes=(0, 1, 2)) -> dict:
    import tifffile

    from tomofem.meshing.levelset import LevelSetOptions, mesh_levelset

    im = tifffile.imread(DATA)[78:178, 78:178, 78:178]
    lab = np.searchsorted([0, 85, 170], im).astype(np.uint8)
    t = time.perf_counter()
    tm = None
    if COMM.rank == 0:
        tm, _ = mesh_levelset(lab, 1.0, LevelSetOptions(lattice_step=step))
    dm = to_dolfinx(tm, COMM)
    t_mesh = time.perf_counter() - t
    say(f"real crop: mesh {t_mesh:.1f} s (step {step})")
    t = time.perf_counter()
    res = {"mesh_s": t_mesh, "step_voxels": step, "dns": dns(dm, axes)}
    res["dns_wall_s"] = time.perf_counter() - t
    res["permeability_wall_s"] = sum(a["wall_k_s"] for a in res["dns"]["axes"].values())
    res["permeability_cpu_s_max_rank"] = sum(
        a["cpu_k_s_max_rank"] for a in res["dns"]["axes"].values()
    )
    say(
        f"  permeability ({len(axes)} axes): {res['permeability_wall_s']:.1f} s wall, "
        f"{res['permeability_cpu_s_max_rank']:.1f} CPU s on the slower rank"
    )
    res["network"] = network(lab == 0, drain=True)
    return res


def case_real_h(steps: list[float], axis: int) -> dict:
    """Fieldsplit iterations of the real crop's pressure drop along ``axis`` against the step."""
    import tifffile

    from tomofem.meshing.levelset import LevelSetOptions, mesh_levelset
    from tomofem.solvers.presets import stokes_fieldsplit

    im = tifffile.imread(DATA)[78:178, 78:178, 78:178]
    lab = np.searchsorted([0, 85, 170], im).astype(np.uint8)
    rows = []
    for step in steps:
        tm = (
            mesh_levelset(lab, 1.0, LevelSetOptions(lattice_step=step))[0]
            if COMM.rank == 0
            else None
        )
        dm = to_dolfinx(tm, COMM)
        t = time.perf_counter()
        r = permeability_axis(
            dm.mesh, dm.cell_tags, axis, petsc_options=stokes_fieldsplit(rtol=RTOL[0])
        )
        rows.append(
            {
                "step_voxels": step,
                "unknowns": list(r.unknowns),
                "iterations": r.iterations,
                "k": r.k(axis),
                "flowing_fraction": r.flowing_fraction,
                "wall_s": time.perf_counter() - t,
                "timings": r.timings,
            }
        )
        say(f"  real h: step {step}: {r.unknowns} its {r.iterations} k {r.k(axis):.5g}")
    return {"axis": axis, "rtol": RTOL[0], "rows": rows}


def case_truth(n: int, step: float) -> dict:
    from tomofem.image.phantoms import overlapping_spheres
    from tomofem.meshing.exact import mesh_level_sets

    ph = overlapping_spheres(length=0.5)  # the truth page's structure (13 spheres)
    tm = mesh_level_sets(ph.phase_sdf, ph.lengths, step, n_phases=2) if COMM.rank == 0 else None
    dm = to_dolfinx(tm, COMM)
    say(f"truth {ph.name}: exact mesh at step {step}")
    res = {"phantom": ph.name, "step": step, "dns": dns(dm)}
    c = (np.arange(n) + 0.5) / n * ph.lengths[0]
    pts = np.stack(np.meshgrid(c, c, c, indexing="ij"), -1).reshape(-1, 3)
    pore = ph.phase_sdf(pts).argmax(axis=0).reshape(n, n, n) == 0
    net = network(pore)
    if net is not None:  # network lengths in voxels of L/n: K in the DNS's length units
        vox = ph.lengths[0] / n
        net["permeability_box_units"] = [k * vox**2 for k in net["permeability"]]
        net["image_n"] = n
    res["network"] = net
    return res


def case_truth_network(n: int) -> dict | None:
    from tomofem.image.phantoms import overlapping_spheres

    ph = overlapping_spheres(length=0.5)
    c = (np.arange(n) + 0.5) / n * ph.lengths[0]
    pts = np.stack(np.meshgrid(c, c, c, indexing="ij"), -1).reshape(-1, 3)
    net = network(ph.phase_sdf(pts).argmax(axis=0).reshape(n, n, n) == 0)
    if net is not None:
        vox = ph.lengths[0] / n
        net["permeability_box_units"] = [k * vox**2 for k in net["permeability"]]
        net["image_n"] = n
    return net


def case_scaling(steps: list[float]) -> dict:
    from tomofem.image.phantoms import sphere_array
    from tomofem.meshing.exact import mesh_level_sets

    rows = []
    for h in steps:
        ph = sphere_array("sc", 0.216)
        tm = mesh_level_sets(ph.phase_sdf, 1.0, h, n_phases=2) if COMM.rank == 0 else None
        dm = to_dolfinx(tm, COMM)
        t = time.perf_counter()
        r = permeability_tensor(dm.mesh, dm.cell_tags, axes=(0,), solver="fieldsplit")
        rows.append(
            {
                "step": h,
                "unknowns": list(r.unknowns),
                "iterations": r.iterations,
                "k": r.k(0),
                "wall_s": time.perf_counter() - t,
                "timings": r.timings,
            }
        )
        say(f"  scaling h={h}: {r.unknowns} its {r.iterations} {rows[-1]['wall_s']:.1f} s")
    return {"rows": rows}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("cases", nargs="*", default=["real", "truth", "scaling"])
    ap.add_argument("--step", type=float, default=2.5, help="lattice step of the crop [voxels]")
    ap.add_argument("--n", type=int, default=48, help="voxels per edge of the imaged truth")
    ap.add_argument("--truth-step", type=float, default=0.5 / 20)
    ap.add_argument("--scaling-steps", default="0.25,0.167,0.125,0.1")
    ap.add_argument("--out", default="flow")
    ap.add_argument("--axes", default="0,1,2", help="axes of the real crop's DNS")
    ap.add_argument("--rtol", type=float, default=1e-5, help="Stokes FGMRES tolerance")
    ap.add_argument("--h-steps", default="6,5,4,3", help="lattice steps of real-h [voxels]")
    ap.add_argument("--h-axis", type=int, default=2, help="axis of real-h")
    args, _petsc = ap.parse_known_args()  # PETSc options (-tomofem_perm_axis_ksp_monitor) pass
    RTOL[0] = args.rtol
    res = {}
    if "real" in args.cases and DATA.exists():
        res["real-crop100"] = case_real(args.step, [int(a) for a in args.axes.split(",")])
    if "real-h" in args.cases and DATA.exists():
        steps = [float(s) for s in args.h_steps.split(",")]
        res["real-crop100-h"] = case_real_h(steps, args.h_axis)
    if "network" in args.cases:  # the truth structure's network alone (no DNS)
        res["truth-network"] = case_truth_network(args.n)
    if "truth" in args.cases:
        res["truth"] = case_truth(args.n, args.truth_step)
    if "scaling" in args.cases:
        res["scaling"] = case_scaling([float(s) for s in args.scaling_steps.split(",")])
    if COMM.rank == 0:
        print(record(args.out, res, ranks=COMM.size))


if __name__ == "__main__":
    main()
