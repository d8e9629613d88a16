# bayesdrop: `make demo` and `make test` each create the virtual environment if needed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.bayesdrop-installed
DOCS_STAMP := $(VENV)/.bayesdrop-docs-installed
NOTEBOOKS_STAMP := $(VENV)/.bayesdrop-notebooks-installed

.PHONY: install demo test test-all test-py312 lint notebooks bench gpu-wheels docs clean

$(STAMP): pyproject.toml bayesdrop/__init__.py  # the version lives in __init__.py
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

# The suite on Python 3.12 with ArviZ 1.x (arviz-base, arviz-stats, arviz-plots), in its own .venv312: pyenv's 3.12
# by default (PYTHON312=... for another).  torch comes from PyPI: there is no local CPU wheel for 3.12, so this is
# the CUDA build (several GB to download the first time).
PYTHON312 ?= $(firstword $(wildcard $(shell pyenv root 2>/dev/null)/versions/3.12*/bin/python) python3.12)
VENV312   ?= .venv312
PY312     := $(VENV312)/bin/python
STAMP312  := $(VENV312)/.bayesdrop-installed

$(STAMP312): pyproject.toml bayesdrop/__init__.py
	test -x $(PY312) || $(PYTHON312) -m venv $(VENV312)
	$(PY312) -m pip install -q --upgrade pip
	$(PY312) -c "import torch" 2>/dev/null || $(PY312) -m pip install -q torch==2.13.0
	$(PY312) -m pip install -q -e ".[test]"
	touch $(STAMP312)

test-py312: $(STAMP312)
	$(PY312) -c "import sys, arviz; assert sys.version_info >= (3, 12) and int(arviz.__version__.split('.')[0]) >= 1"
	$(PY312) -m pytest -q -n 2 --dist loadscope

lint: $(STAMP)
	$(VENV)/bin/ruff check bayesdrop tests benchmarks tutorials docs/conf.py docs/gen_pages.py
	$(VENV)/bin/ruff format --check bayesdrop tests benchmarks tutorials docs/conf.py docs/gen_pages.py
	$(VENV)/bin/mypy bayesdrop

# The tutorials as notebooks, tutorials/NN_*.ipynb (git-ignored), on the kernel `bayesdrop`: this venv's python,
# registered for the user.  The `notebooks` extra (jupytext, ipykernel, nbclient, nbconvert) into the venv first.
# Run one at quick size (outputs in tutorials/output/quick/, never over the committed ones):
#   BAYESDROP_QUICK=1 .venv/bin/jupyter nbconvert --to notebook --execute tutorials/06_weight_scaling_vs_mc.ipynb
$(NOTEBOOKS_STAMP): $(STAMP)
	$(PY) -m pip install -q -e ".[notebooks]"
	touch $(NOTEBOOKS_STAMP)

notebooks: $(NOTEBOOKS_STAMP)
	$(PY) -m ipykernel install --user --name bayesdrop --display-name "Python (bayesdrop)"
	$(VENV)/bin/jupytext --to ipynb --set-kernel bayesdrop tutorials/[0-9][0-9]_*.py

# The documentation site: the `docs` extra into the venv, then Sphinx with warnings as errors, into docs/_build/html
# (the method, tutorial, benchmark and API pages are generated into docs/_gen by docs/gen_pages.py as it starts).
$(DOCS_STAMP): $(STAMP)
	$(PY) -m pip install -q -e ".[docs]"
	touch $(DOCS_STAMP)

docs: $(DOCS_STAMP)
	OMP_NUM_THREADS=1 $(VENV)/bin/sphinx-build -W --keep-going -b html docs docs/_build/html

bench: $(STAMP)
	$(PY) benchmarks/speed.py
	$(PY) benchmarks/compression.py

# Wheels of the dependencies that a CUDA machine with only torch (Python 3.12: ArviZ 1.x) lacks, for
# benchmarks/gpu_checks.sh; carry .gpu_wheels there.
gpu-wheels: $(STAMP)
	$(PY) -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 -d .gpu_wheels \
		pyro-ppl pyro-api mnist1d "arviz>=1,<2" arviz-base arviz-stats arviz-plots xarray-einstats

clean:
	rm -rf $(VENV) runs .pytest_cache docs/_build docs/_gen dist build
