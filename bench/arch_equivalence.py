"""Refactors that must not change results: half-cell runs hashed bitwise, and timed.

Runs six short half-cell protocols on the tiny test cells (tests/electrochem/_cells.py):
CC discharge to a cut-off, rest and CV taper against Li metal; a reservoir 1C discharge to
the default cut-off; and a CC then CV run on the cell with a carbon-binder domain, for
each CBD model (electrolyte / conductor) and counter electrode (lithium / reservoir).
Each case's series is hashed (sha256 of its JSON) and, with ``--out``, stored whole.
Wall and CPU seconds are the medians of ``--repeats`` runs (forms are compiled before the
first timed run).

``--reference FILE`` (the JSON this script wrote with ``--out FILE`` at the other revision)
adds that revision's summary beside this one's and, per case, the largest difference of
any series entry relative to that series' largest magnitude. Repeated processes of one
revision can differ in the last bits on some cases, so compare that number against
the spread of two runs of the same revision, not against zero.

Usage (serial only; on 2 ranks the Krylov counts vary from run to run)::

    PYTHONPATH=<old tree> python bench/arch_equivalence.py --out /tmp/old.json
    PYTHONPATH=$PWD python bench/arch_equivalence.py --reference /tmp/old.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "electrochem"))
sys.path.insert(0, str(REPO / "bench"))


def cases():
    """``{name: (mesh factory, protocol, HalfCellConfig)}`` of the runs compared."""
    from _cells import tiny_cell, tiny_cell_with_cbd

    from tomofem.problems.electrochem import HalfCellConfig
    from tomofem.solvers.discharge import Protocol, Step

    cccv = Protocol(
        (
            Step("current", 2.0, until_voltage=3.6),
            Step("rest", duration=300.0),
            Step("voltage", 4.0, until_c_rate=0.5),
        ),
        0.9,
    )
    cc_cv = Protocol(
        (Step("current", 2.0, duration=400.0), Step("voltage", 4.1, duration=200.0)), 0.8
    )
    out = {
        "lithium_cc_rest_cv": (tiny_cell, cccv, HalfCellConfig(counter="lithium")),
        "reservoir_1c_to_cutoff": (tiny_cell, Protocol.discharge(1.0), HalfCellConfig()),
    }
    for cbd in ("electrolyte", "conductor"):
        for counter in ("lithium", "reservoir"):
            cfg = HalfCellConfig(cbd=cbd, counter=counter)
            out[f"cbd_{cbd}_{counter}"] = (tiny_cell_with_cbd, cc_cv, cfg)
    return out


def run(repeats: int) -> dict[str, dict]:
    """Hash, a few numbers and median timings of every case."""
    from tomofem.materials import half_cell
    from tomofem.solvers.discharge import SolverOptions, run_half_cell
    from tomofem.solvers.timestepping import StepControl

    opts = SolverOptions(control=StepControl(dt_initial=20.0, dt_max=200.0), max_soc_step=0.05)
    out = {}
    for name, (mesh, proto, cfg) in cases().items():
        dm = mesh()
        run_half_cell(dm, half_cell(), proto, cfg, opts)  # compile the forms
        wall, cpu = [], []
        for _ in range(repeats):
            t0, c0 = time.perf_counter(), time.process_time()
            res = run_half_cell(dm, half_cell(), proto, cfg, opts)
            wall.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        text = json.dumps(res.series, sort_keys=True)
        out[name] = {
            "series": res.series,
            "series_sha256": hashlib.sha256(text.encode()).hexdigest(),
            "steps_accepted": res.steps_accepted,
            "steps_rejected": res.steps_rejected,
            "stop_reason": res.stop_reason,
            "final_voltage_V": res.series["voltage"][-1],
            "capacity_mAh": res.capacity_mAh,
            "newton_iterations": int(sum(res.series["newton_iterations"])),
            "wall_s_median": statistics.median(wall),
            "cpu_s_median": statistics.median(cpu),
            "repeats": repeats,
        }
    return out


def difference(a: dict, b: dict) -> float:
    """Largest ``|a - b|`` over all series entries, each relative to its series' max ``|a|``."""
    import numpy as np

    worst = 0.0
    for key in a:
        x, y = np.asarray(a[key], float), np.asarray(b[key], float)
        if x.shape != y.shape:
            return float("inf")
        if x.size:
            worst = max(worst, float(np.max(np.abs(x - y)) / max(np.max(np.abs(x)), 1e-300)))
    return worst


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, help="write the raw cases here instead of recording")
    ap.add_argument("--reference", type=Path, help="--out file of the other revision")
    args = ap.parse_args()
    results = {"cases": run(args.repeats)}
    if args.out:
        args.out.write_text(json.dumps(results))
        return
    if args.reference:
        ref = json.loads(args.reference.read_text())["cases"]
        results["max_relative_difference"] = {
            k: difference(ref[k]["series"], v["series"]) for k, v in results["cases"].items()
        }
        for case in ref.values():
            case.pop("series")
        results["reference"] = ref
    for case in results["cases"].values():
        case.pop("series")
    from _record import record

    print(record("arch_equivalence", results))


if __name__ == "__main__":
    main()
