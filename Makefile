# bayesdrop: `make demo` and `make test` each create the virtual environment if needed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.bayesdrop-installed

.PHONY: install demo test test-all lint notebooks bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# A CPU build of torch first: a bare `pip install torch` pulls gigabytes of CUDA wheels.
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/bayesdrop compare --dataset digits --methods all --quick --out runs/demo

test: $(STAMP)
	$(PY) -m pytest -q -n 2 --dist loadscope

test-all: $(STAMP)
	$(PY) -m pytest -q -m "slow or not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check bayesdrop tests benchmarks tutorials
	$(VENV)/bin/ruff format --check bayesdrop tests benchmarks tutorials
	$(VENV)/bin/mypy bayesdrop

notebooks: $(STAMP)
	$(VENV)/bin/jupytext --to ipynb tutorials/*.py

bench: $(STAMP)
	$(PY) benchmarks/speed.py
	$(PY) benchmarks/compression.py

clean:
	rm -rf $(VENV) runs .pytest_cache
