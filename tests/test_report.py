"""tools.report: the result tables and figures of README.md and docs/reproducibility.md are generated from the
stored results and are up to date; a damaged result file is named in one line and nothing is written."""
import json
import re
import shutil

import pytest
from helpers import ROOT, one_error_line, tree

from tools import report
from utils.models import STEPS


def test_readme_tables_are_regenerated_from_stored_results():
    text = report.README.read_text()
    assert report.render(text) == text, "README.md is stale: run `python -m tools.report`"


def test_each_block_is_on_the_page_that_holds_it_and_up_to_date():
    """The README keeps the course and its result; the speed tables live on docs/reproducibility.md."""
    held = {page: re.findall(r"<!-- BEGIN (\w+) -->", page.read_text()) for page in report.pages()}
    assert held == {report.README: ["notebooks", "steps", "seeds", "architecture", "timing"],
                    report.REPRODUCIBILITY: ["speed"]}
    for page in report.pages():
        assert report.render(page.read_text()) == page.read_text(), f"{page.name} is stale: run make readme"


def test_a_stale_block_on_the_second_page_is_found_and_rewritten(tmp_path, monkeypatch, capsys):
    readme, doc = tmp_path / "README.md", tmp_path / "reproducibility.md"
    readme.write_text(report.README.read_text())
    doc.write_text(re.sub(r"(<!-- BEGIN speed -->\n).*?(<!-- END speed -->)", r"\1| stale |\n\2",
                          report.REPRODUCIBILITY.read_text(), flags=re.S))
    monkeypatch.setattr(report, "README", readme)
    monkeypatch.setattr(report, "REPRODUCIBILITY", doc)
    monkeypatch.setattr(report, "write_figures", lambda *a, **k: None)  # the figures are tested on their own
    monkeypatch.setattr(report, "stale_figures", lambda *a, **k: [])
    assert report.main(["--check"]) == 1
    assert "reproducibility.md" in capsys.readouterr().err
    assert report.main([]) == 0
    assert doc.read_text() == report.REPRODUCIBILITY.read_text() and readme.read_text() == report.README.read_text()


def test_the_notebooks_table_gives_each_notebook_its_badges_and_training_time():
    import statistics

    from tools.set_repo import makefile_repo

    steps = json.loads(report.STEPS_JSON.read_text())
    block = report.notebooks_block()
    slug = makefile_repo((report.REPO_ROOT / "Makefile").read_text())
    assert list(report.TEACHES) == list(STEPS)
    for step in steps["steps"]:
        stem = step["notebook"]
        row = next(line for line in block.splitlines() if f"[{stem}](notebooks/{stem}.ipynb)" in line)
        assert f"https://colab.research.google.com/github/{slug}/blob/main/notebooks/{stem}.ipynb" in row
        assert f"https://colab.research.google.com/github/{slug}/blob/student/{stem}.ipynb" in row
        minutes = statistics.median(r["wall_seconds"] for r in step["runs"]) / 60
        assert f"| {minutes:.1f} min |" in row


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


def test_the_reproducibility_page_quotes_the_torch_2_9_seeds_as_stored():
    summary = json.loads((report.REPO_ROOT / "results" / "seeds-torch2.9.json").read_text())
    assert summary["versions"]["torch"].startswith("2.9.")
    text = " ".join(report.REPRODUCIBILITY.read_text().split())
    assert (f"torch 2.9.1 gives {summary['at_or_above_goal']} of {len(summary['runs'])} at or above 99.40%, "
            f"mean {summary['mean']:.2f}%, lowest {summary['min']:.2f}%") in text


def test_the_step_table_says_how_many_runs_shared_the_machine():
    stored = json.loads((report.REPO_ROOT / "results" / "steps.json").read_text())
    assert stored["jobs"] == 2 and report.runs_at_a_time(stored) == "two runs at a time"
    older = {k: v for k, v in stored.items() if k != "jobs"}  # the sweep of 2026-11-26, two at a time by hand
    assert report.runs_at_a_time(older) == "two runs at a time"
    assert report.runs_at_a_time({**stored, "jobs": 1}) == "one run at a time"
    assert report.runs_at_a_time({**stored, "jobs": 8}) == "8 runs at a time"


def test_the_check_passes_on_the_stored_results():
    """The guards refuse damaged files only: the stored results read as before."""
    assert report.main(["--check"]) == 0
    assert json.loads((ROOT / "results" / "steps.json").read_text())["steps"]


DAMAGED = {  # stored result -> content
    "seeds.json cut short": ("seeds.json", '{"recipe": "final (default)", "runs": [{"se'),
    "seeds.json without runs": ("seeds.json", '{"runs": []}'),
    "steps.json a list": ("steps.json", "[]"),
    "steps.json cut short": ("steps.json", '{"config": {"epochs": 1'),
    "bench file not JSON": ("bench", "{garbage"),
    "bench file of another shape": ("bench", '{"date": "2026-01-01T00:00:00"}'),
}


@pytest.mark.parametrize("case", DAMAGED)
@pytest.mark.parametrize("check", [True, False])
def test_report_names_a_damaged_result_and_writes_nothing(tmp_path, capsys, monkeypatch, case, check):
    """One line naming the file and how to write it again."""
    readme = tmp_path / "README.md"
    shutil.copy2(report.README, readme)
    shutil.copytree(ROOT / "results", tmp_path / "results")
    monkeypatch.setattr(report, "README", readme)
    monkeypatch.setattr(report, "FIGURES", tmp_path / "results" / "figures")
    monkeypatch.setattr(report, "SEEDS", tmp_path / "results" / "seeds.json")
    monkeypatch.setattr(report, "STEPS_JSON", tmp_path / "results" / "steps.json")
    monkeypatch.setattr(report, "BENCH", tmp_path / "results" / "bench")
    name, text = DAMAGED[case]
    damaged = tmp_path / "results" / ("bench/zz-damaged.json" if name == "bench" else name)
    damaged.write_text(text)
    before = tree(tmp_path)
    one_error_line(capsys, report.main, ["--check"] if check else [], f"results/{damaged.name}"
                   if name != "bench" else damaged.name, "write it again")
    assert tree(tmp_path) == before


# --------------------------------------------------------------------------------------------------
# The timing block (README, for instructors): reading, exercises, training per notebook
# --------------------------------------------------------------------------------------------------

def fake_timing_results(tmp_path, monkeypatch, cuda: bool = True):
    """Stored runs whose medians and sums differ from their means, and each notebook's reading time and exercises
    as notebook_time would count them."""
    steps = {"seeds": [1, 2, 3], "cpu": "Test CPU", "device": "cpu (x86_64, 1 threads)", "jobs": 1, "steps": [
        {"notebook": "01_baseline", "model": "baseline",
         "runs": [{"wall_seconds": 30.0}, {"wall_seconds": 600.0}, {"wall_seconds": 66.0}]},  # median 66 s
        {"notebook": "05_augmentation", "model": "final",
         "runs": [{"wall_seconds": 100.0}, {"wall_seconds": 400.0}, {"wall_seconds": 130.0}]}]}  # median 130 s
    short = {"cpu": "Exercise CPU", "device": "cpu (x86_64, 1 threads)", "steps": {
        "01_baseline": {"runs": [{"seconds": 10.4}, {"seconds": 20.2}, {"seconds": 30.1}]},  # 60.7 s
        "05_augmentation": {"runs": [{"seconds": 5.0}, {"seconds": 6.0}, {"seconds": 7.6}]}}}  # 18.6 s
    gpu = {"runs": [{"wall_seconds": 12.0, "device": "cuda (Test GPU)"}, {"wall_seconds": 600.0},
                    {"wall_seconds": 24.0}]}  # median 24 s
    paths = {"STEPS_JSON": (tmp_path / "steps.json", steps), "EXERCISES_JSON": (tmp_path / "exercises.json", short),
             "CUDA_SUMMARY": (tmp_path / "seeds-cuda.json", gpu)}
    for name, (path, value) in paths.items():
        if name != "CUDA_SUMMARY" or cuda:
            path.write_text(json.dumps(value))
        monkeypatch.setattr(report, name, path)
    counted = {"01_baseline": (12, 4, 1), "05_augmentation": (20, 3, 2)}
    monkeypatch.setattr(report, "notebook_time", lambda stem: counted[stem])
    return {name: path for name, (path, _) in paths.items()}


def test_timing_rows_are_the_medians_and_sums_of_the_stored_runs(tmp_path, monkeypatch):
    fake_timing_results(tmp_path, monkeypatch)
    lines = report.timing_block().splitlines()
    assert lines[2:4] == [
        "| [01_baseline](notebooks/01_baseline.ipynb) | 12 min | 4 (1 judged) | 61 s | 1.1 min | not measured |",
        "| [05_augmentation](notebooks/05_augmentation.ipynb) | 20 min | 3 (2 judged) | 19 s | 2.2 min | 0.4 min |"]
    assert lines[4] == ""
    note = lines[5]
    assert "(Exercise CPU, cpu (x86_64, 1 threads), results/exercises.json)" in note, "the exercises' CPU, as stored"
    assert "(results/seeds-cuda.json, cuda (Test GPU): the median of its seeds;" in note
    assert "the median of the 3 seeds of results/steps.json (Test CPU, cpu (x86_64, 1 threads), one run at a time)" \
        in note
    assert f"at {report.READING_WORDS_PER_MINUTE} words a minute" in note


def test_timing_says_not_measured_when_a_result_is_missing(tmp_path, monkeypatch):
    paths = fake_timing_results(tmp_path, monkeypatch, cuda=False)
    rows = report.timing_block().splitlines()[2:4]
    assert [row.rsplit("|", 2)[1].strip() for row in rows] == ["not measured", "not measured"], "no GPU runs stored"
    paths["EXERCISES_JSON"].unlink()
    assert report.timing_block() == "_Not measured yet: run `make lessons`._"
    paths["STEPS_JSON"].unlink()
    assert report.timing_block() == "_Not measured yet: run `make steps`._"


def test_a_damaged_exercises_file_is_named_by_the_timing_block(tmp_path, monkeypatch):
    paths = fake_timing_results(tmp_path, monkeypatch)
    short = json.loads(paths["EXERCISES_JSON"].read_text())
    del short["steps"]["05_augmentation"]
    paths["EXERCISES_JSON"].write_text(json.dumps(short))
    with pytest.raises(report.StoredResultError, match=r"exercises\.json is not what `make lessons` writes"):
        report.timing_block()


def test_a_damaged_steps_file_is_named_by_the_timing_block(tmp_path, monkeypatch):
    paths = fake_timing_results(tmp_path, monkeypatch)
    steps = json.loads(paths["STEPS_JSON"].read_text())
    del steps["steps"][0]["runs"][1]["wall_seconds"]
    paths["STEPS_JSON"].write_text(json.dumps(steps))
    with pytest.raises(report.StoredResultError, match=r"steps\.json is not what `make steps` writes"):
        report.timing_block()


def test_a_notebook_s_reading_time_counts_its_prose_without_code_or_answer_key(tmp_path, monkeypatch):
    import nbformat

    md, code = nbformat.v4.new_markdown_cell, nbformat.v4.new_code_cell
    key = md("### Exercise 3 " + "answer " * 597)  # 600 words, an exercise heading: the instructor's alone
    key.metadata["tags"] = ["answer-key"]
    nb = nbformat.v4.new_notebook(cells=[
        md("word " * 597 + "### Exercise 1"),  # 600 words
        md("### Exercise 2 " + "word " * 397 + "`" + "code " * 300 + "`"),  # 400 words and inline code
        key,
        md("Each check calls `exercises.judge(...)`."),  # 4 words; the call is named, not made
        code("verdict = exercises.judge('04_gap', Narrow, label='narrow')\n# ### Exercise in a comment"),
        code("other = exercises.judge('04_gap', label='rotation', degrees=15)"),
        code("print('no judged experiment here')")])
    (tmp_path / "notebooks").mkdir()
    nbformat.write(nb, tmp_path / "notebooks" / "09_test.ipynb")
    monkeypatch.setattr(report, "REPO_ROOT", tmp_path)
    # 1,004 words at 200 a minute (the inline code would add 300 words: 7 min; the answer key 600: 8 min)
    assert report.READING_WORDS_PER_MINUTE == 200
    assert report.notebook_time("09_test") == (5, 2, 2)
