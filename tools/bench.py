"""Speed: the usual DataLoader pipeline against our trainer, in one process, on the same machine.

    python -m tools.bench                       # throughput of both, the ratio, a JSON file
    python -m tools.bench --levers              # + what each speed lever is worth here
    python -m tools.bench --full                # + a full default training: time to 99.40%, peak memory

**Usual**: ``torchvision.datasets.MNIST`` (a PIL image per sample) with the seed recipe's
per-image transforms (ToTensor, RandomRotation(5), RandomAffine(translate 5%, scale 0.95-1.05),
GaussianBlur(3, sigma 0.01-0.02), Normalize), ``DataLoader(batch_size=64, shuffle=True)`` with
PyTorch's default ``num_workers=0`` (the figure the ratio uses; by default ``num_workers=2`` is
measured too and reported beside it), Adam lr 0.01, and the textbook loop (to device, zero_grad,
forward, cross-entropy, backward, step, ``loss.item()``).
**Ours**: ``utils.train.load_device_data`` + ``utils.train.train_epoch`` with the final recipe
(its batch size, optimiser, schedule, augmentation on). Same model (``build_model("final")``),
same device, same thread count, the same number of training images timed in each (data loading
and augmentation included), after a few warm-up batches. Each pipeline is measured ``--repeats``
times, alternating, each time with a fresh model; the median counts. Set-up (reading MNIST) is
left out of both and reported separately.

``--full`` trains the default recipe in a child process (``python -m utils.train --no-progress``),
as a user would, and times it from the outside: wall seconds from launch until the epoch whose
test accuracy first reached 99.40% was written, and until the end. The accuracy that counts is the
final epoch's. Peak memory is what the trainer itself records (``utils.train.peak_memory_mb``,
VmHWM on Linux): the child's ``ru_maxrss`` seen from here would also count this process, whose
pages the child borrowed until it started Python (vfork).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from utils import data
from utils.fsutil import atomic_write_json
from utils.models import build_model
from utils.summary import count_parameters
from utils.cli import DEVICES, GOAL, Parser, positive_int
from utils.train import (REPO_ROOT, DeviceData, device_name, evaluate, load_device_data, make_optimizer,
                    recipe, resolve_device, steps_per_epoch, train_epoch, versions)

SCHEMA = 1
USUAL_BATCH = 64
USUAL_LR = 0.01
TRAIN_IMAGES = 60_000
TEST_IMAGES = 10_000
LEVERS = ("batch", "channels_last", "threads", "step_sync", "eval", "compile")
RESULTS_DIR = REPO_ROOT / "results" / "bench"


# --------------------------------------------------------------------------------------------- timing

def sync(device: torch.device) -> None:
    """Wait for queued device work, so that a clock read means what it says (a no-op on CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def median(values: list[float]) -> float:
    return float(statistics.median(values))


# --------------------------------------------------------------------------------------------- usual

def usual_transform():
    """The seed recipe's per-image transforms, exactly as a typical MNIST notebook writes them."""
    from torchvision import transforms

    return transforms.Compose([
        transforms.ToTensor(),
        transforms.RandomRotation(5),
        transforms.RandomAffine(0, translate=(0.05, 0.05), scale=(0.95, 1.05)),
        transforms.GaussianBlur(3, sigma=(0.01, 0.02)),
        transforms.Normalize((data.MEAN,), (data.STD,)),
    ])


def usual_dataset(root=data.DEFAULT_ROOT):
    from torchvision import datasets

    data.ensure_mnist(root)
    return datasets.MNIST(root=str(root), train=True, download=False, transform=usual_transform())


def measure_usual(dataset, images: int, device: torch.device, *, workers: int = 0, warmup: int = 5,
                  seed: int = 1) -> dict:
    """Images per second of the textbook loop over ``images`` training images, after ``warmup`` batches.

    The DataLoader shuffles all 60,000 images; the loop stops after ``warmup`` + ceil(images / 64)
    batches. The clock spans the loader's ``next()`` as well, so the per-image work is included."""
    from torch.utils.data import DataLoader

    torch.manual_seed(seed)
    model = build_model("final").to(device)
    opt = torch.optim.Adam(model.parameters(), lr=USUAL_LR)
    loader = DataLoader(dataset, batch_size=USUAL_BATCH, shuffle=True, num_workers=workers,
                        generator=torch.Generator().manual_seed(seed))
    n_batches = warmup + math.ceil(images / USUAL_BATCH)
    model.train()
    it = iter(loader)
    seen, running, t0 = 0, 0.0, time.perf_counter()
    try:
        for i in range(n_batches):
            if i == warmup:
                sync(device)
                t0 = time.perf_counter()
            x, y = next(it)
            x, y = x.to(device), y.to(device)
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            running += loss.item()
            if i >= warmup:
                seen += y.shape[0]
        sync(device)
        seconds = time.perf_counter() - t0
    finally:
        del it  # shuts the worker processes down
    return {"images": seen, "seconds": seconds, "images_per_second": seen / seconds}


def measure_loader_only(dataset, images: int, *, workers: int = 0, warmup: int = 5, seed: int = 1) -> dict:
    """The usual DataLoader alone (PIL image, per-image transforms, collate), without the model."""
    from torch.utils.data import DataLoader

    loader = DataLoader(dataset, batch_size=USUAL_BATCH, shuffle=True, num_workers=workers,
                        generator=torch.Generator().manual_seed(seed))
    it = iter(loader)
    seen, t0 = 0, time.perf_counter()
    try:
        for i in range(warmup + math.ceil(images / USUAL_BATCH)):
            if i == warmup:
                t0 = time.perf_counter()
            _, y = next(it)
            if i >= warmup:
                seen += y.shape[0]
        seconds = time.perf_counter() - t0
    finally:
        del it
    return {"images": seen, "seconds": seconds, "images_per_second": seen / seconds}


# --------------------------------------------------------------------------------------------- ours

class _StepSync:
    """Stands in for train_epoch's progress bar to add a host sync at every step (a lever to measure)."""

    def __init__(self, model):
        self.param = next(model.parameters())

    def update(self, _n):
        self.param.view(-1)[0].item()


def measure_ours(dd: DeviceData, cfg, device: torch.device, *, warmup: int = 5, channels_last: bool = True,
                 compile: bool = False, step_sync: bool = False, epoch: int = 1) -> dict:
    """Images per second of ``utils.train.train_epoch`` over ``dd``'s training tensors, after ``warmup`` steps.

    The model is set up as ``utils.train.train`` does it (channels_last unless told otherwise).
    With ``compile``, the warm-up includes the compilation and its seconds are reported."""
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    n = dd.train_x.shape[0]
    batch = min(cfg.batch_size, n)
    n_steps = steps_per_epoch(n, batch)
    # warm-up + one pass must fit in the LR schedule, whatever the recipe's epoch count
    opt, sched = make_optimizer(dataclasses.replace(cfg, epochs=max(cfg.epochs, 2)), model, n_steps)
    run = torch.compile(model) if compile else model
    w = min(warmup * batch, n)
    warm = DeviceData(dd.train_x[:w], dd.train_y[:w], dd.test_x, dd.test_y)
    t = time.perf_counter()
    train_epoch(run, opt, sched, warm, cfg, 0)
    sync(device)
    warmup_seconds = time.perf_counter() - t
    t = time.perf_counter()
    train_epoch(run, opt, sched, dd, cfg, epoch, _StepSync(model) if step_sync else None)
    sync(device)
    seconds = time.perf_counter() - t
    images = n_steps * batch
    return {"images": images, "seconds": seconds, "images_per_second": images / seconds,
            "warmup_seconds": warmup_seconds, "warmup_steps": steps_per_epoch(w, min(batch, w))}


def measure_eval(model, dd: DeviceData, device: torch.device, *, batch_size: int, mode: str = "inference") -> float:
    """Seconds to evaluate the 10k test images. ``mode``: inference (utils.train.evaluate, inference_mode),
    no_grad, or grad (autograd left on, as a loop without either would run)."""
    sync(device)
    t = time.perf_counter()
    if mode == "inference":
        evaluate(model, dd.test_x, dd.test_y, batch_size)
    else:
        model.eval()
        ctx = torch.no_grad() if mode == "no_grad" else torch.enable_grad()
        with ctx:
            correct = torch.zeros((), dtype=torch.long, device=device)
            for i in range(0, dd.test_x.shape[0], batch_size):
                logits = model(dd.test_x[i : i + batch_size])
                F.cross_entropy(logits, dd.test_y[i : i + batch_size], reduction="sum")
                correct += (logits.argmax(1) == dd.test_y[i : i + batch_size]).sum()
            correct.item()
    sync(device)
    return time.perf_counter() - t


# --------------------------------------------------------------------------------------------- levers

def measure_levers(dd: DeviceData, cfg, device: torch.device, which, *, warmup: int, repeats: int,
                   log=print) -> list[dict]:
    """Our trainer's throughput with one thing changed at a time, as a ratio to the recipe.

    The settings take turns, round after round (``repeats`` rounds), and each reports the median
    of its rounds: on a shared machine a burst of load then hits every setting alike, and the
    ratio to the recipe measured in the same rounds is what to read, not the absolute figure."""
    settings = [dict(lever="recipe", label=f"batch {cfg.batch_size}, peak lr {cfg.lr:g}, channels_last (recipe)",
                     fields={}, cfg=cfg, dd=dd, kwargs={})]
    if "batch" in which:
        for bs in sorted({64, 128, 256, 512} - {cfg.batch_size}):
            lr = cfg.lr * bs / cfg.batch_size  # linear scaling keeps the one-cycle schedule's shape
            settings.append(dict(lever="batch", label=f"batch {bs}, peak lr {lr:g}", fields={"batch_size": bs, "lr": lr},
                                 cfg=dataclasses.replace(cfg, batch_size=bs, lr=lr), dd=dd, kwargs={}))
    if "channels_last" in which:
        settings.append(dict(lever="channels_last", label="channels_last off (model and data NCHW)",
                             fields={"channels_last": False}, cfg=cfg,
                             dd=dataclasses.replace(dd, train_x=dd.train_x.contiguous()),
                             kwargs={"channels_last": False}))
    before_threads = torch.get_num_threads()
    if "threads" in which:
        other = 1 if before_threads > 1 else min(2, os.cpu_count() or 1)
        if other != before_threads:
            settings.append(dict(lever="threads", label=f"torch.set_num_threads({other}) (default here {before_threads})",
                                 fields={"threads": other}, cfg=cfg, dd=dd, kwargs={}, threads=other))
    if "step_sync" in which:
        settings.append(dict(lever="step_sync", label="host sync every step (param.item())", fields={"step_sync": True},
                             cfg=cfg, dd=dd, kwargs={"step_sync": True}))
    if "compile" in which:
        settings.append(dict(lever="compile", label="torch.compile(model)", fields={"compile": True}, cfg=cfg, dd=dd,
                             kwargs={"compile": True}))

    runs: list[list[dict]] = [[] for _ in settings]
    errors: dict[int, str] = {}
    before_dir = os.environ.get("TORCHINDUCTOR_CACHE_DIR")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-inductor-") as cache:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # the first compile is a cold one, as on a new machine
            for r in range(repeats):
                for i, st in enumerate(settings):
                    if i in errors:
                        continue
                    torch.set_num_threads(st.get("threads") or before_threads)
                    try:
                        runs[i].append(measure_ours(st["dd"], st["cfg"], device, warmup=warmup, epoch=r + 1,
                                                    **st["kwargs"]))
                    except Exception as exc:  # torch.compile without a C++ compiler, unsupported platform, ...
                        if st["lever"] != "compile":
                            raise
                        errors[i] = f"{type(exc).__name__}: {exc}"[:300]
                    finally:
                        torch.set_num_threads(before_threads)
    finally:
        if before_dir is None:
            os.environ.pop("TORCHINDUCTOR_CACHE_DIR", None)
        else:
            os.environ["TORCHINDUCTOR_CACHE_DIR"] = before_dir

    base_ips = median([x["images_per_second"] for x in runs[0]])
    base_warmup = median([x["warmup_seconds"] for x in runs[0]])
    rows: list[dict] = []
    for i, st in enumerate(settings):
        if i in errors:
            rows.append({"lever": st["lever"], "setting": st["label"], "error": errors[i]})
            log(f"  {st['lever']:<14} {st['label']:<48} failed: {errors[i][:100]}")
            continue
        ips = median([x["images_per_second"] for x in runs[i]])
        row = {"lever": st["lever"], "setting": st["label"], "images_per_second": ips,
               "runs": [x["images_per_second"] for x in runs[i]], "epoch_seconds_60k": TRAIN_IMAGES / ips,
               "ratio_to_recipe": ips / base_ips, "warmup_seconds": [x["warmup_seconds"] for x in runs[i]],
               **st["fields"]}
        log(f"  {st['lever']:<14} {st['label']:<48} {ips:9,.0f} img/s   60k epoch {TRAIN_IMAGES / ips:6.1f} s"
            f"   x{ips / base_ips:.2f} of the recipe")
        if st["lever"] == "compile":
            # compile seconds: a compiled warm-up minus an eager one of the same steps; the first
            # compiles cold, later ones (fresh models, same process) hit the caches
            cold = max(0.0, row["warmup_seconds"][0] - base_warmup)
            cached = max(0.0, median(row["warmup_seconds"][1:]) - base_warmup) if repeats > 1 else None
            full = cfg.epochs * TRAIN_IMAGES
            saved = full / base_ips - full / ips
            row.update(compile_seconds=cold, compile_seconds_cached=cached, full_run_seconds_saved=saved,
                       pays_back=saved > cold)
            log(f"  {'':<14} compile {cold:.1f} s cold" + ("" if cached is None else f" ({cached:.1f} s cached)")
                + f"; a {cfg.epochs}-epoch run would save {saved:+.1f} s "
                f"-> {'pays back' if saved > cold else 'does not pay back'}")
        rows.append(row)

    if "eval" in which:
        torch.manual_seed(cfg.seed)
        model = build_model(cfg.model).to(device).to(memory_format=torch.channels_last)
        modes = [("inference", cfg.eval_batch_size), ("no_grad", cfg.eval_batch_size), ("grad", cfg.eval_batch_size),
                 ("inference", 10_000), ("inference", 1000), ("inference", 256), ("inference", 64)]
        for _, bs in modes:
            evaluate(model, dd.test_x[:bs], dd.test_y[:bs], bs)  # untimed: kernels for this batch shape
        seconds: list[list[float]] = [[] for _ in modes]
        for _ in range(repeats):
            for i, (mode, bs) in enumerate(modes):
                seconds[i].append(measure_eval(model, dd, device, batch_size=bs, mode=mode))
        ours_secs = median(seconds[0])
        for (mode, bs), secs in zip(modes, map(median, seconds)):
            ctx = {"inference": "torch.inference_mode", "no_grad": "torch.no_grad", "grad": "autograd on"}[mode]
            label = f"{ctx}, batch {bs}" + (" (ours)" if (mode, bs) == modes[0] else "")
            rows.append({"lever": "eval", "setting": label, "mode": mode, "eval_batch_size": bs,
                         "eval_seconds_10k": secs, "images_per_second": TEST_IMAGES / secs,
                         "ratio_to_recipe": ours_secs / secs})
            log(f"  {'eval':<14} {label:<48} {TEST_IMAGES / secs:9,.0f} img/s   10k test  {secs:6.2f} s"
                f"   x{ours_secs / secs:.2f} of ours")
    return rows


# --------------------------------------------------------------------------------------------- full run

def full_run(device: str, out: Path, extra_args: list[str] | None = None, log=print) -> dict:
    """Train the default recipe in a child process; time it from outside; read its metrics and peak memory."""
    cmd = [sys.executable, "-m", "utils.train", "--model", "final", "--device", device, "--out", str(out),
           "--no-progress", *(extra_args or [])]
    metrics_path = out / "metrics.json"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    reached: dict[int, float] = {}  # epoch -> wall seconds since launch when its metrics were on disk
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:  # train() writes metrics.json, then prints the epoch line
        now = time.perf_counter() - t0
        log("  | " + line.rstrip("\n"))
        try:
            history = json.loads(metrics_path.read_text())["history"]
        except (OSError, ValueError, KeyError):
            continue
        for row in history:
            reached.setdefault(row["epoch"], now)
    proc.wait()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"error: the training child failed with exit status {proc.returncode}: {shlex.join(cmd)}")
    metrics = json.loads(metrics_path.read_text())
    history = metrics["history"]
    first = next((h for h in history if h["test_accuracy"] >= GOAL), None)
    train_to_goal = None
    if first is not None:
        train_to_goal = sum(h["seconds"] for h in history if h["epoch"] <= first["epoch"])
    return {
        "command": shlex.join(["python", *cmd[1:]]),
        "extra_train_args": shlex.join(extra_args or []),
        "run_dir": str(out),
        "epochs": metrics["epochs"],
        "final_test_accuracy": metrics["final_test_accuracy"],
        "goal": GOAL,
        "goal_met": metrics["final_test_accuracy"] >= GOAL,
        "first_epoch_at_goal": None if first is None else first["epoch"],
        "seconds_to_goal": None if first is None else reached.get(first["epoch"]),
        "train_seconds_to_goal": train_to_goal,
        "mean_epoch_seconds": statistics.mean(h["seconds"] for h in history),
        "epoch_seconds": [h["seconds"] for h in history],
        "test_accuracy_per_epoch": [h["test_accuracy"] for h in history],
        "wall_seconds": wall,
        "trainer_wall_seconds": metrics["wall_seconds"],
        "peak_memory_mb": metrics.get("peak_memory_mb"),
        "peak_memory_method": "utils.train.peak_memory_mb in the training process (VmHWM on Linux)",
        "config": metrics["config"],
    }


# --------------------------------------------------------------------------------------------- report

def machine_info() -> dict:
    info = {"platform": platform.platform(), "processor": platform.processor() or platform.machine(),
            "machine": platform.machine(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads()}
    try:
        info["cpus_available"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    try:
        with open("/proc/cpuinfo") as fh:
            names = [ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")]
        if names:
            info["cpu_model"] = names[0]
    except OSError:
        pass
    try:
        info["load_average_at_start"] = list(os.getloadavg())
    except (AttributeError, OSError):
        pass
    return info


def _fmt(value, spec: str, suffix: str = "") -> str:
    return "–" if value is None else format(value, spec) + suffix


def _host(result: dict) -> str:
    """The device column: kernels and speed differ between CPU models, so each row names its own."""
    model = result.get("machine", {}).get("cpu_model")
    return f"{result['device']}, {model}" if model and result.get("device_type") == "cpu" else result["device"]


def speed_markdown(results: list[dict]) -> str:
    """The README's speed block: one row per stored result (oldest first), then the newest lever table."""
    results = sorted(results, key=lambda r: (r.get("date", ""), r.get("device", "")))
    lines = ["| date | device | usual (img/s) | ours (img/s) | ours / usual | one epoch, ours (s) "
             "| time to 99.40% (s) | final test acc. | full run (s) | peak memory (MB) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in results:
        full = r.get("full") or {}
        acc = full.get("final_test_accuracy")
        lines.append(
            f"| {r.get('date', '')[:16].replace('T', ' ')} | {_host(r)} | {r['usual_images_per_second']:,.0f} "
            f"| {r['ours_images_per_second']:,.0f} | **{r['ratio']:.1f}×** | {r['epoch_seconds_60k_with_eval']:.1f} "
            f"| {_fmt(full.get('seconds_to_goal'), '.0f')} "
            f"| {_fmt(acc, '.2f', '%')}{'' if acc is None else ' (epoch %d)' % full['epochs']}"
            f"{' (not the default recipe: ' + full['extra_train_args'] + ')' if full.get('extra_train_args') else ''} "
            f"| {_fmt(full.get('wall_seconds'), '.0f')} | {_fmt(full.get('peak_memory_mb'), ',.0f')} |")
    last = results[-1]
    u = last["usual"]
    lines += [
        "",
        f"*Usual*: `torchvision.datasets.MNIST` + the seed recipe's per-image transforms, `DataLoader(batch_size="
        f"{u['batch_size']}, shuffle=True, num_workers={u['num_workers']})` (PyTorch's default), Adam lr "
        f"{u['lr']:g}, the textbook loop. *Ours*: `utils.train` (tensors on the device, one batched "
        f"`grid_sample` per mini-batch, batch {last['ours']['batch_size']}). Same model, device and threads; "
        f"{last['images']:,} training images timed in each after a warm-up, median of {last['repeats']} runs. "
        "One epoch = 60,000 training images + the 10,000 test images evaluated; time to 99.40% = wall seconds "
        "from launching `python -m utils.train` until the first epoch at or above 99.40% (the accuracy that "
        "counts is the final epoch's); peak memory = that process's peak resident memory (VmHWM).",
        "",
    ]
    if u.get("loader_only_images_per_second"):
        lines.append(f"The usual pipeline's DataLoader alone (no model) ran at "
                     f"{u['loader_only_images_per_second']:,.0f} img/s: {100 * u['loader_share_of_time']:.0f}% of its "
                     "time goes to loading and per-image transforms.")
    others = [v for v in last.get("usual_variants", []) if v["num_workers"] != u["num_workers"]]
    for v in others:
        times = last["ours_images_per_second"] / v["images_per_second"]
        lines.append(f"With `num_workers={v['num_workers']}` the usual pipeline ran at "
                     f"{v['images_per_second']:,.0f} img/s (ours is {times:.1f}× that).")
    m = last.get("machine", {})
    lines.append("")
    lines.append(f"Machine{' of the newest row' if len(results) > 1 else ''}: "
                 f"{m.get('cpu_model', m.get('processor', '?'))}, {m.get('cpu_count')} CPUs, "
                 f"{m.get('torch_threads')} torch threads; torch {last['versions'].get('torch')}, "
                 f"torchvision {last['versions'].get('torchvision')}. "
                 + ("Command" if len(results) == 1 else "Commands, row by row") + ": "
                 + ", ".join(f"`{r['command']}`" for r in results) + ".")
    with_levers = [r for r in results if r.get("levers")]
    if with_levers:
        lv = with_levers[-1]
        lines += ["", f"Levers, measured on our trainer ({lv['images']:,} images each, {_host(lv)}, "
                      f"{lv.get('date', '')[:10]}). The settings take turns for {lv['repeats']} rounds and each row "
                      "is its median; read the last column, the speed relative to ours (the recipe's training, or "
                      "our evaluation) measured in the same rounds:", "",
                  "| lever | setting | img/s | one epoch / 10k test (s) | speed vs ours |", "|---|---|---:|---:|---:|"]
        for row in lv["levers"]:
            if "error" in row:
                lines.append(f"| {row['lever']} | {row['setting']} | failed | – | – |")
                continue
            secs = row.get("eval_seconds_10k", row.get("epoch_seconds_60k"))
            extra = ""
            if row["lever"] == "compile":
                extra = (f" (compile {row['compile_seconds']:.0f} s cold; a {lv['ours'].get('epochs', 15)}-epoch run "
                         f"saves {row['full_run_seconds_saved']:+.0f} s: "
                         f"{'pays back' if row['pays_back'] else 'does not pay back'})")
            lines.append(f"| {row['lever']} | {row['setting']}{extra} | {row['images_per_second']:,.0f} | {secs:.2f} "
                         f"| {row['ratio_to_recipe']:.2f}× |")
    return "\n".join(lines)


def summary_lines(res: dict) -> list[str]:
    u, o = res["usual"], res["ours"]
    out = [f"usual: {u['images_per_second']:,.0f} img/s  (DataLoader batch {u['batch_size']}, num_workers="
           f"{u['num_workers']}, runs {', '.join(f'{x:,.0f}' for x in u['runs'])})"]
    if u.get("loader_only_images_per_second"):
        out.append(f"usual, its DataLoader alone (no model): {u['loader_only_images_per_second']:,.0f} img/s, "
                   f"{100 * u['loader_share_of_time']:.0f}% of the usual pipeline's time"
                   + ("" if not u.get("model_step_images_per_second") else
                      f"; the rest, its model step: {u['model_step_images_per_second']:,.0f} img/s"))
    for v in res["usual_variants"]:
        if v["num_workers"] != u["num_workers"]:
            out.append(f"usual, num_workers={v['num_workers']}: {v['images_per_second']:,.0f} img/s  "
                       f"(runs {', '.join(f'{x:,.0f}' for x in v['runs'])})")
    out.append(f"ours: {o['images_per_second']:,.0f} img/s  (utils.train, batch {o['batch_size']}, "
               f"runs {', '.join(f'{x:,.0f}' for x in o['runs'])})")
    out.append(f"ratio ours/usual: {res['ratio']:.2f}x" + (
        f"  (against the best usual variant: {res['ratio_vs_best_usual']:.2f}x)"
        if res["ratio_vs_best_usual"] != res["ratio"] else ""))
    out.append(f"ours, one 60,000-image epoch: {o['epoch_seconds_60k']:.1f} s training + "
               f"{o['eval_seconds_10k']:.1f} s test evaluation = {o['epoch_seconds_60k_with_eval']:.1f} s "
               f"(set-up, once per run: {o['setup_seconds']:.1f} s)")
    return out


# --------------------------------------------------------------------------------------------- main

def build_parser():
    p = Parser(prog="python -m tools.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--images", type=positive_int, default=6400,
                   help="training images timed per measurement (default: 6400)")
    p.add_argument("--device", choices=DEVICES, default="auto", help="default: auto")
    p.add_argument("--workers", type=int, nargs="+", default=[0, 2], metavar="N",
                   help="DataLoader num_workers to measure for the usual pipeline; the first is the one the "
                        "ratio uses (default: 0 2; 0 is PyTorch's default)")
    p.add_argument("--warmup", type=positive_int, default=5,
                   help="warm-up batches before each clock starts (default: 5)")
    p.add_argument("--repeats", type=positive_int, default=3,
                   help="measurements per pipeline, alternating; the median counts (default: 3)")
    p.add_argument("--threads", type=positive_int, default=None, help="torch.set_num_threads (default: torch's own)")
    p.add_argument("--levers", nargs="*", choices=LEVERS, default=None, metavar="LEVER",
                   help=f"also measure speed levers on our trainer (all, or some of: {', '.join(LEVERS)})")
    p.add_argument("--full", action="store_true",
                   help="also train the default recipe once: time to 99.40%%, final accuracy, peak memory")
    p.add_argument("--full-out", default=None, help="run folder of --full (default: runs/bench/full-<device>-<time>)")
    # extra utils.train arguments for the --full child, to check the plumbing quickly (tests); hidden
    p.add_argument("--train-args", default="", help=argparse.SUPPRESS)
    p.add_argument("--json", default=None,
                   help="result file (default: runs/bench/bench-<device>.json, -full.json with --full)")
    p.add_argument("--record", action="store_true",
                   help="also copy the result to results/bench/<device>-<date>-<time>[-full].json, for the README")
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    raw_argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(raw_argv)
    if any(w < 0 for w in args.workers):
        parser.error("--workers: counts must be >= 0")
    try:
        device = resolve_device(args.device)
    except ValueError as exc:
        parser.error(str(exc))
    if args.threads:
        torch.set_num_threads(args.threads)
    stamp = datetime.datetime.now()
    json_path = Path(args.json) if args.json else (
        REPO_ROOT / "runs" / "bench" / f"bench-{device.type}{'-full' if args.full else ''}.json")
    workers = list(dict.fromkeys(args.workers))

    try:
        data.ensure_mnist(data.DEFAULT_ROOT)
    except data.MNISTDataError as exc:
        parser.error(str(exc).replace("\n", " "))
    cfg = recipe("final", device=device.type, train_subset=args.images, augment=True)
    params = count_parameters(build_model("final"))
    print(f"speed benchmark: {args.images:,} MNIST training images per measurement, model final "
          f"({params:,} parameters), {device_name(device)}, {args.repeats} runs each (median), "
          f"{args.warmup} warm-up batches")

    t = time.perf_counter()
    dataset = usual_dataset()
    usual_setup = time.perf_counter() - t
    t = time.perf_counter()
    dd = load_device_data(cfg, device)
    sync(device)
    ours_setup = time.perf_counter() - t

    usual_runs = {w: [] for w in workers}
    ours_runs = []
    for r in range(args.repeats):  # alternate, so that a burst of load elsewhere hits both
        for w in workers:
            usual_runs[w].append(measure_usual(dataset, args.images, device, workers=w, warmup=args.warmup, seed=r + 1))
        ours_runs.append(measure_ours(dd, cfg, device, warmup=args.warmup, epoch=r + 1))
        print(f"  run {r + 1}/{args.repeats}: " + ", ".join(
            f"usual (workers={w}) {usual_runs[w][-1]['images_per_second']:,.0f}" for w in workers)
            + f", ours {ours_runs[-1]['images_per_second']:,.0f} img/s", flush=True)

    torch.manual_seed(cfg.seed)
    eval_model = build_model(cfg.model).to(device).to(memory_format=torch.channels_last)
    evaluate(eval_model, dd.test_x, dd.test_y, cfg.eval_batch_size)  # untimed warm-up at the same shapes
    eval_s = median([measure_eval(eval_model, dd, device, batch_size=cfg.eval_batch_size) for _ in range(args.repeats)])
    # where the usual time goes: its DataLoader alone, without the model
    loader_only = median([measure_loader_only(dataset, args.images, workers=workers[0], warmup=args.warmup,
                                              seed=r + 1)["images_per_second"] for r in range(args.repeats)])

    variants = []
    for w in workers:
        ips = [x["images_per_second"] for x in usual_runs[w]]
        variants.append({
            "pipeline": "torchvision MNIST + per-image transforms + DataLoader + Adam, textbook loop",
            "transforms": "ToTensor, RandomRotation(5), RandomAffine(0, translate=(0.05, 0.05), scale=(0.95, 1.05)), "
                          "GaussianBlur(3, sigma=(0.01, 0.02)), Normalize((0.1307,), (0.3081,))",
            "batch_size": USUAL_BATCH, "shuffle": True, "num_workers": w, "optimizer": "Adam", "lr": USUAL_LR,
            "images_per_second": median(ips), "runs": ips, "images_timed": usual_runs[w][0]["images"],
            "setup_seconds": usual_setup,
        })
    usual = variants[0]
    usual["loader_only_images_per_second"] = loader_only
    usual["loader_share_of_time"] = usual["images_per_second"] / loader_only
    # the rest of the usual time is its model step: what it would run at if loading were free
    rest = 1 / usual["images_per_second"] - 1 / loader_only
    usual["model_step_images_per_second"] = 1 / rest if rest > 0 else None
    ours_ips = median([x["images_per_second"] for x in ours_runs])
    ours = {
        "pipeline": "utils.train: load_device_data + train_epoch (tensors on the device, batched augmentation)",
        "epochs": cfg.epochs, "batch_size": cfg.batch_size, "optimizer": cfg.optimizer, "lr": cfg.lr,
        "schedule": cfg.schedule, "augment": cfg.augment, "channels_last": True,
        "images_per_second": ours_ips, "runs": [x["images_per_second"] for x in ours_runs],
        "images_timed": ours_runs[0]["images"], "setup_seconds": ours_setup,
        "eval_batch_size": cfg.eval_batch_size, "eval_seconds_10k": eval_s,
        "epoch_seconds_60k": TRAIN_IMAGES / ours_ips,
        "epoch_seconds_60k_with_eval": TRAIN_IMAGES / ours_ips + eval_s,
    }
    best_usual = max(v["images_per_second"] for v in variants)
    res = {
        "schema": SCHEMA,
        "command": shlex.join(["python", "-m", "tools.bench", *raw_argv]),
        "argv": [sys.executable, "-m", "tools.bench", *raw_argv],
        "date": stamp.isoformat(timespec="seconds"),
        "device": device_name(device),
        "device_type": device.type,
        "machine": machine_info(),
        "versions": versions(),
        "model": "final",
        "params": params,
        "images": args.images,
        "warmup_batches": args.warmup,
        "repeats": args.repeats,
        "usual": usual,
        "usual_variants": variants,
        "ours": ours,
        "usual_images_per_second": usual["images_per_second"],
        "ours_images_per_second": ours_ips,
        "ratio": ours_ips / usual["images_per_second"],
        "ratio_vs_best_usual": ours_ips / best_usual,
        "epoch_seconds_60k": ours["epoch_seconds_60k"],
        "epoch_seconds_60k_with_eval": ours["epoch_seconds_60k_with_eval"],
        "levers": None,
        "full": None,
    }
    print()
    for line in summary_lines(res):
        print(line)
    atomic_write_json(json_path, res)  # the throughput figures are safe before the longer parts start

    if args.levers is not None:
        which = args.levers or list(LEVERS)
        print(f"\nlevers (our trainer, {args.images:,} images, median of {args.repeats}):")
        res["levers"] = measure_levers(dd, cfg, device, which, warmup=args.warmup, repeats=args.repeats)
        atomic_write_json(json_path, res)

    if args.full:
        del dd, dataset
        out = Path(args.full_out) if args.full_out else (
            REPO_ROOT / "runs" / "bench" / f"full-{device.type}-{stamp.strftime('%Y%m%d-%H%M%S')}")
        print(f"\nfull training of the default recipe, in a child process ({out}):")
        full = full_run(device.type, out, shlex.split(args.train_args))
        res["full"] = full
        print(f"full: final test accuracy {full['final_test_accuracy']:.2f}% at epoch {full['epochs']} "
              f"({'meets' if full['goal_met'] else 'misses'} the {GOAL:.2f}% goal)")
        if full["first_epoch_at_goal"] is None:
            print(f"full: test accuracy never reached {GOAL:.2f}%")
        else:
            print(f"full: {GOAL:.2f}% first reached at epoch {full['first_epoch_at_goal']}, "
                  f"{full['seconds_to_goal']:.1f} s after launch")
        print(f"full: {full['epochs']} epochs, mean {full['mean_epoch_seconds']:.1f} s per epoch, "
              f"total wall {full['wall_seconds']:.1f} s, peak memory {_fmt(full['peak_memory_mb'], ',.0f', ' MB')}")
        atomic_write_json(json_path, res)

    print(f"\nwritten {json_path}")
    if args.record:
        # date and time: two hosts measured on the same day keep a row each
        name = f"{device.type}-{stamp.strftime('%Y%m%d-%H%M')}{'-full' if args.full else ''}.json"
        RESULTS_DIR.mkdir(parents=True, exist_ok=True)
        atomic_write_json(RESULTS_DIR / name, res)
        print(f"recorded {RESULTS_DIR / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
