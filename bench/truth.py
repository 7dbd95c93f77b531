"""Ground truth for electrode-like microstructures: who is right, voxels or meshes?

Each structure is known exactly (:mod:`tomofem.image.phantoms`). Its truth per
axis comes from conformal meshes of the exact level sets, refined and
Richardson-extrapolated (:func:`tomofem.homogenization.truth.exact_tortuosity`),
never from an image. The structure is then imaged at ``N`` voxels across the
box (partial volumes by supersampling, optionally a Gaussian PSF and noise),
segmented by tomofem's own segmenters (Otsu / multi-Otsu, GMM posterior), and
every method answers from the image:

* ``voxel-fvm6`` / ``voxel-fvm26``: the finite-volume baseline (= TauFactor),
  face-connected and with edge/corner contacts opened;
* ``voxel-lbm``: D3Q19 lattice Boltzmann (TRT) on the same voxels;
* ``fem-levelset-p1/p2``: the level-set route on the labels, defaults;
* ``fem-subvoxel-p1/p2``: the level-set route with interfaces placed from the
  grey values (:mod:`tomofem.meshing.subvoxel`).

Metrics per axis: tau error against the truth, the anisotropy ratio
``tau_z / tau_x`` error, the pore interfacial-area error, cost (unknowns,
seconds). Run::

    OMP_NUM_THREADS=1 .venv/bin/python bench/truth.py            # full table
    OMP_NUM_THREADS=1 .venv/bin/python bench/truth.py --quick    # minutes

and the record goes to ``bench/results/truth.json`` (``truth_quick.json``),
with a Markdown table printed for docs/theory/ground-truth.md.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _record import record

from tomofem._fenics import MPI
from tomofem.homogenization.errorbars import estimate_tau
from tomofem.homogenization.lbm import tortuosity_lbm
from tomofem.homogenization.tortuosity import tortuosity_fem
from tomofem.homogenization.truth import exact_tortuosity, richardson
from tomofem.homogenization.voxel_fvm import tortuosity_voxel
from tomofem.image import phantoms as ph
from tomofem.image.segment import gmm_segment, threshold
from tomofem.meshing.levelset import LevelSetOptions, mesh_levelset
from tomofem.meshing.subvoxel import subvoxel_fields
from tomofem.meshing.tetmesh import to_dolfinx, triangle_areas
from tomofem.tags import Phase

PORE = int(Phase.PORE)
AXES = (0, 1, 2)
#: A finer lattice and lighter smoothing (8x the vertices of the default).
FINE = LevelSetOptions(lattice_step=1.25, sigma=0.75)
#: Imaging conditions: (name, PSF sigma [voxels], SNR, segmentation). Noise-free grey
#: values are cut at the same place by Otsu and GMM; the noisy image uses the GMM posterior.
IMAGING = (("clean", 0.0, None, "otsu"), ("ct", 0.75, 10.0, "gmm"))
#: Defensible alternatives to the default level-set mesh (geometry error bar).
GEOMETRY_VARIANTS = {
    "sigma0.75": LevelSetOptions(sigma=0.75),
    "no-bridge": LevelSetOptions(bridge_pore=False),
}


def structures(quick: bool) -> dict[str, dict]:
    """The truth set: name -> phantom, truth steps, image sizes."""
    sc = {
        "sc-spheres": {
            "phantom": ph.sphere_array("sc", 0.2),
            "steps": [1 / 16, 1 / 24, 1 / 32],
            "sizes": [24, 40] if quick else [24, 40, 80],
            "axes": (0,),
            "exact": ph.sc_sphere_exact(0.2),
        },
    }
    if quick:
        return sc
    out: dict[str, dict] = {}
    # Boxes of a few particles, so that the exact-geometry meshes resolve the
    # 0.02-0.03 wide necks with 1.5-3 lattice steps at the finest level (h = L/64).
    box = 0.5
    steps = [box / 32, box / 48, box / 64]
    axes = (0, 2)  # in-plane and through-thickness (z: the calendering axis)
    sizes = [16, 24, 32]  # voxels across the box: necks 0.7-1, 1-1.5, 1.3-2 voxels
    out["overlapping-spheres"] = {
        "phantom": ph.overlapping_spheres(seed=0, length=box),
        "steps": steps,
        "sizes": sizes,
        "axes": axes,
    }
    out["three-phase"] = {  # the CBD construction needs a box of at least 0.65
        "phantom": ph.three_phase_electrode(seed=0, length=0.7),
        "steps": [0.7 / 32, 0.7 / 48, 0.7 / 64],
        "sizes": [22, 33, 44],
        "axes": axes,
    }
    out["calendered-ellipsoids"] = {
        "phantom": ph.calendered_ellipsoids(seed=0, length=0.8),  # box > 0.75 needed
        "steps": [0.8 / 32, 0.8 / 48, 0.8 / 64],
        "sizes": [24, 36, 48],
        "axes": axes,
    }
    out["laminate-45"] = {
        "phantom": ph.inclined_laminate(),
        "steps": [1 / 24, 1 / 32, 1 / 48],
        "sizes": [32],
        "axes": (0, 2),
    }
    return out | sc


def _seg(grey: np.ndarray, n_phases: int, method: str) -> tuple[np.ndarray, list[float]]:
    """Labels in ascending grey order and the mean grey of each label."""
    if method == "gmm":
        res = gmm_segment(grey, n_phases)
        return res.labels, list(res.means)
    res = threshold(grey, "otsu" if n_phases == 2 else "multiotsu", classes=n_phases)
    lab = res.labels
    return lab, [float(grey[lab == k].mean()) for k in range(n_phases)]


def _pore_label(phantom: ph.Phantom) -> int:
    """Pore is the darkest phase (grey 0) in the imaging model: label 0 after segmentation."""
    return 0


def _fem(tm, axes, degrees, h) -> dict:
    dm = to_dolfinx(tm, MPI.COMM_WORLD)
    out = {}
    pore_ifaces = [t for t in np.unique(tm.facet_tags) if 100 < t < 1000 and (t - 100) // 10 == 1]
    area = float(triangle_areas(tm.points, tm.facets[np.isin(tm.facet_tags, pore_ifaces)]).sum())
    for deg in degrees:
        taus, unk, secs = {}, 0, 0.0
        for ax in axes:
            t0 = time.perf_counter()
            r = tortuosity_fem(dm.mesh, dm.cell_tags, {PORE: 1.0}, ax, degree=deg)
            secs += time.perf_counter() - t0
            taus[ax] = r.tau
            unk = r.unknowns
        out[deg] = {"tau": taus, "unknowns": unk, "solve_s": secs, "pore_area": area}
    return out


def image_methods(grey, phantom, n, seg, h, axes, sigma_sub) -> dict:
    n_ph = phantom.n_phases
    lab, means = _seg(grey, n_ph, seg)
    pore = lab == 0
    res: dict[str, dict] = {}
    for conn in (6, 26):
        t0 = time.perf_counter()
        taus = {ax: tortuosity_voxel(pore, ax, connectivity=conn, voxel_size=h).tau for ax in axes}
        res[f"voxel-fvm{conn}"] = {
            "tau": taus,
            "unknowns": int(pore.sum()),
            "seconds": time.perf_counter() - t0,
        }
    t0 = time.perf_counter()
    try:
        taus = {ax: tortuosity_lbm(pore, ax, voxel_size=h).tau for ax in axes}
        res["voxel-lbm"] = {
            "tau": taus,
            "unknowns": 19 * int(pore.sum()),
            "seconds": time.perf_counter() - t0,
        }
    except Exception as exc:  # recorded, not hidden: the table shows the failure
        res["voxel-lbm"] = {"error": f"{type(exc).__name__}: {exc}"}
    faces = sum(int(np.count_nonzero(np.diff(pore.astype(np.int8), axis=a))) for a in range(3))
    res["voxel-fvm6"]["pore_area"] = faces * h * h
    for name, kw, lopts, degrees in (
        ("levelset", {}, LevelSetOptions(), (1, 2)),
        ("subvoxel", "sub", LevelSetOptions(), (1, 2)),
        ("levelset-fine", {}, FINE, (1,)),
        ("subvoxel-fine", "sub", FINE, (1,)),
    ):
        t0 = time.perf_counter()
        if kw == "sub":
            sf = subvoxel_fields(grey, lab, means, sigma=sigma_sub)
            kw = {"fields": sf.fields, "fractions": sf.fractions}
        try:
            tm, _ = mesh_levelset(lab, h, lopts, **kw)
        except Exception as exc:
            res[f"fem-{name}"] = {"error": f"{type(exc).__name__}: {exc}"}
            continue
        mesh_s = time.perf_counter() - t0
        fem = _fem(tm, axes, degrees, h)
        if name == "levelset":  # geometry variants for the error bar (P1 on each)
            variants = {}
            for vname, vopts in GEOMETRY_VARIANTS.items():
                try:
                    tv, _ = mesh_levelset(lab, h, vopts)
                    variants[vname] = _fem(tv, axes, (1,), h)[1]["tau"]
                except Exception as exc:
                    variants[vname] = {"error": f"{type(exc).__name__}: {exc}"}
            res["levelset-variants"] = variants
        for deg, v in fem.items():
            res[f"fem-{name}-p{deg}"] = {
                "tau": v["tau"],
                "unknowns": v["unknowns"],
                "seconds": mesh_s + v["solve_s"],
                "mesh_s": mesh_s,
                "pore_area": v["pore_area"],
            }
    return res


def run(args) -> dict:
    cases = []
    for name, spec in structures(args.quick).items():
        if args.only and name not in args.only.split(","):
            continue
        phantom = spec["phantom"]
        axes = spec["axes"]
        t0 = time.perf_counter()
        truth = {}
        trs = exact_tortuosity(
            phantom.phase_sdf,
            phantom.lengths,
            phantom.n_phases,
            phase=0,
            axes=axes,
            steps=spec["steps"],
            porosity=(phantom.volume_fractions or [None])[0],
        )
        for ax, tr in trs.items():
            truth[ax] = tr.to_dict()
            print(
                json.dumps(
                    {
                        "structure": name,
                        "axis": ax,
                        "tau_truth": tr.tau,
                        "rel_unc": tr.rel_uncertainty,
                        "order": tr.order_observed,
                        "k_levels": tr.k_levels,
                    }
                ),
                flush=True,
            )
        if "exact" in spec:
            truth["exact_k"] = spec["exact"]
        area = phantom.specific_area * phantom.volume if phantom.specific_area else None
        case = {
            "structure": name,
            "params": {k: v for k, v in phantom.params.items() if k not in ("centres", "contacts")},
            "fractions": phantom.volume_fractions,
            "pore_area_exact": area,
            "truth": truth,
            "truth_seconds": time.perf_counter() - t0,
            "images": [],
        }
        for n in spec["sizes"]:
            h = ph.voxel_size(phantom, n)
            for cond, psf, snr, seg in IMAGING:
                if args.quick and cond == "ct":
                    continue
                grey, _ = ph.image_phantom(phantom, n, supersample=4, psf_sigma=psf, snr=snr)
                sigma_sub = 0.5 if snr is None else 1.0
                t1 = time.perf_counter()
                methods = image_methods(grey, phantom, n, seg, h, axes, sigma_sub)
                img = {
                    "n": n,
                    "condition": cond,
                    "psf_sigma": psf,
                    "snr": snr,
                    "segmentation": seg,
                    "seconds": time.perf_counter() - t1,
                    "methods": methods,
                }
                img["error_bars"] = error_bars(case, img)
                case["images"].append(img)
                print(json.dumps(summary_rows(case, img)), flush=True)
        cases.append(case)
    return {"cases": cases, "table": table(cases)}


def _err(tau: float, truth: float) -> float:
    return tau / truth - 1.0 if math.isfinite(tau) and truth > 0 else math.nan


def error_bars(case: dict, img: dict) -> dict:
    """Recommended tau per axis with its error parts (as the pipeline makes them), and coverage.

    Candidates on the default level-set mesh (P1, P2, voxel FVM), variants:
    the refined mesh (``fem-levelset-fine-p1``, recommended) and the pore's
    diagonal contacts not bridged.
    """
    m = img["methods"]
    if "tau" not in m.get("fem-levelset-p2", {}):
        return {}
    out = {}
    for ax in m["fem-levelset-p2"]["tau"]:
        var = {}
        if "tau" in m.get("fem-levelset-fine-p1", {}):
            var["refined"] = m["fem-levelset-fine-p1"]["tau"][ax]
        nb = m.get("levelset-variants", {}).get("no-bridge", {})
        if isinstance(nb, dict) and ax in nb:
            var["no-bridge"] = nb[ax]
        est = estimate_tau(
            "xyz"[int(ax)],
            {
                "fem-p1": m["fem-levelset-p1"]["tau"][ax],
                "fem-p2": m["fem-levelset-p2"]["tau"][ax],
                "voxel-fvm": m["voxel-fvm6"]["tau"][ax],
            },
            var,
            recommend="refined",
        )
        truth = case["truth"][ax]["tau"]
        d = est.to_dict()
        d["error"] = est.tau - truth
        d["covered"] = bool(abs(est.tau - truth) <= est.total) if math.isfinite(est.total) else None
        out[ax] = d
    return out


def summary_rows(case: dict, img: dict) -> dict:
    truth = case["truth"]
    out = {"structure": case["structure"], "n": img["n"], "cond": img["condition"]}
    for m, v in img["methods"].items():
        if "tau" in v:
            out[m] = {ax: round(100 * _err(t, truth[ax]["tau"]), 3) for ax, t in v["tau"].items()}
    out["bars"] = {
        ax: [
            round(100 * e["discretisation"] / e["tau"], 3),
            round(100 * e["geometry"] / e["tau"], 3),
            e["covered"],
        ]
        for ax, e in img.get("error_bars", {}).items()
    }
    return out


def table(cases: list[dict]) -> str:
    """Markdown: tau error [%] per axis and method, anisotropy error, area error, cost."""
    methods = [
        "voxel-fvm6",
        "voxel-fvm26",
        "voxel-lbm",
        "fem-levelset-p1",
        "fem-levelset-p2",
        "fem-subvoxel-p1",
        "fem-subvoxel-p2",
        "fem-levelset-fine-p1",
        "fem-subvoxel-fine-p1",
    ]
    lines = [
        "| structure | N | image | seg. | truth tau (x, y, z) | " + " | ".join(methods) + " |",
        "|" + "---|" * (5 + len(methods)),
    ]
    for c in cases:
        tr = {k: dict(v) if isinstance(v, dict) else v for k, v in c["truth"].items()}
        axes = [int(a) for a in tr if a != "exact_k"]
        for a in axes:  # the extrapolation's uncertainty as richardson() states it now
            ex = richardson(tr[a]["steps"], tr[a]["k_levels"])
            if ex.value > 0:  # else blocked: tau = inf as recorded
                tr[a]["tau"] = tr[a]["porosity"] / ex.value
                tr[a]["rel_uncertainty"] = ex.uncertainty / ex.value
        ttxt = ", ".join(f"{tr[a]['tau']:.4f}±{100 * tr[a]['rel_uncertainty']:.2f}%" for a in axes)
        for img in c["images"]:
            cells = []
            for m in methods:
                v = img["methods"].get(m, {})
                if "tau" not in v:
                    cells.append("fail" if "error" in v else "")
                    continue
                errs = [_err(v["tau"][a], tr[a]["tau"]) for a in axes]
                txt = "/".join(f"{100 * e:+.1f}" for e in errs)
                if 0 in axes and 2 in axes and all(math.isfinite(e) for e in errs):
                    an = (v["tau"][2] / v["tau"][0]) / (tr[2]["tau"] / tr[0]["tau"]) - 1
                    txt += f" (an {100 * an:+.1f})"
                cells.append(txt)
            lines.append(
                f"| {c['structure']} | {img['n']} | {img['condition']} | "
                f"{img['segmentation']} | {ttxt} | " + " | ".join(cells) + " |"
            )
    return "\n".join(lines)


def bars_table(cases: list[dict]) -> str:
    """Markdown: recommended tau (label route), its error parts and whether they cover the truth."""
    lines = [
        "| structure | N | image | axis | truth | recommended | error | disc. | geom. | covered |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in cases:
        for img in c["images"]:
            for ax, e in error_bars(c, img).items():
                t = c["truth"][ax]["tau"]
                if not math.isfinite(t):
                    continue
                lines.append(
                    f"| {c['structure']} | {img['n']} | {img['condition']} | {'xyz'[int(ax)]} | "
                    f"{t:.4f} | {e['tau']:.4f} | {100 * (e['tau'] / t - 1):+.1f} % | "
                    f"{100 * e['discretisation'] / e['tau']:.1f} % | "
                    f"{100 * e['geometry'] / e['tau']:.1f} % | {'yes' if e['covered'] else 'no'} |"
                )
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="SC spheres only (minutes)")
    ap.add_argument("--only", default="", help="comma-separated structure names")
    ap.add_argument("--out", default="", help="study name (default truth / truth_quick)")
    ap.add_argument("--report", default="", help="only re-print the table of this record")
    args = ap.parse_args()
    if args.report:
        cases = json.loads(Path(args.report).read_text())["results"]["cases"]
        for c in cases:  # JSON keys are strings: back to axis integers
            c["truth"] = {(int(k) if k.isdigit() else k): v for k, v in c["truth"].items()}
            for img in c["images"]:
                for v in img["methods"].values():
                    if isinstance(v, dict) and "tau" in v:
                        v["tau"] = {int(k): t for k, t in v["tau"].items()}
        print(table(cases))
        print()
        print(bars_table(cases))
        return
    res = run(args)
    study = args.out or ("truth_quick" if args.quick else "truth")
    if MPI.COMM_WORLD.rank == 0:
        path = record(study, res, ranks=MPI.COMM_WORLD.size)
        print(res["table"])
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
