"""tomofem.problems."""
