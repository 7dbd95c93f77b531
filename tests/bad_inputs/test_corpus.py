"""The bad-input corpus: every wrong input ends in a tomofem error naming the culprit and the fix.

One parametrised test runs every case of :data:`CASES` through the public API
and asserts the *exact* exception type (not a base class: a ``ValueError``
from deep inside numpy would pass ``pytest.raises(ValueError)``) and that the
message matches two patterns: one naming the culprit (file, key path,
phase, stage) and one the fix. The inputs are tiny and generated in a
temporary folder at test time (a truncated TIFF is a real TIFF cut short),
so nothing binary is checked in. A few cases are not errors but answers that
must not be made up: a phase that does not percolate has tortuosity
``inf`` with the reason, never a finite or negative number.

``test_cli_*`` at the end feed a representative subset to the ``tomofem``
command in a subprocess: one paragraph, exit code 2, no traceback unless
``--debug``.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tomofem import config, materials, pipeline
from tomofem.errors import (
    ConfigError,
    ImageError,
    MeshingError,
    ParameterError,
    PercolationError,
    ResourceError,
    RunFolderError,
)
from tomofem.homogenization import bounds
from tomofem.image import connectivity, metrics, synthetic
from tomofem.image import io as image_io
from tomofem.io import checkpoint, runfolder
from tomofem.problems import electrochem
from tomofem.solvers.discharge import Protocol, Step

# --------------------------------------------------------------------------- inputs


def _labels(shape=(8, 8, 8)) -> np.ndarray:
    lab = np.zeros(shape, np.uint8)
    lab[2:6, 2:6, :] = 1  # a solid column along z inside pore
    return lab


def _grey(shape=(10, 10, 10), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return _labels(shape).astype(float) + 0.1 * rng.standard_normal(shape)


def _tiff(path: Path, data: np.ndarray) -> Path:
    import tifffile

    tifffile.imwrite(path, data)
    return path


def truncated_tiff(tmp: Path) -> Path:
    """A real multi-page TIFF cut to 60 % of its bytes (an interrupted copy)."""
    full = _tiff(
        tmp / "full.tif", (np.arange(8 * 16 * 16) % 251).astype(np.uint8).reshape(8, 16, 16)
    )
    cut = tmp / "scan.tif"
    data = full.read_bytes()
    cut.write_bytes(data[: int(0.6 * len(data))])
    return cut


def truncated_compressed_stack(tmp: Path) -> Path:
    """A 256-page compressed TIFF cut short: tifffile falls back to one 2D page (read as "2D")."""
    import tifffile

    rng = np.random.default_rng(0)
    full = tmp / "full256.tif"
    tifffile.imwrite(full, rng.integers(0, 3, (256, 16, 16), dtype=np.uint8), compression="zlib")
    cut = tmp / "stack256.tif"
    data = full.read_bytes()
    cut.write_bytes(data[: int(0.6 * len(data))])
    return cut


def text_as_tiff(tmp: Path) -> Path:
    p = tmp / "notes.tif"
    p.write_text("this is not an image\n" * 20)
    return p


def raw_file(tmp: Path, nbytes: int = 1000) -> Path:
    p = tmp / "scan.raw"
    p.write_bytes(bytes(nbytes))
    return p


def npy_header_only(tmp: Path, shape=(2000, 2000, 2000), dtype="<f8") -> Path:
    """A .npy whose header claims a huge array (64 GB) but holds no data."""
    p = tmp / "huge.npy"
    with open(p, "wb") as fh:
        np.lib.format.write_array_header_1_0(
            fh, {"descr": dtype, "fortran_order": False, "shape": shape}
        )
    return p


def sparse_hdf5(tmp: Path, shape=(4000, 4000, 4000)) -> Path:
    """An HDF5 dataset of 512 GB that occupies a few kB on disk (chunked, never written)."""
    import h5py

    p = tmp / "huge.h5"
    with h5py.File(p, "w") as h5:
        h5.create_dataset("volume", shape=shape, dtype="f8", chunks=(64, 64, 64))
    return p


def two_dataset_hdf5(tmp: Path) -> Path:
    import h5py

    p = tmp / "two.h5"
    with h5py.File(p, "w") as h5:
        h5["grey"] = _grey()
        h5["labels"] = _labels()
    return p


def toml(tmp: Path, text: str) -> Path:
    p = tmp / "run.toml"
    p.write_text(text)
    return p


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    """One bad input.

    Attributes
    ----------
    id
        Test id.
    run
        Calls the public API on the bad input (gets a temporary folder).
    error
        Exact exception type expected; ``None`` if ``run`` returns an answer
        that ``check`` must accept.
    culprit, fix
        Regular expressions the message must match (``re.search``, case-insensitive).
    check
        For answers: a predicate on the returned object.
    """

    id: str
    run: Callable[[Path], Any]
    error: type[Exception] | None
    culprit: str = ""
    fix: str = ""
    check: Callable[[Any], bool] | None = None


def _read(path_fn, **kw):
    def run(tmp):
        from tomofem.image.io import read_volume

        return read_volume(path_fn(tmp), **kw)

    return run


def _config(text: str):
    def run(tmp):
        from tomofem.config import load_config

        return load_config(toml(tmp, text))

    return run


def _voxel_tau(im_fn, axis=0, **kw):
    def run(tmp):
        from tomofem.homogenization.voxel_fvm import tortuosity_voxel

        return tortuosity_voxel(im_fn(), axis, backend="scipy", **kw)

    return run


def _segment(image_fn, **kw):
    def run(tmp):
        from tomofem.image.segment import threshold

        return threshold(image_fn(), **kw)

    return run


def _nine_levels():
    from tomofem.image.segment import threshold

    levels = (np.arange(9 * 9 * 9) % 9).reshape(9, 9, 9).astype(float)
    noisy = levels + 0.05 * np.random.default_rng(1).standard_normal(levels.shape)
    return threshold(noisy, "multiotsu", 9)


def _blocked() -> np.ndarray:
    im = np.ones((6, 6, 6), bool)
    im[3] = False  # a wall across axis 0
    return im


def _one_voxel() -> np.ndarray:
    im = np.zeros((6, 6, 6), bool)
    im[2, 3, 3] = True
    return im


def _tau_inf(res) -> bool:
    return (
        math.isinf(res.tau)
        and res.tau > 0
        and res.k_eff == 0.0
        and not res.percolating
        and "does not connect" in res.message
    )


def _params_without(key: str) -> dict:
    from tomofem.materials import half_cell

    p = half_cell()
    del p[key]
    return p


def _discharge(protocol, collector_gap: bool = False):
    """A half-cell run on a voxel mesh of one active block (x = 0 collector unless a gap)."""
    from tomofem._fenics import MPI
    from tomofem.meshing import structured_tetmesh, to_dolfinx
    from tomofem.solvers.discharge import run_half_cell

    labels = np.zeros((6, 4, 4), np.uint8)
    labels[1 if collector_gap else 0 : 5, 1:3, 1:3] = 1
    dmesh = to_dolfinx(structured_tetmesh(labels, (2.0, 2.0, 2.0)), MPI.COMM_SELF)
    return run_half_cell(dmesh, materials.half_cell(), protocol)


def _stored(values=(0, 85, 170), extra: int | None = None) -> np.ndarray:
    """A label image storing ``values`` (the shared electrode's 0 pore / 85 NMC / 170 CBD)."""
    lab = np.full((8, 8, 8), values[0], np.uint8)
    if len(values) > 1:
        lab[2:6, 2:6, :] = values[1]
    if len(values) > 2:
        lab[0] = values[2]
    if extra is not None:
        lab[7, 0, 0] = extra
    return lab


def _segment_labels(data_fn, **cfg):
    def run(tmp):
        vol = image_io.Volume(data_fn(), source="seg.tif")
        return pipeline.segment(vol, config.SegmentConfig(method="labels", **cfg))

    return run


def _mapped(values_in_tag_order) -> Callable[[Any], bool]:
    """The stored values went to label indices 0, 1, 2 in the order given."""

    def check(out) -> bool:
        vol, report = out
        raw = _stored()
        return report["values"] == list(values_in_tag_order) and all(
            np.all(vol.data[raw == v] == i) for i, v in enumerate(values_in_tag_order)
        )

    return check


def _existing_run_folder(tmp: Path) -> Path:
    from tomofem.io.runfolder import RunFolder

    RunFolder.create(tmp / "run1")
    return tmp / "run1"


def _mesher():
    from tomofem.meshing.pipeline import mesh_image

    return mesh_image


def _mesh_image(labels_fn, **opts):
    def run(tmp):
        from tomofem.meshing.options import MeshOptions

        return _mesher()(labels_fn(), (1.0, 1.0, 1.0), MeshOptions(**opts))

    return run


CASES: list[Case] = [
    # ---------------------------------------------------------------- files
    Case(
        "missing-file", _read(lambda t: t / "nope.tif"), ImageError, r"nope\.tif", "check the path"
    ),
    Case(
        "truncated-tiff", _read(truncated_tiff), ImageError, r"scan\.tif", r"check the file|truncat"
    ),
    Case(
        "text-file-as-tiff", _read(text_as_tiff), ImageError, r"notes\.tif", "not a readable TIFF"
    ),
    Case(
        "unknown-suffix",
        _read(lambda t: (t / "scan.xyz").write_text("x") and t / "scan.xyz"),
        ImageError,
        r"scan\.xyz",
        r"supported: \.tif",
    ),
    Case(
        "raw-without-shape",
        _read(raw_file),
        ImageError,
        r"scan\.raw",
        r"needs shape= and dtype=",
    ),
    Case(
        "raw-wrong-shape",
        _read(raw_file, shape=(10, 10, 11), dtype="uint8"),
        ImageError,
        r"scan\.raw.*1000 bytes",
        "check shape, dtype and header offset",
    ),
    Case(
        "raw-wrong-dtype-size",
        _read(raw_file, shape=(10, 10, 10), dtype="uint16"),
        ImageError,
        r"scan\.raw.*needs 2000",
        "check shape, dtype",
    ),
    Case(
        "raw-unknown-dtype",
        _read(raw_file, shape=(10, 10, 10), dtype="uint17"),
        ImageError,
        r"dtype='uint17'",
        r"try 'uint16'",
    ),
    Case(
        "raw-bad-byte-order",
        _read(raw_file, shape=(10, 10, 10), dtype="uint8", byte_order="big"),
        ImageError,
        r"byte_order='big'",
        r"must be '<', '>' or '='",
    ),
    Case(
        "npy-truncated",
        _read(lambda t: npy_header_only(t, shape=(5, 5, 5))),
        ImageError,
        r"huge\.npy",
        r"np\.save|truncat",
    ),
    Case(
        "npy-pickled-objects",
        _read(lambda t: (np.save(t / "obj.npy", np.array([{}], dtype=object)), t / "obj.npy")[1]),
        ImageError,
        r"obj\.npy",
        r"save with np\.save",
    ),
    Case(
        "hdf5-ambiguous-dataset",
        _read(two_dataset_hdf5),
        ImageError,
        r"two\.h5: holds 2 datasets \['grey', 'labels'\]",
        r"image\.dataset = 'grey' in the config, --dataset grey on the command line",
    ),
    Case(
        "hdf5-dataset-chosen",  # image.dataset / --dataset reach the reader
        lambda t: pipeline.load_image(
            config.ImageConfig(source=str(two_dataset_hdf5(t)), dataset="labels")
        )[0],
        None,
        check=lambda v: v.shape == (8, 8, 8) and v.data.dtype == np.uint8,
    ),
    Case(
        "config-dataset-on-a-tiff",
        lambda t: config.load_config(
            None,
            {"image.source": str(_tiff(t / "scan.tif", _labels())), "image.dataset": "labels"},
        ),
        ConfigError,
        r"image\.dataset: 'labels' is set but '.*scan\.tif' is not an HDF5 file",
        r"remove image\.dataset",
    ),
    Case(
        "hdf5-missing-dataset",
        _read(two_dataset_hdf5, dataset="volume"),
        ImageError,
        r"no dataset 'volume'",
        "h5ls",
    ),
    Case(
        "tiff-2d-where-3d-needed",
        _read(lambda t: _tiff(t / "slice.tif", _labels()[0])),
        ImageError,
        r"slice\.tif has 2 dimension",
        r"np\.stack",
    ),
    Case(
        "tiff-truncated-256-pages",  # was "has 2 dimension(s) ... np.stack"
        _read(truncated_compressed_stack),
        ImageError,
        r"stack256\.tif: the TIFF is truncated.*declares shape \(256, 16, 16\) but only \d+ of",
        r"copy or export it again",
    ),
    Case(
        "npy-4d",  # was advised to stack 2D slices
        _read(lambda t: (np.save(t / "four.npy", np.zeros((2, 3, 4, 5))), t / "four.npy")[1]),
        ImageError,
        r"four\.npy has 4 dimension\(s\) \(shape \(2, 3, 4, 5\)\)",
        r"channels, time steps or volumes, pick one \(e\.g\. arr\[0\]",
    ),
    Case(
        "npy-4d-size-1-axis",
        _read(lambda t: (np.save(t / "four.npy", np.zeros((1, 4, 4, 4))), t / "four.npy")[1]),
        ImageError,
        r"four\.npy has 4 dimension\(s\)",
        r"np\.squeeze",
    ),
    Case(
        "npy-1d",
        _read(lambda t: (np.save(t / "flat.npy", np.zeros(500)), t / "flat.npy")[1]),
        ImageError,
        r"flat\.npy has 1 dimension\(s\)",
        r"reshape it",
    ),
    Case(
        "tiff-one-voxel-stays-3d",  # the reader dropped its size-1 axes: "0 dimension(s)"
        _read(lambda t: _tiff(t / "one.tif", np.zeros((1, 1, 1), np.uint8))),
        None,
        check=lambda v: v.shape == (1, 1, 1),
    ),
    # ---------------------------------------------------------------- memory
    Case(
        "npy-too-large-for-memory",
        _read(npy_header_only),
        ResourceError,
        r"huge\.npy.*\(2000, 2000, 2000\).*GB",
        r"crop|downsample",
    ),
    Case(
        "hdf5-too-large-for-memory",
        _read(sparse_hdf5),
        ResourceError,
        r"huge\.h5.*GB",
        r"crop|downsample",
    ),
    Case(
        "synthetic-too-large-for-memory",
        lambda t: pipeline.load_image(config.ImageConfig(shape=(3000, 3000, 3000))),
        ResourceError,
        r"3000.*GB",
        r"smaller shape|crop",
    ),
    # ---------------------------------------------------------------- grey values
    Case(
        "nan-grey-values",
        _segment(lambda: np.where(_labels() > 0, np.nan, 1.0)),
        ImageError,
        r"NaN/inf",
        r"nan_to_num",
    ),
    Case(
        "inf-grey-values",
        _segment(lambda: np.where(_labels() > 0, np.inf, 1.0)),
        ImageError,
        r"NaN/inf",
        r"mask or replace",
    ),
    Case(
        "synthetic-particle-larger-than-solid",  # returned an all-solid image for porosity 0.5
        lambda t: synthetic.random_overlapping_spheres((8, 8, 8), 0.5, 50.0, 1.0, 0),
        ImageError,
        r"one particle of semi-axes \[50\.0, 50\.0, 50\.0\].*\[8, 8, 8\] image at porosity 0\.5",
        r"larger shape or smaller particles",
    ),
    Case(
        "synthetic-packing-particle-too-large",
        lambda t: synthetic.random_sphere_packing((8, 8, 8), 0.7, 50.0, 1.0, 0),
        ImageError,
        r"one particle .* porosity 0\.7",
        r"larger shape or smaller particles",
    ),
    Case(
        "multiotsu-nine-classes-finishes",  # it searched comb(256, 8) thresholds: never ended
        lambda t: _nine_levels(),
        None,
        check=lambda r: len(r.thresholds) == 8 and int(r.labels.max()) == 8,
    ),
    Case(
        "constant-volume",
        _segment(lambda: np.full((8, 8, 8), 7.0)),
        ImageError,
        r"constant.*= 7",
        r"right file",
    ),
    Case(
        "unexpected-label-values",
        lambda t: image_io.map_labels(np.full((4, 4, 4), 3, np.uint8), (0, 85, 170), "seg.tif"),
        ImageError,
        r"seg\.tif.*\[3\]",
        r"segment the grey image first|right values",
    ),
    Case(
        "label-image-of-one-value",  # was "pore fraction 1, tau = 1" with exit 0
        _segment_labels(lambda: _stored((85,))),
        ImageError,
        r"seg\.tif: every voxel holds the value 85: a single phase",
        r"check the file or the crop",
    ),
    Case(
        "label-image-of-one-value-with-label-values",
        _segment_labels(lambda: _stored((85,)), phases=3, label_values=[0, 85, 170]),
        ImageError,
        r"every voxel holds the value 85",
        r"image\.crop_start",
    ),
    Case(
        "label-image-extra-value",  # 255 made a silent 4th phase (fractions summed to 0.998)
        _segment_labels(lambda: _stored(extra=255), phases=3),
        ImageError,
        r"seg\.tif: holds 4 distinct values \[0, 85, 170, 255\], but segment\.phases = 3",
        r"if a value is no phase \(a mask, a background\), remove or merge it.*exactly "
        r"\[0, 85, 170\] with segment\.phases = 3",
    ),
    Case(
        "label-image-fewer-values-than-phases",  # ran silently
        _segment_labels(lambda: _stored((0, 85)), phases=3),
        ImageError,
        r"holds 2 distinct values \[0, 85\], but segment\.phases = 3",
        r"set segment\.phases = 2, or, if a phase is absent .* list all 3 phases' stored values",
    ),
    Case(
        "label-values-lack-a-stored-value",
        _segment_labels(lambda: _stored(extra=255), phases=3, label_values=[0, 85, 170]),
        ImageError,
        r"holds the values \[0, 85, 170, 255\], but segment\.label_values = \[0, 85, 170\] "
        r"lacks \[255\]",
        r"list the stored value of every phase in tag order",
    ),
    Case(
        "label-image-of-grey-values",
        _segment_labels(lambda: _grey((8, 8, 8))),
        ImageError,
        r"seg\.tif: holds non-integer values \(512 distinct",
        r"segment it instead \(segment\.method = 'otsu'",
    ),
    Case(
        "label-values-map-in-the-order-given",
        _segment_labels(_stored, phases=3, label_values=[85, 0, 170]),
        None,
        check=_mapped([85, 0, 170]),
    ),
    Case(
        "label-image-as-many-values-as-phases-ascending",
        _segment_labels(_stored, phases=3),
        None,
        check=_mapped([0, 85, 170]),
    ),
    Case(
        "negative-labels",
        lambda t: metrics.volume_fractions(_labels().astype(int) - 1),
        ImageError,
        r"negative labels",
        r"start at 0",
    ),
    # ---------------------------------------------------------------- geometry
    Case(
        "spacing-with-zero",
        lambda t: image_io.Volume(_labels(), spacing=(1.0, 0.0, 1.0)),
        ImageError,
        r"voxel_size=\(1\.0, 0\.0, 1\.0\)",
        r"positive voxel size",
    ),
    Case(
        "spacing-negative-voxel-fvm",
        _voxel_tau(lambda: np.ones((4, 4, 4), bool), voxel_size=-1.0),
        ConfigError,
        r"voxel_size=-1",
        r"> 0",
    ),
    Case(
        "spacing-nan",
        lambda t: image_io.Volume(_labels(), spacing=float("nan")),
        ImageError,
        r"voxel_size=nan",
        r"positive voxel size",
    ),
    Case(
        "spacing-as-text-with-unit",  # was a bare ValueError from numpy
        lambda t: image_io.Volume(_labels(), spacing="1um"),
        ImageError,
        r"voxel_size='1um' is text",
        r"as a number .*e\.g\. voxel_size=1\.0.*units are not parsed",
    ),
    Case(
        "spacing-two-values-voxel-fvm",  # said "must be > 0"
        _voxel_tau(lambda: np.ones((4, 4, 4), bool), voxel_size=[1.0, 2.0]),
        ConfigError,
        r"voxel_size=\[1\.0, 2\.0\] has 2 value\(s\)",
        r"one float \(cubic voxels\) or exactly three",
    ),
    Case(
        "spacing-as-text-voxel-fvm",
        _voxel_tau(lambda: np.ones((4, 4, 4), bool), voxel_size="1um"),
        ConfigError,
        r"voxel_size='1um' is text",
        r"units are not parsed",
    ),
    Case(
        "mesh-spacing-two-values",
        lambda t: _mesher()(_labels(), (1.0, 2.0)),
        MeshingError,
        r"spacing=\(1\.0, 2\.0\) has 2 value\(s\)",
        r"exactly three",
    ),
    Case(
        "requested-phase-absent",
        lambda t: connectivity.percolation(_labels(), 2),
        ImageError,
        r"phase 2 is absent.*\[0, 1\]",
        r"pick a present phase",
    ),
    Case(
        "homogenize-phase-absent",
        lambda t: pipeline.homogenize(
            image_io.Volume(_labels(), label_names=("pore", "solid"), source="seg.tif"),
            config.HomogenizeConfig(phase="cbd", axes=["x"]),
        ),
        ImageError,
        r"homogenize\.phase = 'cbd' \(label 2\) is absent from seg\.tif.*\[0, 1\]",
        r"choose a phase the image has",
    ),
    Case(
        "float-labels-to-mesher",
        _mesh_image(lambda: _labels().astype(float)),
        MeshingError,
        r"dtype float64",
        r"segment first, or cast",
    ),
    Case(
        "phase-filling-the-volume-mesher",
        _mesh_image(lambda: np.zeros((6, 6, 6), np.uint8)),
        MeshingError,
        r"label 0 fills the whole volume",
        r"structured_tetmesh",
    ),
    Case(
        "one-voxel-phase-mesher",
        _mesh_image(
            lambda: np.where(np.arange(216).reshape(6, 6, 6) == 100, 2, _labels((6, 6, 6)))
        ),
        MeshingError,
        r"phase label\(s\) \[2\] have a single voxel",
        r"remove it \(image cleanup\) or merge it",
    ),
    Case(
        "needle-image-to-mesher",  # an IndexError traceback from the meshing child
        _mesh_image(lambda: (np.arange(500) % 2).astype(np.uint8).reshape(1, 1, 500)),
        MeshingError,
        r"1 x 1 x 500 voxels; axes x \(1 voxel\) and y \(1 voxel\) are thinner than the 4",
        r"at least 4 voxels thick along every axis.*--voxel-only",
    ),
    Case(
        "mesh-sizes-beyond-element-cap",
        # the level-set lattice (step >= 2.5 voxels: 324 cells here) and the gmsh sizes
        _mesh_image(_labels, interface_size=0.02, max_size=0.05, max_cells=300),
        ResourceError,
        r"interface_size = 0\.02 .*8x8x8 image need at least ~\d",
        r"raise mesh\.interface_size / mesh\.max_size, crop the image.*A LARGER size makes "
        r"fewer cells.*interface_size = 2\.6 fits",
    ),
    Case(
        "mesh-spacing-nonpositive",
        lambda t: _mesher()(_labels(), (1.0, -1.0, 1.0)),
        MeshingError,
        r"spacing=\(1\.0, -1\.0, 1\.0\)",
        r"must be positive",
    ),
    Case(
        "tortuosity-axis-out-of-range",
        _voxel_tau(lambda: np.ones((4, 4, 4), bool), axis=3),
        ConfigError,
        r"axis=3",
        r"choose 0, 1 or 2",
    ),
    Case(
        "tortuosity-non-boolean-image",
        _voxel_tau(lambda: _labels()),
        ImageError,
        r"dtype uint8",
        r"labels == 0",
    ),
    # ---------------------------------------------------------------- answers, not errors
    Case("non-percolating-phase-tau-inf", _voxel_tau(_blocked), None, check=_tau_inf),
    Case("one-voxel-phase-tau-inf", _voxel_tau(_one_voxel), None, check=_tau_inf),
    Case(
        "absent-phase-tau-inf", _voxel_tau(lambda: np.zeros((5, 5, 5), bool)), None, check=_tau_inf
    ),
    Case(
        "phase-filling-the-volume-tau-1",
        _voxel_tau(lambda: np.ones((5, 4, 3), bool)),
        None,
        check=lambda r: abs(r.tau - 1.0) < 1e-9 and r.percolating,
    ),
    # ---------------------------------------------------------------- bounds / parameters
    Case(
        "bounds-fractions-not-summing-to-1",
        lambda t: bounds.voigt([0.5, 0.6], [1.0, 0.0]),
        ParameterError,
        r"fractions",
        r"sum to 1|must",
    ),
    Case(
        "missing-parameter-entry",
        lambda t: electrochem.stoichiometry_at_soc(_params_without("Stoichiometry at 0% SOC"), 0.5),
        ParameterError,
        r"'Stoichiometry at 0% SOC' is missing",
        r"add it to the parameter mapping",
    ),
    Case(
        "unknown-parameter-set",
        lambda t: materials.half_cell("nmc999"),
        ParameterError,
        r"'nmc999'",
        r"choose one of",
    ),
    # ---------------------------------------------------------------- discharge protocols
    Case(
        "protocol-negative-duration",
        lambda t: _discharge(Protocol((Step("rest", 0.0, duration=-5.0),), 1.0)),
        ConfigError,
        r"steps\[0\]\.duration",
        r"must be > 0 s, got -5",
    ),
    Case(
        "protocol-cutoff-above-start-voltage",
        lambda t: _discharge(Protocol.discharge(1.0, 4.5, 1.0)),
        ConfigError,
        r"steps\[0\]\.until_voltage: the cut-off 4\.5 V is already passed",
        r"check the cut-off voltages and the initial state of charge",
    ),
    Case(
        "protocol-initial-soc-out-of-range",
        lambda t: _discharge(Protocol.discharge(1.0, 3.0, 1.5)),
        ConfigError,
        r"initial_soc",
        r"must lie in \[0, 1\], got 1\.5",
    ),
    Case(
        "active-phase-off-the-collector",
        lambda t: _discharge(Protocol.discharge(1.0, 3.0, 1.0), collector_gap=True),
        PercolationError,
        r"collector face xmin",
        r"choose another collector_face",
    ),
    # ---------------------------------------------------------------- configs
    Case(
        "config-unknown-key",
        _config("[simulate]\nc_rat = 2.0\n"),
        ConfigError,
        r"simulate\.c_rat: unknown key",
        r"did you mean 'c_rate'",
    ),
    Case(
        "config-unknown-section",
        _config("[simulation]\nc_rate = 2.0\n"),
        ConfigError,
        r"simulation: unknown key",
        r"did you mean 'simulate'",
    ),
    Case(
        "config-wrong-type",
        _config('[simulate]\nc_rate = "fast"\n'),
        ConfigError,
        r"simulate\.c_rate: expected a number",
        r"got 'fast'",
    ),
    Case(
        "config-negative-time",
        _config("[simulate]\nt_end = -10.0\n"),
        ConfigError,
        r"simulate\.t_end",
        r"must be > 0",
    ),
    Case(
        "config-negative-c-rate",
        _config("[simulate]\nc_rate = -1.0\n"),
        ConfigError,
        r"simulate\.c_rate",
        r"must be > 0",
    ),
    Case(
        "config-cutoffs-swapped",
        _config("[simulate]\nv_min = 4.2\nv_max = 3.0\n"),
        ConfigError,
        r"simulate\.v_min",
        r"swapped",
    ),
    Case(
        "config-unknown-electrode",
        _config('[simulate]\nelectrode = "nmc999"\n'),
        ConfigError,
        r"simulate\.electrode.*nmc999",
        r"choose one of",
    ),
    Case(
        "config-toml-syntax",
        _config("[simulate\nc_rate = 1\n"),
        ConfigError,
        r"run\.toml: not valid TOML",
        r"fix the syntax at that line",
    ),
    Case(
        "config-file-missing",
        lambda t: config.load_config(t / "absent.toml"),
        ConfigError,
        r"absent\.toml",
        r"check the --config path",
    ),
    Case(
        "config-crop-too-small",
        _config("[image]\ncrop_size = [2, 8, 8]\n"),
        ConfigError,
        r"image\.crop_size\[0\]",
        r"must be >= 4, got 2",
    ),
    Case(
        "config-mesh-size-nonpositive",
        _config("[mesh]\ninterface_size = 0.0\n"),
        ConfigError,
        r"mesh\.interface_size",
        r"must be positive",
    ),
    Case(
        "config-missing-image-file",
        _config('[image]\nsource = "missing/scan.tif"\n'),
        ConfigError,
        r"image\.source.*missing/scan\.tif",
        r"existing image path",
    ),
    # ---------------------------------------------------------------- run folders
    Case(
        "existing-run-folder-without-force",
        lambda t: runfolder.RunFolder.create(_existing_run_folder(t)),
        RunFolderError,
        r"run1 already exists",
        r"--force",
    ),
    Case(
        "force-on-foreign-folder",
        lambda t: (
            (t / "mydata").mkdir(),
            (t / "mydata" / "scan.tif").write_bytes(b"x"),
            runfolder.RunFolder.create(t / "mydata", force=True),
        ),
        RunFolderError,
        r"mydata.*not made by tomofem",
        r"choose another folder",
    ),
    Case(
        "resume-without-checkpoint",
        lambda t: checkpoint.read_checkpoint(_existing_run_folder(t) / "checkpoint.h5"),
        RunFolderError,
        r"no checkpoint at .*run1",
        r"checkpoint_every > 0",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input(case: Case, tmp_path: Path, monkeypatch) -> None:
    if case.error is ResourceError:  # the same limit on every machine
        monkeypatch.setenv("TOMOFEM_MEMORY_LIMIT", "4G")
    if case.error is None:
        result = case.run(tmp_path)
        assert case.check is not None and case.check(result), result
        return
    with pytest.raises(Exception) as info:  # the exact type is checked below
        case.run(tmp_path)
    exc = info.value
    assert type(exc) is case.error, f"{type(exc).__name__}: {exc}"
    msg = str(exc)
    assert re.search(case.culprit, msg, re.I | re.S), f"culprit {case.culprit!r} not in: {msg}"
    assert re.search(case.fix, msg, re.I | re.S), f"fix {case.fix!r} not in: {msg}"


def test_corpus_is_big_enough() -> None:
    assert len(CASES) >= 30
    assert len({c.id for c in CASES}) == len(CASES)


# --------------------------------------------------------------------------- the CLI


def _tomofem(*args: str, cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "tomofem", *args]
    full_env = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=120, env=full_env)


def _bad_config(tmp: Path) -> list[str]:
    p = toml(tmp, "[simulate]\nc_rat = 2.0\nc_rate = -1.0\nv_min = 4.5\nv_max = 3.0\n")
    return ["simulate", "-c", str(p), "-o", "run"]


CLI_CASES = {
    "truncated-tiff": (
        lambda t: ["analyze", str(truncated_tiff(t)), "-o", "run"],
        "ImageError",
        ["scan.tif", "truncated", "copy or export it again"],
    ),
    "2d-image": (
        lambda t: ["analyze", str(_tiff(t / "slice.tif", _labels()[0])), "-o", "run"],
        "ImageError",
        ["slice.tif has 2 dimension", "np.stack"],
    ),
    "too-large-for-memory": (
        lambda t: ["analyze", str(npy_header_only(t)), "-o", "run"],
        "ResourceError",
        ["huge.npy", "GB", "crop or downsample"],
    ),
    "label-image-of-one-value": (  # homogenize --voxel-only said tau = 1 with exit 0
        lambda t: (
            np.save(t / "only85.npy", _stored((85,))),
            ["homogenize", str(t / "only85.npy"), "--voxel-only", "-o", "run"],
        )[1],
        "ImageError",
        ["only85.npy: every voxel holds the value 85", "check the file or the crop"],
    ),
    "missing-image": (
        lambda t: ["mesh", str(t / "absent.tif"), "-o", "run"],
        "ConfigError",
        ["image.source", "absent.tif", "existing image path"],
    ),
    "bad-config-all-problems-at-once": (
        _bad_config,
        "ConfigError",
        ["simulate.c_rat: unknown key", "simulate.c_rate: must be > 0", "swapped"],
    ),
    "existing-run-folder": (
        lambda t: ["analyze", str(_existing_run_folder(t).parent / "x.npy"), "-o", "run1"],
        "RunFolderError",
        ["run1 already exists", "--force"],
    ),
}


@pytest.mark.parametrize("name", list(CLI_CASES))
def test_cli_one_paragraph_exit_2_no_traceback(name: str, tmp_path: Path) -> None:
    make_args, kind, parts = CLI_CASES[name]
    args = make_args(tmp_path)
    if name == "existing-run-folder":
        np.save(tmp_path / "x.npy", _labels())
    proc = _tomofem(*args, cwd=tmp_path, env={"TOMOFEM_MEMORY_LIMIT": "4G"})
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr
    assert "Traceback" not in err
    assert err.startswith(f"tomofem: {kind}: "), err
    assert err.count("tomofem:") == 1 and "\n\n" not in err.strip()  # one paragraph
    flat = " ".join(err.split())
    for part in parts:
        assert part in flat, f"{part!r} not in {flat!r}"


def test_cli_debug_shows_the_traceback(tmp_path: Path) -> None:
    proc = _tomofem("analyze", str(truncated_tiff(tmp_path)), "-o", "run", "--debug", cwd=tmp_path)
    assert proc.returncode != 0
    assert "Traceback" in proc.stderr and "tomofem.errors.ImageError" in proc.stderr


# --------------------------------------------------------------------------- answers on N ranks


@pytest.mark.mpi
def test_tensor_of_a_blocked_axis_is_not_made_up() -> None:
    """A solid wall across x: tau_x = inf, and the affine tensor's K_xx is 0 with the reason.

    The Dirichlet (affine) box problem gave K_xx = 0.575 here (0.686 on the issue's image):
    a flux round the wall between the lateral faces, not transport across it.
    """
    import json

    from tomofem._fenics import MPI
    from tomofem.meshing import structured_tetmesh, to_dolfinx

    lab = np.zeros((8, 8, 8), np.uint8)
    lab[4] = 1  # the wall
    lab[1:3, 2:5, 2:5] = 1
    vol = image_io.Volume(lab, (1.0, 1.0, 1.0), ("pore", "active"), "wall")
    dm = to_dolfinx(structured_tetmesh(lab), MPI.COMM_WORLD)
    h = pipeline.homogenize(vol, config.HomogenizeConfig(axes=["x", "y"]), dm, MPI.COMM_WORLD)
    assert math.isinf(h["fem"]["x"].tau) and math.isinf(h["voxel"]["x"].tau)
    t = h["tensors"]["dirichlet"]
    K = t.array
    assert t.blocked_axes == [0]
    assert np.all(K[0, :] == 0.0) and np.all(K[:, 0] == 0.0)
    assert K[1, 1] == pytest.approx(h["fem"]["y"].k_eff, rel=0.01)  # the rest is kept
    assert re.search(r"do not connect the two box faces normal to x .*K_xx = 0\.5\d+", t.message)
    assert "row and column are set to 0" in t.message
    doc = json.loads(json.dumps(t.to_dict()))  # results.json carries both
    assert doc["blocked_axes"] == [0] and doc["message"] == t.message
