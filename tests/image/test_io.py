import h5py
import numpy as np
import pytest
import tifffile

from tomofem.errors import ImageError
from tomofem.image import io


@pytest.fixture
def vol():
    return np.arange(4 * 5 * 6, dtype=np.uint16).reshape(4, 5, 6)


def test_tiff_file_and_folder(tmp_path, vol):
    tifffile.imwrite(tmp_path / "stack.tif", vol)
    v = io.read_volume(tmp_path / "stack.tif", spacing=(1e-6, 1e-6, 2e-6))
    assert np.array_equal(v.data, vol) and v.spacing == (1e-6, 1e-6, 2e-6)
    assert v.extent == pytest.approx((4e-6, 5e-6, 12e-6))
    d = tmp_path / "slices"
    d.mkdir()
    for i in range(4):  # natural order: slice_10 after slice_2
        tifffile.imwrite(d / f"slice_{[0, 1, 2, 10][i]}.tif", vol[i])
    assert np.array_equal(io.read_volume(d).data, vol)


def test_raw_npy_hdf5(tmp_path, vol):
    vol.astype(">u2").tofile(tmp_path / "a.raw")
    got = io.read_volume(tmp_path / "a.raw", shape=vol.shape, dtype="uint16", byte_order=">")
    assert np.array_equal(got.data, vol)
    np.save(tmp_path / "a.npy", vol)
    assert np.array_equal(io.read_volume(tmp_path / "a.npy").data, vol)
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["grp/img"] = vol
    assert np.array_equal(io.read_volume(tmp_path / "a.h5").data, vol)
    assert np.array_equal(io.read_volume(tmp_path / "a.h5", dataset="grp/img").data, vol)


def test_bad_files_name_file_and_fix(tmp_path, vol):
    vol.tofile(tmp_path / "a.raw")
    with pytest.raises(ImageError, match=r"a\.raw.*bytes.*check shape"):
        io.read_volume(tmp_path / "a.raw", shape=(4, 5, 7), dtype="uint16")
    with pytest.raises(ImageError, match="shape= and dtype="):
        io.read_volume(tmp_path / "a.raw")
    (tmp_path / "x.tif").write_text("not an image")
    with pytest.raises(ImageError, match=r"x\.tif: not a readable TIFF"):
        io.read_volume(tmp_path / "x.tif")
    (tmp_path / "x.h5").write_text("nope")
    with pytest.raises(ImageError, match=r"x\.h5"):
        io.read_volume(tmp_path / "x.h5")
    with pytest.raises(ImageError, match="no such file"):
        io.read_volume(tmp_path / "missing.npy")
    (tmp_path / "x.png").write_text("?")
    with pytest.raises(ImageError, match="unknown image type"):
        io.read_volume(tmp_path / "x.png")
    np.save(tmp_path / "flat.npy", vol[0])
    with pytest.raises(ImageError, match=r"flat\.npy has 2 dimension"):
        io.read_volume(tmp_path / "flat.npy")
    with h5py.File(tmp_path / "two.h5", "w") as f:
        f["a"] = vol
        f["b"] = vol
    with pytest.raises(ImageError, match="pass dataset="):
        io.read_volume(tmp_path / "two.h5")
    with pytest.raises(ImageError, match="voxel size"):
        io.Volume(vol, spacing=(1.0, -1.0, 1.0))


def test_map_labels():
    raw = np.array([0, 85, 170, 85], np.uint8).reshape(1, 2, 2)
    assert io.map_labels(raw, io.ELECTRODE_VALUES).ravel().tolist() == [0, 1, 2, 1]
    with pytest.raises(ImageError, match=r"values \[7\]"):
        io.map_labels(raw + (raw == 0) * 7, io.ELECTRODE_VALUES)


def test_real_electrode(electrode_tiff):
    v = io.load_electrode(electrode_tiff)
    assert v.shape == (256, 256, 256) and v.label_names == ("pore", "active", "cbd")
    frac = np.bincount(v.data.ravel(), minlength=3) / v.data.size
    np.testing.assert_allclose(frac, [0.450, 0.400, 0.150], atol=1e-3)


def test_empty_volume_and_labels_of_wrong_type(tmp_path):
    np.save(tmp_path / "empty.npy", np.zeros((0, 4, 4)))
    with pytest.raises(ImageError, match=r"empty\.npy is empty"):
        io.read_volume(tmp_path / "empty.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}]), allow_pickle=True)
    with pytest.raises(ImageError, match=r"obj\.npy: not a readable \.npy"):
        io.read_volume(tmp_path / "obj.npy")
