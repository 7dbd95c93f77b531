"""The `mechanics` stage and subcommand: config section, pipeline function, run folder."""

import json

import numpy as np
import pytest

from tomofem.cli import main
from tomofem.config import MechanicsConfig, load_config


@pytest.mark.mpi
def test_homogeneous_solid_gives_its_own_constants():
    """A box full of active material: C_eff = C, E and nu as given, K_dr = K_s, Biot 0."""
    from tomofem import pipeline
    from tomofem._fenics import MPI
    from tomofem.materials.mechanics import bulk_shear, isotropic_stiffness
    from tomofem.meshing import structured_tetmesh, to_dolfinx

    dm = to_dolfinx(structured_tetmesh(np.ones((3, 3, 3), np.uint8)), MPI.COMM_WORLD)
    cfg = MechanicsConfig(active_young=150e9, active_poisson=0.2)
    r = pipeline.mechanics(dm, cfg)["dirichlet"]
    C = isotropic_stiffness(150e9, 0.2)
    assert np.abs(r.array - C).max() < 1e-8 * C.max()
    e = r.engineering
    assert e["young_hill"] == pytest.approx(150e9, rel=1e-8)
    assert e["poisson_hill"] == pytest.approx(0.2, rel=1e-8)
    assert e["drained_bulk"] == pytest.approx(bulk_shear(150e9, 0.2)[0], rel=1e-8)
    assert abs(r.biot) < 1e-8
    rows = {q.name: q for q in pipeline._quantities_mechanics({"dirichlet": r})}
    assert rows["E film (dirichlet)"].value == pytest.approx(150.0, rel=1e-8)


def test_config_section_checks_its_values(tmp_path):
    p = tmp_path / "run.toml"
    p.write_text('stages = ["segment", "mesh", "mechanics"]\n[mechanics]\nactive_poisson = 0.6\n')
    from tomofem.errors import ConfigError

    with pytest.raises(ConfigError) as exc:
        load_config(p)
    assert any("mechanics.active_poisson" in q for q in exc.value.problems)


def test_subcommand_writes_the_stiffness_to_the_run_folder(tmp_path, capsys):
    out = tmp_path / "run"
    small = ["--set", "image.shape=[16,16,16]", "--set", "image.radius=4"]
    assert main(["mechanics", "-q", *small, "--bcs", "dirichlet", "mixed", "-o", str(out)]) == 0
    doc = json.loads((out / "results.json").read_text())
    r = doc["results"]["mechanics"]["stiffness"]["dirichlet"]
    # two conditions: their spread, against mixed (the mesh is not periodic)
    spread = doc["results"]["mechanics"]["bc_spread"]
    assert spread["reference"] == "mixed"
    assert spread["spread"]["dirichlet"]["stiffness"] > 0
    assert spread["spread"]["dirichlet"]["young_hill"] > -1e-9  # affine is the stiffer
    assert np.shape(r["stiffness"]) == (6, 6)
    assert r["bounds"]["gap_voigt"] > -1e-9 and r["bounds"]["gap_reuss"] > -1e-9
    assert 0 < r["biot"] < 1
    printed = capsys.readouterr().out
    assert "E film (dirichlet)" in printed and "BC spread dirichlet vs mixed" in printed
