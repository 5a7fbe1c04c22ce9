"""The README's result tables are generated from stored results, and are up to date."""
import json

from tools import report
from utils.models import STEPS


def test_readme_tables_are_regenerated_from_stored_results():
    text = report.README.read_text()
    assert report.render(text) == text, "README.md is stale: run `python -m tools.report`"


def test_every_step_has_its_change_described_in_course_order():
    assert list(report.CHANGES) == list(STEPS)


def test_seeds_table_lists_every_seed():
    summary = json.loads((report.REPO_ROOT / "results" / "seeds.json").read_text())
    block = report.seeds_block()
    assert [r["seed"] for r in summary["runs"]] == list(range(1, 11))  # make seeds: seeds 1 to 10
    for run in summary["runs"]:
        assert f"| {run['seed']} | {run['final_test_accuracy']:.2f}% |" in block
    assert summary["at_or_above_goal"] == sum(r["final_test_accuracy"] >= 99.40 for r in summary["runs"])


def test_figures_are_drawn_from_the_code_and_the_stored_results():
    assert set(report.figures()) == {"architecture.png", "seeds_curves.png", "steps.png"}
    assert report.stale_figures() == [], "a figure in results/figures/ is stale: run `python -m tools.report`"


def test_a_changed_figure_is_reported_stale(tmp_path):
    report.write_figures(tmp_path)
    assert report.stale_figures(tmp_path) == []
    (tmp_path / "architecture.png").write_bytes((tmp_path / "seeds_curves.png").read_bytes())
    (tmp_path / "seeds_curves.png").unlink()
    assert report.stale_figures(tmp_path) == ["architecture.png", "seeds_curves.png"]
