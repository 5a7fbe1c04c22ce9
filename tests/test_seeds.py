"""tools.seeds: the command checks its arguments before any run, and its table says how the runs shared the
machine. The stored seed tables in the README: test_report.py."""
import json
import os

import pytest
from helpers import no_work, one_error_line

from tools import seeds
from utils import REPO_ROOT


@pytest.mark.parametrize("where", ["inside a file", "a folder"])
def test_a_summary_that_cannot_be_written_is_refused_before_any_run(tmp_path, blocker, capsys, monkeypatch, where):
    bad = str(blocker / "x.json") if where == "inside a file" else str(tmp_path)
    monkeypatch.setattr(seeds, "run_one", no_work)
    one_error_line(capsys, seeds.main, ["--seeds", "1", "--summary", bad], "--summary", bad)
    assert blocker.read_text() == "not a folder"


def test_a_seed_given_twice_is_refused(capsys, monkeypatch):
    """It would count twice in the mean and the spread."""
    monkeypatch.setattr(seeds, "run_one", no_work)
    one_error_line(capsys, seeds.main, ["--seeds", "3", "2", "3", "--summary", os.devnull], "--seeds", "3")


def test_the_seed_table_says_when_its_wall_times_were_shared():
    stored = json.loads((REPO_ROOT / "results" / "seeds.json").read_text())
    older = {k: v for k, v in stored.items() if k != "jobs"}  # a summary written before tools.seeds recorded it
    assert "side by side" not in seeds.markdown_table(older), "a summary without jobs read as side by side"
    assert "side by side" not in seeds.markdown_table({**stored, "jobs": 1})
    shared = seeds.markdown_table(stored)
    assert stored["jobs"] == 2
    assert "2 seeds trained side by side, so each wall time is that of a run sharing the machine." in shared
