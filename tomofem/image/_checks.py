"""Input validation shared by the image modules (raise :class:`ImageError`, never assert)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tomofem.errors import ImageError

VoxelSize = float | Sequence[float]


def spacing3(
    voxel_size: VoxelSize, what: str = "voxel_size", error: type[Exception] = ImageError
) -> np.ndarray:
    """Return a voxel size as three positive floats (one per array axis).

    Parameters
    ----------
    voxel_size
        One number (cubic voxels) or three (x, y, z; FIB-SEM voxels are often
        anisotropic), in the length unit of the other lengths (um in tomofem's
        configs). Units are not parsed: ``"1um"`` is refused.
    what
        Name of the argument in messages (``voxel_size``, ``spacing``).
    error
        Exception class raised (an :class:`ImageError` for image arguments,
        :class:`~tomofem.errors.ConfigError` for solver options, ...).
    """
    unit = "in the length unit of the other lengths (um in tomofem's configs)"
    if isinstance(voxel_size, str | bytes):
        raise error(
            f"{what}={voxel_size!r} is text; give the voxel edge as a number {unit}, e.g. "
            f"{what}=1.0, or three numbers (one per array axis x, y, z): units are not parsed"
        )
    try:
        arr = np.atleast_1d(np.asarray(voxel_size, dtype=float))
    except (TypeError, ValueError):
        raise error(
            f"{what}={voxel_size!r} is not a number or a list of numbers; give the voxel edge "
            f"as one float or three (one per array axis x, y, z), {unit}"
        ) from None
    if arr.size == 1:
        arr = np.repeat(arr.reshape(1), 3)
    if arr.shape != (3,):
        raise error(
            f"{what}={voxel_size!r} has {arr.size} value(s) (shape {arr.shape}); give one "
            "float (cubic voxels) or exactly three, one per array axis x, y, z"
        )
    if not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise error(
            f"{what}={voxel_size!r} is not a positive voxel size: every entry must be positive "
            f"and finite (> 0); give one float or three (one per array axis), {unit}"
        )
    return arr


def shape3(shape: Sequence[int] | int) -> tuple[int, int, int]:
    """Return a 3D shape as three positive ints."""
    arr = np.atleast_1d(np.asarray(shape))
    if arr.size == 1:
        arr = np.repeat(arr, 3)
    if arr.shape != (3,) or not np.issubdtype(arr.dtype, np.integer) or np.any(arr < 1):
        raise ImageError(f"shape={shape!r} is not a 3D shape; give three positive integers")
    out = (int(arr[0]), int(arr[1]), int(arr[2]))
    require_memory(  # every caller is a generator about to allocate this shape
        float(np.prod(out, dtype=float)) * SYNTHETIC_BYTES_PER_VOXEL,
        f"a synthetic structure of shape {out}",
        "choose a smaller shape (or a coarser voxel size for the same extent)",
    )
    return out


def volume3d(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Check that ``image`` is a non-empty 3D array and return it as an ndarray."""
    arr = np.asarray(image)
    if arr.ndim != 3:
        head = f"{name} has {arr.ndim} dimension(s) (shape {arr.shape}); a 3D volume is needed."
        if arr.ndim == 2:
            fix = "Stack 2D slices along a new first axis (np.stack) or add one with arr[None]."
        elif arr.ndim > 3 and np.squeeze(arr).ndim == 3:
            fix = "Drop its size-1 axes (np.squeeze(arr)) and save that."
        elif arr.ndim > 3:
            fix = (
                "If it holds several channels, time steps or volumes, pick one (e.g. arr[0] "
                "or arr[..., 0]) and save that 3D array."
            )
        else:
            fix = (
                "A flat array has lost its shape: reshape it to the scan's (nx, ny, nz) "
                "(arr.reshape(...)), or read the raw file with its shape."
            )
        raise ImageError(f"{head} {fix}")
    if arr.size == 0:
        raise ImageError(f"{name} is empty (shape {arr.shape}); give a volume with voxels")
    return arr


def labels3d(labels: np.ndarray, name: str = "labels") -> np.ndarray:
    """Check that ``labels`` is a 3D array of non-negative integer label indices."""
    arr = volume3d(labels, name)
    if arr.dtype == bool:
        return arr.astype(np.uint8)
    if not np.issubdtype(arr.dtype, np.integer):
        raise ImageError(
            f"{name} has dtype {arr.dtype}; label indices must be integers (0 = pore, 1 = solid, "
            "...). Segment grey values first (tomofem.image.segment) or cast with .astype(int)."
        )
    if arr.min() < 0:
        raise ImageError(f"{name} holds negative labels; label indices start at 0")
    return arr


def grey3d(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Check a 3D grey-value volume: finite numbers, not constant."""
    arr = volume3d(image, name)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise ImageError(f"{name} has non-numeric dtype {arr.dtype}; give grey values")
    if np.issubdtype(arr.dtype, np.floating) and not np.all(np.isfinite(arr)):
        bad = int(np.count_nonzero(~np.isfinite(arr)))
        raise ImageError(
            f"{name} holds {bad} NaN/inf grey value(s); mask or replace them "
            "(e.g. np.nan_to_num(image, nan=np.nanmedian(image))) before processing"
        )
    if arr.min() == arr.max():
        raise ImageError(
            f"{name} is constant (every voxel = {arr.flat[0]}); nothing to denoise or segment. "
            "Check that the right file/dataset was read."
        )
    return arr


def phase_present(labels: np.ndarray, phase: int, name: str = "labels") -> None:
    """Raise if label index ``phase`` does not occur in ``labels``."""
    if not np.any(labels == phase):
        present = np.unique(labels).tolist()
        raise ImageError(
            f"phase {phase} is absent from {name} (labels present: {present}); "
            "pick a present phase or check the segmentation"
        )


def rng(seed: int | np.random.Generator | None) -> np.random.Generator:
    """Return a numpy Generator for ``seed`` (``None`` is refused: results must be reproducible)."""
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None:
        raise ImageError("seed=None: give an integer seed so the result is reproducible")
    return np.random.default_rng(seed)


# --------------------------------------------------------------------------- memory

#: Peak bytes per voxel of the synthetic generators (labels plus masks; tracemalloc on 64^3)
#: and of :func:`tomofem.image.synthetic.synthetic_tomogram` (float64 blur and noise).
SYNTHETIC_BYTES_PER_VOXEL = 2
TOMOGRAM_BYTES_PER_VOXEL = 16
MEMORY_LIMIT_VAR = "TOMOFEM_MEMORY_LIMIT"


def _parse_bytes(text: str) -> float:
    units = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    unit = t[-1] if t and t[-1] in units else ""
    return float(t[: len(t) - len(unit)]) * units[unit]


def available_memory() -> tuple[float, str] | None:
    """Bytes this process may still allocate, and where the figure comes from.

    The smallest of: ``$TOMOFEM_MEMORY_LIMIT`` (e.g. ``8G``; set it on shared
    nodes or in batch jobs), the cgroup limit left (containers, Slurm), and the
    kernel's ``MemAvailable``. ``None`` if none is known (then nothing is refused).
    """
    import os
    from pathlib import Path

    found: list[tuple[float, str]] = []
    env = os.environ.get(MEMORY_LIMIT_VAR)
    if env:
        try:
            found.append((_parse_bytes(env), f"${MEMORY_LIMIT_VAR}={env}"))
        except ValueError:
            raise ImageError(
                f"${MEMORY_LIMIT_VAR}={env!r} is not a size; use e.g. 8G, 512M or bytes"
            ) from None
    try:
        limit = Path("/sys/fs/cgroup/memory.max").read_text().strip()
        used = Path("/sys/fs/cgroup/memory.current").read_text().strip()
        if limit != "max":
            found.append((float(limit) - float(used), "the cgroup memory limit"))
    except (OSError, ValueError):
        pass
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                found.append((float(line.split()[1]) * 1024, "MemAvailable in /proc/meminfo"))
    except (OSError, ValueError, IndexError):
        pass
    return min(found) if found else None


def require_memory(nbytes: float, what: str, fix: str) -> None:
    """Refuse, before allocating, a step whose estimated peak exceeds the memory available.

    Parameters
    ----------
    nbytes
        Estimated peak allocation of the step [bytes].
    what
        The culprit and the step, e.g. ``"reading scan.h5 (4000, 4000, 4000) float64"``.
    fix
        What the user can change, appended to the message.

    Raises
    ------
    ResourceError
        With the estimate and the memory available (and where that figure comes from).
    """
    from tomofem.errors import ResourceError

    avail = available_memory()
    if avail is None or nbytes <= avail[0]:
        return
    raise ResourceError(
        f"{what} needs about {nbytes / 2**30:.1f} GB, but only {max(avail[0], 0) / 2**30:.1f} GB "
        f"of memory is available ({avail[1]}); {fix}"
    )
