"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Each writer puts the bytes in a temporary file in the destination's folder
(same file system, so the rename is atomic), flushes and syncs it (``fsync``),
moves it over the destination (``os.replace``) and syncs the folder so the rename
itself survives a power cut. On any failure the temporary file is removed and
the previous destination, if any, is left untouched.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from tomofem.errors import RunFolderError


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # some file systems do not open folders; the rename is still atomic
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> Path:
    """Call ``write(fh)`` on a temporary binary file, then rename it to ``path``.

    Parameters
    ----------
    path
        Destination; its folder must exist.
    write
        Writes the content to the open binary file handle it gets; an
        exception from it aborts the write and leaves ``path`` as it was.

    Raises
    ------
    RunFolderError
        If the folder is missing or not writable, or the disk is full; the
        message names the file.
    """
    dest = Path(path)
    folder = dest.parent if str(dest.parent) else Path(".")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=folder)
    except OSError as exc:
        raise RunFolderError(
            f"cannot write {dest}: {exc.strerror or exc}; check that {folder} exists and is "
            "writable"
        ) from exc
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(exc, OSError):
            raise RunFolderError(
                f"cannot write {dest}: {exc.strerror or exc}; free disk space or choose "
                "another folder (the previous file, if any, is unchanged)"
            ) from exc
        raise
    _fsync_dir(folder)
    return dest


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Atomically write ``data`` to ``path``."""
    return atomic_write(path, lambda fh: fh.write(data))


def write_text(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Atomically write ``text`` to ``path``."""
    return write_bytes(path, text.encode(encoding))


def _jsonable(obj: Any) -> Any:
    """Plain JSON types from dataclasses, numpy values, paths, tuples; inf/nan as strings."""
    import dataclasses

    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _jsonable(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "tolist") and callable(obj.tolist):  # numpy arrays and scalars
        return _jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return "inf" if obj > 0 else ("-inf" if obj < 0 else "nan")
    if hasattr(obj, "value") and hasattr(obj, "name"):  # enums
        return obj.name.lower()
    return obj


def to_jsonable(obj: Any) -> Any:
    """JSON-ready copy of ``obj``.

    Dataclasses become dicts, numpy values plain numbers and lists, and
    non-finite floats the strings ``"inf"``, ``"-inf"``, ``"nan"`` (strict JSON
    has no infinity, and an infinite tortuosity is a legitimate answer).
    """
    return _jsonable(obj)


def write_json(path: str | Path, obj: Any, indent: int = 2) -> Path:
    """Atomically write ``obj`` as strict JSON (see :func:`to_jsonable`)."""
    text = json.dumps(to_jsonable(obj), indent=indent, allow_nan=False, sort_keys=False)
    return write_text(path, text + "\n")
