"""tomofem's exceptions.

Every error a user can cause is one of these, with a message that names the
culprit (file, key, phase, stage) and the fix. They derive from ``ValueError``
or ``RuntimeError`` as well, so generic handlers still work.
"""

from __future__ import annotations


class TomofemError(Exception):
    """Base class of every error tomofem raises on purpose."""


class ImageError(TomofemError, ValueError):
    """An image cannot be read or is unfit for the requested operation."""


class MeshingError(TomofemError, RuntimeError):
    """A mesh could not be built; the message names the stage and the fix."""


class ConfigError(TomofemError, ValueError):
    """A configuration (TOML file, flags or API arguments) is invalid.

    Parameters
    ----------
    problems
        One human-readable line per problem, each starting with the key path.
    """

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("invalid configuration:\n  " + "\n  ".join(self.problems))


class ParameterError(TomofemError, KeyError):
    """A parameter set lacks an entry or holds a value out of range."""

    def __str__(self) -> str:  # KeyError quotes its message otherwise
        return str(self.args[0]) if self.args else ""


class PercolationError(TomofemError, ValueError):
    """A phase does not connect the faces a transport problem needs."""


class ConvergenceError(TomofemError, RuntimeError):
    """A nonlinear or linear solve failed after every retry."""


class ResourceError(TomofemError, MemoryError):
    """The requested job would exceed a memory or size limit (estimate given)."""


class RunFolderError(TomofemError, FileExistsError):
    """A run folder exists and ``--force`` was not given, or cannot be written."""
