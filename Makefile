# The README's commands. Everything runs inside .venv, made from requirements.txt when missing or outdated.
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
JOBS    ?= 2
NOTEBOOKS := chapters exercises solutions
# One BLAS/OpenMP thread per kernel: results of float reductions then do not depend on the machine's core
# count, so outputs executed on one machine compare exactly on another (and two nbval workers share 2 cores).
NOTEBOOK_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

.PHONY: setup test test-colab test-fast test-lib test-notebooks book execute exercises bench gpu-check lint clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

## make test: library tests, strict nbval over every committed notebook, the book build, browser checks
test: $(STAMP)
	$(MAKE) lint
	$(PY) -m pytest tests -n $(JOBS) --dist loadfile -m "not browser and not colab_full"
	$(MAKE) test-notebooks
	$(MAKE) book
	$(PY) -m pytest tests -m browser -p no:xdist

## make test-fast: the library and notebook-rule tests without the slow ones (under 2 minutes on 2 cores)
test-fast: $(STAMP)
	$(PY) -m pytest tests -n $(JOBS) --dist loadfile -m "not browser and not slow and not colab_full"

test-lib: $(STAMP)
	$(PY) -m pytest tests -n $(JOBS) --dist loadfile -m "not browser and not colab_full"

## make test-colab: every notebook, and the playground under ipywidgets 7 and 8, on Colab's stack (about 10 minutes)
test-colab: $(STAMP)
	$(PY) -m pytest tests/test_colab_bootstrap.py -p no:xdist -m colab_full

test-notebooks: $(STAMP)
	$(NOTEBOOK_ENV) $(PY) -m pytest --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-current-env \
		-n $(JOBS) --dist loadfile -p no:cacheprovider $(NOTEBOOKS)

## make book: the HTML book in _build/html, warnings as errors, failing cells fail the build
book: $(STAMP)
	$(VENV)/bin/jupyter-book build . --all --warningiserror --keep-going

## make execute: re-execute notebooks in place so that the committed outputs are real (NB=path for one)
execute: $(STAMP)
	$(NOTEBOOK_ENV) $(PY) book/_tools/notebooks.py execute $(or $(NB),$(NOTEBOOKS))

## make exercises: regenerate exercises/ from solutions/
exercises: $(STAMP)
	$(NOTEBOOK_ENV) $(PY) book/_tools/notebooks.py exercises

## make lint: ruff's checks and its formatter over the library, the tests, the book's tools and every notebook's code
LINTED := lib tests book/_tools $(NOTEBOOKS)
lint: $(STAMP)
	$(PY) -m ruff check $(LINTED)
	$(PY) -m ruff format --check $(LINTED)

bench: $(STAMP)
	$(PY) -m optbook.apps.bench

## make gpu-check: the device tests on CUDA, every notebook on the GPU it selects, the benchmark (a dry run without CUDA)
gpu-check: $(STAMP)
	$(PY) book/_tools/gpu_check.py

clean:
	rm -rf _build
