"""`python -m tools.bench` on tiny sizes: it runs, writes a complete JSON, prints what it measured, and the
README's speed tables render from it. No timed assertions: speed is a measurement, not a test."""
import contextlib
import io
import json
import math
import types

import pytest
import torch
from helpers import no_work, one_error_line

from tools import bench


@pytest.fixture(scope="module")
def tiny_bench(tmp_path_factory):
    """One tiny benchmark, run through bench.main in this process (its --full trainings are subprocesses
    of their own): (what it printed, as .stdout, and the JSON it wrote)."""
    tmp = tmp_path_factory.mktemp("bench")
    path = tmp / "bench.json"
    args = ["--images", "256", "--repeats", "1", "--workers", "0", "1", "--device", "cpu",
            "--json", str(path), "--levers", "batch", "channels_last", "--full", "--full-out", str(tmp / "full"),
            "--train-args=--epochs 2 --train-subset 512"]
    printed = io.StringIO()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the command line subprocesses run (cli_env): tiny sizes, a shared machine
    try:
        with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(printed):
            patch.setenv("OMP_NUM_THREADS", "1")  # the --full trainings, and bench's default thread count
            assert bench.main(args) == 0
    finally:
        torch.set_num_threads(threads)
    return types.SimpleNamespace(stdout=printed.getvalue()), json.loads(path.read_text())


def test_both_pipelines_are_measured_and_compared(tiny_bench):
    r, res = tiny_bench
    assert res["images"] == 256 and res["device_type"] == "cpu" and res["repeats"] == 1
    assert res["command"].startswith("python -m tools.bench --images 256")
    assert [v["num_workers"] for v in res["usual_variants"]] == [0, 1]
    assert all(v["images_per_second"] > 0 for v in res["usual_variants"])
    assert res["usual"]["num_workers"] == 0 and res["usual"]["batch_size"] == bench.USUAL_BATCH
    assert res["usual_images_per_second"] == res["usual_variants"][0]["images_per_second"]
    assert math.isclose(res["ratio"], res["ours_images_per_second"] / res["usual_images_per_second"])
    assert res["epoch_seconds_60k_with_eval"] > 60_000 / res["ours_images_per_second"]
    assert f"usual: {res['usual_images_per_second']:,.0f} img/s" in r.stdout
    assert f"ours: {res['ours_images_per_second']:,.0f} img/s" in r.stdout
    assert f"ratio ours/usual: {res['ratio']:.2f}x" in r.stdout


def test_the_levers_asked_for_are_measured_against_the_recipe(tiny_bench):
    _, res = tiny_bench
    rows = res["levers"]
    assert [row["lever"] for row in rows] == ["recipe", "batch", "batch", "batch", "channels_last"]
    assert [row["batch_size"] for row in rows if row["lever"] == "batch"] == [64, 256, 512]
    assert rows[0]["ratio_to_recipe"] == 1.0
    for row in rows:
        assert row["images_per_second"] > 0
        assert math.isclose(row["ratio_to_recipe"], row["images_per_second"] / rows[0]["images_per_second"])


def test_full_run_trains_the_default_and_todays_path_to_the_same_numbers(tiny_bench):
    """--full trains both paths; today's path differs only in how memory is managed, so its history
    must equal the default path's, and the ratio is the one of their walls."""
    r, res = tiny_bench
    default, today = res["full"], res["full_today"]
    assert "--no-reuse-memory" in today["command"] and "--no-reuse-memory" not in default["command"]
    assert today["config"]["reuse_memory"] is False and default["config"]["reuse_memory"] is True
    assert today["final_test_accuracy"] == default["final_test_accuracy"]
    assert math.isclose(res["full_ratio"], today["wall_seconds"] / default["wall_seconds"])
    assert f"{res['full_ratio']:.2f}x" in r.stdout


def test_full_run_plumbing(tiny_bench):
    """--full on a 2-epoch, 512-image run: the figures come back (99.40% is not expected here)."""
    _, res = tiny_bench
    full = res["full"]
    assert full["epochs"] == 2 and full["config"]["train_subset"] == 512
    assert 0 <= full["final_test_accuracy"] <= 100
    assert full["wall_seconds"] > 0 and full["peak_memory_mb"] > 10
    if full["first_epoch_at_goal"] is None:
        assert full["seconds_to_goal"] is None
    else:
        assert 0 < full["seconds_to_goal"] <= full["wall_seconds"]


def test_speed_tables_render_the_result(tiny_bench):
    _, res = tiny_bench
    text = bench.speed_markdown([res])
    tables = [block.splitlines() for block in text.split("\n\n")]
    assert len(tables) == 3  # results, how each was measured, levers
    for lines in tables:
        widths = {line.count(" | ") for line in lines}
        assert len(widths) == 1 and all(line.startswith("| ") and line.endswith(" |") for line in lines), lines
    assert f"**{res['ratio']:.1f}×**" in text and f"{res['ours_images_per_second']:,.0f}" in text
    assert f"| `{res['command'].removeprefix('python -m tools.bench ')}` |" in text
    assert "not the default recipe: --epochs 2 --train-subset 512" in text  # the tiny --full run says so
    assert "| channels_last | off: model and data NCHW |" in text


def test_the_stored_results_render(tmp_path):
    """Every file in results/bench/ (older schemas included) renders into the README's tables."""
    stored = [json.loads(p.read_text()) for p in sorted(bench.RESULTS_DIR.glob("*.json"))]
    assert stored, "results/bench/ holds the README's speed figures"
    text = bench.speed_markdown(stored)
    for r in stored:
        assert f"**{r['ratio']:.1f}×**" in text


def test_record_writes_into_the_results_tree(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "RESULTS_DIR", tmp_path)
    assert bench.main(["--images", "64", "--repeats", "1", "--workers", "0", "--device", "cpu", "--record"]) == 0
    [path] = tmp_path.glob("cpu-*.json")
    assert json.loads(path.read_text())["images"] == 64
    assert f"written {path}" in capsys.readouterr().out


def test_bad_arguments_fail_with_one_line(capsys):
    one_error_line(capsys, bench.main, ["--images", "0"], "--images")


@pytest.mark.parametrize("where", ["inside a file", "a folder"])
def test_a_json_path_that_cannot_be_written_is_refused_before_measuring(tmp_path, blocker, capsys, monkeypatch,
                                                                         where):
    bad = str(blocker / "x.json") if where == "inside a file" else str(tmp_path)
    monkeypatch.setattr(bench, "usual_dataset", no_work)
    one_error_line(capsys, bench.main, ["--device", "cpu", "--json", bad], "--json", bad)
    assert blocker.read_text() == "not a folder"


def test_one_setting_is_one_lever_row_across_the_stored_results():
    """Older records label the levers differently ("batch 64, peak lr 0.05"); the table joins them by setting."""
    results = [json.loads(p.read_text()) for p in sorted(bench.RESULTS_DIR.glob("*.json"))]
    lever_rows = [line for line in bench.speed_markdown(results).splitlines() if line.startswith("| batch |")]
    assert [row.split(" | ")[1] for row in lever_rows] == ["batch 64", "batch 256", "batch 512"]
    assert all("–" not in row for row in lever_rows)  # every host measured every batch setting
