"""Settings of the meshing front end, as one frozen dataclass.

All lengths are in voxels, so the same options suit any voxel size; the
pipeline multiplies them by the spacing.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from tomofem.errors import ConfigError


@dataclass(frozen=True)
class MeshOptions:
    """How :func:`tomofem.meshing.mesh_image` turns labels into a tetrahedral mesh.

    Attributes
    ----------
    interface_size
        Target edge length on the phase interfaces [voxels]. Sets the
        geometric resolution of the mesh: 2--2.5 voxels keeps the interface
        area within a percent on spheres of radius 10 voxels.
    max_size
        Edge length reached inside the phases, far from interfaces [voxels].
        Decouples the mesh size from the voxel count.
    size_growth_distance
        Distance from the interfaces over which the size grows from
        ``interface_size`` to ``max_size`` [voxels].
    smoothing_iterations
        Taubin smoothing passes on the surface-nets surface. Fewer keep thin
        features and one-voxel throats; more give rounder interfaces.
    smoothing_lambda, smoothing_mu
        Taubin factors (shrink, inflate). ``mu = 0`` gives plain Laplacian
        smoothing.
    preserve_volume
        Offset each closed particle shell along its normals until it encloses
        as much volume as its voxels (smoothing shrinks convex particles by
        about sigma^2 / R).
    volume_iterations
        Passes of that offset (phases sharing an interface are corrected
        jointly; 3 passes converge to well below 0.1 % on packings).
    feature_angle
        Angle [degrees] above which gmsh splits a surface into separate
        patches during classification (180 = only at phase junctions).
    optimize_netgen
        Also run gmsh's Netgen optimiser after the 3D mesh. Off by default:
        on a 64^3 packing it took 10x the volume-meshing time and left worse
        elements (min dihedral 7.2 vs 9.4 degrees, min SICN 0.17 vs 0.27)
        than gmsh's own optimiser followed by sliver collapse.
    threads
        gmsh threads (more threads: more run-to-run differences).
    reproducible
        Surface-nets-gmsh route: return its arrays in canonical order
        (vertices sorted lexicographically by coordinates, cells and facets
        by their sorted vertex tuples), so that equal meshes give equal
        arrays. The gmsh route is NOT bit-reproducible: gmsh makes some
        choices in pointer order (where topology creation starts closed
        curves, where classification cuts patches, HXT's insertion order),
        which differ between processes, so repeated runs can differ in a few
        percent of their cells; its invariants (phase volumes equal to the
        voxel volumes, tags, conformity) hold on every run. The level-set
        route (the default) is deterministic bit for bit, in any process
        and under any number of MPI ranks.
    time_budget
        Wall-clock seconds each route may take before the next route takes
        over: ``None`` (default) derives it from the voxel count
        (:func:`tomofem.meshing.pipeline.route_budget`); 0 means no budget,
        and the routes then run in this process instead of a child process
        that can be stopped.
    max_cells
        Reject a route's mesh with more tetrahedra than this: a guard
        against a mistyped ``interface_size``.
    routes
        Names of the routes to try, in order; the first whose mesh passes the
        checks is returned. ``None`` uses every registered route in order.
    min_dihedral_deg
        Reject a route's mesh whose smallest dihedral angle is below this [degrees].
    max_fraction_error
        Reject a route's mesh whose phase volume fraction differs from the
        image's by more than this (absolute).
    repair_contacts
        Resolve phases that touch only along a voxel edge or corner (which
        make the surface non-manifold) by giving the contested voxel to the
        lower label index (pore first: pore 26-connected, solids
        6-connected), with a warning naming the count. ``False`` raises
        ``MeshingError`` instead.
    periodic
        The image is one period of a structure that tiles space: mesh it so
        that the vertices on each lower box face are matched, at the same
        in-plane position, by vertices on the opposite face (same facet
        triangles too), for periodic cell problems. Uses the
        ``periodic-lattice`` route (:mod:`tomofem.meshing.periodic`: a BCC
        lattice of ``interface_size`` cut by wrapped phase fields; uniform,
        not graded) instead of ``routes``.
    subvoxel
        Grey-value input (a tomogram segmented in the run): place the pore's
        interfaces from the grey values' partial volumes instead of the
        labels' staircase (:mod:`tomofem.meshing.subvoxel`, level-set route).
        Label images have no grey values and ignore it.
    distributed
        ``"auto"`` (default): under MPI (more than one rank) every rank meshes
        its own slab of the image by the level-set route and hands its cells
        straight to DOLFINx (:mod:`tomofem.meshing.distributed`); nothing is
        built or gathered on rank 0. Used when the route chain starts with
        ``levelset`` and the run needs no ``periodic`` mesh, no
        ``component_tags`` and no sub-voxel interfaces (those mesh on rank 0,
        as does a failed distributed attempt, logged at info level).
        ``"on"``: also on one rank. ``"off"``: always mesh on rank 0 and
        distribute the mesh.
    component_tags
        Tag each cell with ``tags.component_tag(phase, k)`` (``10000 * phase
        + k``) instead of its phase id, ``k`` = 1 for the largest
        face-connected region of the phase, 2 for the next, ... (for
        per-particle or isolated-pore studies). The phase is ``tag // 10000``;
        facet tags stay per phase.
    """

    interface_size: float = 2.5
    max_size: float = 8.0
    size_growth_distance: float = 6.0
    smoothing_iterations: int = 6
    smoothing_lambda: float = 0.5
    smoothing_mu: float = 0.0
    preserve_volume: bool = True
    volume_iterations: int = 3
    feature_angle: float = 180.0
    optimize_netgen: bool = False
    threads: int = 1
    reproducible: bool = True
    time_budget: float | None = None
    max_cells: int = 5_000_000
    routes: tuple[str, ...] | None = None
    min_dihedral_deg: float = 1.0
    max_fraction_error: float = 0.005
    repair_contacts: bool = True
    periodic: bool = False
    component_tags: bool = False
    subvoxel: bool = True
    distributed: str = "auto"

    def __post_init__(self) -> None:
        problems = []
        if not self.interface_size > 0:
            problems.append(f"interface_size={self.interface_size}: must be positive [voxels]")
        if not self.max_size >= self.interface_size:
            problems.append(
                f"max_size={self.max_size}: must be >= interface_size={self.interface_size}"
            )
        if not self.size_growth_distance > 0:
            problems.append(f"size_growth_distance={self.size_growth_distance}: must be positive")
        if self.smoothing_iterations < 0:
            problems.append(f"smoothing_iterations={self.smoothing_iterations}: must be >= 0")
        if not 0 < self.smoothing_lambda <= 1:
            problems.append(f"smoothing_lambda={self.smoothing_lambda}: must lie in (0, 1]")
        if not 0 < self.feature_angle <= 180:
            problems.append(f"feature_angle={self.feature_angle}: must lie in (0, 180] degrees")
        if self.threads < 1:
            problems.append(f"threads={self.threads}: must be >= 1")
        if self.time_budget is not None and not self.time_budget >= 0:
            problems.append(
                f"time_budget={self.time_budget}: seconds >= 0 (0: no budget) or None (derived)"
            )
        if self.distributed not in ("auto", "on", "off"):
            problems.append(f"distributed={self.distributed!r}: must be 'auto', 'on' or 'off'")
        if self.max_cells < 1:
            problems.append(f"max_cells={self.max_cells}: must be >= 1")
        if problems:
            raise ConfigError(["meshing." + p for p in problems])

    def to_dict(self) -> dict:
        """JSON-serialisable form (for run logs and results)."""
        d = asdict(self)
        d["routes"] = list(self.routes) if self.routes is not None else None
        return d
