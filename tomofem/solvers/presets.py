"""PETSc option presets, one flat function per solver recipe.

Every preset returns a fresh ``dict`` of PETSc options (keys without prefix),
so a caller can tweak a copy without touching anyone else's. This PETSc has
no hypre: algebraic multigrid is GAMG, direct solves are MUMPS.

Other teams add their presets here as further plain functions.
"""

from __future__ import annotations

from collections.abc import Mapping

from tomofem.errors import ConfigError


def conduction_cg_gamg(
    rtol: float = 1e-8, atol: float = 1e-14, contrast: float = 1.0
) -> dict[str, object]:
    """CG + smoothed-aggregation GAMG for a scalar SPD conduction/diffusion matrix.

    Parameters
    ----------
    rtol
        Relative (unpreconditioned) residual tolerance. On a 1.03M-DOF packing
        (bench/results/scale_rtol_np2.json) rtol 1e-8 leaves a k_eff error
        orders of magnitude below the P1 discretisation error, and the
        tortuosity solver also continues until the flux mismatch meets its
        ``flux_tol``.
    atol
        Absolute residual floor (a zero right-hand side must not loop forever).
    contrast
        Largest ratio of the conductivities of the phases that conduct. From
        1e3 up, strength-of-connection filtering (``pc_gamg_threshold 0.01``)
        keeps the iterations at ~20 (contrast 1e4, 133k DOFs: 56 without it);
        below, PETSc's own GAMG defaults are the fastest.

    Notes
    -----
    Measured on 2 loaded ranks, 1.03M DOFs, contrast 100
    (bench/results/scale_gamg_np2.json), set-up + solve of the first axis:
    PETSc's defaults (aggressive MIS-2 coarsening on the first level, no graph
    filtering, Chebyshev/Jacobi) 12.5 + 9.8 s, 29 iterations; the previous
    preset (squared graph, threshold 0.02, LU coarse) 26.7 + 8.7 s (18);
    threshold 0.01 31.2 + 12.6 s (19); SOR smoothing 19.9 + 17.3 s (20).
    ``pc_gamg_reuse_interpolation`` keeps the aggregates and prolongators when
    only the matrix values change (the three axes of a tortuosity study) and
    the preconditioner serves every right-hand side of a tensor.
    """
    opts: dict[str, object] = {
        "ksp_type": "cg",
        "ksp_rtol": rtol,
        "ksp_atol": atol,
        "ksp_max_it": 1000,
        # A good non-zero initial guess (linear profile) can have a residual far
        # above ||b|| at high contrast; that is not divergence.
        "ksp_divtol": 1e30,
        "ksp_norm_type": "unpreconditioned",
        "pc_type": "gamg",
        "pc_gamg_type": "agg",
        "pc_gamg_reuse_interpolation": True,
    }
    if contrast >= 1e3:
        opts["pc_gamg_threshold"] = 0.01
    return opts


def direct_mumps() -> dict[str, object]:
    """Direct LU with MUMPS: small problems, debugging, and references in tests."""
    return {
        "ksp_type": "preonly",
        "pc_type": "lu",
        "pc_factor_mat_solver_type": "mumps",
    }


def layered(preset: Mapping[str, object], user: Mapping[str, object] | None) -> dict[str, object]:
    """Return a copy of ``preset`` with the user's PETSc options on top.

    Parameters
    ----------
    preset
        Options of one of the recipes above (not modified).
    user
        The caller's options (keys without prefix); they win over the preset. A
        value of ``None`` removes the preset's key (e.g. ``{"snes_lag_preconditioner":
        None}`` to refactorise at every Newton iteration).
    """
    out = dict(preset)
    for key, val in (user or {}).items():
        if val is None:
            out.pop(key, None)
        else:
            out[key] = val
    return out


def electrochem_newton(
    linear: str = "direct",
    rtol: float = 1e-10,
    atol: float = 1e-9,
    stol: float = 1e-11,
    max_it: int = 12,
    refactorise: bool = False,
) -> dict[str, object]:
    """SNES Newton with backtracking line search for the coupled half-cell system.

    Parameters
    ----------
    linear
        ``"direct"`` (GMRES preconditioned by a lagged block-low-rank MUMPS LU;
        measured up to 4.3e5 unknowns in 5.4 GB per process on 2 ranks),
        ``"salt-fieldsplit"`` (GMRES preconditioned by
        :class:`tomofem.solvers.electrochem_pc.SaltTransformPC`: the salt rows plus
        t+ times the electrolyte charge rows, then a block Gauss-Seidel over
        concentrations | potentials with one GAMG V-cycle per block, rebuilt every second
        Newton iteration; 11-18 GMRES
        iterations per Newton iteration from 582 to 24k unknowns,
        bench/results/discharge_fieldsplit_study.json), or the two references it
        replaced: ``"fieldsplit"`` (multiplicative over the four fields, one GAMG
        V-cycle each; 115-139 iterations on the example packing in that study's
        previous record) and ``"fieldsplit-coupled"`` (concentrations | potentials of
        the untransformed Jacobian with a full Schur factorisation; 24-54, worst step
        71). The index sets and the Python PC are attached by
        :mod:`tomofem.solvers.discharge`.
    rtol, atol
        Relative and absolute tolerances on the residual, whose rows are
        currents scaled by 1 A/m2 x (mesh unit)^2: atol 1e-9 means a current
        imbalance of 1e-9 A/m2 per facet-sized patch. The driver replaces atol
        per run by 1e-10 of the 1C current.
    stol
        Converged when the Newton update is below ``stol`` times the solution
        norm. Needed because the potential rows carry conductances ~1e3-1e6
        times the interfacial currents (e.g. graphite, 215 S/m, on µm meshes):
        their round-off floor can lie above any current-based atol, while an
        update of 1e-11 relative means the iterate no longer changes.
    max_it
        Newton iterations before the step is declared failed (and cut).
    refactorise
        ``"direct"`` only: a full-rank MUMPS LU of the current Jacobian at every
        Newton iteration (GMRES then only absorbs the galvanostatic rank-one term,
        1-2 iterations), for small problems, where it costs no more than the ~12
        GMRES iterations per Newton iteration of a lagged LU and never fails a
        linear solve; the driver chooses it below ``SolverOptions.refactorise_max_dofs``.

    Notes
    -----
    The backtracking line search keeps the Butler-Volmer exponentials from
    overflowing in the first iterations of a large current step.
    """
    opts: dict[str, object] = {
        "snes_type": "newtonls",
        "snes_linesearch_type": "bt",
        "snes_linesearch_minlambda": 1e-4,
        "snes_rtol": rtol,
        "snes_atol": atol,
        "snes_stol": stol,
        "snes_max_it": max_it,
    }
    if linear == "direct" and refactorise:
        opts.update(
            {
                "ksp_type": "gmres",
                "ksp_rtol": 1e-9,
                "ksp_max_it": 50,
                "pc_type": "lu",
                "pc_factor_mat_solver_type": "mumps",
            }
        )
    elif linear == "direct":
        # MUMPS LU of a lagged Jacobian as preconditioner of GMRES: the factorisation
        # (~25 s for 1.2e5 unknowns on this machine) is reused for up to 20 Newton
        # iterations, across time steps; GMRES absorbs the drift in a few iterations.
        # Measured on a 64^3 synthetic electrode: first step 312 s -> 90 s.
        opts.update(
            {
                "ksp_type": "gmres",
                "ksp_rtol": 1e-9,
                "ksp_max_it": 200,
                "pc_type": "lu",
                "pc_factor_mat_solver_type": "mumps",
                # Block low-rank factorisation (MUMPS ICNTL(35) = 2, dropping 1e-8): GMRES
                # absorbs the approximation. Measured on the 100^3 real crop (4.3e5 dofs,
                # 2 ranks): the full-rank LU failed with INFOG(1) = -13 under 7 GB per
                # process; BLR factorises in 5.4 GB peak and the first step converges.
                "mat_mumps_icntl_35": 2,
                "mat_mumps_cntl_7": 1e-8,
                "snes_lag_preconditioner": 20,
                "snes_lag_preconditioner_persists": True,
            }
        )
    elif linear == "fieldsplit":
        opts.update(
            {
                "ksp_type": "gmres",
                "ksp_gmres_restart": 200,
                "ksp_rtol": 1e-8,
                "ksp_max_it": 400,
                "pc_type": "fieldsplit",
                "pc_fieldsplit_type": "multiplicative",
            }
        )
        for i in range(4):
            opts.update(
                {
                    f"fieldsplit_{i}_ksp_type": "preonly",
                    f"fieldsplit_{i}_pc_type": "gamg",
                    f"fieldsplit_{i}_pc_gamg_threshold": 0.02,
                    f"fieldsplit_{i}_mg_levels_ksp_type": "chebyshev",
                    f"fieldsplit_{i}_mg_levels_pc_type": "jacobi",
                }
            )
    elif linear == "fieldsplit-coupled":
        # Two blocks (index sets from tomofem.solvers.discharge.SPLITS): concentrations
        # (c_e, c_s) and potentials (phi_e, phi_s), whose interface coupling dj/d(eta)
        # stays inside one block; full Schur factorisation on the potentials with
        # S ~ A11 - A10 diag(A00)^-1 A01 (selfp: the concentration block is dominated by
        # its lumped storage), one GAMG V-cycle per block. Measured on the
        # examples/discharge.toml packing, first 4 steps at 2C (Krylov its per Newton
        # it): 5,830 / 12,974 / 24,304 unknowns: 59 / 58 / 61, against 121 / 122 / 139
        # for "fieldsplit"; with exact (LU) block solves 41 (Schur) and 60
        # (multiplicative) at 5,830: the splitting, not GAMG, is what is left above
        # the target of 40.
        opts.update(
            {
                "ksp_type": "gmres",
                "ksp_gmres_restart": 200,
                "ksp_rtol": 1e-8,
                "ksp_max_it": 400,
                "pc_type": "fieldsplit",
                "pc_fieldsplit_type": "schur",
                "pc_fieldsplit_schur_fact_type": "full",
                "pc_fieldsplit_schur_precondition": "selfp",
            }
        )
        for i in range(2):
            opts.update(
                {
                    f"fieldsplit_{i}_ksp_type": "preonly",
                    f"fieldsplit_{i}_pc_type": "gamg",
                    f"fieldsplit_{i}_pc_gamg_threshold": 0.02,
                    f"fieldsplit_{i}_mg_levels_ksp_type": "chebyshev",
                    f"fieldsplit_{i}_mg_levels_pc_type": "jacobi",
                }
            )
    elif linear == "salt-fieldsplit":
        # Inner PC (prefix "salt_") of SaltTransformPC on T P. After the transform the
        # salt rows couple to the potentials only through the interfacial dj/d(eta), so
        # a block Gauss-Seidel (concentrations first) needs the same GMRES iterations as
        # a full Schur factorisation with selfp (13.1 vs 13.0 per Newton iteration at
        # 9.4k unknowns) at 0.66 of its CPU time: one concentration solve instead of two
        # and no Schur matrix to form. Measured designs: bench/discharge_fieldsplit_study.py.
        # The preconditioner (T J and both GAMG hierarchies) is rebuilt every second Newton
        # iteration: real100, 1C, first 6 steps on 2 ranks: 4.0 Newton per step either way,
        # 20.29 against 20.25 GMRES per Newton, 10.6 % less CPU per rank (94.5 vs 105.7 s;
        # once per solve: 20.5 and 96 s). A failed solve is retried with a fresh one.
        opts.update(
            {
                "ksp_type": "gmres",
                "ksp_gmres_restart": 200,
                "ksp_rtol": 1e-8,
                "ksp_max_it": 400,
                "salt_pc_type": "fieldsplit",
                "salt_pc_fieldsplit_type": "multiplicative",
                "snes_lag_preconditioner": 2,
            }
        )
        for i in range(2):
            opts.update(
                {
                    f"salt_fieldsplit_{i}_ksp_type": "preonly",
                    f"salt_fieldsplit_{i}_pc_type": "gamg",
                    f"salt_fieldsplit_{i}_pc_gamg_threshold": 0.02,
                    f"salt_fieldsplit_{i}_mg_levels_ksp_type": "chebyshev",
                    f"salt_fieldsplit_{i}_mg_levels_pc_type": "jacobi",
                }
            )
    else:
        raise ConfigError(f"linear: 'direct', 'fieldsplit' or 'fieldsplit-coupled', got {linear!r}")
    return opts


def stokes_fieldsplit(rtol: float = 1e-9, atol: float = 1e-14) -> dict[str, object]:
    """FGMRES + block-triangular Schur fieldsplit for Taylor-Hood Stokes systems.

    Velocity block: one smoothed-aggregation GAMG V-cycle (the component
    translations are attached as near null space by
    :mod:`tomofem.solvers.stokes`). Schur complement: Jacobi on the
    pressure mass matrix scaled by ``-1/mu`` (spectrally equivalent to
    ``-B A^-1 B^T`` independently of the mesh size, Silvester & Wathen 1994),
    supplied as the preconditioning matrix's pressure block (``a11``).

    Parameters
    ----------
    rtol, atol
        Relative and absolute tolerances on the unpreconditioned residual
        (FGMRES preconditions on the right).
    """
    return {
        "ksp_type": "fgmres",
        "ksp_gmres_restart": 200,
        "ksp_rtol": rtol,
        "ksp_atol": atol,
        "ksp_max_it": 2000,
        "pc_type": "fieldsplit",
        "pc_fieldsplit_type": "schur",
        "pc_fieldsplit_schur_fact_type": "upper",
        "pc_fieldsplit_schur_precondition": "a11",
        "fieldsplit_u_ksp_type": "preonly",
        "fieldsplit_u_pc_type": "gamg",
        "fieldsplit_u_pc_gamg_type": "agg",
        "fieldsplit_p_ksp_type": "preonly",
        "fieldsplit_p_pc_type": "jacobi",
    }


def elasticity_cg_gamg(
    rtol: float = 1e-8, atol: float = 1e-14, contrast: float = 1.0
) -> dict[str, object]:
    """CG + smoothed-aggregation GAMG for linear elasticity (vector P1/P2, block size 3).

    The caller attaches the six rigid-body modes as near null space
    (``Mat.setNearNullSpace``, :func:`tomofem.problems.elasticity.rigid_body_modes`);
    without them aggregation interpolates only translations. One set-up serves
    all six load cases of an effective stiffness.

    Parameters
    ----------
    contrast
        Largest ratio of the Young's moduli of the phases. From 10 up,
        strength-of-connection filtering (``pc_gamg_threshold 0.01``) keeps
        aggregates from straddling stiff particles and soft binder. Measured on
        the real crop [78:178]^3 (NMC 199 GPa, CBD 1 GPa, 392k unknowns, one
        load case, serial, load ~8): no filtering 270 iterations; threshold
        0.01: 58 (set-up 49 s, solve 52 s); 0.02: 51 (set-up 224 s); 0.03: 32
        (set-up 334 s): higher thresholds coarsen too slowly to pay off.
    """
    opts: dict[str, object] = {
        "ksp_type": "cg",
        "ksp_rtol": rtol,
        "ksp_atol": atol,
        "ksp_max_it": 2000,
        "ksp_norm_type": "unpreconditioned",
        "pc_type": "gamg",
        "pc_gamg_type": "agg",
        "mg_levels_ksp_type": "chebyshev",
        "mg_levels_pc_type": "jacobi",
    }
    if contrast >= 10:
        opts["pc_gamg_threshold"] = 0.01
    return opts


def stokes_direct(rtol: float = 1e-12) -> dict[str, object]:
    """MUMPS LU of the whole Stokes system, as the preconditioner of GMRES.

    A bare ``preonly`` LU of the saddle-point matrix was measured 1e-5 off
    (relative, permeability of a periodic cell) on 2 ranks, where MUMPS
    pivots within each process's block only; a few GMRES iterations on the
    factorisation remove that (iterative refinement) and report it.
    """
    return {
        "ksp_type": "gmres",
        "ksp_rtol": rtol,
        "ksp_atol": 1e-14,
        "ksp_max_it": 50,
        "pc_type": "lu",
        "pc_factor_mat_solver_type": "mumps",
    }
