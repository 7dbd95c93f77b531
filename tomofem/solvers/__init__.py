"""tomofem.solvers."""
