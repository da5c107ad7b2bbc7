# Two entry points, each doing all the set-up from a fresh clone:
#   make run    venv + install + msabench run on the embedded synthetic data
#   make test   venv + install + the test suite (what CI runs)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.msabench-installed

.PHONY: run test bench

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch pinned first: 2.13.0 is the CPU build this project is developed and tested with
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/msabench run --protocol synth-intra --model submissions/example.py

test: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) benchmarks/harness.py
