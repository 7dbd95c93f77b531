"""Benchmark: 1C discharge of pore-resolved NMC811 half cells, serial and on 2 ranks.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python bench/discharge.py --cases syn64 --nprocs 1,2
    OMP_NUM_THREADS=1 .venv/bin/python bench/discharge.py --cases syn100,real100 --max-steps 20
    OMP_NUM_THREADS=1 .venv/bin/python bench/discharge.py --cases real100,syn100 --nprocs 2 \
        --repeat 3 --cache <dir>    # medians of three runs back to back

Cases: ``syn64`` / ``syn100`` — overlapping spheres (radius 6 voxels, porosity
0.45) meshed with :func:`tomofem.meshing.mesh_image`; ``real100`` — the
[78:178]^3 crop of ``../shared/data/electrode.tiff`` (three phases, CBD lumped
into the electrolyte). 1 voxel = 1 µm, collector on x-min, Li-metal counter
electrode on x-max, Valøen-Reimers electrolyte, Chen 2020 NMC811, start at
SOC 1, 1C to the set's cut-off (3.561 V, the OCP at 0 % SOC) or until the
capacity is used up (``--max-steps`` caps long cases; the result says so).
Meshes use the level-set route (the surface-nets-gmsh route fails on these
packings after minutes, see bench/results/meshing*.json). ``real<n>`` is the
[78:78+n]^3 crop (``real40`` is the crop of tests and of
bench/discharge_fieldsplit_study.py).

Sweep (``--sweep``): one cycle per C-rate on the first ``--nprocs`` count of ranks
(real100's direct solve needs more than 6.5 GiB on one rank: use ``--nprocs 2``) — CC discharge to
``--cutoff`` (default 3.0 V), a 600 s rest, CC charge to ``--v-max`` (4.3 V), CV
at 4.3 V until the current tapers to C/20 (at most 2 h) — on ``demo`` (the mesh
of examples/discharge.toml: 32^3 sphere packing, 0.5 µm voxels, reservoir
counter electrode, 5.8k unknowns) and/or ``real100``. Per protocol step:
simulated time, Newton and Krylov iterations, rejected steps, charge passed,
how it ended; per run: CPU and wall time, peak memory. Written with the common
schema (bench/_record.py) to ``bench/results/discharge_sweep.json``::

    OMP_NUM_THREADS=1 .venv/bin/python bench/discharge.py --sweep --cases demo \
        --c-rates 0.1,0.5,1,2,5

Each (case, ranks) runs as ``/usr/bin/time -v mpirun -n N python bench/discharge.py
--worker ...`` so peak memory is measured for the solve alone; the mesh is built
once per case and cached in a temporary folder (never committed: the real crop
is derived data). Reported: wall time (total, and of the time loop), accepted /
rejected steps, Newton iterations per step, Krylov iterations per Newton
iteration, DOFs, capacity, final voltage, stop reason, peak RSS (largest
process, from ``time -v``). Results merge into ``bench/results/discharge.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))
DATA = Path(os.environ.get("TOMOFEM_SHARED_DATA", REPO.parent / "shared" / "data"))
OUT = REPO / "bench" / "results" / "discharge.json"
MARK = "DISCHARGE_BENCH:"


def demo_tetmesh():
    """The tetrahedral mesh examples/discharge.toml builds (its segment and mesh stages)."""
    from dataclasses import replace

    from tomofem._fenics import MPI
    from tomofem.config import load_config
    from tomofem.pipeline import run

    cfg = load_config(REPO / "examples" / "discharge.toml")
    return run(replace(cfg, stages=["segment", "mesh"]), comm=MPI.COMM_SELF).outputs["tetmesh"]


def labels_of(case: str) -> np.ndarray:
    from tomofem.image.synthetic import random_overlapping_spheres

    if case.startswith("syn"):
        n = int(case[3:])
        solid = random_overlapping_spheres(n, porosity=0.45, radius=6.0, seed=1)
        return solid.astype(np.int8)
    if case.startswith("real"):
        from tomofem.image.io import load_electrode

        n = int(case[4:])
        lab = load_electrode(DATA / "electrode.tiff").data
        return np.ascontiguousarray(lab[78 : 78 + n, 78 : 78 + n, 78 : 78 + n]).astype(np.int8)
    raise SystemExit(f"unknown case {case!r}")


def build_mesh(case: str, cache: Path) -> dict:
    from tomofem.meshing import mesh_image

    t = time.perf_counter()
    from tomofem.meshing.options import MeshOptions

    if case == "demo":
        tm = demo_tetmesh()
    else:
        tm = mesh_image(labels_of(case), options=MeshOptions(routes=("levelset",)))
    path = cache / f"{case}.npz"
    np.savez(path, points=tm.points, cells=tm.cells, cell_tags=tm.cell_tags,
             facets=tm.facets, facet_tags=tm.facet_tags, box=tm.box)  # fmt: skip
    return {
        "mesh_file": str(path),
        "mesh_time_s": time.perf_counter() - t,
        "cells": len(tm.cells),
        "vertices": len(tm.points),
        "route": tm.route,
    }


def _log_steps(path: str, comm) -> None:
    """Rank 0 logs every step (INFO) to ``path``: progress of a long run, readable while it runs."""
    if comm.rank == 0:
        import logging

        logging.basicConfig(
            filename=path, level=logging.INFO, format="%(asctime)s %(name)s %(message)s"
        )


def worker(args) -> None:
    from _record import REVISION

    from tomofem._fenics import MPI, PETSc
    from tomofem.materials import half_cell
    from tomofem.meshing import TetMesh, to_dolfinx
    from tomofem.problems.electrochem import HalfCellConfig
    from tomofem.solvers.discharge import Protocol, SolverOptions, run_half_cell

    comm = MPI.COMM_WORLD
    _log_steps(args.mesh_file + f".np{comm.size}.log", comm)
    t0 = time.perf_counter()
    tm = None
    if comm.rank == 0:
        z = np.load(args.mesh_file)
        tm = TetMesh(
            z["points"], z["cells"], z["cell_tags"], z["facets"], z["facet_tags"], z["box"]
        )
    dm = to_dolfinx(tm, comm)
    opts = SolverOptions(
        linear=args.linear,
        max_steps=args.max_steps,
        max_soc_step=args.max_soc_step,
        extrapolate=not args.no_extrapolate,
    )
    cfg = HalfCellConfig(length_scale=1e-6, counter="lithium")
    PETSc.Log.begin()
    c0 = time.process_time()
    res = run_half_cell(dm, half_cell(), Protocol.discharge(args.c_rate, args.cutoff), cfg, opts)
    cpu = comm.gather(time.process_time() - c0)
    # wall seconds per rank inside PETSc events: residual and Jacobian assembly (the
    # SNES callbacks) against the linear solve (KSPSolve includes the factorisations)
    events = {
        k: comm.gather(PETSc.Log.Event(e).getPerfInfo()["time"])
        for k, e in (
            ("residual_assembly_s", "SNESFunctionEval"),
            ("jacobian_assembly_s", "SNESJacobianEval"),
            ("linear_solve_s", "KSPSolve"),
            ("factorisation_s", "MatLUFactorNum"),
        )
    }
    s = res.series
    newton = int(np.sum(s["newton_iterations"]))
    krylov = int(np.sum(s["krylov_iterations"]))
    out = {
        "wall_time_s": time.perf_counter() - t0,
        "loop_time_s": res.wall_time_s,
        "steps_accepted": res.steps_accepted,
        "steps_rejected": res.steps_rejected,
        "newton_per_step": newton / max(res.steps_accepted, 1),
        "krylov_per_newton": krylov / max(newton, 1),
        "dofs": res.dofs,
        "particles": res.n_particles,
        "capacity_mAh": res.capacity_mAh,
        "capacity_fraction_of_nominal": res.capacity_mAh / (res.one_c_current_A / 3.6 * 3600),
        "final_voltage_V": s["voltage"][-1],
        "simulated_time_s": s["time"][-1],
        "stop_reason": res.stop_reason,
        "max_steps": args.max_steps,
        "step_ends": res.step_ends,
        "max_soc_step": args.max_soc_step,
        "newton_per_step_max": int(np.max(s["newton_iterations"][1:])) if newton else 0,
        "linear": args.linear,
        "linear_used": opts.resolved_linear(res.dofs),
        "extrapolate": opts.extrapolate,
        "git_revision": REVISION,  # rows of one record may come from several
        "ranks": comm.size,
        "voltage_every_5_steps": s["voltage"][::5],
        "cpu_s_per_rank_loop": cpu,
        "petsc_event_wall_s_per_rank": events,
    }
    if comm.rank == 0:
        print(MARK + json.dumps(out), flush=True)


def sweep_worker(args) -> None:
    """One cycle (CC discharge, rest, CC charge, CV) at ``args.c_rate``; prints a JSON line."""
    from _record import REVISION

    from tomofem._fenics import MPI
    from tomofem.materials import half_cell
    from tomofem.meshing import TetMesh, to_dolfinx
    from tomofem.problems.electrochem import HalfCellConfig
    from tomofem.solvers.discharge import Protocol, SolverOptions, Step, run_half_cell
    from tomofem.solvers.timestepping import StepControl

    comm = MPI.COMM_WORLD
    _log_steps(args.mesh_file + f".sweep{args.c_rate:g}C.np{comm.size}.log", comm)
    z = np.load(args.mesh_file)
    tm = TetMesh(z["points"], z["cells"], z["cell_tags"], z["facets"], z["facet_tags"], z["box"])
    dm = to_dolfinx(tm if comm.rank == 0 else None, comm)
    demo = "demo" in Path(args.mesh_file).stem
    cfg = HalfCellConfig(length_scale=1e-6, counter="reservoir" if demo else "lithium")
    cutoff = 3.0 if args.cutoff is None else args.cutoff
    rate = args.c_rate
    proto = Protocol(
        (
            Step("current", rate, until_voltage=cutoff),
            Step("rest", duration=600.0),
            Step("current", -rate, until_voltage=args.v_max),
            Step("voltage", args.v_max, until_c_rate=0.05, duration=7200.0),
        ),
        1.0,
    )
    # dt_max 3600 s: max_soc_step alone sets the resolution (100 steps per full discharge
    # at every rate; the default 60 s cap made 0.1C take 600 steps per half cycle)
    opts = SolverOptions(
        max_soc_step=args.max_soc_step,
        control=StepControl(dt_max=3600.0),
        extrapolate=not args.no_extrapolate,
    )
    c0 = time.process_time()
    res = run_half_cell(dm, half_cell(), proto, cfg, opts)
    cpu = comm.allreduce(time.process_time() - c0)
    s = {k: np.asarray(v) for k, v in res.series.items()}
    names = ("CC discharge", "rest", "CC charge", "CV")
    steps = []
    for i, name in enumerate(names):
        rows = np.flatnonzero(s["step"][1:] == i) + 1
        if len(rows) == 0:
            steps.append({"step": name, "reached": False})
            continue
        before = rows[0] - 1
        steps.append(
            {
                "step": name,
                "reached": True,
                "accepted_steps": len(rows),
                "duration_s": float(s["time"][rows[-1]] - s["time"][before]),
                "newton": int(s["newton_iterations"][rows].sum()),
                "krylov": int(s["krylov_iterations"][rows].sum()),
                "charge_mAh": float(s["capacity"][rows[-1]] - s["capacity"][before]),
                "voltage_end_V": float(s["voltage"][rows[-1]]),
                "ended": next((e for e in res.step_ends if e.startswith(f"step {i}:")), None),
            }
        )
    newton = int(s["newton_iterations"].sum())
    out = {
        "case": Path(args.mesh_file).stem,
        "c_rate": rate,
        "dofs": res.dofs,
        "cutoff_V": cutoff,
        "v_max_V": args.v_max,
        "stop_reason": res.stop_reason,
        "cutoff_reached": any(e == f"step 0: cut-off voltage {cutoff} V" for e in res.step_ends),
        "completed": res.stop_reason == "protocol complete",
        "dt_min_stop": res.stop_reason.startswith("step below dt_min"),
        "discharge_capacity_fraction": steps[0].get("charge_mAh", 0.0)
        / (res.one_c_current_A / 3.6 * 3600),
        "steps_accepted": res.steps_accepted,
        "steps_rejected": res.steps_rejected,
        "newton": newton,
        "krylov": int(s["krylov_iterations"].sum()),
        "loop_wall_s": res.wall_time_s,
        "cpu_s_all_ranks": cpu,
        "cpu_s_per_newton": cpu / max(newton, 1),
        "protocol_steps": steps,
        "ranks": comm.size,
        "extrapolate": opts.extrapolate,
        "git_revision": REVISION,  # rows of one record may come from several
    }
    if comm.rank == 0:
        print(MARK + json.dumps(out), flush=True)


def sweep(args) -> None:
    """Run the cycle at every rate of ``--c-rates`` on every case; record the results."""
    from _record import record

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.cache or tmp)
        cache.mkdir(parents=True, exist_ok=True)
        for case in args.cases.split(","):
            if case.startswith("real") and not (DATA / "electrode.tiff").exists():
                print(f"skip {case}: {DATA / 'electrode.tiff'} absent")
                continue
            cached = cache / f"{case}.npz"
            mesh = {"mesh_file": str(cached)} if cached.exists() else build_mesh(case, cache)
            for rate in (float(r) for r in args.c_rates.split(",")):
                ranks = int(args.nprocs.split(",")[0])
                mpi = [str(Path(sys.executable).parent / "mpirun"), "-n", str(ranks)]
                cmd = ["nice", "-n", "5", "/usr/bin/time", "-v", *(mpi if ranks > 1 else []),
                       sys.executable, __file__, "--sweep-worker", "--mesh-file", mesh["mesh_file"],
                       "--c-rate", str(rate), "--max-soc-step", str(args.max_soc_step),
                       "--v-max", str(args.v_max)]  # fmt: skip
                if args.no_extrapolate:
                    cmd.append("--no-extrapolate")
                if args.cutoff is not None:
                    cmd += ["--cutoff", str(args.cutoff)]
                t0 = time.perf_counter()
                env = dict(os.environ, OMP_NUM_THREADS="1")
                proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
                line = [x for x in proc.stdout.splitlines() if x.startswith(MARK)]
                if proc.returncode != 0 or not line:
                    r = {"case": case, "c_rate": rate, "failed": proc.stderr[-1500:]}
                else:
                    r = json.loads(line[0][len(MARK) :])
                rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
                r["peak_rss_MB"] = int(rss.group(1)) / 1024 if rss else None
                r["wall_s"] = time.perf_counter() - t0
                r["load_average_1min_after"] = os.getloadavg()[0]
                print(json.dumps({k: v for k, v in r.items() if k != "protocol_steps"}), flush=True)
                # merge with rows another sweep process (other rates) recorded meanwhile
                path = REPO / "bench" / "results" / "discharge_sweep.json"
                old = json.loads(path.read_text())["results"] if path.exists() else []
                rows = [x for x in old if (x.get("case"), x.get("c_rate")) != (r["case"], rate)]
                rows.append(r)
                rows.sort(key=lambda x: (str(x.get("case")), float(x.get("c_rate", 0.0))))
                record("discharge_sweep", rows)


def run_case(case: str, nprocs: int, mesh: dict, args) -> dict:
    cmd = ["nice", "-n", "5", "/usr/bin/time", "-v", str(Path(sys.executable).parent / "mpirun"),
           "-n", str(nprocs),
           sys.executable, __file__, "--worker", "--mesh-file", mesh["mesh_file"],
           "--linear", args.linear, "--max-steps", str(args.max_steps),
           "--c-rate", str(args.c_rate), "--max-soc-step", str(args.max_soc_step)]  # fmt: skip
    if args.cutoff is not None:
        cmd += ["--cutoff", str(args.cutoff)]
    if args.no_extrapolate:
        cmd.append("--no-extrapolate")
    if args.mem_limit_gb:  # per process: fail this run, not a neighbour's, when memory runs out
        cmd = ["prlimit", f"--as={int(args.mem_limit_gb * 2**30)}", *cmd]
    load_before = os.getloadavg()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    line = [x for x in proc.stdout.splitlines() if x.startswith(MARK)]
    if proc.returncode != 0 or not line:  # recorded as measured, e.g. killed for memory
        tail = [x for x in proc.stderr.splitlines() if "signal" in x or "Error" in x][-3:]
        wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", proc.stderr)
        res = {
            "failed": f"exit status {proc.returncode}: " + " | ".join(tail),
            "elapsed_before_failure": wall.group(1) if wall else None,
            "linear": args.linear,
            "ranks": nprocs,
            "max_steps": args.max_steps,
            "extrapolate": not args.no_extrapolate,
        }
    else:
        res = json.loads(line[0][len(MARK) :])
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr)
    res["peak_rss_MB_largest_process"] = int(rss.group(1)) / 1024 if rss else None
    # CPU seconds of all ranks (user + system): less sensitive than wall time to a
    # machine shared with other jobs (the load average is recorded too).
    cpu = [re.search(rf"{k} time \(seconds\): ([0-9.]+)", proc.stderr) for k in ("User", "System")]
    res["cpu_time_s_all_ranks"] = sum(float(m.group(1)) for m in cpu if m)
    res.update({k: mesh[k] for k in ("cells", "vertices", "mesh_time_s", "route")})
    res["case"] = case
    res["load_average_1min"] = os.getloadavg()[0]
    res["load_average_15min_before_after"] = [load_before[2], os.getloadavg()[2]]
    res["date"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    return res


TIMES = ("wall_time_s", "loop_time_s", "cpu_time_s_all_ranks", "peak_rss_MB_largest_process")


def repeated(case: str, nprocs: int, mesh: dict, args) -> dict:
    """Run a case ``--repeat`` times back to back; the row is the median run plus all runs.

    The row's own fields are those of the run with the median loop time; ``runs`` keeps
    every run's times, counts and capacity, and ``median`` the medians of :data:`TIMES`.
    """
    runs = [run_case(case, nprocs, mesh, args) for _ in range(args.repeat)]
    failed = [r for r in runs if "failed" in r]
    if args.repeat == 1 or failed:
        return runs[0] if args.repeat == 1 else {**failed[0], "runs": runs}
    order = sorted(range(len(runs)), key=lambda i: runs[i]["loop_time_s"])
    row = dict(runs[order[len(runs) // 2]])
    keep = (*TIMES, "steps_accepted", "newton_per_step", "krylov_per_newton", "capacity_mAh",
            "load_average_1min", "date")  # fmt: skip
    row["runs"] = [{k: r.get(k) for k in keep} for r in runs]
    row["median"] = {k: float(np.median([r[k] for r in runs])) for k in TIMES}
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default="syn64")
    ap.add_argument("--nprocs", default="1,2")
    ap.add_argument(
        "--linear",
        default="auto",
        choices=["auto", "direct", "salt-fieldsplit", "fieldsplit", "fieldsplit-coupled"],
    )
    ap.add_argument("--max-steps", type=int, default=100000)
    ap.add_argument("--c-rate", type=float, default=1.0)
    ap.add_argument("--cutoff", type=float, default=None, help="V; default: the set's")
    ap.add_argument("--max-soc-step", type=float, default=0.01)
    ap.add_argument("--mem-limit-gb", type=float, default=0.0, help="address space per process")
    ap.add_argument("--worker", action="store_true")
    ap.add_argument("--sweep", action="store_true", help="cycle at every --c-rates rate")
    ap.add_argument("--sweep-worker", action="store_true")
    ap.add_argument("--c-rates", default="0.1,0.5,1,2,5")
    ap.add_argument("--v-max", type=float, default=4.3, help="V: CC-charge end and CV hold")
    ap.add_argument("--mesh-file")
    ap.add_argument(
        "--no-extrapolate", action="store_true", help="Newton starts from the last state"
    )
    ap.add_argument("--cache", help="keep meshes (and worker logs) here instead of a temp folder")
    ap.add_argument("--repeat", type=int, default=1, help="runs per case and rank count")
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return
    if args.sweep_worker:
        sweep_worker(args)
        return
    if args.sweep:
        sweep(args)
        return
    from _record import record

    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(args.cache or tmp)
        cache.mkdir(parents=True, exist_ok=True)
        for case in args.cases.split(","):
            if case.startswith("real") and not (DATA / "electrode.tiff").exists():
                print(f"skip {case}: {DATA / 'electrode.tiff'} absent")
                continue
            cached = cache / f"{case}.npz"
            if args.cache and cached.exists():
                z = np.load(cached)
                mesh = {
                    "mesh_file": str(cached),
                    "mesh_time_s": float("nan"),
                    "cells": len(z["cells"]),
                    "vertices": len(z["points"]),
                    "route": "cached",
                }
            else:
                mesh = build_mesh(case, cache)
            for n in (int(v) for v in args.nprocs.split(",")):
                r = repeated(case, n, mesh, args)
                print(json.dumps({k: v for k, v in r.items() if k != "voltage_every_5_steps"}))
                # re-read: another bench process may have written meanwhile
                old = json.loads(OUT.read_text())["results"] if OUT.exists() else []

                def key(x):
                    return x["case"], x["ranks"], x["linear"], x.get("extrapolate", False)

                rows = [x for x in old if key(x) != key(r)] + [r]
                record("discharge", rows, ranks=n)


if __name__ == "__main__":
    main()
