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


def test_the_gpu_seeds_get_their_own_table_command_and_files():
    from tools import seeds

    summary = json.loads(seeds.CUDA_SUMMARY.read_text())
    block = report.seeds_block()
    table = block[block.index("on a GPU"):]
    for run in summary["runs"]:
        assert run["device"].startswith("cuda")
        assert f"| {run['seed']} | {run['final_test_accuracy']:.2f}% |" in table
    listed = " ".join(str(r["seed"]) for r in summary["runs"])
    assert f"Command: `python -m tools.seeds --device cuda --seeds {listed}`" in table
    assert seeds.default_paths("cuda") == (seeds.CUDA_RUNS, seeds.CUDA_SUMMARY)
    assert seeds.default_paths("auto") == seeds.default_paths("cpu") == (seeds.FINAL_RUNS, seeds.SUMMARY)
    cpu = {"runs": [{"seed": 1, "device": "cpu (x86_64, 1 threads)"}, {"seed": 2, "device": "cpu (x86_64, 1 threads)"}]}
    assert seeds.reproduce(cpu) == "OMP_NUM_THREADS=1 python -m tools.seeds --seeds 1 2"


def test_the_readme_quotes_the_torch_2_9_seeds_as_stored():
    summary = json.loads((report.REPO_ROOT / "results" / "seeds-torch2.9.json").read_text())
    assert summary["versions"]["torch"].startswith("2.9.")
    text = " ".join(report.README.read_text().split())
    assert (f"torch 2.9.1 gives {summary['at_or_above_goal']} of {len(summary['runs'])} at or above 99.40%, "
            f"mean {summary['mean']:.2f}%, lowest {summary['min']:.2f}%") in text
