"""The ``tomofem`` command: subcommands that call the library, no logic here."""

from __future__ import annotations

import argparse
import sys


def _cmd_info(args: argparse.Namespace) -> int:
    from tomofem.info import info

    print(info())
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from tomofem.demo import main as demo_main

    demo_main()
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="tomofem",
        description="From 3D tomograms of porous electrodes to effective properties and "
        "pore-scale electrochemistry.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("info", help="versions of tomofem, DOLFINx, PETSc, gmsh, MPI")
    p.set_defaults(func=_cmd_info)
    p = sub.add_parser("demo", help="run the built-in example end to end")
    p.add_argument("--real", action="store_true", help="use ../shared/data/electrode.tiff")
    p.set_defaults(func=_cmd_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``tomofem`` command."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    return int(args.func(args))
