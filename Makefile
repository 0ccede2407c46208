# The README's commands. Everything runs inside .venv, made from requirements.txt when missing or outdated.
VENV    := .venv
PY      := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
JOBS    ?= 2
NOTEBOOKS := chapters exercises solutions
# One BLAS/OpenMP thread per kernel: results of float reductions then do not depend on the machine's core
# count, so outputs executed on one machine compare exactly on another (and two nbval workers share 2 cores).
NOTEBOOK_ENV := OMP_NUM_THREADS=1 MKL_NUM_THREADS=1

.PHONY: setup colab-stack test test-colab test-fast test-lib test-notebooks book execute exercises bench gpu-check lint clean

setup: $(STAMP)

$(STAMP): requirements.txt pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

## make colab-stack: the venv with Colab's packages (.venv/colab-stack) and its kernel, where notebooks run
colab-stack: $(STAMP)
	$(PY) book/_tools/colab_stack.py

## make test: library tests (they build the Colab-stack venv, or reuse it), strict nbval over every committed
## notebook in the Colab-stack kernel, the book build, browser checks
test: $(STAMP)
	$(MAKE) lint
	$(PY) -m pytest tests -n $(JOBS) --dist loadfile -m "not browser"
	$(MAKE) test-notebooks
	$(MAKE) book
	$(PY) -m pytest tests -m browser -p no:xdist

## make test-fast: the library and notebook-rule tests without the slow ones (under 2 minutes on 2 cores)
test-fast: $(STAMP)
	$(PY) -m pytest tests -n $(JOBS) --dist loadfile -m "not browser and not slow"

test-lib: $(STAMP)
	$(PY) -m pytest tests -n $(JOBS) --dist loadfile -m "not browser"

## make test-colab: the Colab-stack checks alone (bootstrap, floors, playground under ipywidgets 7 and 8)
test-colab: colab-stack
	$(PY) -m pytest tests/test_colab_bootstrap.py -p no:xdist

## make test-notebooks: strict nbval, each notebook run in the Colab-stack kernel (NB=path for some)
test-notebooks: colab-stack
	$(NOTEBOOK_ENV) $(PY) -m pytest --nbval --nbval-sanitize-with tests/nbval_sanitize.cfg --nbval-kernel-name colab-stack \
		-n $(JOBS) --dist loadfile -p no:cacheprovider $(or $(NB),$(NOTEBOOKS))

## make book: the HTML book in _build/html, warnings as errors, failing cells fail the build
book: $(STAMP)
	$(VENV)/bin/jupyter-book build . --all --warningiserror --keep-going

## make execute: re-execute notebooks in place, in the Colab-stack kernel, so that the committed outputs are
## real (NB=path for one)
execute: colab-stack
	$(NOTEBOOK_ENV) $(PY) book/_tools/notebooks.py execute $(or $(NB),$(NOTEBOOKS))

## make exercises: regenerate exercises/ from solutions/
exercises: colab-stack
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
