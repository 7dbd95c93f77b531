"""The built-in example behind ``make demo`` (and ``make demo-real``).

Synthetic tomogram (blur + noise) -> Otsu segmentation -> metrics -> conformal
mesh -> tortuosity along x, y, z (FEM with bounds, voxel baseline beside it)
-> a short 1C discharge, all through :func:`tomofem.pipeline.run`, recorded in
a run folder (``config.toml``, ``results.json``, ``log.txt``, pictures).
``real=True`` runs the same chain on a 48³ crop of ``../shared/data/electrode.tiff``
(beside the checkout), or of the label image given as ``data``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tomofem.errors import ImageError

SHARED_ELECTRODE = Path(__file__).resolve().parents[2] / "shared" / "data" / "electrode.tiff"
#: Label values of the real electrode: 0 = pore, 85 = NMC (active), 170 = CBD.
ELECTRODE_LABEL_VALUES = [0, 85, 170]


def default_electrode() -> Path:
    """Return the real demo's image: ``$TOMOFEM_SHARED_DATA/electrode.tiff`` or ../shared/data."""
    shared = os.environ.get("TOMOFEM_SHARED_DATA")
    return Path(shared).expanduser() / "electrode.tiff" if shared else SHARED_ELECTRODE


def _real_crop(path: Path, edge: int, default: bool) -> tuple[list[int], list[int]]:
    """Crop start and size: the usual one of the shared electrode, else centred in the image."""
    if default:
        return [104, 104, 104], [edge] * 3
    from tomofem.image.io import read_volume

    shape = read_volume(path).shape
    size = [min(edge, n) for n in shape]
    return [(n - c) // 2 for n, c in zip(shape, size, strict=True)], size


def demo_overrides(
    real: bool = False, fast: bool = False, data: str | os.PathLike | None = None
) -> dict[str, Any]:
    """Return the demo configuration as dotted-key overrides of :class:`~tomofem.config.RunConfig`.

    Parameters
    ----------
    real
        Use a crop of a real electrode instead of the synthetic one.
    fast
        Smallest sizes and a shorter discharge (what the tests run).
    data
        The real electrode's label image (``real``): a 3D image storing
        0 = pore, 85 = NMC, 170 = CBD like the shared electrode (its centre
        is cropped); default :func:`default_electrode`.

    Raises
    ------
    ImageError
        If the real electrode's file does not exist (naming it and ``--data``).
    """
    n = 24 if fast else 40
    out: dict[str, Any] = {
        "stages": ["segment", "analyze", "mesh", "homogenize", "simulate"],
        "simulate.v_min": 3.5,  # NMC811 OCP stays above ~3.56 V: 3.0 V is unreachable
        # 10 min of 1C (~25 steps): the whole discharge (57 steps on 40^3) runs but needs
        # 4-8 min on the shared 2 cores, beyond the demo budget
        "simulate.t_end": 60.0 if fast else 600.0,
        "simulate.checkpoint_every": 0,
        "homogenize.axes": ["x"] if fast else ["x", "y", "z"],
        # the level-set route, the one for real electrodes (the demo's real mode);
        # every route gives the same mesh on 1 or N ranks
        "mesh.routes": ["levelset"],
    }
    if real:
        path = Path(data).expanduser() if data is not None else default_electrode()
        if not path.is_file():
            where = (
                f"demo --real --data {data}: {path} is not a file"
                if data is not None
                else f"demo --real: {path} not found (the shared data folder beside the "
                "checkout, or $TOMOFEM_SHARED_DATA)"
            )
            raise ImageError(
                f"{where}; give the real electrode with --data PATH (a 3D label image storing "
                "0 = pore, 85 = NMC, 170 = CBD, e.g. ../shared/data/electrode.tiff), or run "
                "the synthetic demo (tomofem demo, make demo)"
            )
        start, size = _real_crop(path, 32 if fast else 48, default=data is None)
        out.update(
            {
                "image.source": str(path),
                "image.crop_start": start,
                "image.crop_size": size,
                "segment.method": "labels",
                "segment.phases": 3,
                "segment.label_values": ELECTRODE_LABEL_VALUES,
            }
        )
    else:
        out.update({"image.shape": [n, n, n], "image.radius": 5.0 if fast else 6.0})
    return out


def main(
    real: bool = False,
    output: str | None = None,
    force: bool = False,
    fast: bool = False,
    quiet: bool = False,
    data: str | os.PathLike | None = None,
) -> Any:
    """Run the demo into a run folder and print its summary table on rank 0.

    Parameters
    ----------
    real
        Crop of a real electrode instead of the synthetic electrode.
    output
        Run folder (default ``runs/demo`` or ``runs/demo-real``); replaced only with ``force``.
    force
        Replace an existing run folder made by tomofem.
    fast
        Small sizes (tests).
    quiet
        No progress bar.
    data
        The real electrode's label image (implies ``real``); default
        ``../shared/data/electrode.tiff``.

    Returns
    -------
    tomofem.pipeline.PipelineResult
    """
    from tomofem import pipeline
    from tomofem.config import load_config
    from tomofem.io.runfolder import RunFolder
    from tomofem.viz.progress import Progress

    real = real or data is not None
    folder_name = output or ("runs/demo-real" if real else "runs/demo")
    overrides = demo_overrides(real=real, fast=fast, data=data)
    overrides.update({"output.folder": folder_name, "output.force": force})
    cfg = load_config(None, overrides)
    folder = RunFolder.create(cfg.output.folder, force=cfg.output.force)
    folder.attach_log()
    try:
        folder.write_config(cfg)
        with Progress("demo", total=len(cfg.stages), unit="stage", disable=quiet) as bar:
            result = pipeline.run(cfg, folder, comm=folder.comm, progress=bar)
        folder.write_results(status=pipeline.final_status(result))
    except BaseException as exc:
        folder.fail(exc)  # the error and its stage go into results.json and log.txt
        raise
    finally:
        folder.detach_log()
    if folder.comm.rank == 0:
        title = "real electrode crop" if real else "synthetic electrode"
        print(f"tomofem demo ({title}): image -> labels -> mesh -> tortuosity -> discharge\n")
        print(result.table())
        print(f"\nrun folder: {folder.path}  ({result.status})")
    return result
