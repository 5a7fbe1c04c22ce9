"""The records office: what a run leaves on disk and what ``--resume`` reads back, behind one door.

    run = open_run(cfg, out, resume=..., overwrite=...)  # every check; a resumed checkpoint is read once
    run.load_state(model, opt, sched)                     # a resumed run's weights, momentum and schedule
    with run.claim(log):                                   # the folder, locked until the run ends
        run.save(row, model, opt, sched)                   # after every epoch: checkpoint.pt, then metrics.json

The checkpoint is the one commit point: written first, atomically, with its own copy of the metrics, then
metrics.json from it (Ctrl-C waits for both; a kill -9 between the two is repaired on resume; a kill inside a write
leaves a temporary file the next run there deletes). One process writes a run folder, holding its lock file for the
whole run (the kernel releases it when the process dies; no lock without ``fcntl``, i.e. on Windows). A checkpoint
is a file people share: read with ``torch.load(weights_only=True, mmap=True)``, no code in it runs and no tensor is
read before it is used; anything training could not use is refused in one line that names the file.
"""
from __future__ import annotations

import contextlib
import copy
import dataclasses
import datetime
import hashlib
import json
import math
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path

import torch

from . import GOAL, REPO_ROOT, config, fsutil, results, shown_path
from .config import RESUME_MAY_CHANGE, Config, resolve_device, saved_config
from .fsutil import NoSpaceError, atomic_write, atomic_write_json, ensure_writable_dir, temporaries
from .models import MODELS, build_model
from .settings import RunError, interrupts_held, number, resumed
from .summary import count_parameters

CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
RUN_LOCK = ".lock"  # held by the one process writing the folder; removed when it ends


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM, in the command lines) during a run; ``str()`` says what was kept and how to go on: with
    ``--resume``, or (``again``) by the same call, as a notebook's training cell run again."""

    def __init__(self, folder: Path, epochs_saved: int, again: bool = False):
        self.folder, self.epochs_saved, self.again = folder, epochs_saved, again
        kept = "epoch 1" if epochs_saved == 1 else f"epochs 1-{epochs_saved}"
        how = "run the same cell (or call) again to continue" if again else f"continue with --resume {folder}"
        super().__init__(f"interrupted at epoch 1, before any epoch was saved in {folder}; start the run again"
                         if epochs_saved == 0 else f"interrupted at epoch {epochs_saved + 1}; {folder} keeps "
                         f"{kept}; {how}")

    def __reduce__(self):  # a worker process of a sweep sends it back pickled
        return type(self), (self.folder, self.epochs_saved, self.again)

    def _render_traceback_(self) -> list[str]:  # in a notebook, the one line instead of a traceback
        return [f"{type(self).__name__}: {self}"]


# --------------------------------------------------------------------------------------------------
# The door, and the run it lets through
# --------------------------------------------------------------------------------------------------

def open_run(cfg: Config | dict | None, out: str | Path | None, *, resume: str | Path | None = None,
             overwrite: bool = False) -> Run:
    """A run about to start, after every check that can refuse it, before anything is written. New: ``cfg``
    (default: the final recipe) into ``out`` (default: runs/<model>-seed<seed>-<time>), which holds no run
    (``overwrite``: or one of the same step, replaced when this one saves an epoch). Resumed: the run in
    ``resume``, read once; ``cfg`` (None, a Config or a dict of settings) may change only RESUME_MAY_CHANGE."""
    saved = None
    if resume is not None:
        if not str(resume).strip() or not Path(resume).is_dir():
            raise RunError(f"--resume {resume or repr(resume)}: no such run folder")
        if out is not None and Path(out).resolve() != Path(resume).resolve():
            raise RunError(f"--resume continues {resume} in place; drop --out {out}")
        out = Path(resume)
        check_not_in_use(out)
        saved = read_checkpoint(out)
        cfg = resumed(saved["config"], cfg, RESUME_MAY_CHANGE, f"--resume {out}")
    else:
        cfg = cfg if cfg is not None else Config()
        if out is not None and not str(out).strip():
            raise RunError("--out '' names no folder; give a run folder, or leave --out out for the default "
                           "runs/<model>-seed<seed>-<time>")
        if cfg.batch_size > cfg.training_images:
            raise RunError(f"batch size {cfg.batch_size} (--batch-size) is larger than the {cfg.training_images:,} "
                           f"training images; use --batch-size {cfg.training_images} or less (the recipes use 128)")
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        out = Path(out) if out is not None else REPO_ROOT / "runs" / f"{cfg.model}-seed{cfg.seed}-{stamp}"
        try:
            (out / RUN_LOCK).exists()
        except OSError as exc:  # a name longer than the file system takes, say
            raise RunError(f"{out} cannot be a run folder ({exc.strerror}); choose a shorter folder name") from None
        check_not_in_use(out)
        saved = check_replaceable(out, cfg, overwrite)  # checked again once the folder is locked
    return Run(cfg=cfg, out=out, device=resolve_device(cfg.device), saved=saved, overwrite=overwrite)


class Run:
    """A run between its door and its last epoch: its settings, folder, device, saved state (a resumed run's
    checkpoint, else None) and the epochs recorded so far."""

    def __init__(self, cfg: Config, out: Path, device: torch.device, saved: dict | None, overwrite: bool):
        self.cfg, self.out, self.device, self.saved, self.overwrite = cfg, out, device, saved, overwrite
        self.history = list(saved["history"]) if saved else []
        self.epochs_saved, self.wall_before = len(self.history), saved["wall_seconds"] if saved else 0.0
        self.metrics, self.params, self.architecture, self.started = {}, 0, "", time.perf_counter()

    @property
    def complete(self) -> bool:
        return self.saved is not None and len(self.history) >= self.cfg.epochs

    def reopen(self, log) -> dict:
        """The metrics of a run that already trained all its epochs, its folder tidied; nothing is trained."""
        with self.claim(log):
            pass
        log(f"{self.out} is already complete ({len(self.history)}/{self.cfg.epochs} epochs); nothing to resume")
        return self.metrics

    def load_state(self, model: torch.nn.Module, opt, sched) -> None:
        """Note the network this run trains; for a resumed run, put its saved weights, momentum and schedule
        into ``model``, ``opt`` and ``sched``, or refuse in one line what training could not use."""
        self.params, self.architecture = count_parameters(model), architecture_id(model)
        if self.saved is None:
            return
        if self.saved["architecture"] != self.architecture:
            raise RunError(f"{self.out} was trained with another network than this one; start a new run instead")
        try:
            model.load_state_dict(self.saved["model_state"])
            opt.load_state_dict(self.saved["optimizer_state"])
            sched.load_state_dict(self.saved["scheduler_state"])
            problem = training_state_problem(model, opt, sched)
        except Exception as exc:  # noqa: BLE001 - whatever torch makes of a state it cannot use
            problem = f"{type(exc).__name__}: {exc}".splitlines()[0]
        if problem is not None:
            raise RunError(f"{self.out / CHECKPOINT}: its weights, optimizer or scheduler state do not fit this run "
                           f"({problem}); start a new run")

    @contextlib.contextmanager
    def claim(self, log) -> Iterator[Run]:
        """Hold the folder for the epochs to come: writable, locked against any other writer or resumer, cleared
        of half-written temporaries; a resumed run still as it was read, its metrics.json repaired. A run that
        ``overwrite`` replaces stays until this one saves its first epoch. Ctrl-C inside becomes Interrupted."""
        try:
            ensure_writable_dir(self.out)
        except OSError as exc:
            raise RunError(f"{self.out} cannot be used as a run folder ({exc.strerror or exc}); choose a folder "
                           "you can write to") from exc
        with folder_lock(self.out):
            if self.saved is None:
                check_replaceable(self.out, self.cfg, self.overwrite)  # again, now that no one else can write
            elif file_stamp(self.out / CHECKPOINT) != self.saved["stamp"]:
                raise RunError(f"{self.out} was saved by another process since this run read it; run --resume "
                               f"{self.out} again")
            for name in (CHECKPOINT, METRICS, "write-test"):
                for leftover in temporaries(self.out / name):  # only the lock holder writes here: all stale
                    leftover.unlink(missing_ok=True)
            if self.saved is not None:
                self.metrics = self.saved["metrics"]
                if read_metrics_json(self.out) != self.metrics:  # a kill came between the two writes
                    atomic_write_json(self.out / METRICS, self.metrics)
            if not self.complete:
                if self.saved is not None:
                    log(f"resuming {self.out} after epoch {len(self.history)}/{self.cfg.epochs}")
                log(f"model {self.cfg.model}: {self.params:,} parameters | device {config.device_name(self.device)} | "
                    f"run folder {shown_path(self.out)}")
            try:
                yield self
            except KeyboardInterrupt as exc:
                if isinstance(exc, Interrupted):
                    raise
                raise Interrupted(self.out, self.epochs_saved, again=self.overwrite) from exc

    def save(self, row: dict, model, opt, sched) -> None:
        """Record one finished epoch: checkpoint first, then metrics.json, each atomically. A diverged epoch
        (a NaN, which is not JSON either) stops the run before anything is saved."""
        bad = [key for key, value in row.items() if isinstance(value, float) and not math.isfinite(value)]
        if bad:
            kept = f"{self.out} keeps the checkpoint of epoch {row['epoch'] - 1}" if self.epochs_saved else \
                "nothing was saved"
            lower = "lower the peak LR, lr" if self.overwrite else "lower --lr"  # a notebook's words, or the flag
            raise RunError(f"training diverged in epoch {row['epoch']} ({bad[0]} is {row[bad[0]]}); {lower} "
                           f"(this run used {self.cfg.lr:g}) and start a new run; {kept}")
        self.history.append(row)
        self.metrics = make_metrics(self, time.perf_counter() - self.started + self.wall_before)
        state = {"model": self.cfg.model, "architecture": self.architecture, "config": dataclasses.asdict(self.cfg),
                 "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                 "optimizer_state": opt.state_dict(), "scheduler_state": sched.state_dict(),
                 "history": self.history, "wall_seconds": self.metrics["wall_seconds"], "metrics": self.metrics}
        try:
            with interrupts_held():  # Ctrl-C or SIGTERM waits until the epoch is written whole and counted
                atomic_write(self.out / CHECKPOINT, lambda tmp: torch.save(state, tmp))
                atomic_write_json(self.out / METRICS, self.metrics)
                self.epochs_saved = len(self.history)
        except NoSpaceError as exc:
            then = ("start the run again (nothing of this run was saved)" if not self.epochs_saved else
                    "run the same cell (or call) again to continue" if self.overwrite else
                    f"continue with --resume {self.out}")
            raise RunError(f"no space left on the device of {self.out} while saving epoch {len(self.history)} (the "
                           f"saved files are intact); free some space or move the folder, then {then}") from exc


def make_metrics(run: Run, wall: float) -> dict:
    """Everything a finished or running run reports; the final epoch is the result, never the best one."""
    cfg, history, last = run.cfg, run.history, run.history[-1]
    return {
        "model": cfg.model, "architecture": run.architecture, "params": run.params, "epochs": len(history),
        "epochs_planned": cfg.epochs, "complete": len(history) == cfg.epochs,
        "final_test_accuracy": last["test_accuracy"], "final_test_loss": last["test_loss"],
        "final_train_accuracy": last["train_accuracy"], "final_clean_train_accuracy": last["clean_train_accuracy"],
        "final_val_accuracy": last.get("val_accuracy"),
        "goal_met": last["test_accuracy"] >= GOAL, "history": history,
        "wall_seconds": wall, "peak_memory_mb": config.peak_memory_mb(), "allocator": config.ALLOCATOR["setting"],
        "device": config.device_name(run.device), "seed": cfg.seed, "versions": config.versions(),
        "config": dataclasses.asdict(cfg),
        "run_dir": str(run.out), "finished_at": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def architecture_id(model: torch.nn.Module) -> str:
    """A short fingerprint of the layers (``repr(model)``): a run is resumed or reused only by the same network."""
    return hashlib.sha1(repr(model).encode()).hexdigest()[:12]


# --------------------------------------------------------------------------------------------------
# The folder: who holds it, what it holds
# --------------------------------------------------------------------------------------------------

@contextlib.contextmanager
def folder_lock(out: Path) -> Iterator[None]:
    """Hold the lock of the run folder ``out`` (utils.fsutil.exclusive_lock), or raise a RunError naming its holder."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(fsutil.exclusive_lock(out / RUN_LOCK))
        except fsutil.LockHeld as exc:
            raise RunError(f"{out} is in use by another run ({exc.holder}); wait for it to end, or choose "
                           "another folder") from None
        yield


def check_not_in_use(out: Path) -> None:
    """Refuse now, before MNIST is loaded, a folder that another process is writing (claim locks it)."""
    if (out / RUN_LOCK).exists():
        with folder_lock(out):
            pass


def check_replaceable(out: Path, cfg: Config, overwrite: bool) -> dict | None:
    """Refuse a new run in a folder that holds one: any run without ``overwrite``; with it, a run of another step
    (replacing it would lose a result that later notebooks compare with) or a checkpoint of no run. Returns the
    checkpoint of an unfinished run of these very settings, which continues (a notebook cell run again after
    Ctrl-C), else None."""
    if not (out / CHECKPOINT).exists():
        return None
    if not overwrite:
        raise RunError(f"{out} already holds a run; continue it with --resume {out} or choose another run folder")
    try:
        state = read_checkpoint(out)
        held = state["model"]
    except RunError:  # damaged: replaceable only as a run of this step, which its metrics.json may still say
        state, held = None, (read_metrics_json(out) or {}).get("model")
        if not isinstance(held, str):
            raise RunError(f"{out} holds a {CHECKPOINT} that is not a run of this course; move it away or choose "
                           "another folder") from None
    if held != cfg.model:
        raise RunError(f"{out} holds a '{held}' run, and overwrite replaces only a run of the same step "
                       f"('{cfg.model}'); choose another run folder, or remove that run first")
    same = state is not None and dataclasses.replace(state["config"], **{
        name: getattr(cfg, name) for name in RESUME_MAY_CHANGE}) == cfg
    return state if same and len(state["history"]) < cfg.epochs else None


def read_metrics_json(out: Path) -> dict | None:
    try:  # missing, cut short or not JSON: None (a resumed run rewrites it from its checkpoint)
        on_disk = json.loads((out / METRICS).read_text())
    except (OSError, ValueError):
        return None
    return on_disk if isinstance(on_disk, dict) else None


def file_stamp(path: Path) -> tuple | None:
    """What changes when a file is written or replaced, to see that no one did since it was read."""
    stat = path.stat() if path.exists() else None
    return stat and (stat.st_ino, stat.st_size, stat.st_mtime_ns)


# --------------------------------------------------------------------------------------------------
# Reading a checkpoint someone hands us
# --------------------------------------------------------------------------------------------------

CHECKPOINT_SHAPE = {"model": str, "architecture": str, "config": dict, "model_state": dict, "optimizer_state": dict,
                    "scheduler_state": dict, "history": list, "wall_seconds": float, "metrics": results.METRICS}


def checkpoint_file(path: str | Path) -> Path:
    return Path(path) / CHECKPOINT if Path(path).is_dir() else Path(path)


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint of a run folder (or a ``checkpoint.pt``) written by ``Run.save``: its ``config`` a Config for
    this machine (MNIST is read here, never where the saver kept it), its ``network`` built (a step of utils/models.py)
    or None. Anything else, or anything training could not use, is a RunError naming the file, never a traceback."""
    ckpt = checkpoint_file(path)
    if not ckpt.is_file():
        raise RunError(f"no checkpoint at {ckpt}; pass a run folder made by `python -m utils.train` or its "
                       f"{CHECKPOINT}")
    try:
        stamp = file_stamp(ckpt)
        with zipfile.ZipFile(ckpt) as archive:  # torch.save stores its entries; mmap would map compressed ones raw
            if any(entry.compress_type != zipfile.ZIP_STORED for entry in archive.infolist()):
                raise RunError("its entries are compressed, which torch.save never does")
        state = torch.load(ckpt, map_location="cpu", weights_only=True, mmap=True)
        problem = structure_problem(state)
        if problem is None:
            cfg = dataclasses.replace(saved_config(state["config"]), data_root=Config.data_root)
            state.update(config=cfg, stamp=stamp, network=None)
            if cfg.model in MODELS:  # a step of utils/models.py: its weights must fit that network as it is now
                with torch.random.fork_rng(devices=[]):  # building it draws weights: leave the RNG as it was
                    state["network"] = build_model(cfg.model, cfg.dropout)
                if architecture_id(state["network"]) != state["architecture"]:
                    raise RunError(f"it was trained with another '{cfg.model}' network than utils/models.py "
                                   "defines now; start a new run instead")
                state["network"].load_state_dict(state["model_state"])  # another network's weights: refused below
    except RunError as exc:
        problem = str(exc)
    except Exception as exc:  # noqa: BLE001 - cut short, foreign, a pickle that wants to run code, other weights
        problem = f"it cannot be loaded safely: {type(exc).__name__}: {str(exc).strip().splitlines()[0][:200]}"
    if problem is not None:
        raise RunError(f"{ckpt} is not a checkpoint written by `python -m utils.train` ({problem}); pass a run "
                       "folder made by it, or start a new run")
    return state


def structure_problem(state) -> str | None:
    """What is wrong with a loaded checkpoint's entries, if anything: the entries ``Run.save`` writes, each of
    its shape; finite weights; a history of epochs 1..n with finite numbers; metrics that describe that history."""
    unknown = sorted(map(str, set(state) - set(CHECKPOINT_SHAPE))) if isinstance(state, dict) else []
    problem = f"unknown entries: {', '.join(unknown)}" if unknown else results.shape_problem(state, CHECKPOINT_SHAPE)
    if problem is not None:
        return problem
    if not all(torch.isfinite(v).all() for v in state["model_state"].values() if v.is_floating_point()):
        return "its weights hold NaN or infinite values"
    if state["wall_seconds"] < 0:
        return "its wall_seconds is not a time"
    if state["config"].get("model") != state["model"]:
        return "its config names another model than the checkpoint"
    problem = history_problem(state["history"]) or metrics_problem(state["metrics"])
    if problem is None and (state["metrics"]["history"], state["metrics"]["model"]) != (state["history"],
                                                                                        state["model"]):
        problem = "its metrics describe another run than its history"
    return problem


def metrics_problem(metrics) -> str | None:
    """What is wrong with a run's metrics (metrics.json, or the checkpoint's copy), if anything: what
    make_metrics writes and its readers read, a valid history as long as its epochs, strict JSON."""
    problem = results.shape_problem(metrics, results.METRICS, "its metrics")
    if problem is None and metrics["epochs"] != len(metrics["history"]):
        problem = "its metrics count other epochs than their history holds"
    try:
        json.dumps(metrics, allow_nan=False)
    except (TypeError, ValueError) as exc:
        problem = problem or f"its metrics are not strict JSON ({exc})"
    return problem or history_problem(metrics["history"])


def history_problem(history: list) -> str | None:
    """What is wrong with a saved history, if anything: epochs 1..n (n >= 1), each with finite numbers."""
    if not history:
        return "its history is empty"
    for epoch, row in enumerate(history, 1):
        if not isinstance(row, dict) or row.get("epoch") != epoch:
            return f"its history entry {epoch} is not the record of epoch {epoch}"
        bad = [key for key in (*results.HISTORY[0], *row) if not number(row.get(key))]
        if bad:
            return f"its record of epoch {epoch} has no finite number for '{bad[0]}'"
    return None


def training_state_problem(model, opt, sched) -> str | None:
    """What training could not use in a loaded optimizer and scheduler, if anything: one step of each on copies
    runs the code training will run (a momentum buffer of another shape, an LR or a schedule that is not
    numbers fail there), and every momentum buffer must belong to a weight of this network."""
    params = list(model.parameters())
    if {id(key) for key in opt.state} - {id(p) for p in params}:  # by identity: == on tensors compares values
        return "optimizer_state.state names weights the network does not have"
    twins = [p.detach().clone().requires_grad_(True) for p in params]
    probe = type(opt)(twins, **opt.defaults)
    probe.load_state_dict(copy.deepcopy(opt.state_dict()))  # a copy: the step below changes momentum in place
    for p in twins:
        p.grad = torch.zeros_like(p)
    probe.step()
    probe_sched = type(sched).__new__(type(sched))
    probe_sched.__dict__.update({**sched.__dict__, "optimizer": probe})
    probe_sched.step()
    return None
