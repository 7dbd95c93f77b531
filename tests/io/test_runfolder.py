import json

import pytest

from tomofem.config import RunConfig, load_config
from tomofem.errors import RunFolderError
from tomofem.io.runfolder import MARKER, RunFolder


def test_create_refuses_existing_without_force(shared_tmp):
    path = shared_tmp / "run"
    RunFolder.create(path)
    with pytest.raises(RunFolderError, match="--force"):
        RunFolder.create(path)
    RunFolder.create(path, force=True)  # replaces a tomofem run folder


def test_force_never_deletes_foreign_folder(tmp_path):
    (tmp_path / "thesis.tex").write_text("years of work")
    with pytest.raises(RunFolderError, match="not made by tomofem"):
        RunFolder.create(tmp_path, force=True)
    assert (tmp_path / "thesis.tex").exists()


@pytest.mark.mpi
def test_results_config_log(shared_tmp, comm):
    import logging

    rf = RunFolder.create(shared_tmp / "r", comm=comm)
    rf.attach_log()
    logging.getLogger("tomofem.test").warning("hello from the test")
    cfg = RunConfig()
    rf.write_config(cfg)
    with rf.stage("solve"):
        pass
    rf.add_result("homogenize", {"tau": float("inf")}, units={"tau": "-"})
    rf.write_results(status="complete")
    rf.detach_log()
    comm.Barrier()
    doc = json.loads((shared_tmp / "r" / "results.json").read_text())
    assert doc["status"] == "complete"
    assert doc["mpi_ranks"] == comm.size
    assert doc["results"]["homogenize"] == {"tau": "inf", "units": {"tau": "-"}}
    assert "solve" in doc["wall_times_s"] and "total" in doc["wall_times_s"]
    assert doc["versions"]["tomofem"]
    assert load_config(shared_tmp / "r" / "config.toml") == cfg
    if comm.rank == 0:
        assert "hello from the test" in (shared_tmp / "r" / "log.txt").read_text()
    reopened = RunFolder.open(shared_tmp / "r", comm=comm)
    assert reopened.results["homogenize"]["tau"] == "inf"


def test_open_rejects_non_run_folder(tmp_path):
    with pytest.raises(RunFolderError, match=MARKER):
        RunFolder.open(tmp_path)
