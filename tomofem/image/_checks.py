"""Input validation shared by the image modules (raise :class:`ImageError`, never assert)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from tomofem.errors import ImageError

VoxelSize = float | Sequence[float]


def spacing3(voxel_size: VoxelSize, what: str = "voxel_size") -> np.ndarray:
    """Return a voxel size as three positive floats (one per array axis)."""
    arr = np.atleast_1d(np.asarray(voxel_size, dtype=float))
    if arr.size == 1:
        arr = np.repeat(arr, 3)
    if arr.shape != (3,) or not np.all(np.isfinite(arr)) or np.any(arr <= 0):
        raise ImageError(
            f"{what}={voxel_size!r} is not a positive voxel size; give one float or three "
            "(one per array axis), in the length unit of the other lengths"
        )
    return arr


def shape3(shape: Sequence[int] | int) -> tuple[int, int, int]:
    """Return a 3D shape as three positive ints."""
    arr = np.atleast_1d(np.asarray(shape))
    if arr.size == 1:
        arr = np.repeat(arr, 3)
    if arr.shape != (3,) or not np.issubdtype(arr.dtype, np.integer) or np.any(arr < 1):
        raise ImageError(f"shape={shape!r} is not a 3D shape; give three positive integers")
    return (int(arr[0]), int(arr[1]), int(arr[2]))


def volume3d(image: np.ndarray, name: str = "image") -> np.ndarray:
    """Check that ``image`` is a non-empty 3D array and return it as an ndarray."""
    arr = np.asarray(image)
    if arr.ndim != 3:
        raise ImageError(
            f"{name} has {arr.ndim} dimension(s) (shape {arr.shape}); a 3D volume is needed. "
            "Stack 2D slices along a new first axis (np.stack) or add one with arr[None]."
        )
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
