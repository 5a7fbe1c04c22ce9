"""The extra environments and CI steps agree with each other: the browser test (make e2e) and the
older-torch environment (make compat) are installed from pinned files and actually run."""
from __future__ import annotations

import os
import re
import subprocess

import yaml
from helpers import ROOT, pins, requirements

COMPAT_TORCH = {"torch": "2.9.1", "torchvision": "0.24.1"}  # Colab's kind of stack: an older pair


def test_compat_requirements_are_the_main_ones_with_the_older_torch_pair():
    main, compat = requirements("requirements.txt"), requirements("requirements/compat.txt")
    assert set(compat) == set(main)
    assert {name: compat[name] for name in COMPAT_TORCH} == COMPAT_TORCH
    assert {n: v for n, v in compat.items() if n not in COMPAT_TORCH} == \
           {n: v for n, v in main.items() if n not in COMPAT_TORCH}


def test_compat_constraints_pin_every_requirement_and_the_same_torch_pair():
    constraints = pins("requirements/compat-constraints.txt")
    assert not [name for name in requirements("requirements/compat.txt") if name not in constraints]
    assert {name: constraints[name] for name in COMPAT_TORCH} == COMPAT_TORCH
    # apart from torch and the CUDA libraries that come with it, the same versions as the main environment
    main = pins("constraints.txt")
    torch_stack = re.compile(r"^(torch|torchvision|triton|nvidia-.*|cuda-.*)$")
    assert {n: v for n, v in constraints.items() if not torch_stack.match(n)} == \
           {n: v for n, v in main.items() if not torch_stack.match(n)}


def test_e2e_requirements_are_pinned_and_never_download_a_browser():
    assert requirements("requirements/e2e.txt")["playwright"]
    assert all(requirements("requirements/e2e.txt").values()), "exact versions"
    recipes = [line for line in (ROOT / "Makefile").read_text().splitlines() if line.startswith("\t")]
    assert not [line for line in recipes if "playwright install" in line]
    assert [line for line in recipes if "apt-get install -y -q chromium" in line]


def test_ci_runs_the_browser_test_after_the_suite():
    run = (ROOT / ".ci" / "run").read_text()
    lines = [line for line in run.splitlines() if line.startswith("make ")]
    assert [line.split()[1] for line in lines] == ["test", "e2e"]


def test_workflow_runs_make_compat_as_its_own_job():
    jobs = yaml.safe_load((ROOT / ".github" / "workflows" / "ci.yml").read_text())["jobs"]
    runs = [step.get("run", "") for step in jobs["compat"]["steps"]]
    assert "make compat" in runs
    assert not any("make compat" in step.get("run", "") for step in jobs["test"]["steps"])


def test_compat_venv_is_ignored_by_git():
    r = subprocess.run(["git", "check-ignore", "-q", ".venv-compat"], cwd=ROOT)
    assert r.returncode == 0


def test_plain_pytest_does_not_collect_the_browser_test(request):
    """`make test` runs plain pytest; tests/e2e needs Chromium and Playwright, so only `make e2e` runs it.
    Asked of the hook pytest consults before it walks into a folder while collecting tests/ (this session's
    own configuration, tests/conftest.py included), instead of a second pytest collecting everything."""
    config = request.config
    ignored = lambda path: config.hook.pytest_ignore_collect(collection_path=path, config=config)  # noqa: E731
    assert ignored(ROOT / "tests" / "e2e") is True
    assert not ignored(ROOT / "tests" / "test_ci_setup.py") and not ignored(ROOT / "tests" / "test_e2e_detector.py")


def test_the_fast_tests_run_in_two_processes_first_and_the_slow_ones_alone():
    """make test and make test-fast as make would run them (`make -n`: printed, not run). The fast tests
    share the two cores file by file and need no instructor tool; the student edition is built after them,
    and the slow ones with the tests of that edition (nbval and the edition's run both train in
    build/quick/) run in one process, last."""
    # the Makefile's own defaults: not those of a make (or a user) that runs this test
    env = {k: v for k, v in os.environ.items() if k not in {"MAKEFLAGS", "MFLAGS", "TEST_WORKERS", "PYTEST_ARGS"}}

    def pytest_runs(target):
        r = subprocess.run(["make", "-n", target], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
        return [line.split(" -m pytest ", 1)[1].split() for line in r.stdout.splitlines() if " -m pytest " in line]

    fast = ["-m", '"not', "slow", "and", "not", 'student"', "-n", "2", "--dist", "loadfile"]
    assert pytest_runs("test") == [fast, ["-m", '"slow', "or", 'student"']]
    assert pytest_runs("test-fast") == [fast]
    r = subprocess.run(["make", "-n", "test"], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    lines = r.stdout.splitlines()
    first_fast = next(i for i, line in enumerate(lines) if " -m pytest " in line)
    assert not [line for line in lines[:first_fast] if "otter" in line], "the fast tests wait for no instructor tool"
