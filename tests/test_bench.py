"""`python -m tools.bench` on tiny sizes: it runs, writes a complete JSON, prints what it wrote, and the
README's speed block renders from it. No timed assertions: speed is a measurement, not a test."""
import json
import math

import pytest
from helpers import run_module

from tools import bench

TOP_FIELDS = ("command", "argv", "date", "device", "device_type", "machine", "versions", "images", "usual",
              "usual_variants", "ours", "usual_images_per_second", "ours_images_per_second", "ratio",
              "ratio_vs_best_usual", "epoch_seconds_60k", "epoch_seconds_60k_with_eval", "levers", "full")


@pytest.fixture(scope="module")
def tiny_bench(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    path = tmp / "bench.json"
    args = ["tools.bench", "--images", "256", "--repeats", "1", "--warmup", "1", "--workers", "0", "1",
            "--device", "cpu", "--json", str(path), "--levers", "batch", "channels_last", "step_sync", "eval",
            "--full", "--full-out", str(tmp / "full"), "--train-args=--epochs 2 --train-subset 512"]
    r = run_module(*args, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return r, json.loads(path.read_text()), args


def test_json_has_every_field(tiny_bench):
    _, res, args = tiny_bench
    for field in TOP_FIELDS:
        assert field in res, field
    for field in ("platform", "processor", "cpu_count", "torch_threads"):
        assert field in res["machine"], field
    for field in ("python", "torch", "torchvision"):
        assert res["versions"][field], field
    assert res["images"] == 256 and res["device_type"] == "cpu"
    assert res["command"].startswith("python -m tools.bench --images 256")
    assert res["argv"][-len(args) + 1:] == args[1:]


def test_throughputs_and_ratio(tiny_bench):
    _, res, _ = tiny_bench
    usual, ours = res["usual"], res["ours"]
    assert usual["num_workers"] == 0 and usual["batch_size"] == 64
    assert [v["num_workers"] for v in res["usual_variants"]] == [0, 1]
    assert usual["images_timed"] == 256 and ours["images_timed"] == 256
    for v in res["usual_variants"]:
        assert v["images_per_second"] > 0
    assert res["usual_images_per_second"] == usual["images_per_second"] > 0
    assert res["ours_images_per_second"] == ours["images_per_second"] > 0
    assert math.isclose(res["ratio"], ours["images_per_second"] / usual["images_per_second"], rel_tol=1e-9)
    best = max(v["images_per_second"] for v in res["usual_variants"])
    assert math.isclose(res["ratio_vs_best_usual"], ours["images_per_second"] / best, rel_tol=1e-9)
    assert math.isclose(res["epoch_seconds_60k"], 60_000 / ours["images_per_second"], rel_tol=1e-9)
    assert res["epoch_seconds_60k_with_eval"] > res["epoch_seconds_60k"]
    assert 0 < usual["loader_share_of_time"]


def test_output_shows_both_throughputs_and_the_ratio(tiny_bench):
    r, res, _ = tiny_bench
    assert f"usual: {res['usual_images_per_second']:,.0f} img/s" in r.stdout
    assert f"ours: {res['ours_images_per_second']:,.0f} img/s" in r.stdout
    assert f"ratio ours/usual: {res['ratio']:.2f}x" in r.stdout


def test_levers_are_measured(tiny_bench):
    _, res, _ = tiny_bench
    rows = res["levers"]
    assert {"recipe", "batch", "channels_last", "step_sync", "eval"} == {row["lever"] for row in rows}
    assert all(row["images_per_second"] > 0 for row in rows)
    recipe = rows[0]
    assert recipe["lever"] == "recipe" and recipe["ratio_to_recipe"] == 1.0
    for row in rows:
        if row["lever"] != "eval":  # a ratio to the recipe row of the same rounds
            assert math.isclose(row["ratio_to_recipe"], row["images_per_second"] / recipe["images_per_second"])
    assert [row["batch_size"] for row in rows if row["lever"] == "batch"] == [64, 256, 512]
    evals = [row for row in rows if row["lever"] == "eval"]
    assert evals[0]["setting"].endswith("(ours)") and evals[0]["ratio_to_recipe"] == 1.0
    assert any(row["eval_batch_size"] == 10_000 for row in evals)


def test_full_run_plumbing(tiny_bench):
    """--full on a 2-epoch, 512-image run: the figures come back (99.40% is not expected here)."""
    _, res, _ = tiny_bench
    full = res["full"]
    assert full["epochs"] == 2 and len(full["epoch_seconds"]) == 2
    assert 0 <= full["final_test_accuracy"] <= 100
    assert full["goal_met"] == (full["final_test_accuracy"] >= 99.40)
    assert full["wall_seconds"] > full["mean_epoch_seconds"] > 0
    assert full["peak_memory_mb"] > 10
    if full["first_epoch_at_goal"] is None:
        assert full["seconds_to_goal"] is None
    else:
        assert 0 < full["seconds_to_goal"] <= full["wall_seconds"]


def test_speed_markdown_renders_the_result(tiny_bench):
    _, res, _ = tiny_bench
    text = bench.speed_markdown([res])
    assert f"{res['ours_images_per_second']:,.0f}" in text
    assert f"{res['usual_images_per_second']:,.0f}" in text
    assert f"**{res['ratio']:.1f}×**" in text
    assert "Levers" in text and res["command"] in text
    assert "not the default recipe" in text  # the tiny --full run is marked as such


def test_bad_arguments_fail_with_one_line():
    r = run_module("tools.bench", "--images", "0")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "--images" in r.stderr
