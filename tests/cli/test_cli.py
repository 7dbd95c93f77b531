import json
import subprocess
import sys

import pytest

from tomofem.cli import build_parser, main

COMMANDS = ["info", "segment", "analyze", "mesh", "homogenize", "simulate", "pipeline", "demo"]


@pytest.mark.parametrize("cmd", COMMANDS)
def test_every_subcommand_has_help_with_examples(cmd, capsys):
    with pytest.raises(SystemExit) as exc:
        main([cmd, "--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    assert "examples:" in out and f"tomofem {cmd}" in out
    if cmd != "info":
        assert "--config" in out


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
