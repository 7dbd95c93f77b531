"""tomofem.homogenization."""
