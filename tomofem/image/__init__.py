"""tomofem.image."""
