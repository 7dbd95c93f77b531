"""Benchmark: tortuosity by voxel FVM vs conformal FEM, SC spheres and the real electrode.

Usage (from the repository root)::

    OMP_NUM_THREADS=1 .venv/bin/python bench/tortuosity.py --study spheres
    OMP_NUM_THREADS=1 /usr/bin/time -v .venv/bin/python bench/tortuosity.py --study electrode

``spheres``: one cell of a simple-cubic array of insulating spheres (radius
0.4, f = 0.268) in a conducting matrix; through-thickness flux along x (equal
to the periodic value by the cell's mirror symmetry). Three discretisations
of the same geometry at several resolutions:

* ``voxel``: voxel FVM on the voxelised sphere (voxel centre inside = solid);
* ``fem-image``: P1 FEM on the conformal mesh that tomofem.meshing builds from
  that same label image (same voxel count as ``voxel``);
* ``fem-gmsh``: P1 FEM on a gmsh mesh of the exact sphere.

Reference: Rayleigh's formula (McPhedran & McKenzie 1978 form), checked
against the Richardson extrapolation of the two finest ``fem-gmsh`` values.
Reported per case: tau, |error| against the reference, unknowns, wall time
(median of ``--repeats``, meshing/voxelisation included), peak RSS.

``electrode``: pore phase of ../shared/data/electrode.tiff along x (first array
axis), voxel FVM with the 6- and 26-connectivity conventions on crops and the
full volume (published: tau_x = 2.0776, TauFactor), plus P1 FEM on level-set
conformal meshes of a central crop over the field smoothing ``sigma`` and the
faithful preset (geometry sensitivity). ``--voxel-crops`` / ``--no-fem`` /
``--out`` select parts, e.g. the FEM sensitivity alone::

    .venv/bin/python bench/tortuosity.py --study electrode --voxel-crops --out fem

Results: bench/results/tortuosity_spheres.json and tortuosity_electrode.json
(atomic writes).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tomofem._fenics import MPI  # noqa: E402
from tomofem.homogenization.tortuosity import tortuosity_fem  # noqa: E402
from tomofem.homogenization.verification import sphere_cell  # noqa: E402
from tomofem.homogenization.voxel_fvm import tortuosity_voxel  # noqa: E402
from tomofem.tags import Phase  # noqa: E402

DATA = Path(os.environ.get("TOMOFEM_SHARED_DATA", REPO.parent / "shared" / "data"))
RESULTS = REPO / "bench" / "results"
RADIUS = 0.4
PORE = int(Phase.PORE)
PUBLISHED_TAU_X = 2.0776  # TauFactor, full 256^3 electrode, pore phase, first axis


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def write_json(obj: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as fh:
        json.dump(obj, fh, indent=1, default=float)
    os.chmod(tmp, 0o644)  # mkstemp creates 0600
    os.replace(tmp, path)


def rayleigh_sc(f: float, alpha: float) -> float:
    b1 = (alpha - 1) / (alpha + 2)
    b3 = (alpha - 1) / (alpha + 4 / 3)
    return 1 + 3 * f / (1 / b1 - f - 1.305 * b3 * f ** (10 / 3))


def sphere_labels(n: int) -> np.ndarray:
    c = (np.arange(n) + 0.5) / n - 0.5
    x, y, z = np.meshgrid(c, c, c, indexing="ij")
    return (x**2 + y**2 + z**2 < RADIUS**2).astype(np.int8)  # 0 pore, 1 solid


def progress(case: dict, keys) -> None:
    """One JSON line per finished case, so a long run shows where it is."""
    print(json.dumps({k: case[k] for k in keys}), flush=True)


def timed(fn, repeats: int):
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times), times


def run_voxel(n: int):
    lab = sphere_labels(n)
    return tortuosity_voxel(lab == 0, 0, voxel_size=1.0 / n, rtol=1e-10)


def run_fem_image(n: int):
    from tomofem.meshing import MeshOptions, mesh_image, to_dolfinx

    # Interface cells of one voxel, growing to 3 away from it: the mesh resolves
    # the image as finely as the voxel solver does (the defaults coarsen to 2.25/8).
    opts = MeshOptions(interface_size=1.0, max_size=3.0)
    tm = mesh_image(sphere_labels(n), 1.0 / n, opts)
    dm = to_dolfinx(tm, MPI.COMM_WORLD)
    return tortuosity_fem(dm.mesh, dm.cell_tags, {PORE: 1.0}, 0)


def run_fem_gmsh(h: float, degree: int = 1):
    mesh, ct, _ = sphere_cell(MPI.COMM_WORLD, RADIUS, h, periodic=False)
    return tortuosity_fem(mesh, ct, {PORE: 1.0}, 0, degree=degree, isotropic=True)


def spheres(args) -> dict:
    f = 4 / 3 * np.pi * RADIUS**3
    k_ray = rayleigh_sc(f, 0.0)
    tau_ray = (1 - f) / k_ray
    cases = []
    series = {
        "voxel": (run_voxel, [16, 24, 32, 48, 64, 96, 128]),
        "fem-image": (run_fem_image, [16, 24, 32, 48]),
        "fem-gmsh": (run_fem_gmsh, [0.1, 0.07, 0.05, 0.035, 0.025, 0.018]),
    }
    if args.quick:
        series = {k: (fn, res[:3]) for k, (fn, res) in series.items()}
    for method, (fn, resolutions) in series.items():
        for res in resolutions:
            reps = args.repeats if method != "voxel" or res <= 64 else 1
            r, t_med, t_all = timed(lambda fn=fn, res=res: fn(res), reps)
            case = {
                "method": method,
                "resolution": res,
                "tau": r.tau,
                "k_eff": r.k_eff,
                "porosity": r.porosity,
                "unknowns": r.unknowns,
                "iterations": r.iterations,
                "flux_mismatch": r.flux_mismatch,
                "wall_s": t_med,
                "wall_s_all": t_all,
                "timings_last": r.timings,
                "peak_rss_mb": rss_mb(),
            }
            cases.append(case)
            progress(case, ("method", "resolution", "tau", "unknowns", "wall_s"))
    gm = [c for c in cases if c["method"] == "fem-gmsh"]
    n1, n2 = gm[-2]["unknowns"], gm[-1]["unknowns"]
    t1, t2 = gm[-2]["tau"], gm[-1]["tau"]
    ratio = (n2 / n1) ** (2 / 3)  # error ~ h^2 ~ N^(-2/3)
    tau_rich = (ratio * t2 - t1) / (ratio - 1)
    for c in cases:
        c["error_vs_rayleigh"] = abs(c["tau"] / tau_ray - 1)
    summary = summarise(cases)
    return {
        "geometry": {"radius": RADIUS, "solid_fraction": f, "cell": 1.0},
        "reference": {
            "tau_rayleigh": tau_ray,
            "k_eff_rayleigh": k_ray,
            "tau_fem_richardson": tau_rich,
            "rayleigh_vs_richardson": abs(tau_rich / tau_ray - 1),
        },
        "cases": cases,
        "summary": summary,
        "machine_note": "2 cores shared with ~5 concurrent sessions; wall times are medians",
    }


def summarise(cases: list[dict]) -> dict:
    """Unknowns and time to reach 0.5 % error, by log-log interpolation per method."""
    out = {}
    for method in sorted({c["method"] for c in cases}):
        cs = sorted((c for c in cases if c["method"] == method), key=lambda c: c["unknowns"])
        n = np.log([c["unknowns"] for c in cs])
        e = np.log([max(c["error_vs_rayleigh"], 1e-12) for c in cs])
        t = np.log([c["wall_s"] for c in cs])
        slope = float(np.polyfit(n, e, 1)[0]) if len(cs) > 1 else float("nan")
        target = np.log(5e-3)
        reach = {}
        below = [i for i in range(len(cs)) if e[i] <= target]
        if below:
            i = below[0]
            if i == 0:
                reach = {
                    "unknowns": cs[0]["unknowns"],
                    "wall_s": cs[0]["wall_s"],
                    "bracketed": False,
                }
            else:
                w = (target - e[i - 1]) / (e[i] - e[i - 1])
                reach = {
                    "unknowns": float(np.exp(n[i - 1] + w * (n[i] - n[i - 1]))),
                    "wall_s": float(np.exp(t[i - 1] + w * (t[i] - t[i - 1]))),
                    "bracketed": True,
                }
        out[method] = {
            "error_slope_vs_unknowns": slope,
            "order_in_h": -3 * slope,
            "to_0.5_percent": reach,
        }
    return out


def electrode(args) -> dict:
    import tifffile

    path = DATA / "electrode.tiff"
    if not path.exists():
        print(f"skip electrode study: {path} not found (set TOMOFEM_SHARED_DATA)")
        return {}
    raw = tifffile.imread(path)
    labels = np.zeros(raw.shape, dtype=np.int8)
    labels[raw == 85], labels[raw == 170] = 1, 2
    cases = []
    sizes = [64, 128] if args.quick else args.voxel_crops
    for n in sizes:
        lo = (256 - n) // 2
        im = labels[lo : lo + n, lo : lo + n, lo : lo + n] == 0
        for conn in (6, 26):
            t0 = time.perf_counter()
            r = tortuosity_voxel(im, 0, connectivity=conn, comm=MPI.COMM_WORLD, rtol=1e-8)
            case = {
                "method": "voxel",
                "crop": n,
                "connectivity": conn,
                **r.to_dict(),
                "wall_s": time.perf_counter() - t0,
                "peak_rss_mb": rss_mb(),
            }
            cases.append(case)
            progress(case, ("crop", "connectivity", "tau", "porosity", "unknowns", "wall_s"))
    if not args.no_fem:
        from tomofem.meshing import to_dolfinx
        from tomofem.meshing.levelset import LevelSetOptions, mesh_levelset

        n = args.fem_crop
        lo = (256 - n) // 2
        two = (labels[lo : lo + n, lo : lo + n, lo : lo + n] > 0).astype(np.int8)
        # Geometry sensitivity: the level-set route's field smoothing (sigma, voxels)
        # and its faithful preset (unsmoothed distances, 1-voxel lattice).
        variants = [("faithful", LevelSetOptions.faithful())]
        variants += [(f"sigma={s}", LevelSetOptions(sigma=s)) for s in args.fem_sigmas]
        for name, opts in variants:
            t0 = time.perf_counter()
            tm, _stats = mesh_levelset(two, 1.0, opts)
            t_mesh = time.perf_counter() - t0
            dm = to_dolfinx(tm, MPI.COMM_WORLD)
            r = tortuosity_fem(dm.mesh, dm.cell_tags, {PORE: 1.0}, 0)
            case = {
                "method": "fem-levelset",
                "crop": n,
                "variant": name,
                **r.to_dict(),
                "mesh_s": t_mesh,
                "wall_s": time.perf_counter() - t0,
                "peak_rss_mb": rss_mb(),
            }
            cases.append(case)
            progress(case, ("crop", "variant", "tau", "porosity", "unknowns", "wall_s"))
    return {"published_tau_x_full": PUBLISHED_TAU_X, "cases": cases}


def perf(args) -> dict:
    """1M-DOF P1 conduction solve on the voxel (Kuhn) mesh of a 100^3 electrode crop."""
    import tifffile

    from tomofem.meshing import structured_tetmesh, to_dolfinx

    comm = MPI.COMM_WORLD
    n = args.perf_crop
    tm = None
    if comm.rank == 0:
        raw = tifffile.imread(DATA / "electrode.tiff")[:n, :n, :n]
        tm = structured_tetmesh((raw > 0).astype(np.int8))
    t0 = time.perf_counter()
    dm = to_dolfinx(tm, comm)
    t_dist = time.perf_counter() - t0
    runs = []
    for _ in range(args.repeats + 1):  # the first run includes form compilation
        comm.Barrier()
        t0 = time.perf_counter()
        # Both phases conduct (contrast 100): every vertex of the box is a DOF.
        r = tortuosity_fem(dm.mesh, dm.cell_tags, {PORE: 1.0, PORE + 1: 0.01}, 0)
        comm.Barrier()
        runs.append({"total_s": time.perf_counter() - t0, **r.timings})
    warm = runs[1:]
    return {
        "ranks": comm.size,
        "crop": n,
        "unknowns": r.unknowns,
        "iterations": r.iterations,
        "k_eff": r.k_eff,
        "distribute_s": t_dist,
        "first_run_incl_jit": runs[0],
        "median_s": {k: statistics.median(x[k] for x in warm) for k in warm[0]},
        "peak_rss_mb_rank0": rss_mb(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--study", choices=["spheres", "electrode", "perf", "all"], default="all")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="few small cases (smoke test)")
    ap.add_argument("--no-fem", action="store_true", help="electrode: voxel FVM only")
    ap.add_argument("--fem-crop", type=int, default=64)
    ap.add_argument("--perf-crop", type=int, default=100)
    ap.add_argument("--voxel-crops", type=int, nargs="*", default=[64, 128, 256])
    ap.add_argument("--fem-sigmas", type=float, nargs="*", default=[0.75, 1.5, 2.5])
    ap.add_argument("--out", default="", help="suffix of the result file name")
    args = ap.parse_args()
    rank0 = MPI.COMM_WORLD.rank == 0
    suffix = ("_quick" if args.quick else "") + (f"_{args.out}" if args.out else "")
    if args.study in ("spheres", "all"):
        res = spheres(args)
        if rank0:
            write_json(res, RESULTS / f"tortuosity_spheres{suffix}.json")
    if args.study == "perf":
        res = perf(args)
        if rank0:
            print(json.dumps(res, indent=1))
            write_json(res, RESULTS / f"tortuosity_perf_np{MPI.COMM_WORLD.size}.json")
    if args.study in ("electrode", "all"):
        res = electrode(args)
        if rank0 and res:
            write_json(res, RESULTS / f"tortuosity_electrode{suffix}.json")


if __name__ == "__main__":
    main()
