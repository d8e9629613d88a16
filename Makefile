# bayesdrop: `make demo` and `make test` each create the virtual environment if needed.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.bayesdrop-installed
DOCS_STAMP := $(VENV)/.bayesdrop-docs-installed

.PHONY: install demo test test-all lint notebooks bench docs clean

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

lint: $(STAMP)
	$(VENV)/bin/ruff check bayesdrop tests benchmarks tutorials docs/conf.py docs/gen_pages.py
	$(VENV)/bin/ruff format --check bayesdrop tests benchmarks tutorials docs/conf.py docs/gen_pages.py
	$(VENV)/bin/mypy bayesdrop

notebooks: $(STAMP)
	$(VENV)/bin/jupytext --to ipynb tutorials/*.py

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

clean:
	rm -rf $(VENV) runs .pytest_cache docs/_build docs/_gen dist build
