"""Benchmark of tomofem.image: time and peak memory per step on 256^3 and 400^3 volumes.

Datasets
  electrode256   the real NMC electrode (../shared/data/electrode.tiff; skipped if absent),
                 labels 0/1/2, and a grey tomogram made from it (blur 1 voxel, noise 0.08)
  synthetic400   a seeded calendered electrode (400^3, ellipsoids r=12 vx, aspect 0.6,
                 porosity 0.4) with 12 % binder, and its grey tomogram

Steps (each in its own process under /usr/bin/time -v, so peak memory is the step's own)
  prep          load/generate labels and grey values only (baseline memory)
  nlm           non-local means, noise estimated (1 run)
  gmm           3-phase Gaussian mixture EM on a 200k-voxel subsample + full posterior
  connectivity  percolation of every phase per axis + isolated-cluster removal
  areas         volume fractions + interface areas per phase pair (smoothed marching cubes)
  psd           continuous/intrusion PSD + constrictivity of the pore phase (12 radii)
  particles     watershed particle sizes of the active phase
  correlation   two-point function + chord lengths of the pore phase along 3 axes
  ensemble      (not in the default list) GMM posterior -> 10 sampled segmentations,
                independent and correlated (2 voxels): porosity and pore spanning fraction

Run:  OMP_NUM_THREADS=1 .venv/bin/python bench/image.py [--datasets ...] [--steps ...] [--merge]
Out:  bench/results/image.json  (median of --repeats runs, nlm once). Peak memory is the
      process's maximum RSS from /usr/bin/time -v; "step_rss_mb" subtracts the RSS held
      before the step (interpreter, libraries, input arrays).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TOMOFEM_SHARED_DATA", REPO.parent / "shared" / "data"))
STEPS = ["prep", "nlm", "gmm", "connectivity", "areas", "psd", "particles", "correlation"]
DATASETS = ["electrode256", "synthetic400"]


GREY_STEPS = ("nlm", "gmm", "ensemble")


def _prepare(name: str, grey: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Labels of a dataset and, for the grey-value steps, its synthetic tomogram."""
    from tomofem.image import load_electrode
    from tomofem.image import synthetic as syn

    if name == "electrode256":
        labels = load_electrode(DATA / "electrode.tiff").data
    elif name == "synthetic400":
        labels = syn.calendered_electrode(400, 0.4 + 0.12, 12.0, 0.6, seed=1)
        labels = syn.add_binder(labels, 0.12, 3.0)
    else:
        raise SystemExit(f"unknown dataset {name}")
    if not grey:
        return labels, None
    tomo = syn.synthetic_tomogram(labels, (0.1, 0.9, 0.45), blur=1.0, noise_sigma=0.08, seed=2)
    return labels, tomo


def _step(step: str, labels: np.ndarray, grey: np.ndarray) -> dict:
    from tomofem.image import connectivity, denoise, metrics, segment

    if step == "prep":
        return {}
    if step == "nlm":
        out, rep = denoise.nl_means(grey)
        return {"report": rep.to_dict()}
    if step == "gmm":
        res = segment.gmm_segment(grey, 3, seed=0)
        truth = np.array([0, 2, 1], np.uint8)[labels]  # grey order: pore < binder < active
        return {**res.summary(), "voxel_accuracy": float(np.mean(res.labels == truth))}
    if step == "ensemble":
        from tomofem.image import uncertainty

        post = segment.gmm_segment(grey, 3, seed=0).posterior

        def metric(lab: np.ndarray) -> dict:
            rep = connectivity.percolation(lab, 0)
            return {
                "porosity": rep.volume_fraction,
                "pore_spanning_x": rep.axes[0].spanning_fraction,
            }

        return {
            f"correlation_length_{c:g}": uncertainty.ensemble_statistics(
                post, metric, n_samples=10, seed=1, correlation_length=c
            ).to_dict()
            for c in (0.0, 2.0)
        }
    if step == "connectivity":
        out = {}
        for p in range(3):
            rep = connectivity.percolation(labels, p)
            _, clean = connectivity.remove_isolated(labels, p)
            out[str(p)] = {
                "connectivity": rep.connectivity,
                "clusters": rep.clusters,
                "isolated_fraction": rep.isolated_fraction,
                "percolates": [a.percolates for a in rep.axes],
                "spanning_fraction": [a.spanning_fraction for a in rep.axes],
                "isolated_voxels_removed": clean.voxels_changed,
            }
        return out
    if step == "areas":
        return {
            "volume_fractions": metrics.volume_fractions(labels, 3),
            "interfaces": metrics.interface_areas(labels).to_dict(),
        }
    if step == "psd":
        return metrics.pore_size_distribution(labels, 0).to_dict()
    if step == "particles":
        _, ps = metrics.particle_sizes(labels, 1)
        return {"count": len(ps.diameters), "mean_diameter_inner": ps.mean_diameter}
    if step == "correlation":
        out = {}
        for ax in range(3):
            _, s2 = metrics.two_point_correlation(labels, 0, axis=ax)
            ch = metrics.chord_lengths(labels, 0, axis=ax)
            out[str(ax)] = {"s2_0": float(s2[0]), "s2_last": float(s2[-1]), "mean_chord": ch.mean}
        return out
    raise SystemExit(f"unknown step {step}")


def worker(dataset: str, step: str, repeats: int) -> None:
    """Run one step ``repeats`` times on one dataset; print one JSON line."""
    labels, grey = _prepare(dataset, step in GREY_STEPS)
    if grey is None:
        grey = labels  # unused by label steps
    baseline_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    times, loads, result = [], [], {}
    for _ in range(1 if step in ("prep", "nlm") else repeats):
        t0 = time.perf_counter()
        result = _step(step, labels, grey)
        times.append(time.perf_counter() - t0)
        loads.append(os.getloadavg()[0])
    print(
        "RESULT:"
        + json.dumps(
            {
                "times_s": times,
                "median_s": statistics.median(times),
                "labels_bytes": labels.nbytes,
                "grey_bytes": grey.nbytes,
                "baseline_rss_mb": baseline_kb / 1024,
                "load_average_1min": loads,
                "result": result,
            }
        ),
        flush=True,
    )


def _run(dataset: str, step: str, repeats: int) -> dict:
    cmd = ["/usr/bin/time", "-v", sys.executable, __file__, "--worker", dataset, step]
    cmd += ["--repeats", str(repeats)]
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        return {"error": proc.stderr[-2000:]}
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT:"))
    out = json.loads(line[len("RESULT:") :])
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", proc.stderr).group(1))
    out["peak_rss_mb"] = rss_kb / 1024
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--datasets", nargs="+", default=DATASETS)
    ap.add_argument("--steps", nargs="+", default=STEPS)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "image.json")
    ap.add_argument("--worker", nargs=2, metavar=("DATASET", "STEP"))
    ap.add_argument("--merge", action="store_true", help="update steps in an existing --out")
    args = ap.parse_args()
    if args.worker:
        worker(*args.worker, args.repeats)
        return
    report = {
        "benchmark": "tomofem.image",
        "commands": [],
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "note": "2 cores shared with other jobs: load_average_1min says how busy the machine was",
        "datasets": {},
    }
    if args.merge and args.out.exists():
        report = json.loads(args.out.read_text())
    cmd = " ".join(["OMP_NUM_THREADS=1", ".venv/bin/python", "bench/image.py", *sys.argv[1:]])
    report["commands"].append(cmd)
    for ds in args.datasets:
        if ds == "electrode256" and not (DATA / "electrode.tiff").exists():
            report["datasets"][ds] = {"skipped": f"{DATA / 'electrode.tiff'} not found"}
            continue
        steps = report["datasets"].setdefault(ds, {})
        for step in args.steps:
            res = _run(ds, step, args.repeats)
            steps[step] = res
            if "error" in res:
                print(f"{ds:13s} {step:13s} FAILED\n{res['error']}", flush=True)
                continue
            nbytes = res["grey_bytes"] if step in GREY_STEPS else res["labels_bytes"]
            res["input_bytes"] = nbytes
            res["step_rss_mb"] = res["peak_rss_mb"] - res["baseline_rss_mb"]
            res["step_rss_over_input_times_phases"] = res["step_rss_mb"] * 2**20 / (3 * nbytes)
            print(
                f"{ds:13s} {step:13s} median {res['median_s']:7.2f} s   peak "
                f"{res['peak_rss_mb']:6.0f} MB (step +{res['step_rss_mb']:5.0f} MB = "
                f"{res['step_rss_over_input_times_phases']:.1f}x input*phases)   load "
                f"{max(res['load_average_1min']):.1f}",
                flush=True,
            )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(report, indent=1))
    os.replace(tmp, args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
