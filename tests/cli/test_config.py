import pytest

from tomofem.config import (
    RunConfig,
    SimulateConfig,
    apply_overrides,
    describe,
    from_mapping,
    load_config,
    parse_value,
    to_toml,
)
from tomofem.errors import ConfigError
from tomofem.meshing.options import MeshOptions

BAD = """
stages = ["mesh", "simulat"]
[image]
shape = [10, 10]
porosity = 1.5
sead = 3
[mesh]
interface_size = 3.0
max_size = 2.0
[simulate]
c_rate = -1
v_min = 4.4
v_max = 3.0
t_end = -5
electrode = "nmc999"
[simulate.control]
dt_initial = "fast"
[bogus]
x = 1
"""


def test_every_problem_at_once_with_key_paths(tmp_path):
    p = tmp_path / "bad.toml"
    p.write_text(BAD)
    with pytest.raises(ConfigError) as exc:
        load_config(p, {"homogenize.degree": 3})
    probs = [q.split(": ", 1)[1] for q in exc.value.problems]
    keys = [q.split(":")[0] for q in probs]
    for key in (
        "bogus",
        "stages[1]",
        "image.sead",
        "image.shape",
        "image.porosity",
        "mesh.max_size=2.0",
        "homogenize.degree",
        "simulate.c_rate",
        "simulate.control.dt_initial",
        "simulate.electrode",
        "simulate.t_end",
    ):
        assert key in keys, (key, probs)
    text = "\n".join(probs)
    assert "did you mean 'seed'" in text
    assert "did you mean 'simulate'" in text
    assert all(q.startswith(str(p)) for q in exc.value.problems)


def test_cross_field_rules():
    with pytest.raises(ConfigError, match=r"v_min: lower cut-off 4.4 V must be below"):
        from_mapping(SimulateConfig, {"v_min": 4.4, "v_max": 3.0}, "simulate")
    with pytest.raises(ConfigError, match=r"simulate.control: step control: need 0 < dt_min"):
        from_mapping(SimulateConfig, {"control": {"dt_initial": 1.0, "dt_min": 2.0}}, "simulate")


def test_flags_override_file_and_roundtrip(tmp_path):
    p = tmp_path / "run.toml"
    p.write_text("[simulate]\nc_rate = 0.5\n[mesh]\ninterface_size = 2.0\n")
    cfg = load_config(p, {"simulate.c_rate": parse_value("2"), "mesh.max_size": 9.0})
    assert cfg.simulate.c_rate == 2.0 and isinstance(cfg.simulate.c_rate, float)
    assert cfg.mesh == MeshOptions(interface_size=2.0, max_size=9.0)
    out = tmp_path / "resolved.toml"
    out.write_text(to_toml(cfg))
    assert load_config(out) == cfg


def test_parse_value_and_override_errors():
    assert parse_value("[1, 2]") == [1, 2]
    assert parse_value("true") is True
    assert parse_value("data/x.tif") == "data/x.tif"
    with pytest.raises(ConfigError, match="is a value, not a table"):
        apply_overrides({"image": 3}, {"image.shape": [1, 2, 3]})


def test_toml_syntax_error_and_missing_file(tmp_path):
    p = tmp_path / "x.toml"
    p.write_text("[image\nshape = 3")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(p)
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_bool_is_not_an_int_and_literal_types():
    with pytest.raises(ConfigError, match=r"homogenize\.degree: expected an integer"):
        load_config(None, {"homogenize.degree": True})
    with pytest.raises(ConfigError, match=r"homogenize\.axes\[1\]"):
        load_config(None, {"homogenize.axes": ["x", "w"]})


def test_examples_parse_and_describe():
    from pathlib import Path

    examples = sorted((Path(__file__).parents[2] / "examples").glob("*.toml"))
    assert examples, "examples/*.toml missing"
    for ex in examples:
        if "electrode.tiff" in ex.read_text() and not (ex.parents[1].parent / "shared").exists():
            continue  # the real-electrode example needs ../shared/data
        load_config(ex)
    rows = describe(RunConfig)
    assert ("simulate.c_rate", "a number", "applied C-rate [1/h]") in rows


def test_config_paths_are_relative_to_the_config_file(tmp_path, monkeypatch):
    """image.source in a file is taken from the file's folder; on the command line from the cwd."""
    from pathlib import Path

    import numpy as np

    (tmp_path / "project" / "data").mkdir(parents=True)
    np.save(tmp_path / "project" / "data" / "x.npy", np.zeros((4, 4, 4), np.uint8))
    cfg_file = tmp_path / "project" / "run.toml"
    cfg_file.write_text('[image]\nsource = "data/x.npy"\n[output]\nfolder = "runs/a"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    cfg = load_config(Path("..") / "project" / "run.toml")  # a relative config path, too
    assert cfg.image.source == str(tmp_path / "project" / "data" / "x.npy")
    assert cfg.output.folder == "runs/a"  # runs are made where tomofem runs
    # the resolved config (what a run folder records) reads the same from anywhere
    (elsewhere / "resolved.toml").write_text(to_toml(cfg))
    assert load_config(elsewhere / "resolved.toml") == cfg
    # command-line paths stay relative to the working directory
    np.save(elsewhere / "y.npy", np.zeros((4, 4, 4), np.uint8))
    cfg = load_config(cfg_file, {"image.source": "y.npy"})
    assert cfg.image.source == str(elsewhere / "y.npy")
    assert load_config(cfg_file, {"image.source": "synthetic"}).image.source == "synthetic"
    # the same file from its own folder and a missing file names the resolved path
    monkeypatch.chdir(tmp_path / "project")
    assert load_config("run.toml").image.source == str(tmp_path / "project" / "data" / "x.npy")
    (tmp_path / "project" / "bad.toml").write_text('[image]\nsource = "nope/x.npy"\n')
    with pytest.raises(ConfigError, match=r"project/nope/x\.npy' does not exist.*file's folder"):
        load_config(tmp_path / "project" / "bad.toml")
