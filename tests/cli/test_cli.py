import json
import subprocess
import sys

import pytest

from tomofem.cli import build_parser, main

SMALL = ["--set", "image.shape=[20,20,20]", "--set", "image.radius=4"]
COMMANDS = ["info", "segment", "analyze", "mesh", "homogenize", "simulate", "pipeline", "demo"]


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_subcommand_has_help_with_examples(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        main([cmd, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"tomofem {cmd}" in out
    # --config/--set only where a run configuration is read
    assert ("--config" in out) == (cmd not in ("info", "demo"))


def test_export_pybamm_help(capsys):
    with pytest.raises(SystemExit):
        main(["export", "pybamm", "--help"])
    out = capsys.readouterr().out
    assert "RUN_DIR" in out and "bpx" in out


def test_bad_config_reports_all_problems_exit_2(tmp_path, capsys):
    p = tmp_path / "bad.toml"
    p.write_text("[simulate]\nc_rate = -1\nv_min = 5.0\n[image]\nporosty = 0.3\n")
    code = main(["pipeline", "-c", str(p), "-o", str(tmp_path / "run")])
    err = capsys.readouterr().err
    assert code == 2
    assert "3 problems" in err
    assert "simulate.c_rate: must be > 0.0, got -1.0" in err
    assert "simulate.v_min" in err and "image.porosty" in err and "'porosity'" in err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing started


def test_bad_set_flag(tmp_path, capsys):
    code = main(["pipeline", "--set", "nonsense", "-o", str(tmp_path / "r")])
    assert code == 2
    assert "KEY=VALUE" in capsys.readouterr().err


def test_existing_folder_without_force(tmp_path, capsys):
    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("x")
    code = main(["homogenize", "--voxel-only", "-o", str(out)])
    assert code == 2
    assert "already exists" in capsys.readouterr().err
    assert (out / "keep.txt").exists()


def test_debug_shows_traceback(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text("[simulate]\nc_rate = -1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "tomofem", "pipeline", "-c", str(p), "--debug"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode != 0 and "Traceback" in proc.stderr
    proc = subprocess.run(
        [sys.executable, "-m", "tomofem", "pipeline", "-c", str(p)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "c_rate" in proc.stderr


def test_voxel_tortuosity_run_folder(tmp_path, capsys):
    out = tmp_path / "tau"
    code = main(
        [
            "homogenize",
            "--voxel-only",
            "--axes",
            "x",
            "--set",
            "image.shape=[20,20,20]",
            "--set",
            "image.radius=4",
            "-o",
            str(out),
            "-q",
        ]
    )
    assert code == 0
    doc = json.loads((out / "results.json").read_text())
    stages = {s["name"]: s["status"] for s in doc["stages"]}
    assert doc["status"] in ("complete", "partial")
    if stages["segment"] == "done":
        tau = doc["results"]["homogenize"]["voxel"]["x"]["tau"]
        assert tau == "inf" or tau >= 1.0
        assert "tau_x pore" in capsys.readouterr().out
    assert (out / "config.toml").exists() and (out / "log.txt").exists()


def test_parser_builds_without_fenics_import():
    code = (
        "import sys; from tomofem.cli import build_parser; build_parser(); "
        "print('dolfinx' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False"
    assert build_parser().prog == "tomofem"


def test_rve_study_and_tensor_reach_the_run_folder(tmp_path, capsys):
    """homogenize.rve_sizes runs the voxel RVE study; its record and picture are written."""
    out = tmp_path / "rve"
    code = main(
        [
            "homogenize",
            "--voxel-only",
            "--axes",
            "x",
            "--rve-sizes",
            "8",
            "12",
            "16",
            *SMALL,
            "-o",
            str(out),
            "-q",
        ]
    )
    assert code == 0
    rve = json.loads((out / "results.json").read_text())["results"]["homogenize"]["rve"]
    assert [s["edge"] for s in rve["sizes"]] == [8, 12, 16]
    assert all(len(s["taus"]) == 3 for s in rve["sizes"])  # rve_samples default
    assert (out / "rve.png").stat().st_size > 0
    assert "RVE edge" in capsys.readouterr().out


def test_rve_sizes_larger_than_the_image_named(tmp_path, capsys):
    code = main(
        [
            "homogenize",
            "--voxel-only",
            "--axes",
            "x",
            "--rve-sizes",
            "8",
            "30",
            *SMALL,
            "-o",
            str(tmp_path / "r"),
        ]
    )
    assert code == 2
    assert "homogenize.rve_sizes: [30] exceed the smallest image edge 20" in capsys.readouterr().err


@pytest.mark.mpi
def test_pipeline_tensor_of_a_voxel_mesh():
    """The pipeline's Dirichlet tensor on a staircase laminate: exact along the layers."""
    import numpy as np

    from tomofem import pipeline
    from tomofem._fenics import MPI
    from tomofem.config import HomogenizeConfig
    from tomofem.image import Volume
    from tomofem.meshing import structured_tetmesh, to_dolfinx

    lab = np.zeros((6, 6, 6), np.uint8)
    lab[:, 4:, :] = 1  # pore layer y < 4 voxels, solid above
    vol = Volume(lab, (1.0, 1.0, 1.0), ("pore", "active"), "laminate")
    dm = to_dolfinx(structured_tetmesh(lab), MPI.COMM_WORLD)
    h = pipeline.homogenize(vol, HomogenizeConfig(axes=["x", "y"]), dm, MPI.COMM_WORLD)
    K = np.array(h["tensors"]["dirichlet"].tensor)
    assert K[0, 0] == pytest.approx(4 / 6, abs=1e-8) and K[2, 2] == pytest.approx(4 / 6, abs=1e-8)
    assert h["fem"]["x"].tau == pytest.approx(1.0, abs=1e-8)  # straight channels
    assert h["fem"]["y"].tau == float("inf")  # blocked: no percolation across the layer
    t = h["tensors"]["dirichlet"]  # and the tensor does not make up a K_yy
    assert t.blocked_axes == [1] and np.all(K[1, :] == 0) and np.all(K[:, 1] == 0)
    assert "normal to y" in t.message and t.to_dict()["blocked_axes"] == [1]
    rows = pipeline._quantities_homogenize(h)
    (row,) = [q for q in rows if q.name == "BC spread x"]  # exact along the layers
    assert row.value == pytest.approx(0.0, abs=1e-8) and "within 5%" in row.note, row.note


def test_raw_image_needs_its_shape(tmp_path, capsys):
    import numpy as np

    raw = tmp_path / "scan.raw"
    lab = np.zeros((12, 10, 8), np.uint8)
    lab[:, :5] = 1
    lab.tofile(raw)
    assert main(["analyze", str(raw), "-o", str(tmp_path / "a")]) == 2
    assert "image.raw_shape" in capsys.readouterr().err
    code = main(
        ["analyze", str(raw), "--set", "image.raw_shape=[12,10,8]", "-o", str(tmp_path / "b")]
    )
    assert code == 0
    doc = json.loads((tmp_path / "b" / "results.json").read_text())
    assert doc["results"]["image"]["shape"] == [12, 10, 8]


def test_hdf5_dataset_flag_and_config_key(tmp_path, capsys):
    """An HDF5 file with several datasets: the message names --dataset, which then works."""
    import h5py
    import numpy as np

    lab = np.zeros((8, 8, 8), np.uint8)
    lab[2:6, 2:6, :] = 1
    with h5py.File(tmp_path / "scan.h5", "w") as h5:
        h5["grey"] = lab * 100.0
        h5["seg/labels"] = lab
    assert main(["analyze", str(tmp_path / "scan.h5"), "-o", str(tmp_path / "a")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "holds 2 datasets ['grey', 'seg/labels']" in err and "--dataset grey" in err
    args = ["analyze", str(tmp_path / "scan.h5"), "--dataset", "seg/labels", "-q"]
    assert main([*args, "-o", str(tmp_path / "b")]) == 0
    doc = json.loads((tmp_path / "b" / "results.json").read_text())
    assert doc["results"]["image"]["shape"] == [8, 8, 8]
    assert 'dataset = "seg/labels"' in (tmp_path / "b" / "config.toml").read_text()
    cfg = tmp_path / "run.toml"  # the same as a config key
    cfg.write_text(f'[image]\nsource = "{tmp_path / "scan.h5"}"\ndataset = "seg/labels"\n')
    assert main(["analyze", "-c", str(cfg), "-q", "-o", str(tmp_path / "c")]) == 0


def test_demo_real_takes_a_data_path(tmp_path, monkeypatch, capsys):
    """demo --real --data PATH: a missing file is named with the fix; a given file is cropped."""
    import numpy as np
    import tifffile

    from tomofem.demo import demo_overrides

    missing = tmp_path / "nope.tiff"
    assert main(["demo", "--real", "--data", str(missing), "-o", str(tmp_path / "r")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert f"demo --real --data {missing}: {missing} is not a file" in err
    assert "0 = pore, 85 = NMC, 170 = CBD" in err
    assert main(["demo", "--data", str(missing), "-o", str(tmp_path / "r")]) == 2  # implies --real
    assert "is not a file" in capsys.readouterr().err
    monkeypatch.setenv("TOMOFEM_SHARED_DATA", str(tmp_path / "no-shared"))
    assert main(["demo", "--real", "-o", str(tmp_path / "r")]) == 2
    err = " ".join(capsys.readouterr().err.split())
    assert "no-shared/electrode.tiff not found" in err and "--data PATH" in err
    lab = np.zeros((40, 36, 50), np.uint8)
    lab[:, 10:20] = 85
    lab[:, 20:24] = 170
    tifffile.imwrite(tmp_path / "mine.tif", lab)
    over = demo_overrides(real=True, fast=True, data=tmp_path / "mine.tif")
    assert over["image.source"] == str(tmp_path / "mine.tif")
    assert over["image.crop_size"] == [32, 32, 32] and over["image.crop_start"] == [4, 2, 9]
    assert over["segment.label_values"] == [0, 85, 170]
