"""The built-in example behind ``make demo`` (and ``make demo-real``).

Synthetic tomogram (blur + noise) -> Otsu segmentation -> metrics -> conformal
mesh -> tortuosity along x, y, z (FEM with bounds, voxel baseline beside it)
-> a short 1C discharge, all through :func:`tomofem.pipeline.run`, recorded in
a run folder (``config.toml``, ``results.json``, ``log.txt``, pictures).
``real=True`` runs the same chain on a 48³ crop of ``../shared/data/electrode.tiff``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tomofem.errors import ImageError

SHARED_ELECTRODE = Path(__file__).resolve().parents[2] / "shared" / "data" / "electrode.tiff"


def demo_overrides(real: bool = False, fast: bool = False) -> dict[str, Any]:
    """Return the demo configuration as dotted-key overrides of :class:`~tomofem.config.RunConfig`.

    Parameters
    ----------
    real
        Use a crop of the shared real electrode instead of the synthetic one.
    fast
        Smallest sizes and a shorter discharge (what the tests run).
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
        if not SHARED_ELECTRODE.exists():
            raise ImageError(
                f"demo --real: {SHARED_ELECTRODE} not found; it needs the shared data folder "
                "beside the checkout (run the synthetic demo with `make demo` instead)"
            )
        c = 32 if fast else 48
        out.update(
            {
                "image.source": str(SHARED_ELECTRODE),
                "image.crop_start": [104, 104, 104],
                "image.crop_size": [c, c, c],
                "segment.method": "labels",
                "segment.phases": 3,
                "segment.label_values": [0, 85, 170],
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
) -> Any:
    """Run the demo into a run folder and print its summary table on rank 0.

    Parameters
    ----------
    real
        Crop of the shared real electrode instead of the synthetic electrode.
    output
        Run folder (default ``runs/demo`` or ``runs/demo-real``); replaced only with ``force``.
    force
        Replace an existing run folder made by tomofem.
    fast
        Small sizes (tests).
    quiet
        No progress bar.

    Returns
    -------
    tomofem.pipeline.PipelineResult
    """
    from tomofem import pipeline
    from tomofem.config import load_config
    from tomofem.io.runfolder import RunFolder
    from tomofem.viz.progress import Progress

    folder_name = output or ("runs/demo-real" if real else "runs/demo")
    overrides = demo_overrides(real=real, fast=fast)
    overrides.update({"output.folder": folder_name, "output.force": force})
    cfg = load_config(None, overrides)
    folder = RunFolder.create(cfg.output.folder, force=cfg.output.force)
    folder.attach_log()
    try:
        folder.write_config(cfg)
        with Progress("demo", total=len(cfg.stages), unit="stage", disable=quiet) as bar:
            result = pipeline.run(cfg, folder, comm=folder.comm, progress=bar)
        folder.write_results(status=result.status)
    except BaseException:
        folder.write_results(status="failed")
        raise
    finally:
        folder.detach_log()
    if folder.comm.rank == 0:
        title = "real electrode crop" if real else "synthetic electrode"
        print(f"tomofem demo ({title}): image -> labels -> mesh -> tortuosity -> discharge\n")
        print(result.table())
        print(f"\nrun folder: {folder.path}  ({result.status})")
    return result
