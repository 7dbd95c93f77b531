"""Read 3D images (TIFF stack or folder, raw binary, .npy, HDF5) into a :class:`Volume`.

Every failure is an :class:`~tomofem.errors.ImageError` naming the file and the fix.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tomofem.errors import ImageError, ResourceError
from tomofem.image._checks import VoxelSize, require_memory, spacing3, volume3d

log = logging.getLogger(__name__)

#: Grey values of the shared real electrode and the label index each maps to.
ELECTRODE_VALUES = (0, 85, 170)
ELECTRODE_NAMES = ("pore", "active", "cbd")
#: Suffixes read as headerless raw binary (need ``shape`` and ``dtype``).
RAW_SUFFIXES = (".raw", ".bin", ".vol", ".dat")
#: Suffixes read as HDF5 (one dataset, chosen with ``dataset``).
HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
_TIFF_SUFFIXES = (".tif", ".tiff")


@dataclass(frozen=True)
class Volume:
    """A 3D image with its voxel size and, for label images, phase names.

    Attributes
    ----------
    data
        The voxels, array axes (x, y, z) = (0, 1, 2).
    spacing
        Physical voxel size per axis (FIB-SEM voxels are often anisotropic),
        in the user's length unit (1.0 = lengths in voxels).
    label_names
        Name of label index ``i`` for a label image (``None`` for grey values).
    source
        Where the data came from (file path, generator), for messages and provenance.
    """

    data: np.ndarray
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.0)
    label_names: tuple[str, ...] | None = None
    source: str = ""

    def __post_init__(self) -> None:
        volume3d(self.data, self.source or "Volume.data")
        object.__setattr__(self, "spacing", tuple(float(s) for s in spacing3(self.spacing)))

    @property
    def shape(self) -> tuple[int, ...]:
        """Voxels per axis."""
        return self.data.shape

    @property
    def extent(self) -> tuple[float, float, float]:
        """Physical size of the box per axis."""
        return tuple(float(n * h) for n, h in zip(self.shape, self.spacing, strict=True))

    def metadata(self) -> dict:
        """JSON-serialisable description (no voxels)."""
        return {
            "shape": list(self.shape),
            "dtype": str(self.data.dtype),
            "spacing": list(self.spacing),
            "label_names": list(self.label_names) if self.label_names else None,
            "source": self.source,
        }


def _natural_key(p: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def _check_file(path: Path) -> None:
    if not path.exists():
        raise ImageError(f"{path}: no such file or folder; check the path")


def _require_memory(path: Path, shape: Sequence[int], dtype: np.dtype, copies: int = 1) -> None:
    """Refuse to read an image the memory cannot hold, from its header alone."""
    shp = tuple(int(n) for n in shape)
    nbytes = float(np.prod(shp, dtype=float)) * np.dtype(dtype).itemsize * copies
    require_memory(
        nbytes,
        f"{path}: reading the {shp} {np.dtype(dtype).name} image"
        + (f" ({copies} copies while reading)" if copies > 1 else ""),
        "crop or downsample the file first (e.g. read a sub-block with h5py or tifffile's "
        "memmap and save it), or run on a node with more memory",
    )


class _LogRecords(logging.Handler):
    """Collects the messages of a logger (tifffile reports damaged files only by logging)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def _tifffile_log() -> Iterator[_LogRecords]:
    """Collect tifffile's warnings instead of printing them (they repeat the error raised)."""
    logger = logging.getLogger("tifffile")
    records = _LogRecords()
    old = (logger.level, logger.propagate)
    logger.addHandler(records)
    logger.setLevel(logging.WARNING)
    logger.propagate = False
    try:
        yield records
    finally:
        logger.removeHandler(records)
        logger.setLevel(old[0])
        logger.propagate = old[1]


def _to_3d(arr: np.ndarray) -> np.ndarray:
    """Drop size-1 axes only while more than three remain (a 1x1x1 volume stays 3D)."""
    while arr.ndim > 3 and 1 in arr.shape:
        arr = arr.squeeze(axis=arr.shape.index(1))
    return arr


def _declared_shape(tf: object) -> tuple[int, ...] | None:
    """Shape a TIFF's own metadata declares (tifffile's or ImageJ's), or None."""
    shaped = getattr(tf, "shaped_metadata", None)
    if shaped and isinstance(shaped[0], dict) and "shape" in shaped[0]:
        return tuple(int(n) for n in shaped[0]["shape"])
    ij = getattr(tf, "imagej_metadata", None)
    if ij and int(ij.get("images", 0)) > 1:
        page = tf.pages[0]  # type: ignore[attr-defined]
        return (int(ij["images"]), *(int(n) for n in page.shape))
    return None


def _truncated(p: Path, detail: str) -> ImageError:
    return ImageError(
        f"{p}: the TIFF is truncated or damaged: {detail}. Check the file: copy or export it "
        "again (an interrupted copy or download cuts a stack short)"
    )


def _read_tiff_file(p: Path) -> np.ndarray:
    import tifffile

    with _tifffile_log() as log_records:
        try:
            with tifffile.TiffFile(p) as tf:
                series = tf.series[0]
                declared = _declared_shape(tf)
                shape = declared if declared is not None else series.shape
                _require_memory(p, shape, series.dtype)
                arr = series.asarray()
                pages = len(tf.pages)
        except (ImageError, ResourceError):
            raise
        except Exception as exc:  # tifffile raises several types for damaged or non-TIFF input
            text = str(exc)
            if any(w in text for w in ("failed to read", "truncated", "incomplete")) or isinstance(
                exc, EOFError
            ):
                raise _truncated(p, f"its pixel data end early ({text})") from exc
            raise ImageError(
                f"{p}: not a readable TIFF ({type(exc).__name__}: {exc}); check the file "
                "(raw binary? use read_raw with shape and dtype)"
            ) from exc
    damaged = [m for m in log_records.messages if "invalid page offset" in m or "reshape" in m]
    if declared is not None and int(np.prod(declared)) != arr.size:
        expected = int(np.prod(declared[:-2])) if len(declared) > 2 else 1
        what = (
            f"only {pages} of its {expected} pages can be read"
            if pages < expected
            else f"its pixel data give shape {arr.shape}"
        )
        raise _truncated(p, f"it declares shape {declared} but {what}")
    if damaged:
        raise _truncated(p, f"{damaged[0]}; {pages} page(s) can be read")
    return arr


def read_tiff(path: str | os.PathLike) -> np.ndarray:
    """Read a multi-page TIFF file, or a folder of 2D TIFF slices (sorted by natural order).

    Size-1 axes are kept (a 1x1x1 stack is a 3D volume of one voxel); a file
    cut short (an interrupted copy) is reported as truncated, never as a
    smaller image.
    """
    import tifffile

    p = Path(path)
    _check_file(p)
    if not p.is_dir():
        return _to_3d(_read_tiff_file(p))
    files = sorted((f for f in p.iterdir() if f.suffix.lower() in _TIFF_SUFFIXES), key=_natural_key)
    if not files:
        raise ImageError(f"{p}: folder holds no .tif/.tiff slices; point at the slices")
    try:
        with _tifffile_log(), tifffile.TiffFile(files[0]) as tf:
            first = tf.series[0]
            _require_memory(p, (len(files), *first.shape), first.dtype, copies=2)
    except (ImageError, ResourceError):
        raise
    except Exception as exc:
        raise ImageError(f"{files[0]}: not a readable TIFF ({type(exc).__name__}: {exc})") from exc
    slices = [_read_tiff_file(f) for f in files]
    shapes = {s.shape for s in slices}
    if len(shapes) != 1:
        raise ImageError(
            f"{p}: slices have different shapes {sorted(shapes)}; all slices of a "
            "stack must have the same size (remove stray files)"
        )
    return _to_3d(np.stack(slices))


def read_raw(
    path: str | os.PathLike,
    shape: Sequence[int],
    dtype: str | np.dtype,
    byte_order: str = "<",
    offset: int = 0,
) -> np.ndarray:
    """Read headerless binary voxels.

    Parameters
    ----------
    shape
        Voxels per axis, slowest-varying first (C order), as written by the scanner.
    dtype
        Voxel type, e.g. ``"uint16"``, ``"float32"``.
    byte_order
        ``"<"`` little endian (most PCs), ``">"`` big endian (some detectors).
    offset
        Header bytes to skip.
    """
    p = Path(path)
    _check_file(p)
    if byte_order not in ("<", ">", "="):
        raise ImageError(f"{p}: byte_order={byte_order!r} must be '<', '>' or '='")
    try:
        dt = np.dtype(dtype).newbyteorder(byte_order)
    except TypeError as exc:
        raise ImageError(f"{p}: dtype={dtype!r} is not a numpy dtype (try 'uint16')") from exc
    shp = tuple(int(s) for s in shape)
    expected = int(np.prod(shp)) * dt.itemsize
    size = p.stat().st_size - int(offset)
    if size != expected:
        raise ImageError(
            f"{p}: holds {size} bytes after the {offset}-byte header, but shape {shp} of "
            f"{dt.name} needs {expected}; check shape, dtype and header offset"
        )
    _require_memory(p, shp, dt, copies=1 if dt.isnative else 2)
    arr = np.fromfile(p, dtype=dt, offset=int(offset)).reshape(shp)
    return arr.astype(arr.dtype.newbyteorder("="))


def read_npy(path: str | os.PathLike) -> np.ndarray:
    """Read a ``.npy`` file (no pickles)."""
    p = Path(path)
    _check_file(p)
    try:
        with open(p, "rb") as fh:  # the header alone gives the size
            fmt = np.lib.format
            version = fmt.read_magic(fh)
            header = {(1, 0): fmt.read_array_header_1_0, (2, 0): fmt.read_array_header_2_0}
            if version in header:
                shape, _, dtype = header[version](fh)
                _require_memory(p, shape, dtype)
        return np.load(p, allow_pickle=False)
    except (ValueError, OSError) as exc:
        raise ImageError(f"{p}: not a readable .npy array ({exc}); save with np.save") from exc


def read_hdf5(path: str | os.PathLike, dataset: str | None = None) -> np.ndarray:
    """Read one dataset of an HDF5 file.

    Parameters
    ----------
    dataset
        Path of the dataset inside the file (``"volume"``, ``"scan/labels"``);
        ``None`` works if the file holds exactly one. In a run configuration
        this is ``image.dataset`` (``--dataset`` on the command line).
    """
    import h5py

    p = Path(path)
    _check_file(p)
    try:
        with h5py.File(p, "r") as f:
            if dataset is None:
                names: list[str] = []
                f.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
                if not names:
                    raise ImageError(f"{p}: holds no dataset; check the file (h5ls {p})")
                if len(names) != 1:
                    raise ImageError(
                        f"{p}: holds {len(names)} datasets {names}; choose one: image.dataset = "
                        f"{names[0]!r} in the config, --dataset {names[0]} on the command line, "
                        f"or pass dataset={names[0]!r} in Python"
                    )
                dataset = names[0]
            if dataset not in f or not isinstance(f[dataset], h5py.Dataset):
                raise ImageError(f"{p}: no dataset {dataset!r}; list them with h5ls {p}")
            _require_memory(p, f[dataset].shape, f[dataset].dtype)
            return f[dataset][()]
    except (ImageError, ResourceError):
        raise
    except OSError as exc:
        raise ImageError(f"{p}: not a readable HDF5 file ({exc})") from exc


def read_volume(
    path: str | os.PathLike,
    spacing: VoxelSize = 1.0,
    label_names: Sequence[str] | None = None,
    **kwargs,
) -> Volume:
    """Read any supported 3D image by its suffix (folder = TIFF slices).

    Parameters
    ----------
    path
        ``.tif/.tiff`` file or folder of slices, ``.npy``, ``.h5/.hdf5``, or
        ``.raw/.bin/.vol`` (then ``shape`` and ``dtype`` keywords are needed).
    spacing
        Physical voxel size, per axis if anisotropic; the file formats here
        do not carry it reliably, so it is given explicitly.
    label_names
        Phase names of a label image, one per label index.
    **kwargs
        Passed to the reader (``dataset`` for HDF5; ``shape``, ``dtype``,
        ``byte_order``, ``offset`` for raw).
    """
    p = Path(path)
    suffix = p.suffix.lower()
    if p.is_dir() or suffix in _TIFF_SUFFIXES:
        arr = read_tiff(p)
    elif suffix == ".npy":
        arr = read_npy(p)
    elif suffix in HDF5_SUFFIXES:
        arr = read_hdf5(p, **kwargs)
    elif suffix in RAW_SUFFIXES:
        if "shape" not in kwargs or "dtype" not in kwargs:
            raise ImageError(f"{p}: raw binary needs shape= and dtype= (e.g. dtype='uint16')")
        arr = read_raw(p, **kwargs)
    else:
        _check_file(p)
        raise ImageError(
            f"{p}: unknown image type {suffix!r}; supported: .tif/.tiff (or a folder of "
            "slices), .npy, .h5/.hdf5, .raw/.bin/.vol with shape and dtype"
        )
    volume3d(arr, str(p))
    names = tuple(label_names) if label_names is not None else None
    return Volume(data=arr, spacing=spacing, label_names=names, source=str(p))


#: Phase names of label indices 0, 1, 2 (beyond: ``phase3``, ...), in tag order.
PHASE_NAMES = ("pore", "active", "cbd")
#: The shared electrode's convention, quoted by every label-value message.
LABEL_VALUES_EXAMPLE = "e.g. label_values = [0, 85, 170] for 0 = pore, 85 = NMC, 170 = CBD"


def phase_names(n: int) -> tuple[str, ...]:
    """Names of label indices ``0`` to ``n-1``: pore, active, cbd, phase3, ..."""
    return tuple(PHASE_NAMES[i] if i < len(PHASE_NAMES) else f"phase{i}" for i in range(n))


def _shown(values: Sequence) -> str:
    vals = [v.item() if hasattr(v, "item") else v for v in values]
    vals = [float(f"{v:.4g}") if isinstance(v, float) else v for v in vals]
    return str(vals) if len(vals) <= 10 else f"[{', '.join(map(str, vals[:10]))}, ...]"


def resolve_label_values(
    present: Sequence,
    phases: int,
    label_values: Sequence[int] | None = None,
    source: str = "image",
) -> list:
    """Decide which stored value of a label image is which phase, or refuse.

    The mapping is never guessed: with ``label_values`` the image may hold
    only those values (a listed phase may be absent from a crop: logged);
    without them it must hold exactly ``phases`` distinct values, taken in
    ascending order (pore first). The shared electrode stores 0 = pore,
    85 = NMC (active), 170 = CBD: ``phases = 3, label_values = [0, 85, 170]``.

    Parameters
    ----------
    present
        The distinct values stored in the image (``np.unique(data)``).
    phases
        Number of phases configured (``segment.phases``).
    label_values
        Stored value of each phase in tag order (pore, active, CBD, ...), or
        None/empty for "exactly ``phases`` values, ascending".
    source
        The image, for messages.

    Returns
    -------
    list
        Stored values in tag order (index ``i`` becomes label index ``i``).

    Raises
    ------
    ImageError
        Showing the values found and the fix: values not integers, a single
        value, values missing from ``label_values``, or a count that does not
        match ``phases``.
    """
    vals = np.unique(np.asarray(present))
    n = int(vals.size)
    shown = _shown(vals)
    grey_fix = (
        "if this is a grey-scale image, segment it instead (segment.method = 'otsu', or "
        "'multiotsu' with segment.phases = 3)"
    )
    if n and np.issubdtype(vals.dtype, np.floating) and not np.all(vals == np.round(vals)):
        raise ImageError(
            f"{source}: holds non-integer values ({n} distinct, {shown}), so it is not a label "
            f"image of stored phase values; {grey_fix}"
        )
    if n == 1:
        raise ImageError(
            f"{source}: every voxel holds the value {vals[0].item()}: a single phase, nothing to "
            "mesh or homogenise; check the file or the crop (image.crop_start, image.crop_size)"
            f", or {grey_fix}"
        )
    if label_values:
        wanted = [int(v) for v in label_values]
        if len(set(wanted)) != len(wanted):
            raise ImageError(
                f"{source}: segment.label_values = {wanted} repeats a value; give each phase's "
                f"stored value once, in tag order (pore, active, CBD), {LABEL_VALUES_EXAMPLE}"
            )
        unknown = np.setdiff1d(vals, wanted)
        if unknown.size:
            raise ImageError(
                f"{source}: holds the values {shown}, but segment.label_values = {wanted} lacks "
                f"{_shown(unknown)}; list the stored value of every phase in tag order (pore, "
                f"active, CBD), {LABEL_VALUES_EXAMPLE}, and set segment.phases to their number "
                "(remove or merge extra values such as a mask first)"
            )
        absent = [
            f"{v} ({name})"
            for v, name in zip(wanted, phase_names(len(wanted)), strict=True)
            if v not in vals
        ]
        if absent:
            log.warning(
                "%s: label value(s) %s of segment.label_values do not occur in the image: "
                "those phases are absent",
                source,
                ", ".join(absent),
            )
        return wanted
    if n > phases:
        raise ImageError(
            f"{source}: holds {n} distinct values {shown}, but segment.phases = {phases}: "
            f"{n - phases} value(s) more than phases. If every value is a phase, set "
            f"segment.phases = {n} and segment.label_values to the {n} stored values in tag "
            "order (pore, active, CBD, ...); if a value is no phase (a mask, a "
            "background), remove or merge it before running. For the shared electrode "
            f"({LABEL_VALUES_EXAMPLE}) the values are exactly [0, 85, 170] with "
            "segment.phases = 3" + (f"; {grey_fix}" if n > 9 else "")
        )
    if n < phases:
        raise ImageError(
            f"{source}: holds {n} distinct values {shown}, but segment.phases = {phases}: "
            f"set segment.phases = {n}, or, if a phase is absent from this image or crop, "
            f"list all {phases} phases' stored values in segment.label_values in tag order "
            f"(pore, active, CBD), {LABEL_VALUES_EXAMPLE}"
        )
    out = [v.item() for v in vals]
    log.info(
        "%s: label values %s taken in ascending order as %s (set segment.label_values to choose)",
        source,
        out,
        ", ".join(phase_names(n)),
    )
    return out


def map_labels(data: np.ndarray, values: Sequence, source: str = "image") -> np.ndarray:
    """Map stored values (e.g. 0/85/170) to label indices 0, 1, 2, ... (``uint8``).

    Parameters
    ----------
    values
        Stored value of label index ``i`` at position ``i``, e.g. ``(0, 85, 170)``
        for the shared electrode (0 = pore, 85 = NMC, 170 = CBD); see
        :func:`resolve_label_values` for checking them against the image.

    Raises
    ------
    ImageError
        If the image holds a value not in ``values``.
    """
    vals = np.asarray(values)
    present = np.unique(data)
    unknown = np.setdiff1d(present, vals)
    if unknown.size:
        raise ImageError(
            f"{source}: holds values {unknown.tolist()[:10]} not among the expected label "
            f"values {vals.tolist()}; pass the right values or segment the grey image first"
        )
    order = np.argsort(vals, kind="stable")
    ordered = vals[order]
    small = np.issubdtype(data.dtype, np.integer) and min(present.min(), ordered.min()) >= 0
    small = small and max(present.max(), ordered.max()) < 2**20
    if small:  # one lookup table, no index array of the image's size
        lut = np.zeros(int(max(ordered.max(), present.max())) + 1, dtype=np.uint8)
        lut[ordered.astype(np.int64)] = order.astype(np.uint8)
        return lut[data]
    out = np.empty(data.shape, dtype=np.uint8)
    for i in range(data.shape[0]):  # slab by slab: the index array stays small
        out[i] = order[np.searchsorted(ordered, data[i])]
    return out


def load_electrode(path: str | os.PathLike, spacing: VoxelSize = 1.0) -> Volume:
    """Load the shared real electrode (0 pore / 85 NMC / 170 CBD) as label indices 0 / 1 / 2.

    Parameters
    ----------
    path
        The TIFF file (``../shared/data/electrode.tiff`` in the team checkout).
    spacing
        Voxel size; the source does not state one, so lengths are in voxels by default.
    """
    raw = read_tiff(path)
    volume3d(raw, str(path))
    labels = map_labels(raw, ELECTRODE_VALUES, str(path))
    return Volume(labels, spacing=spacing, label_names=ELECTRODE_NAMES, source=str(path))
