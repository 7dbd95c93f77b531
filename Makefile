# tomofem: every target sets up what it needs on a fresh machine.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
MPIRUN := $(VENV)/bin/mpirun
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: venv demo demo-real test test-serial test-mpi lint notebooks docs bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml scripts/find-python.sh
	@set -e; \
	if [ ! -x "$(PY)" ]; then \
	  base=$$(./scripts/find-python.sh); \
	  echo "tomofem: creating $(VENV) with $$base"; \
	  "$$base" -m venv "$(VENV)"; \
	fi; \
	$(PY) -m pip install -q --upgrade pip; \
	$(PY) -m pip install -q -e '.[fenics,test]'; \
	touch $(STAMP)

demo: $(STAMP)
	$(PY) -m tomofem demo

demo-real: $(STAMP)
	$(PY) -m tomofem demo --real

test: $(STAMP)
	$(MAKE) --no-print-directory test-serial
	$(MAKE) --no-print-directory test-mpi

test-serial: $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m pytest -q $(PYTEST_ARGS) tests

# The rank-aware tests (marker `mpi`) again on two ranks; rank 1's report is
# discarded, mpirun's exit code is non-zero if any rank fails.
test-mpi: $(STAMP)
	OMP_NUM_THREADS=1 $(MPIRUN) -n 2 $(PY) -m tomofem.testing.mpi_pytest -q -m mpi $(PYTEST_ARGS) tests

lint: $(STAMP)
	$(VENV)/bin/ruff check tomofem tests demos bench
	$(VENV)/bin/ruff format --check tomofem tests demos bench

bench: $(STAMP)
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
