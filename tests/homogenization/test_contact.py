import numpy as np
import pytest

from tomofem._fenics import MPI
from tomofem.errors import ConfigError
from tomofem.homogenization.contact import conductivity_with_contact
from tomofem.homogenization.verification import tagged_box
from tomofem.tags import interface_tag


@pytest.fixture(scope="module")
def two_layers():
    return tagged_box(MPI.COMM_WORLD, (4, 4, 4), lambda x: np.where(x[0] < 0.25, 1, 2))


@pytest.mark.mpi
@pytest.mark.parametrize("h_c", [0.5, 2.0, 1e3])
def test_series_films_exact(two_layers, h_c):
    """R = L_a / k_a + L_b / k_b + 1 / h_c across the film; P1 is exact (piecewise linear)."""
    mesh, ct, _ = two_layers
    res = conductivity_with_contact(mesh, ct, {1: 1.0, 2: 3.0}, {interface_tag(1, 2): h_c}, 0)
    exact = 1.0 / (0.25 / 1.0 + 0.75 / 3.0 + 1.0 / h_c)
    assert res.k_eff == pytest.approx(exact, rel=1e-8)
    assert res.flux_mismatch < 1e-8


def test_films_parallel_to_flux_do_nothing(two_layers):
    mesh, ct, _ = two_layers
    res = conductivity_with_contact(mesh, ct, {1: 1.0, 2: 3.0}, {interface_tag(1, 2): 0.1}, 1)
    assert res.k_eff == pytest.approx(0.25 * 1.0 + 0.75 * 3.0, rel=1e-8)


def test_missing_film_named(two_layers):
    mesh, ct, _ = two_layers
    with pytest.raises(ConfigError, match="no entry for interface tag 112"):
        conductivity_with_contact(mesh, ct, {1: 1.0, 2: 3.0}, {}, 0)
