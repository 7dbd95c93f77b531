"""PyBaMM/BPX export: names checked against lists taken from PyBaMM 26.10 and BPX 1.1.

Regenerate the lists in an environment with ``pip install pybamm bpx``::

    python -c "import pybamm; print(*sorted(pybamm.ParameterValues('Chen2020')), sep='\\n')"

(plus the four ``... tortuosity factor (...)`` names of
``pybamm/parameters/geometric_parameters.py``).
"""

import json
import math
from pathlib import Path

import pytest

from tomofem.errors import ConfigError, RunFolderError
from tomofem.homogenization.bounds import bruggeman_tau
from tomofem.io.pybamm import (
    EffectiveParameters,
    bruggeman_exponent,
    export_run,
    from_results,
    to_bpx,
    to_pybamm,
)

DATA = Path(__file__).parent / "data"


def _names(file: str) -> set[str]:
    lines = (DATA / file).read_text().splitlines()
    return {ln.split("\t")[-1] for ln in lines if ln and not ln.startswith("#")}


def _doc(tau="2.0", spec=0.2):
    return {
        "results": {
            "image": {"shape": [40, 40, 40], "spacing": [0.5, 0.5, 0.5]},
            "analyze": {
                "phases": {"pore": {"volume_fraction": 0.4}, "active": {"volume_fraction": 0.6}},
                "interfaces": {"specific": {"0|1": spec}},
            },
            "homogenize": {
                "phase": "pore",
                "fem": {"x": {"tau": tau, "porosity": 0.4, "method": "fem-p1", "length": 20.0}},
                "voxel": {},
            },
        }
    }


@pytest.mark.parametrize("electrode", ["positive", "negative"])
def test_pybamm_names_exist_in_pybamm(electrode):
    p = from_results(_doc(2.0), electrode)
    names = _names("pybamm_parameter_names.txt")
    out = to_pybamm(p)
    assert set(out) <= names, set(out) - names
    assert len(out) == 6


def test_bpx_names_exist_in_bpx_schema():
    out = to_bpx(from_results(_doc(2.0)))
    fields = _names("bpx_electrode_fields.txt")
    assert set(out["Parameterisation"]["Positive electrode"]) <= fields


def test_values_and_units():
    p = from_results(_doc(2.0))
    out = to_pybamm(p)
    assert out["Positive electrode thickness [m]"] == pytest.approx(40 * 0.5e-6)
    # PyBaMM's Li-ion models derive a = 3 eps_s / R; they read no surface-area parameter
    assert not any("surface area" in k for k in out)
    eps_s = out["Positive electrode active material volume fraction"]
    assert 3 * eps_s / out["Positive particle radius [m]"] == pytest.approx(0.2e6)
    # spheres: a = 3 eps_s / R  ->  R = 3 * 0.6 / 0.2 um = 9 um
    assert out["Positive particle radius [m]"] == pytest.approx(9e-6)
    b = out["Positive electrode Bruggeman coefficient (electrolyte)"]
    assert 0.4**b == pytest.approx(0.4 / 2.0, rel=1e-12)  # same D_eff as tau
    assert to_bpx(p)["Parameterisation"]["Positive electrode"]["Transport efficiency"] == 0.2


def test_bruggeman_matches_homogenization_model():
    for eps, tau in [(0.3, 1.7), (0.5, 1.0), (0.45, 3.2)]:
        assert bruggeman_tau(eps, bruggeman_exponent(eps, tau)) == pytest.approx(tau, rel=1e-12)


def test_non_percolating_is_refused_not_exported():
    p = from_results(_doc("inf"))
    assert math.isinf(p.tau_electrolyte) and p.transport_efficiency == 0.0
    with pytest.raises(ConfigError, match="does not percolate"):
        to_pybamm(p)


def test_export_run_files(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(_doc(2.0)))
    out = export_run(run, tmp_path / "p.json")
    body = json.loads(out.read_text())
    assert body["_tomofem"]["parameters"]["method"] == "fem-p1"
    with pytest.raises(RunFolderError, match="--force"):
        export_run(run, tmp_path / "p.json")
    export_run(run, tmp_path / "p.json", fmt="bpx", force=True)
    assert "Parameterisation" in json.loads(out.read_text())
    with pytest.raises(RunFolderError, match=r"results\.json"):
        export_run(tmp_path, tmp_path / "q.json")
    (run / "results.json").write_text(json.dumps({"results": {}}))
    with pytest.raises(ConfigError, match="tomofem homogenize --phase pore"):
        export_run(run, tmp_path / "q.json")


def test_with_pybamm_if_installed():
    pybamm = pytest.importorskip("pybamm")
    values = pybamm.ParameterValues("Chen2020")
    p = EffectiveParameters("positive", "x", 0.4, 0.6, 2.0, None, 2e-5, 2e5, 9e-6, "fem-p1")
    known = set(values.keys()) | {
        f"{d} electrode tortuosity factor ({c})"
        for d in ("Positive", "Negative")
        for c in ("electrolyte", "electrode")
    }
    assert set(to_pybamm(p)) <= known
