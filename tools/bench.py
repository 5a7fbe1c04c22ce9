"""Speed: the usual DataLoader pipeline against our trainer, side by side in one process.

    python -m tools.bench                   # both pipelines' throughput and the ratio
    python -m tools.bench --levers          # + what each speed lever is worth on our trainer
    python -m tools.bench --full --record   # + a full default training; keep the result in results/bench/

The Speed section of docs/reproducibility.md says what each pipeline does; ``speed_markdown`` renders its tables.
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
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from utils import GOAL, REPO_ROOT, data, train
from utils.config import DEVICES, Config, cpu_name, device_name, recipe, resolve_device, versions
from utils.fsutil import atomic_write_json
from utils.models import build_model
from utils.settings import Parser, non_negative_int, output_file, positive_int
from utils.summary import count_parameters

SCHEMA = 2
RESULTS_DIR, RUNS = REPO_ROOT / "results" / "bench", REPO_ROOT / "runs" / "bench"
USUAL_BATCH, USUAL_LR, TRAIN_IMAGES = 64, 0.01, 60_000
WARMUP = 5  # untimed batches before each clock starts


@dataclass(frozen=True)
class Lever:
    """One change to our trainer, measured in the same rounds as the recipe."""

    name: str
    setting: str
    batch_size: int | None = None  # the peak LR scales with it (linear scaling)
    channels_last: bool = True
    threads: int | None = None
    compile: bool = False


LEVERS = [
    Lever("recipe", "the final recipe"),
    Lever("batch", "batch 64", batch_size=64),
    Lever("batch", "batch 256", batch_size=256),
    Lever("batch", "batch 512", batch_size=512),
    Lever("channels_last", "off: model and data NCHW", channels_last=False),
    Lever("threads", "torch.set_num_threads(1)", threads=1),
    Lever("compile", "torch.compile(model)", compile=True),
]
LEVER_NAMES = tuple(dict.fromkeys(lv.name for lv in LEVERS if lv.name != "recipe"))


def sync(device: torch.device) -> None:
    """Wait for queued device work, so that a clock read means what it says (a no-op on CPU)."""
    if device.type in ("cuda", "mps"):
        getattr(torch, device.type).synchronize()


def usual_dataset():
    from torchvision import datasets, transforms

    cfg = Config  # the recipe's ranges, drawn the way a typical MNIST notebook draws them (and the original's blur)
    per_image = transforms.Compose([
        transforms.ToTensor(), transforms.RandomRotation(cfg.degrees),
        transforms.RandomAffine(0, translate=(cfg.translate, cfg.translate), scale=(1 - cfg.scale, 1 + cfg.scale)),
        transforms.GaussianBlur(3, sigma=(0.01, 0.02)), transforms.Normalize((data.MEAN,), (data.STD,))])
    return datasets.MNIST(str(data.DEFAULT_ROOT), train=True, transform=per_image)


def measure_usual(dataset, images, device, *, workers=0, seed=1) -> float:
    """Images per second of the textbook loop, loading and per-image transforms included."""
    from torch.utils.data import DataLoader

    torch.manual_seed(seed)
    model = build_model("final").to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=USUAL_LR)
    loader = iter(DataLoader(dataset, batch_size=USUAL_BATCH, shuffle=True, num_workers=workers,
                             generator=torch.Generator().manual_seed(seed)))
    seen, t0 = 0, time.perf_counter()
    for i in range(WARMUP + math.ceil(images / USUAL_BATCH)):
        if i == WARMUP:
            sync(device)
            seen, t0 = 0, time.perf_counter()
        x, y = next(loader)
        loss = F.cross_entropy(model(x.to(device)), y.to(device))
        opt.zero_grad()
        loss.backward()
        opt.step()
        loss.item()
        seen += len(y)
    sync(device)
    del loader  # shuts the worker processes down
    return seen / (time.perf_counter() - t0)


def measure_ours(dd, cfg, device, lever: Lever = LEVERS[0], *, epoch=1) -> dict:
    """Images per second of ``train_epoch`` with ``lever`` applied, after a warm-up."""
    if lever.batch_size:
        cfg = dataclasses.replace(cfg, batch_size=lever.batch_size, lr=cfg.lr * lever.batch_size / cfg.batch_size)
    fmt = torch.channels_last if lever.channels_last else torch.contiguous_format
    dd = dataclasses.replace(dd, train_x=dd.train_x.contiguous(memory_format=fmt))
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, cfg.dropout).to(device, memory_format=fmt)
    batch = min(cfg.batch_size, len(dd.train_y))
    n_steps = train.steps_per_epoch(len(dd.train_y), batch)
    opt, sched = train.make_optimizer(dataclasses.replace(cfg, epochs=max(cfg.epochs, 2)), model, n_steps)
    run = torch.compile(model) if lever.compile else model
    w = min(WARMUP * batch, len(dd.train_y))
    t = time.perf_counter()
    train.train_epoch(run, opt, sched, dataclasses.replace(dd, train_x=dd.train_x[:w], train_y=dd.train_y[:w]), cfg, 0)
    sync(device)
    warmup_seconds, t = time.perf_counter() - t, time.perf_counter()
    train.train_epoch(run, opt, sched, dd, cfg, epoch)
    sync(device)
    return {"images_per_second": n_steps * batch / (time.perf_counter() - t), "warmup_seconds": warmup_seconds}


def measure_levers(dd, cfg, device, names, repeats) -> list[dict]:
    """Each lever (and the recipe) in turn, round after round: a burst of load elsewhere hits them all alike."""
    levers = [lv for lv in LEVERS if lv.name == "recipe" or lv.name in names]
    runs, errors = {lv: [] for lv in levers}, {}
    threads = torch.get_num_threads()
    for r in range(repeats):
        for lv in (lv for lv in levers if lv not in errors):
            torch.set_num_threads(lv.threads or threads)
            try:
                runs[lv].append(measure_ours(dd, cfg, device, lv, epoch=r + 1))
            except Exception as exc:  # torch.compile without a C++ compiler, ...
                if not lv.compile:
                    raise
                errors[lv] = f"{type(exc).__name__}: {exc}"[:300]
            finally:
                torch.set_num_threads(threads)
    base = runs[LEVERS[0]]
    rows = [{"lever": lv.name, **dataclasses.asdict(lv), "error": errors[lv]} for lv in errors]
    for lv, rs in ((lv, rs) for lv, rs in runs.items() if lv not in errors):
        ips = statistics.median(x["images_per_second"] for x in rs)
        ratio = ips / statistics.median(x["images_per_second"] for x in base)
        rows.append({"lever": lv.name, **dataclasses.asdict(lv), "images_per_second": ips,
                     "ratio_to_recipe": ratio, "warmup_seconds": [x["warmup_seconds"] for x in rs]})
        if lv.compile:  # a compiled warm-up minus an eager one: the first compile is a cold one
            rows[-1]["compile_seconds"] = max(0.0, rs[0]["warmup_seconds"] - base[0]["warmup_seconds"])
        print(f"  {lv.name:<14} {lv.setting:<28} {ips:9,.0f} img/s  x{ratio:.2f} of the recipe")
    return rows


def full_run(device: str, out: Path, extra_args: list[str]) -> dict:
    """Train the default recipe in a child process, as a user would, and time it from outside."""
    cmd = [sys.executable, "-m", "utils.train", "--device", device, "--out", str(out), "--no-progress", *extra_args]
    t0 = time.perf_counter()
    if subprocess.run(cmd, cwd=REPO_ROOT).returncode != 0:
        raise SystemExit(f"error: the training run failed: {shlex.join(cmd)}")
    wall = time.perf_counter() - t0
    m = json.loads((out / "metrics.json").read_text())
    first = next((h["epoch"] for h in m["history"] if h["test_accuracy"] >= GOAL), None)
    after = sum(h["seconds"] for h in m["history"][first:]) if first else None  # epochs after the first at GOAL
    return {"command": shlex.join(["python", *cmd[1:]]), "extra_train_args": shlex.join(extra_args),
            "epochs": m["epochs"], "final_test_accuracy": m["final_test_accuracy"], "goal": GOAL,
            "first_epoch_at_goal": first, "seconds_to_goal": None if first is None else wall - after,
            "wall_seconds": wall, "peak_memory_mb": m["peak_memory_mb"], "config": m["config"]}


TODAYS_PATH = ["--no-reuse-memory"]  # the trainer as it ran before the speed work (issue 19): same numbers, slower


def full_runs(device: str, out: Path, extra_args: list[str], rounds: int) -> tuple[dict, dict]:
    """The default path and today's path, each trained ``rounds`` times in child processes taking turns
    (the order swaps every round, so a burst of load elsewhere hits both); each one's median-wall run."""
    walls: dict[str, list[dict]] = {"default": [], "today": []}
    for r in range(rounds):
        for path in (("today", "default") if r % 2 == 0 else ("default", "today")):
            args = extra_args + (TODAYS_PATH if path == "today" else [])
            walls[path].append(full_run(device, out / f"{path}-{r + 1}", args))
    picked = {}
    for path, found in walls.items():
        found.sort(key=lambda f: f["wall_seconds"])
        picked[path] = {**found[(len(found) - 1) // 2], "all_wall_seconds": [f["wall_seconds"] for f in found]}
    return picked["default"], picked["today"]


def machine() -> dict:
    return {"platform": platform.platform(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "cpu_model": cpu_name()}


def main(argv: list[str] | None = None) -> int:
    p = Parser(prog="python -m tools.bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--device", choices=DEVICES, default="auto", help="default: auto")
    p.add_argument("--images", type=positive_int, default=6400, help="images timed per measurement (default: 6400)")
    p.add_argument("--repeats", type=positive_int, default=3, help="turns per pipeline; the median counts (default: 3)")
    p.add_argument("--workers", type=non_negative_int, nargs="+", default=[0, 2], metavar="N",
                   help="DataLoader num_workers of the usual pipeline; the first gives the ratio (default: 0 2)")
    p.add_argument("--levers", nargs="*", choices=LEVER_NAMES, metavar="LEVER",
                   help=f"also measure levers on our trainer (none named: all of {', '.join(LEVER_NAMES)})")
    p.add_argument("--full", action="store_true",
                   help="also train the default recipe, and today's path (the trainer before the speed work, "
                        "--no-reuse-memory) in turns: full-run walls, their ratio, time to 99.40%%")
    p.add_argument("--full-rounds", type=positive_int, default=1, metavar="N",
                   help="full runs of each path with --full; the median counts (default: 1)")
    p.add_argument("--full-out", help="run folder of --full (default: runs/bench/full-<device>-<time>)")
    p.add_argument("--train-args", default="", help=argparse.SUPPRESS)  # extra utils.train arguments, for the tests
    p.add_argument("--json", help="result file (default: runs/bench/bench-<device>.json)")
    p.add_argument("--record", action="store_true", help="write the result to results/bench/ instead, for the README")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = p.parse_args(argv)
    try:
        device = resolve_device(args.device)
        data.ensure_mnist(data.DEFAULT_ROOT)
    except (ValueError, data.MNISTDataError) as exc:
        p.error(str(exc).replace("\n", " "))
    stamp, workers = datetime.datetime.now(), list(dict.fromkeys(args.workers))
    name = f"{device.type}-{stamp:%Y%m%d-%H%M}{'-full' * args.full}.json"  # two hosts on one day: a file each
    path = RESULTS_DIR / name if args.record else Path(args.json or RUNS / f"bench-{device.type}.json")
    output_file(p, str(path) if args.record or args.json is None else args.json,  # before minutes of measuring
                "--record" if args.record else "--json")
    cfg = recipe("final", device=device.type, train_subset=args.images)
    print(f"{args.images:,} images per measurement, median of {args.repeats}, {device_name(device)}")
    dataset, dd = usual_dataset(), train.load_device_data(cfg, device)
    usual, ours = {w: [] for w in workers}, []
    for r in range(args.repeats):  # in turns, so that a burst of load elsewhere hits both pipelines
        for w in workers:
            usual[w].append(measure_usual(dataset, args.images, device, workers=w, seed=r + 1))
        ours.append(measure_ours(dd, cfg, device, epoch=r + 1)["images_per_second"])
    model = build_model("final").to(device, memory_format=torch.channels_last)
    for _ in range(2):  # the second pass is timed
        t = time.perf_counter()
        train.evaluate(model, dd.test_x, dd.test_y)
    eval_seconds = time.perf_counter() - t
    usual_ips, ours_ips = statistics.median(usual[workers[0]]), statistics.median(ours)
    res = {"schema": SCHEMA, "command": shlex.join(["python", "-m", "tools.bench", *argv]),
           "date": stamp.isoformat(timespec="seconds"), "device": device_name(device),
           "device_type": device.type, "machine": machine(), "versions": versions(),
           "params": count_parameters(build_model("final")), "images": args.images, "repeats": args.repeats,
           "usual": {"batch_size": USUAL_BATCH, "lr": USUAL_LR, "num_workers": workers[0],
                     "images_per_second": usual_ips},
           "usual_variants": [{"num_workers": w, "images_per_second": statistics.median(v)} for w, v in usual.items()],
           "ours": {"config": dataclasses.asdict(cfg), "images_per_second": ours_ips, "eval_seconds_10k": eval_seconds},
           "usual_images_per_second": usual_ips, "ours_images_per_second": ours_ips, "ratio": ours_ips / usual_ips,
           "epoch_seconds_60k_with_eval": TRAIN_IMAGES / ours_ips + eval_seconds, "levers": None, "full": None,
           "full_today": None, "full_ratio": None}
    print(f"usual: {usual_ips:,.0f} img/s (DataLoader, num_workers={workers[0]})\n"
          f"ours: {ours_ips:,.0f} img/s\nratio ours/usual: {res['ratio']:.2f}x")
    if args.levers is not None:
        res["levers"] = measure_levers(dd, cfg, device, args.levers or LEVER_NAMES, args.repeats)
    if args.full:
        out = Path(args.full_out or RUNS / f"full-{device.type}-{stamp:%Y%m%d-%H%M%S}")
        res["full"], res["full_today"] = full_runs(device.type, out, shlex.split(args.train_args), args.full_rounds)
        res["full_ratio"] = res["full_today"]["wall_seconds"] / res["full"]["wall_seconds"]
        print(f"full run: {res['full']['wall_seconds']:.1f} s, today's path {res['full_today']['wall_seconds']:.1f} s: "
              f"{res['full_ratio']:.2f}x")
    atomic_write_json(path, res)
    print(f"written {path}")
    return 0


def table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A Markdown table; the first two columns are text, the others numbers (aligned right)."""
    rule = ["---", "---"] + ["---:"] * (len(header) - 2)
    return ["| " + " | ".join(cells) + " |" for cells in [header, rule, *rows]]


def cell(value, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def lever_cell(row: dict | None) -> str:
    """Speed relative to the recipe in the same rounds (older files: eval rows relative to our evaluation)."""
    if row is None or "error" in row:
        return "–" if row is None else "failed"
    compile_s = row.get("compile_seconds")
    return f"{row['ratio_to_recipe']:.2f}×" + ("" if compile_s is None else f" (compile {compile_s:.0f} s)")


def host(r: dict) -> str:
    """Kernels and speed differ between CPU models, so each row names its own."""
    model = r["machine"].get("cpu_model")
    return f"{r['device']}, {model}" if model and r["device_type"] == "cpu" else r["device"]


# Lever labels written by older versions of this file -> the label the same setting has now, so that
# one setting is one row of the lever table across hosts and dates.
OLDER_LABELS = {
    "batch 128, peak lr 0.1, channels_last (recipe)": "the final recipe",
    "batch 64, peak lr 0.05": "batch 64",
    "batch 256, peak lr 0.2": "batch 256",
    "batch 512, peak lr 0.4": "batch 512",
    "channels_last off (model and data NCHW)": "off: model and data NCHW",
    "torch.set_num_threads(1) (default here 2)": "torch.set_num_threads(1)",
}


def lever_key(row: dict) -> tuple[str, str]:
    return row["lever"], OLDER_LABELS.get(row["setting"], row["setting"])


def speed_markdown(results: list[dict]) -> str:
    """The README's speed block: the results, how each was measured, the levers with one column per host."""
    results = sorted(results, key=lambda r: r["date"])
    speed, how = [], []
    for r in results:
        full, when = r["full"] or {}, r["date"][:16].replace("T", " ")
        acc = f"{full['final_test_accuracy']:.2f}% (epoch {full['epochs']})" if full else "–"
        if full.get("extra_train_args"):
            acc += f" (not the default recipe: {full['extra_train_args']})"
        speed.append([when, host(r), f"{r['usual_images_per_second']:,.0f}", f"{r['ours_images_per_second']:,.0f}",
                      f"**{r['ratio']:.1f}×**", f"{r['epoch_seconds_60k_with_eval']:.1f}",
                      cell(full.get("seconds_to_goal"), ".0f"), acc, cell(full.get("wall_seconds"), ".0f"),
                      cell((r.get("full_today") or {}).get("wall_seconds"), ".0f"),
                      "–" if r.get("full_ratio") is None else f"{r['full_ratio']:.2f}×",
                      cell(full.get("peak_memory_mb"), ",.0f")])
        workers = ", ".join(f"{v['num_workers']}: {v['images_per_second']:,.0f}" for v in r["usual_variants"])
        arguments = r["command"].split(maxsplit=3)[3:]  # after "python -m <module>", which has moved over time
        how.append([when, f"`{arguments[0]}`" if arguments else "–", f"{r['images']:,}", str(r["repeats"]), workers,
                    f"{r['machine']['cpu_count']} / {r['machine']['torch_threads']}", r["versions"]["torch"]])
    lines = table(["date", "device", "usual (img/s)", "ours (img/s)", "ours / usual", "one epoch, ours (s)",
                   "time to 99.40% (s)", "final test acc.", "full run (s)", "full run, today's path (s)",
                   "today's path / full run", "peak memory (MB)"], speed)
    lines += ["", *table(["date", "arguments", "images timed", "runs (median)", "usual by num_workers (img/s)",
                          "CPUs / threads", "torch"], how)]
    hosts = [r for r in results if r["levers"]]
    settings = list(dict.fromkeys(lever_key(row) for r in reversed(hosts) for row in r["levers"]))
    if settings:
        by_host = [{lever_key(row): row for row in r["levers"]} for r in hosts]
        # date and time, like the first column above: one host can hold two records on one day
        lines += ["", *table(["lever", "setting", *(f"{r['date'][:16].replace('T', ' ')}, {host(r)}" for r in hosts)],
                             [[*key, *(lever_cell(rows.get(key)) for rows in by_host)] for key in settings])]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
