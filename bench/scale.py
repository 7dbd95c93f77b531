"""Benchmark: a 1M-DOF tortuosity solve against DOLFINx's own plain-Poisson floor.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 .venv/bin/mpirun -n 2 .venv/bin/python bench/scale.py
    OMP_NUM_THREADS=1 .venv/bin/mpirun -n 2 .venv/bin/python bench/scale.py --study gamg
    OMP_NUM_THREADS=1 .venv/bin/mpirun -n 2 .venv/bin/python bench/scale.py --study rtol

The mesh is DOLFINx's own ``create_box`` (``n^3`` hexahedra, 6 tetrahedra each,
built in parallel, so the bench measures solves, not mesh distribution), its
cells tagged from a seeded overlapping-sphere packing (porosity 0.4, radius 6
voxels) by cell midpoints. With ``n = 100`` there are ``101^3 = 1.03M``
vertices.

``solve`` (default): per repeat, in the same run and on the same mesh,

* ``tortuosity``: :func:`tomofem.homogenization.tortuosity.tortuosity_fem`
  along x with both phases conducting (contrast 100, every vertex a DOF: the
  set-up of ``bench/results/tortuosity_perf_np2.json``) and its stage timings;
* ``tortuosity_pore``: the pore phase alone (submesh, percolation, tau);
* ``tensor``: the Dirichlet tensor (three load cases, one operator);
* ``floor``: a plain DOLFINx Poisson problem on the same mesh, ``u = 1`` / ``0``
  on the faces normal to x, unit conductivity, CG + GAMG with PETSc's
  defaults (no options but ``ksp_type cg``, ``pc_type gamg`` and the same rtol),
  timed as assembly, PC set-up and solve.

Medians over ``--repeats`` warm runs (the first run, with form compilation,
is dropped); the ratio tortuosity / floor is formed per repeat, then the
median taken. Peak resident memory per rank from ``getrusage``.

``gamg``: PC set-up, solve and iterations of the tortuosity solve for several
GAMG option sets, contrast 100 and 1e4 and a 3-phase case. ``rtol``: k_eff,
the flux mismatch and iterations against ``ksp_rtol``, the error taken
against an rtol = 1e-12 solve.

Results: ``bench/results/scale_<study>_np<ranks>.json`` (bench/_record.py schema).
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from _record import record  # noqa: E402

from tomofem._fenics import MPI, PETSc, dolfinx, ufl  # noqa: E402
from tomofem.homogenization.tensor import effective_tensor  # noqa: E402
from tomofem.homogenization.tortuosity import tortuosity_fem  # noqa: E402
from tomofem.image.synthetic import add_binder, random_overlapping_spheres  # noqa: E402
from tomofem.solvers.presets import conduction_cg_gamg  # noqa: E402
from tomofem.tags import Phase  # noqa: E402

PORE, SOLID, CBD = int(Phase.PORE), int(Phase.ACTIVE), int(Phase.CBD)


def box_mesh(comm, n: int, phases: int = 2, seed: int = 1):
    """``create_box`` of ``n^3`` voxels with cells tagged from a sphere packing."""
    labels = None
    if comm.rank == 0:
        labels = random_overlapping_spheres(n, 0.4, 6.0, seed=seed)
        if phases == 3:
            labels = add_binder(labels, 0.1, 2.0)
    labels = comm.bcast(labels, root=0)
    msh = dolfinx.mesh.create_box(
        comm, [np.zeros(3), np.full(3, float(n))], [n, n, n], dolfinx.mesh.CellType.tetrahedron
    )
    tdim = msh.topology.dim
    imap = msh.topology.index_map(tdim)
    cells = np.arange(imap.size_local + imap.num_ghosts, dtype=np.int32)
    mid = dolfinx.mesh.compute_midpoints(msh, tdim, cells)
    ijk = np.clip(np.floor(mid).astype(np.int64), 0, n - 1)
    vals = labels[ijk[:, 0], ijk[:, 1], ijk[:, 2]].astype(np.int32) + 1
    ct = dolfinx.mesh.meshtags(msh, tdim, cells, vals)
    return msh, ct


def floor(msh, rtol: float) -> dict:
    """Plain DOLFINx Poisson, CG + default GAMG: assembly, PC set-up, solve [s]."""
    comm = msh.comm
    t = {}
    t0 = time.perf_counter()
    V = dolfinx.fem.functionspace(msh, ("Lagrange", 1))
    tdim = msh.topology.dim
    msh.topology.create_connectivity(tdim - 1, tdim)
    lo, hi = 0.0, float(np.max(comm.allreduce(msh.geometry.x[:, 0].max(), op=MPI.MAX)))
    f_lo = dolfinx.mesh.locate_entities_boundary(msh, tdim - 1, lambda x: np.isclose(x[0], lo))
    f_hi = dolfinx.mesh.locate_entities_boundary(msh, tdim - 1, lambda x: np.isclose(x[0], hi))
    bcs = [
        dolfinx.fem.dirichletbc(
            PETSc.ScalarType(1.0), dolfinx.fem.locate_dofs_topological(V, 2, f_lo), V
        ),
        dolfinx.fem.dirichletbc(
            PETSc.ScalarType(0.0), dolfinx.fem.locate_dofs_topological(V, 2, f_hi), V
        ),
    ]
    u, v = ufl.TrialFunction(V), ufl.TestFunction(V)
    a = dolfinx.fem.form(ufl.inner(ufl.grad(u), ufl.grad(v)) * ufl.dx)
    L = dolfinx.fem.form(dolfinx.fem.Constant(msh, PETSc.ScalarType(0.0)) * v * ufl.dx)
    A = dolfinx.fem.petsc.assemble_matrix(a, bcs=bcs)
    A.assemble()
    b = dolfinx.fem.petsc.assemble_vector(L)
    dolfinx.fem.petsc.apply_lifting(b, [a], bcs=[bcs])
    b.ghostUpdate(addv=PETSc.InsertMode.ADD, mode=PETSc.ScatterMode.REVERSE)
    dolfinx.fem.petsc.set_bc(b, bcs)
    t["assemble"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    ksp = PETSc.KSP().create(comm)
    ksp.setOperators(A)
    ksp.setType("cg")
    ksp.getPC().setType("gamg")
    ksp.setTolerances(rtol=rtol)
    ksp.setUp()
    t["pc_setup"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    uh = dolfinx.fem.Function(V)
    ksp.solve(b, uh.x.petsc_vec)
    t["solve"] = time.perf_counter() - t0
    t["iterations"] = ksp.getIterationNumber()
    t["unknowns"] = V.dofmap.index_map.size_global
    for obj in (ksp, A, b):
        obj.destroy()
    return t


def _timed(comm, fn, *args, **kwargs):
    """``fn(*args, **kwargs)`` and its wall time between barriers."""
    comm.Barrier()
    t0 = time.perf_counter()
    out = fn(*args, **kwargs)
    comm.Barrier()
    return out, time.perf_counter() - t0


def peak_mb_per_rank(comm) -> list[float]:
    return comm.gather(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, root=0)


def study_solve(comm, args) -> dict:
    from tomofem.homogenization.tortuosity import clear_cache

    msh, ct = box_mesh(comm, args.n)
    both = {PORE: 1.0, SOLID: 0.01}
    runs = []
    for _ in range(args.repeats + 1):
        clear_cache()  # every repeat starts cold: submesh, clusters, matrix, hierarchy
        r, tt = _timed(comm, tortuosity_fem, msh, ct, both, 0, check=False)
        r1, tt1 = _timed(comm, tortuosity_fem, msh, ct, both, 1, check=False)
        rp, tp = _timed(comm, tortuosity_fem, msh, ct, {PORE: 1.0}, 0, check=False)
        rt, tt3 = _timed(comm, effective_tensor, msh, ct, both, "dirichlet", check=False)
        fl, tf = _timed(comm, floor, msh, 1e-6)
        runs.append(
            {
                "tortuosity": {
                    "total_s": tt,
                    **r.timings,
                    "iterations": r.iterations,
                    "unknowns": r.unknowns,
                    "k_eff": r.k_eff,
                    "flux_mismatch": abs(r.flux_in - r.flux_out) / abs(r.flux_in),
                },
                "tortuosity_next_axis": {
                    "total_s": tt1,
                    **r1.timings,
                    "iterations": r1.iterations,
                    "k_eff": r1.k_eff,
                },
                "tortuosity_pore": {
                    "total_s": tp,
                    **rp.timings,
                    "iterations": rp.iterations,
                    "unknowns": rp.unknowns,
                    "tau": rp.tau,
                },
                "tensor": {
                    "total_s": tt3,
                    **rt.timings,
                    "iterations": rt.iterations,
                    "unknowns": rt.unknowns,
                    "K_diag": np.diag(rt.array).tolist(),
                },
                "floor": {"total_s": tf, **fl},
            }
        )
        if comm.rank == 0:
            print({k: round(v["total_s"], 2) for k, v in runs[-1].items()}, flush=True)
    warm = runs[1:]
    med = {}
    for case in warm[0]:
        med[case] = {
            k: statistics.median(w[case][k] for w in warm)
            for k, v in warm[0][case].items()
            if isinstance(v, (int, float))
        }
    fsum = lambda w: w["floor"]["assemble"] + w["floor"]["pc_setup"] + w["floor"]["solve"]  # noqa: E731
    stages = lambda c: c["assemble"] + c["pc_setup"] + c["solve"]  # noqa: E731
    med["ratio_tortuosity_total_to_floor"] = statistics.median(
        w["tortuosity"]["total_s"] / fsum(w) for w in warm
    )
    med["ratio_tortuosity_assemble_setup_solve_to_floor"] = statistics.median(
        stages(w["tortuosity"]) / fsum(w) for w in warm
    )
    med["ratio_next_axis_total_to_floor"] = statistics.median(
        w["tortuosity_next_axis"]["total_s"] / fsum(w) for w in warm
    )
    med["floor_assemble_setup_solve_s"] = statistics.median(fsum(w) for w in warm)
    return {"n": args.n, "first_run_incl_jit": runs[0], "median_s": med, "runs": warm}


def gamg_presets(rtol: float) -> dict[str, dict]:
    """Option sets compared by ``--study gamg`` (all CG, same tolerances)."""
    base = {
        "ksp_type": "cg",
        "ksp_rtol": rtol,
        "ksp_atol": 1e-14,
        "ksp_max_it": 1000,
        "ksp_divtol": 1e30,
        "ksp_norm_type": "unpreconditioned",
        "pc_type": "gamg",
    }
    old = {
        "pc_gamg_type": "agg",
        "pc_gamg_threshold": 0.02,
        "pc_gamg_square_graph": 1,
        "mg_levels_ksp_type": "chebyshev",
        "mg_levels_ksp_max_it": 2,
        "mg_levels_pc_type": "jacobi",
        "mg_coarse_ksp_type": "preonly",
        "mg_coarse_pc_type": "lu",
    }
    return {
        "previous_preset": {**base, **old},
        "petsc_default": dict(base),
        "default_sor": {**base, "mg_levels_pc_type": "sor"},
        "default_no_aggressive": {**base, "pc_gamg_aggressive_coarsening": 0},
        "default_thr0.01": {**base, "pc_gamg_threshold": 0.01},
        "default_cheb3": {**base, "mg_levels_ksp_max_it": 3},
        "tomofem_preset": conduction_cg_gamg(rtol=rtol),
    }


def study_gamg(comm, args) -> dict:
    from tomofem.homogenization.tortuosity import clear_cache

    cases = {
        "2phase_c1e2": (args.n, 2, {PORE: 1.0, SOLID: 1e-2}),
        "2phase_c1e4": (args.n_small, 2, {PORE: 1.0, SOLID: 1e-4}),
        "3phase": (args.n_small, 3, {PORE: 1.0, SOLID: 1e-1, CBD: 1e-3}),
        "pore_only": (args.n_small, 2, {PORE: 1.0}),
    }
    out: dict = {}
    meshes: dict = {}
    for case, (n, phases, ks) in cases.items():
        if (n, phases) not in meshes:
            meshes.clear()
            clear_cache()
            meshes[(n, phases)] = box_mesh(comm, n, phases)
        msh, ct = meshes[(n, phases)]
        out[case] = {"n": n}
        for name, opts in gamg_presets(args.rtol).items():
            rows = []
            for _ in range(args.repeats + 1):
                clear_cache()
                kw = {"petsc_options": opts, "check": False}
                r, tt = _timed(comm, tortuosity_fem, msh, ct, ks, 0, **kw)
                # a second axis on the same operator: the reused hierarchy
                r1 = tortuosity_fem(msh, ct, ks, 1, **kw)
                rows.append(
                    {
                        "pc_setup": r.timings["pc_setup"],
                        "solve": r.timings["solve"],
                        "iterations": r.iterations,
                        "k_eff": r.k_eff,
                        "total_s": tt,
                        "axis1_pc_setup": r1.timings["pc_setup"],
                        "axis1_solve": r1.timings["solve"],
                        "axis1_iterations": r1.iterations,
                        "unknowns": r.unknowns,
                    }
                )
            warm = rows[1:] or rows  # forms are compiled once, by the first preset
            out[case][name] = {k: statistics.median(w[k] for w in warm) for k in warm[0]}
            if comm.rank == 0:
                print(case, name, {k: round(v, 3) for k, v in out[case][name].items()}, flush=True)
    return {"rtol": args.rtol, "cases": out}


def study_rtol(comm, args) -> dict:
    """k_eff and flux mismatch against ksp_rtol (flux_tol off), and the P1 discretisation error."""
    from tomofem.homogenization.tortuosity import clear_cache

    out: dict = {}
    msh, ct = box_mesh(comm, args.n)
    for name, ks in (("2phase_c1e2", {PORE: 1.0, SOLID: 1e-2}), ("pore_only", {PORE: 1.0})):
        ref = tortuosity_fem(
            msh, ct, ks, 0, petsc_options=conduction_cg_gamg(rtol=1e-12), check=False, flux_tol=1.0
        )
        rows = {}
        for rtol in (1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-10):
            clear_cache()
            opts = conduction_cg_gamg(rtol=rtol)
            r = tortuosity_fem(msh, ct, ks, 0, check=False, flux_tol=1.0, petsc_options=opts)
            rows[f"{rtol:g}"] = {
                "k_eff_rel_error": abs(r.k_eff / ref.k_eff - 1),
                "flux_mismatch": r.flux_mismatch,
                "iterations": r.iterations,
                "solve_s": r.timings["solve"],
            }
            if comm.rank == 0:
                print(name, rtol, rows[f"{rtol:g}"], flush=True)
        out[name] = {"k_eff_reference": ref.k_eff, "by_rtol": rows}
    # Discretisation error of P1 on the small box: P1 against P2 on the same mesh.
    clear_cache()
    msh, ct = box_mesh(comm, args.n_small)
    for name, ks in (("2phase_c1e2", {PORE: 1.0, SOLID: 1e-2}), ("pore_only", {PORE: 1.0})):
        tight = conduction_cg_gamg(rtol=1e-10)
        p1 = tortuosity_fem(msh, ct, ks, 0, petsc_options=tight, check=False)
        p2 = tortuosity_fem(msh, ct, ks, 0, degree=2, petsc_options=tight, check=False)
        out[name][f"p1_vs_p2_rel_difference_n{args.n_small}"] = abs(p1.k_eff / p2.k_eff - 1)
        if comm.rank == 0:
            print(name, "P1 vs P2", abs(p1.k_eff / p2.k_eff - 1), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", choices=["solve", "gamg", "rtol"], default="solve")
    ap.add_argument("--n", type=int, default=100, help="voxels per box edge (n^3 hexes)")
    ap.add_argument("--n-small", type=int, default=50, help="box edge of the robustness cases")
    ap.add_argument("--rtol", type=float, default=1e-6, help="ksp_rtol of --study gamg")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", default="", help="suffix of the result file name")
    args = ap.parse_args()
    comm = MPI.COMM_WORLD
    res = {"solve": study_solve, "gamg": study_gamg, "rtol": study_rtol}[args.study](comm, args)
    peaks = peak_mb_per_rank(comm)
    if comm.rank == 0:
        res["peak_rss_mb_per_rank"] = peaks
        suffix = f"_{args.out}" if args.out else ""
        path = record(f"scale_{args.study}_np{comm.size}{suffix}", res, ranks=comm.size)
        print(path)


if __name__ == "__main__":
    main()
