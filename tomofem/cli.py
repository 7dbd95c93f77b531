"""The ``tomofem`` command: subcommands that call the library, no logic of their own.

Every subcommand maps its flags to dotted config keys, loads the configuration
(``--config`` file, then flags, then ``--set KEY=VALUE``), and calls the same
API a notebook calls (:mod:`tomofem.pipeline`, :mod:`tomofem.demo`,
:mod:`tomofem.io.pybamm`). Under ``mpirun`` only rank 0 prints. Every
:class:`~tomofem.errors.TomofemError` becomes a one-paragraph message and exit
code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
from collections.abc import Callable, Sequence
from typing import Any

EXIT_USER_ERROR = 2
EXIT_INTERRUPTED = 130


def _rank() -> int:
    """MPI rank from the launcher's environment (no MPI import needed to decide who prints)."""
    for var in ("PMI_RANK", "OMPI_COMM_WORLD_RANK", "PMIX_RANK"):
        if var in os.environ:
            try:
                return int(os.environ[var])
            except ValueError:
                pass
    return 0


def _say(text: str, err: bool = False) -> None:
    if _rank() == 0:
        print(text, file=sys.stderr if err else sys.stdout, flush=True)


# --------------------------------------------------------------------------- options


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keep the hand-wrapped descriptions; defaults live in the config, not in flags."""


def _common(p: argparse.ArgumentParser, config: bool = True) -> None:
    g = p.add_argument_group("common options")
    if config:  # only on commands that read a run configuration
        g.add_argument("--config", "-c", metavar="RUN.toml", help="TOML file with the run settings")
        g.add_argument(
            "--set",
            dest="overrides",
            action="append",
            default=[],
            metavar="KEY=VALUE",
            help="override any config key, e.g. --set mesh.interface_size=2.5 (repeatable)",
        )
    g.add_argument("-v", "--verbose", action="count", default=0, help="more log output")
    g.add_argument("-q", "--quiet", action="count", default=0, help="less output (-qq: errors)")
    g.add_argument("--debug", action="store_true", help="show tracebacks of errors")


def _output(p: argparse.ArgumentParser, default: str | None = None) -> None:
    g = p.add_argument_group("run folder")
    g.add_argument(
        "-o",
        "--output",
        metavar="RUN_DIR",
        help="run folder to create (output.folder)" + (f"; default {default}" if default else ""),
    )
    g.add_argument("--force", action="store_true", help="replace an existing run folder")


def _image_arg(p: argparse.ArgumentParser, what: str) -> None:
    p.add_argument(
        "image",
        nargs="?",
        help=f"{what} (TIFF, .npy, HDF5, raw); omitted: image.source of the config "
        "(default: a synthetic electrode)",
    )
    p.add_argument(
        "--voxel-size",
        type=float,
        nargs="+",
        metavar="UM",
        help="voxel edge, one value or one per axis [um] (image.voxel_size)",
    )
    p.add_argument(
        "--dataset",
        metavar="NAME",
        help="HDF5 files: dataset to read, e.g. volume or scan/labels (image.dataset)",
    )


def _ex(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {ln}" for ln in lines)


# --------------------------------------------------------------------------- overrides


def _overrides(args: argparse.Namespace, mapping: dict[str, str]) -> dict[str, Any]:
    """Dotted config keys from the flags that were given (flags beat the file)."""
    from tomofem.config import ConfigError, parse_value

    out: dict[str, Any] = {}
    for attr, key in mapping.items():
        val = getattr(args, attr, None)
        if val is None or val is False:
            continue
        if key == "image.voxel_size":
            val = list(val) * 3 if len(val) == 1 else list(val)
        out[key] = val
    problems = []
    for item in args.overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            problems.append(f"--set {item!r}: expected KEY=VALUE, e.g. --set simulate.c_rate=2")
            continue
        out[key.strip()] = parse_value(text.strip())
    if problems:
        raise ConfigError(problems)
    return out


_IMAGE_FLAGS = {
    "image": "image.source",
    "voxel_size": "image.voxel_size",
    "dataset": "image.dataset",
}
_OUT_FLAGS = {"output": "output.folder", "force": "output.force"}


def _load(
    args: argparse.Namespace,
    flags: dict[str, str],
    stages: list[str] | None,
    labels_input: bool = False,
) -> Any:
    from tomofem.config import load_config

    fixed: dict[str, Any] = {}
    if stages is not None:
        fixed["stages"] = stages
    if labels_input and getattr(args, "image", None):
        fixed["segment.method"] = "labels"  # the positional image of this command is labels
    return load_config(args.config, {**fixed, **_overrides(args, flags)})


def _run_stages(
    args: argparse.Namespace,
    flags: dict[str, str],
    stages: list[str] | None,
    labels_input: bool = False,
) -> int:
    """Load the config and run ``stages`` (None: the config's) into a run folder."""
    from tomofem import pipeline
    from tomofem.io.runfolder import RunFolder
    from tomofem.viz.progress import Progress

    quiet = args.quiet > 0
    cfg = _load(args, {**_IMAGE_FLAGS, **_OUT_FLAGS, **flags}, stages, labels_input)
    folder = RunFolder.create(cfg.output.folder, force=cfg.output.force)
    folder.attach_log()
    try:
        folder.write_config(cfg)
        with Progress("pipeline", total=len(cfg.stages), unit="stage", disable=quiet) as bar:
            result = pipeline.run(cfg, folder, comm=folder.comm, progress=bar)
        status, code, note = _simulation_outcome(result, folder.path)
        folder.write_results(status=status)
    except BaseException as exc:
        _record_failure(folder, exc)
        raise
    finally:
        folder.detach_log()
    _say(result.table())
    _say(f"\nrun folder: {folder.path}  ({status})")
    if note:
        _say(note, err=True)
    return code


def _simulation_outcome(result: Any, folder: Any) -> tuple[str, int, str]:
    """Status, exit code and message of a run whose simulation may have stopped early."""
    stop = str(result.results.get("simulate", {}).get("stop_reason", ""))
    if stop.startswith("interrupted"):
        return (
            "interrupted",
            EXIT_INTERRUPTED,
            f"tomofem: simulation {stop}; the checkpoint and the partial results are in "
            f"{folder}; continue with: tomofem simulate --resume {folder}",
        )
    if stop.startswith("step below"):
        return "stopped", EXIT_USER_ERROR, f"tomofem: simulation stopped early: {stop}"
    return result.status, 0, ""


def _record_failure(folder: Any, exc: BaseException) -> None:
    """Write the error (or interrupt) into the run folder; say how to continue an interrupt."""
    from tomofem import pipeline

    if folder.fail(exc) == "interrupted":
        why = folder.meta["error"]["message"]
        _say(f"tomofem: {why}; {pipeline.how_to_continue(folder.path)}", err=True)


def _resume(args: argparse.Namespace) -> int:
    """``simulate --resume``: continue from the run folder's checkpoint, record like a run."""
    from tomofem import pipeline
    from tomofem.io.runfolder import RunFolder

    folder = RunFolder.open(args.resume)
    folder.attach_log()
    try:
        result = pipeline.resume(folder.path, folder.comm, folder=folder)
        for key, val in result.results.items():
            folder.add_result(key, val)
        status, code, note = _simulation_outcome(result, folder.path)
        folder.write_results(status=status)
    except BaseException as exc:
        _record_failure(folder, exc)
        raise
    finally:
        folder.detach_log()
    _say(result.table())
    _say(f"\nrun folder: {folder.path}  ({status}, resumed)")
    if note:
        _say(note, err=True)
    return code


# --------------------------------------------------------------------------- commands


def _cmd_info(args: argparse.Namespace) -> int:
    from tomofem.info import info

    _say(info())
    return 0


def _cmd_segment(args: argparse.Namespace) -> int:
    return _run_stages(
        args, {"method": "segment.method", "phases": "segment.phases"}, ["segment", "analyze"]
    )


def _cmd_analyze(args: argparse.Namespace) -> int:
    return _run_stages(args, {}, ["segment", "analyze"], labels_input=True)


def _cmd_mesh(args: argparse.Namespace) -> int:
    flags = {
        "interface_size": "mesh.interface_size",
        "max_size": "mesh.max_size",
        "smoothing": "mesh.smoothing_iterations",
    }
    return _run_stages(args, flags, ["segment", "mesh"], labels_input=True)


def _cmd_homogenize(args: argparse.Namespace) -> int:
    flags = {
        "phase": "homogenize.phase",
        "axes": "homogenize.axes",
        "degree": "homogenize.degree",
        "rve_sizes": "homogenize.rve_sizes",
    }
    stages = ["segment", "homogenize"] if args.voxel_only else ["segment", "mesh", "homogenize"]
    return _run_stages(args, flags, stages, labels_input=True)


def _cmd_simulate(args: argparse.Namespace) -> int:
    flags = {
        "mode": "simulate.mode",
        "c_rate": "simulate.c_rate",
        "v_min": "simulate.v_min",
        "v_max": "simulate.v_max",
        "t_end": "simulate.t_end",
    }
    if args.resume:
        given = [
            f"--{k.replace('_', '-')}"
            for k in (*flags, "image", "dataset")
            if getattr(args, k, None)
        ]
        given += ["--config"] * bool(args.config) + ["--set"] * bool(args.overrides)
        given += ["--output"] * bool(args.output)
        if given:
            from tomofem.errors import ConfigError

            raise ConfigError(
                f"simulate --resume continues with the run's own settings; drop {', '.join(given)}"
                " (or start a new run without --resume)"
            )
        return _resume(args)
    return _run_stages(args, flags, ["segment", "mesh", "simulate"], labels_input=True)


def _cmd_mechanics(args: argparse.Namespace) -> int:
    flags = {"bcs": "mechanics.bcs", "degree": "mechanics.degree"}
    return _run_stages(args, flags, ["segment", "mesh", "mechanics"], labels_input=True)


def _cmd_network(args: argparse.Namespace) -> int:
    flags = {"axes": "network.axes", "drainage": "network.drainage", "phase": "network.phase"}
    stages = ["segment", "network"]
    if args.with_dns:  # the Stokes permeability beside the network, on the conformal mesh
        dns = [
            "homogenize.permeability=true",
            "homogenize.voxel_baseline=false",
            "homogenize.error_bars=false",
            "homogenize.tensors=[]",
        ]
        if args.axes:
            dns.append("homogenize.axes=[" + ", ".join(f'"{a}"' for a in args.axes) + "]")
        args.overrides = [*dns, *args.overrides]  # --set still wins
        stages = ["segment", "mesh", "homogenize", "network"]
    return _run_stages(args, flags, stages, labels_input=True)


def _cmd_pipeline(args: argparse.Namespace) -> int:
    return _run_stages(args, {}, None)


def _cmd_demo(args: argparse.Namespace) -> int:
    from tomofem.demo import main as demo_main

    demo_main(
        real=args.real,
        output=args.output,
        force=args.force,
        fast=args.fast,
        quiet=args.quiet > 0,
        data=args.data,
    )
    return 0


def _cmd_export_pybamm(args: argparse.Namespace) -> int:
    from tomofem.io.pybamm import export_run

    path = export_run(
        args.run_dir,
        args.output,
        fmt=args.format,
        electrode=args.electrode,
        axis=args.axis,
        force=args.force,
    )
    _say(f"wrote {path}")
    return 0


# --------------------------------------------------------------------------- parser


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="tomofem",
        formatter_class=_Formatter,
        description=textwrap.dedent(
            """\
            From 3D tomograms of porous electrodes to verified effective properties
            and pore-scale electrochemistry.

            Each subcommand reads a TOML config (--config), lets flags and
            --set KEY=VALUE override it, checks everything before any work, and
            writes a run folder (config.toml, results.json, log.txt, pictures).
            Run it under `mpirun -n N tomofem ...` unchanged: rank 0 prints and writes."""
        ),
        epilog=_ex(
            "tomofem demo                          # built-in synthetic electrode, < 5 min",
            "tomofem pipeline scan.tif -c run.toml -o runs/scan1",
            "mpirun -n 4 tomofem homogenize labels.tif --phase pore -o runs/tau",
            "tomofem <command> --help              # options and examples of a command",
        ),
    )
    from tomofem import __version__

    parser.add_argument("--version", action="version", version=f"tomofem {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(
        name: str,
        func: Callable,
        help_: str,
        desc: str,
        examples: Sequence[str],
        image: str | None = None,
        output: bool = True,
        config: bool = True,
    ) -> Any:
        """Add a subcommand with the common options (and its image/run-folder arguments)."""
        p = sub.add_parser(
            name,
            help=help_,
            description=textwrap.dedent(desc),
            epilog=_ex(*examples),
            formatter_class=_Formatter,
        )
        p.set_defaults(func=func)
        if image is not None:
            _image_arg(p, image)
        if output:
            _output(p, "runs/demo, or runs/demo-real with --real" if name == "demo" else None)
        _common(p, config)
        return p

    p = add(
        "info",
        _cmd_info,
        "versions of tomofem, DOLFINx, PETSc, gmsh, MPI",
        "Print the versions of tomofem and the stack it runs on (for bug reports).",
        ["tomofem info", "mpirun -n 2 tomofem info   # check that MPI starts"],
        output=False,
        config=False,
    )

    p = add(
        "segment",
        _cmd_segment,
        "grey-scale image -> phase labels",
        """\
        Segment a grey-scale tomogram into phase labels (Otsu, multi-Otsu, Gaussian
        mixture, or a threshold) and report volume fractions and percolation.""",
        [
            "tomofem segment scan.tif --method multiotsu --phases 3 -o runs/seg",
            "tomofem segment scan.tif -c run.toml --set segment.denoise=true -o runs/seg",
        ],
        image="grey-scale image",
    )
    p.add_argument(
        "--method",
        choices=["otsu", "multiotsu", "gmm", "threshold"],
        help="segmentation method (segment.method)",
    )
    p.add_argument("--phases", type=int, metavar="N", help="number of phases (segment.phases)")

    p = add(
        "analyze",
        _cmd_analyze,
        "metrics of a label image: fractions, percolation, surfaces",
        """\
        Morphology of an already segmented label image: volume fraction,
        connected clusters and percolation per axis (26-connected pore,
        6-connected solids), specific surface areas.""",
        [
            "tomofem analyze labels.tif -o runs/metrics",
            "tomofem analyze electrode.tiff --set segment.label_values=[0,85,170] "
            "--set segment.phases=3",
        ],
        image="label image",
    )

    p = add(
        "mesh",
        _cmd_mesh,
        "label image -> conformal tetrahedral mesh",
        """\
        Build a conformal, tagged tetrahedral mesh of every phase of a label image
        (on rank 0) and write it with its tags (XDMF) into the run folder.""",
        [
            "tomofem mesh labels.tif --interface-size 2 -o runs/mesh",
            "tomofem mesh -c run.toml --set mesh.smoothing_iterations=3 -o runs/mesh",
        ],
        image="label image",
    )
    p.add_argument(
        "--interface-size",
        type=float,
        metavar="VOXELS",
        help="edge at interfaces [voxels] (mesh.interface_size)",
    )
    p.add_argument(
        "--max-size",
        type=float,
        metavar="VOXELS",
        help="edge inside phases [voxels] (mesh.max_size)",
    )
    p.add_argument(
        "--smoothing",
        type=int,
        metavar="N",
        help="surface smoothing passes (mesh.smoothing_iterations)",
    )

    p = add(
        "homogenize",
        _cmd_homogenize,
        "tortuosity, effective tensors, bounds, RVE studies",
        """\
        Tortuosity factor and effective conductivity of one phase along each axis,
        by FEM on the conformal mesh and by the voxel finite-volume baseline,
        each checked against the Wiener bounds. A phase that does not percolate
        gets tau = inf with the reason.""",
        [
            "tomofem homogenize labels.tif --phase pore --axes x y z -o runs/tau",
            "mpirun -n 4 tomofem homogenize labels.tif --voxel-only -o runs/tau-voxel",
        ],
        image="label image",
    )
    p.add_argument(
        "--phase",
        choices=["pore", "active", "solid", "cbd"],
        help="phase whose transport is homogenised (homogenize.phase)",
    )
    p.add_argument(
        "--axes", nargs="+", choices=["x", "y", "z"], help="flux directions (homogenize.axes)"
    )
    p.add_argument(
        "--degree", type=int, choices=[1, 2], help="FEM Lagrange degree (homogenize.degree)"
    )
    p.add_argument(
        "--rve-sizes",
        type=int,
        nargs="+",
        metavar="N",
        help="RVE study: sub-volume edges [voxels] (homogenize.rve_sizes)",
    )
    p.add_argument(
        "--voxel-only",
        action="store_true",
        help="voxel finite-volume solve only: skip meshing and FEM",
    )

    p = add(
        "simulate",
        _cmd_simulate,
        "half-cell discharge on the conformal mesh",
        """\
        Half-cell against lithium resolved at the pore scale: galvanostatic discharge
        to v_min, or CC-CV charge to v_max (--mode charge). Writes the voltage curve,
        step statistics and checkpoints, and field time series for ParaView when
        simulate.vtx_every > 0. --resume RUN_DIR continues a stopped run from its
        last checkpoint with the run's own settings (no other flags).""",
        [
            "tomofem simulate labels.tif --c-rate 2 -o runs/2C",
            "mpirun -n 4 tomofem simulate -c run.toml -o runs/1C",
            "tomofem simulate --resume runs/1C",
        ],
        image="label image",
    )
    p.add_argument("--mode", choices=["discharge", "charge"], help="protocol (simulate.mode)")
    p.add_argument("--c-rate", type=float, metavar="C", help="C-rate [1/h] (simulate.c_rate)")
    p.add_argument(
        "--v-min", type=float, metavar="VOLTS", help="lower cut-off voltage [V] (simulate.v_min)"
    )
    p.add_argument(
        "--t-end", type=float, metavar="SECONDS", help="largest simulated time [s] (simulate.t_end)"
    )
    p.add_argument(
        "--v-max", type=float, metavar="VOLTS", help="upper cut-off voltage [V] (simulate.v_max)"
    )
    p.add_argument("--resume", metavar="RUN_DIR", help="continue a run from its last checkpoint")

    p = add(
        "mechanics",
        _cmd_mechanics,
        "effective stiffness, E, nu, K_dr and Biot coefficient of the film",
        """\
        Effective 6x6 stiffness of the electrode film on the conformal mesh: six
        macroscopic strains, pores void, active material and carbon-binder domain
        elastic (constants in [mechanics]), checked against the Voigt and Reuss
        bounds; reports Young's modulus and Poisson ratio of the film, the drained
        bulk modulus and the Biot coefficient.""",
        [
            "tomofem mechanics labels.tif -o runs/stiffness",
            "mpirun -n 2 tomofem mechanics labels.tif --bcs dirichlet mixed -o runs/C",
        ],
        image="label image",
    )
    p.add_argument(
        "--bcs",
        nargs="+",
        choices=["dirichlet", "periodic", "mixed"],
        help="boundary conditions of the cell problems (mechanics.bcs)",
    )
    p.add_argument("--degree", type=int, choices=[1, 2], help="Lagrange degree (mechanics.degree)")

    p = add(
        "network",
        _cmd_network,
        "pore network (SNOW2 + OpenPNM): tau, permeability, sizes, drainage",
        """\
        Pore-network model of one phase: PoreSpy's SNOW2 watershed extracts pores
        and throats, OpenPNM's spheres-and-cylinders conduits give diffusive and
        hydraulic conductances; reports the network tortuosity factor and
        permeability per axis, the pore and throat size distributions and,
        with --drainage, capillary pressure against saturation (Young-Laplace
        throat entry pressures). Needs the optional extra: pip install
        'tomofem[network]'. With --with-dns the Stokes permeability of the
        conformal mesh is computed too and the table sets them side by side.""",
        [
            "tomofem network labels.tif -o runs/network",
            "tomofem network labels.tif --drainage --axes x -o runs/drainage",
            "mpirun -n 2 tomofem network labels.tif --with-dns -o runs/network-vs-dns",
        ],
        image="label image",
    )
    p.add_argument(
        "--axes", nargs="+", choices=["x", "y", "z"], help="transport axes (network.axes)"
    )
    p.add_argument(
        "--drainage",
        action="store_true",
        default=None,
        help="capillary pressure against saturation along the first axis (network.drainage)",
    )
    p.add_argument(
        "--phase", choices=["pore", "active", "cbd"], help="phase of the network (network.phase)"
    )
    p.add_argument(
        "--with-dns",
        action="store_true",
        help="also the Stokes permeability on the conformal mesh (homogenize.permeability)",
    )

    p = add(
        "pipeline",
        _cmd_pipeline,
        "image to answers in one go",
        """\
        Run the stages listed in the config (default: segment, analyze, mesh,
        homogenize, simulate) on one image and record everything in one run folder.""",
        [
            "tomofem pipeline scan.tif -c examples/pipeline.toml -o runs/scan1",
            "mpirun -n 4 tomofem pipeline -c examples/pipeline.toml -o runs/p",
        ],
        image="image",
    )

    p = add(
        "demo",
        _cmd_demo,
        "built-in example end to end (no downloads)",
        """\
        Synthetic tomogram -> segmentation -> conformal mesh -> tortuosity with
        bounds -> short discharge; prints a summary table and leaves a run folder
        with results.json and pictures. --real uses a crop of a real electrode:
        ../shared/data/electrode.tiff, or the label image given with --data PATH
        (storing 0 = pore, 85 = NMC, 170 = CBD).""",
        [
            "tomofem demo",
            "tomofem demo --force   # again, into runs/demo",
            "tomofem demo --real",
            "tomofem demo --real --data ~/data/electrode.tiff",
        ],
        config=False,
    )
    p.add_argument(
        "--real", action="store_true", help="crop of a real electrode (default: --data's default)"
    )
    p.add_argument(
        "--data",
        metavar="PATH",
        help="the real electrode's label image, 0 = pore, 85 = NMC, 170 = CBD (implies --real); "
        "default ../shared/data/electrode.tiff beside the checkout",
    )
    p.add_argument("--fast", action="store_true", help="smallest sizes (tests)")

    p = add(
        "export",
        lambda a: a.export_parser.print_help() or EXIT_USER_ERROR,
        "export results to other tools (pybamm)",
        "Export the effective parameters of a run to another tool.",
        ["tomofem export pybamm runs/scan1 -o scan1-bpx.json"],
        output=False,
        config=False,
    )
    p.set_defaults(export_parser=p)
    esub = p.add_subparsers(dest="target", metavar="TARGET")
    e = esub.add_parser(
        "pybamm",
        help="PyBaMM parameter values / BPX-style JSON",
        formatter_class=_Formatter,
        description=textwrap.dedent(
            """\
            Effective microstructure parameters of a run along one through-plane axis
            (porosity, active-material fraction, tortuosity factors and Bruggeman
            exponents of electrolyte and electrode, thickness, particle radius from the
            measured specific surface area) as PyBaMM parameter names with units, or as
            a BPX-style JSON fragment for a DFN model. The run needs the analyze and
            homogenize stages."""
        ),
        epilog=_ex(
            "tomofem export pybamm runs/scan1 -o scan1.json",
            "tomofem export pybamm runs/scan1 --format bpx --electrode negative -o neg.json",
        ),
    )
    e.add_argument("run_dir", metavar="RUN_DIR", help="folder of a finished run")
    e.add_argument("-o", "--output", required=True, metavar="FILE.json", help="JSON file to write")
    e.add_argument(
        "--format",
        choices=["pybamm", "bpx"],
        default="pybamm",
        help="PyBaMM parameter names, or a BPX-style fragment (default: pybamm)",
    )
    e.add_argument(
        "--electrode",
        choices=["positive", "negative"],
        default="positive",
        help="which electrode the image is (default: positive)",
    )
    e.add_argument(
        "--axis",
        choices=["x", "y", "z"],
        default="x",
        help="through-plane direction of the homogenised model (default: x)",
    )
    e.add_argument("--force", action="store_true", help="overwrite FILE.json")
    e.set_defaults(func=_cmd_export_pybamm)
    _common(e, config=False)
    return parser


# --------------------------------------------------------------------------- main


def _configure_logging(args: argparse.Namespace) -> None:
    level = logging.INFO - 10 * getattr(args, "verbose", 0) + 10 * getattr(args, "quiet", 0)
    level = min(max(level, logging.DEBUG), logging.ERROR)
    root = logging.getLogger("tomofem")
    root.setLevel(level)
    if _rank() != 0:
        root.addHandler(logging.NullHandler())
        root.propagate = False
        return
    if not any(getattr(h, "_tomofem_cli", False) for h in root.handlers):
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        h._tomofem_cli = True  # type: ignore[attr-defined]
        root.addHandler(h)
        root.propagate = False
    for h in root.handlers:
        if getattr(h, "_tomofem_cli", False):
            h.setLevel(level)


def _paragraph(exc: BaseException) -> str:
    """One readable paragraph (plus the per-key list of a ConfigError)."""
    from tomofem.errors import ConfigError

    kind = type(exc).__name__
    if isinstance(exc, ConfigError):
        items = "\n".join(f"  - {p}" for p in exc.problems)
        n = len(exc.problems)
        return f"tomofem: {kind}: {n} problem{'s' if n != 1 else ''} in the configuration:\n{items}"
    text = " ".join(str(exc).split())
    # paths are never split (a hyphen or a long path broken across lines cannot be copied)
    lines = textwrap.wrap(
        f"tomofem: {kind}: {text}", width=100, break_on_hyphens=False, break_long_words=False
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tomofem`` command; returns the exit code.

    0 on success, 2 for any error tomofem recognises (bad input, bad config,
    existing run folder, non-convergence: the message says what to change),
    130 on Ctrl-C. Other exceptions are bugs and keep their traceback.
    """
    from tomofem.errors import TomofemError
    from tomofem.mpi import abort_on_error

    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    _configure_logging(args)
    try:
        with abort_on_error():  # an error on one rank must not leave the others waiting
            return int(args.func(args) or 0)
    except TomofemError as exc:
        if args.debug:
            raise
        _say(_paragraph(exc), err=True)
        if not args.debug:
            _say("(run with --debug for the traceback)", err=True)
        return EXIT_USER_ERROR
    except KeyboardInterrupt:
        _say("tomofem: interrupted", err=True)
        return EXIT_INTERRUPTED
