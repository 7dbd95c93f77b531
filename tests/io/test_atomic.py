import json
import math
import os
from dataclasses import dataclass

import numpy as np
import pytest

from tomofem.errors import RunFolderError
from tomofem.io.atomic import atomic_write, to_jsonable, write_json, write_text


def test_write_text_replaces_and_leaves_no_temp(tmp_path):
    p = tmp_path / "a.txt"
    write_text(p, "one")
    write_text(p, "two")
    assert p.read_text() == "two"
    assert sorted(os.listdir(tmp_path)) == ["a.txt"]
    mask = os.umask(0)
    os.umask(mask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~mask


def test_failing_writer_keeps_previous_file_and_no_partial(tmp_path):
    p = tmp_path / "results.json"
    write_json(p, {"tau": 2.0})

    def boom(fh):
        fh.write(b'{"tau": 3')  # half a document, then a crash
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError, match="disk on fire"):
        atomic_write(p, boom)
    assert json.loads(p.read_text()) == {"tau": 2.0}
    assert sorted(os.listdir(tmp_path)) == ["results.json"]


def test_unwritable_folder_is_runfolder_error(tmp_path):
    missing = tmp_path / "no" / "such" / "dir" / "x.json"
    with pytest.raises(RunFolderError, match="no/such/dir"):
        write_json(missing, {})


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_folder(tmp_path):
    p = tmp_path / "r.json"
    write_json(p, {"a": 1})
    tmp_path.chmod(0o500)
    try:
        with pytest.raises(RunFolderError):
            write_json(p, {"a": 2})
        assert json.loads(p.read_text()) == {"a": 1}
    finally:
        tmp_path.chmod(0o700)


def test_full_disk_is_runfolder_error_and_previous_intact(tmp_path, monkeypatch):
    p = tmp_path / "r.json"
    write_json(p, {"a": 1})

    def enospc(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", enospc)
    with pytest.raises(RunFolderError, match="No space left"):
        write_json(p, {"a": 2})
    monkeypatch.undo()
    assert json.loads(p.read_text()) == {"a": 1}
    assert sorted(os.listdir(tmp_path)) == ["r.json"]


@dataclass(frozen=True)
class _R:
    tau: float
    arr: np.ndarray


def test_jsonable_inf_numpy_dataclass(tmp_path):
    obj = _R(math.inf, np.arange(3, dtype=np.int64))
    assert to_jsonable(obj) == {"tau": "inf", "arr": [0, 1, 2]}
    assert to_jsonable({"x": np.float32(0.5), "n": float("nan")}) == {"x": 0.5, "n": "nan"}
    write_json(tmp_path / "x.json", obj)  # strict JSON: would raise on bare inf
    assert json.loads((tmp_path / "x.json").read_text())["tau"] == "inf"
