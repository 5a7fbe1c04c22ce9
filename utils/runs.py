"""What a run leaves on disk and what ``--resume`` reads back: the run folder, its checkpoint and
``metrics.json``, and the record of the machine and versions it ran on.

The checkpoint is the one commit point. It is written first, atomically, and carries its own copy
of the metrics; ``metrics.json`` is written from it right after. A kill between the two writes is
repaired on resume, and a kill inside a write leaves only a temporary file that the next run there
deletes. One process at a time writes a run folder: it holds the folder's lock file for the whole run
(``claim_folder``; the kernel releases it when the process dies; no lock where ``fcntl`` is missing,
i.e. on Windows). A checkpoint is read as untrusted input: bounded in size before it is loaded, and
every part checked before training uses it.
Nothing here knows the training recipe: ``utils.train`` passes its settings in.
"""
from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import datetime
import functools
import hashlib
import json
import math
import platform
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import torch

from . import GOAL, fsutil
from .fsutil import NoSpaceError, atomic_write, atomic_write_json, ensure_writable_dir, temporaries
from .models import MODELS, build_model
from .settings import RunError, number, whole

REPO_ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"
RUN_LOCK = ".lock"  # held by the one process writing the folder; removed when it ends


DEVICES = ("auto", "cpu", "cuda", "mps")
# where a run computes and reads MNIST, and how its memory is managed: not what it computes
RESUME_MAY_CHANGE = ("device", "data_root", "reuse_memory")


# --------------------------------------------------------------------------------------------------
# Where runs live and how their paths are shown
# --------------------------------------------------------------------------------------------------

def default_run_dir(model: str, seed: int) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return REPO_ROOT / "runs" / f"{model}-seed{seed}-{stamp}"


def run_dir(out: str | Path | None, model: str, seed: int) -> Path:
    """The run folder asked for, or the default one; an empty path (the current folder) is refused."""
    if out is None:
        return default_run_dir(model, seed)
    if not str(out).strip():
        raise RunError("--out '' names no folder; give a run folder, or leave --out out for the default "
                       "runs/<model>-seed<seed>-<time>")
    return Path(out)


def shown_path(path: str | Path) -> str:
    """``path`` as printed to a user: relative to the repository when it lies inside it, so logs and
    stored notebook outputs do not carry the folder layout of the machine that ran them."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO_ROOT)) if path.is_relative_to(REPO_ROOT) else str(path)


def prepare_run_folder(out: Path) -> None:
    """Fail now, not after an epoch of training, when the run folder cannot be written."""
    try:
        ensure_writable_dir(out)
    except OSError as exc:
        raise RunError(f"--out {out} cannot be used as a run folder ({exc.strerror or exc}); "
                       "choose a folder you can write to") from exc


def remove_leftovers(out: Path) -> None:
    """Delete the temporary files of our writes that a kill cut short (the real files are intact). Only
    the lock holder writes here, so every one of them is stale."""
    for name in (CHECKPOINT, METRICS, "write-test"):
        for leftover in temporaries(out / name):
            leftover.unlink(missing_ok=True)


def held_model(out: Path) -> str | None:
    """The step whose run ``out`` holds (its metrics.json says, else its checkpoint), or None if none."""
    metrics = read_metrics_json(out)
    if metrics is not None and isinstance(metrics.get("model"), str):
        return metrics["model"]
    if not (out / CHECKPOINT).exists():
        return None
    try:  # mmap: only the names are read, whatever the size of the tensors
        state = torch.load(out / CHECKPOINT, map_location="cpu", weights_only=True, mmap=True)
    except Exception:  # noqa: BLE001 - unreadable in any way: we cannot tell what it holds
        state = None
    if isinstance(state, dict) and isinstance(state.get("model"), str):
        return state["model"]
    raise RunError(f"{out} holds a {CHECKPOINT} that is not a run of this course; move it away or choose "
                   "another folder")


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
    """Refuse now, before MNIST is loaded, a folder that another process is writing (claim_folder locks it)."""
    if (out / RUN_LOCK).exists():
        with folder_lock(out):
            pass


def resume_dir(resume: str | Path) -> Path:
    """The folder of ``--resume``: an existing run folder that no other process is writing."""
    if not str(resume).strip() or not Path(resume).is_dir():
        raise RunError(f"--resume {resume or repr(resume)}: no such run folder")
    check_not_in_use(Path(resume))
    return Path(resume)


def check_vacant(out: Path, model: str, overwrite: bool) -> None:
    """Refuse a new run in a folder that is in use, or that holds a run it may not replace."""
    check_not_in_use(out)
    check_replaceable(out, model, overwrite)


def check_replaceable(out: Path, model: str, overwrite: bool) -> None:
    """Refuse a new run in a folder that holds a run: any run without ``overwrite``; with it, a run of
    another step (replacing it would lose a result that later notebooks compare with)."""
    if not overwrite and (out / CHECKPOINT).exists():
        raise RunError(f"{out} already holds a run; continue it with --resume {out} or choose another --out")
    held = held_model(out) if overwrite else None
    if held is not None and held != model:
        raise RunError(f"{out} holds a '{held}' run, and overwrite replaces only a run of the same step "
                       f"('{model}'); choose another run folder, or remove that run first")


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM, in ``python -m utils.train``) during a run; the message says how to continue."""


@dataclasses.dataclass
class RunFolder:
    """The run folder of a run in progress, while its process holds the lock: it saves every epoch."""

    path: Path
    epochs_saved: int

    def save(self, model, opt, sched, cfg, history: list[dict], metrics: dict) -> None:
        save_run(self.path, model, opt, sched, cfg, history, metrics)
        self.epochs_saved = len(history)

    def interrupted(self) -> str:
        n = self.epochs_saved
        if n == 0:
            return f"interrupted at epoch 1, before any epoch was saved in {self.path}; start the run again"
        kept = "epoch 1" if n == 1 else f"epochs 1-{n}"
        return f"interrupted at epoch {n + 1}; {self.path} keeps {kept}; continue with --resume {self.path}"


@contextlib.contextmanager
def claim_folder(out: Path, saved: dict | None, overwrite: bool, model: str) -> Iterator[RunFolder]:
    """Hold ``out`` for the epochs to come, once every setting has been checked: writable, locked
    against any other writer or resumer, cleared of half-written temporaries; for a resumed run, still
    at the epoch it was read at, its metrics.json repaired; for a new run, empty, or with ``overwrite``
    emptied of an earlier run of the same step. Ctrl-C inside becomes ``Interrupted``."""
    prepare_run_folder(out)
    with folder_lock(out):
        if saved is None:
            check_replaceable(out, model, overwrite)  # again, now that no one else can write here
            for name in (CHECKPOINT, METRICS) if overwrite else ():
                (out / name).unlink(missing_ok=True)
        elif read_checkpoint(out)["history"] != saved["history"]:
            raise RunError(f"{out} was saved by another process since this run read it; run --resume {out} again")
        remove_leftovers(out)
        metrics = None if saved is None else saved_metrics(saved, out)
        if metrics is not None:
            repair_metrics_json(out, metrics)
        folder = RunFolder(out, 0 if saved is None else len(saved["history"]))
        try:
            yield folder
        except KeyboardInterrupt as exc:
            if isinstance(exc, Interrupted):
                raise
            raise Interrupted(folder.interrupted()) from exc


def reopen_complete(saved: dict, out: Path, log) -> dict:
    """The metrics of a run that already trained all its epochs, its folder tidied; nothing is trained."""
    metrics = saved_metrics(saved, out)
    if metrics is None:
        raise RunError(f"{out} is complete, but its metrics.json is missing or does not match its older "
                       "checkpoint.pt (which holds no copy of the metrics); start a new run")
    with claim_folder(out, saved, overwrite=False, model=saved["model"]):
        pass
    log(f"{out} is already complete ({len(saved['history'])}/{saved['config']['epochs']} epochs); nothing to resume")
    return metrics


# --------------------------------------------------------------------------------------------------
# The machine and the versions a run ran with
# --------------------------------------------------------------------------------------------------

def resolve_device(name: str) -> torch.device:
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but torch sees no CUDA GPU; use --device cpu or auto")
    if name == "mps" and not mps:
        raise ValueError("--device mps was asked for, but MPS is not available; use --device cpu or auto")
    if name not in DEVICES:
        raise ValueError(f"unknown device {name!r}; choose auto, cpu, cuda or mps")
    return torch.device(name)


ALLOCATOR = {"setting": "as the system set it"}  # what reuse_freed_memory did to this process, for its record


def reuse_freed_memory() -> str:
    """Keep the memory a training step frees inside the process, for the next step to reuse.

    glibc's malloc hands large freed blocks back to the operating system (mmap and trim thresholds), so
    every step of a small CNN faults the same few megabytes in again: ~1,000 page faults per step here.
    Raising the two thresholds (process-wide, like any allocator setting) removes them: the arithmetic is
    untouched, and one epoch ran 1.17x faster (AMD EPYC, 2 threads, median of three). A no-op, said so,
    where the C library is not glibc. Returns the setting, which make_metrics records."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        version = libc.gnu_get_libc_version().decode()
    except (OSError, AttributeError):
        ALLOCATOR["setting"] = "as the system set it (not glibc: nothing to change)"
        return ALLOCATOR["setting"]
    m_trim_threshold, m_mmap_threshold = -1, -3  # malloc.h
    if libc.mallopt(m_mmap_threshold, 1 << 30) == 1 and libc.mallopt(m_trim_threshold, 1 << 31) == 1:
        ALLOCATOR["setting"] = f"glibc {version}: freed memory kept (mmap threshold 1 GiB, trim threshold 2 GiB)"
    return ALLOCATOR["setting"]


def versions() -> dict:
    """Plain strings (torch.__version__ is a str subclass that weights_only loading refuses)."""
    out = {"python": platform.python_version(), "torch": str(torch.__version__)}
    try:
        import torchvision

        out["torchvision"] = str(torchvision.__version__)
    except Exception:
        out["torchvision"] = None
    return out


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"{device.type} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def peak_memory_mb() -> float | None:
    """This process's peak resident memory, in MB.

    On Linux, ``VmHWM`` from /proc/self/status: the high-water mark of this program alone.
    (``ru_maxrss`` would also count the process that launched it, when that one used vfork.)
    Elsewhere ``ru_maxrss``; None where neither exists."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def architecture_id(model: torch.nn.Module) -> str:
    """A short fingerprint of the layers (``repr(model)``): a run is resumed or reused only by the same network."""
    return hashlib.sha1(repr(model).encode()).hexdigest()[:12]


# --------------------------------------------------------------------------------------------------
# metrics.json
# --------------------------------------------------------------------------------------------------

def make_metrics(cfg, params: int, history: list[dict], wall: float, device: torch.device, out: Path,
                 architecture: str) -> dict:
    """Everything a finished or running run reports; the final epoch is the result, never the best one."""
    last = history[-1]
    return {
        "model": cfg.model,
        "architecture": architecture,
        "params": params,
        "epochs": len(history),
        "epochs_planned": cfg.epochs,
        "complete": len(history) == cfg.epochs,
        "final_test_accuracy": last["test_accuracy"],
        "final_test_loss": last["test_loss"],
        "final_train_accuracy": last["train_accuracy"],
        "best_train_accuracy": max(h["train_accuracy"] for h in history),
        "final_val_accuracy": last.get("val_accuracy"),
        "goal_met": last["test_accuracy"] >= GOAL,
        "history": history,
        "wall_seconds": wall,
        "peak_memory_mb": peak_memory_mb(),
        "allocator": ALLOCATOR["setting"],
        "device": device_name(device),
        "seed": cfg.seed,
        "versions": versions(),
        "config": dataclasses.asdict(cfg),
        "run_dir": str(out),
        "finished_at": datetime.datetime.now().isoformat(timespec="seconds"),
    }


def read_metrics_json(out: Path) -> dict | None:
    try:
        on_disk = json.loads((out / METRICS).read_text())
    except (OSError, ValueError):  # missing, cut short or not JSON: it is rebuilt from the checkpoint
        return None
    return on_disk if isinstance(on_disk, dict) else None


def repair_metrics_json(out: Path, metrics: dict) -> None:
    """Make metrics.json say what the checkpoint says (after a kill between the two writes)."""
    if read_metrics_json(out) != metrics:
        atomic_write_json(out / METRICS, metrics)


def saved_metrics(state: dict, out: Path) -> dict | None:
    """The metrics that belong to this checkpoint: its own copy; an older checkpoint without one trusts
    metrics.json only when its history agrees; else None."""
    if isinstance(state.get("metrics"), dict):
        return state["metrics"]
    on_disk = read_metrics_json(out)
    return on_disk if on_disk is not None and on_disk.get("history") == state["history"] else None


def check_finite(row: dict, lr: float, out: Path) -> None:
    """Stop a diverged run before it saves: NaN weights are worth nothing, and NaN is not JSON."""
    bad = [key for key, value in row.items() if isinstance(value, float) and not math.isfinite(value)]
    if bad:
        epoch = row["epoch"]
        kept = f"{out} keeps the checkpoint of epoch {epoch - 1}" if epoch > 1 else "nothing was saved"
        raise RunError(f"training diverged in epoch {epoch} ({bad[0]} is {row[bad[0]]}); lower --lr (this run "
                       f"used {lr:g}) and start a new run; {kept}")


# --------------------------------------------------------------------------------------------------
# checkpoint.pt
# --------------------------------------------------------------------------------------------------

CHECKPOINT_TYPES = {"model": str, "architecture": str, "config": dict, "model_state": dict,
                    "optimizer_state": dict, "scheduler_state": dict, "history": list, "wall_seconds": (int, float)}
OPTIONAL_ENTRIES = {"metrics": dict}  # older checkpoints hold no copy of the metrics
HISTORY_KEYS = ("epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "lr", "seconds")
METRICS_CHECKS = {"model": lambda v: isinstance(v, str), "params": whole, "epochs": whole,
                  "complete": lambda v: isinstance(v, bool), "goal_met": lambda v: isinstance(v, bool),
                  "final_test_accuracy": number, "final_train_accuracy": number, "wall_seconds": number,
                  "final_val_accuracy": lambda v: v is None or number(v), "seed": whole,
                  "config": lambda v: isinstance(v, dict), "run_dir": lambda v: isinstance(v, str)}
MAX_RECORDS_BYTES = 16 * 2**20  # the pickled settings, history and metrics of even a very long run


def checkpoint_file(path: str | Path) -> Path:
    path = Path(path)
    return path / CHECKPOINT if path.is_dir() else path


def not_ours(ckpt: Path, what: str) -> RunError:
    return RunError(f"{ckpt} is not a checkpoint written by `python -m utils.train` ({what}); "
                    "pass a run folder made by it, or start a new run")


@functools.cache
def tensor_budget() -> int:
    """The most tensor bytes a checkpoint of any step holds: its weights and buffers, plus one momentum
    buffer per weight; twice that, for a margin."""
    need = 0
    with torch.random.fork_rng(devices=[]):  # building a network draws initial weights: leave the RNG as it was
        for name in MODELS:
            model = build_model(name)
            need = max(need, sum(t.nbytes for t in model.state_dict().values())
                       + sum(p.nbytes for p in model.parameters()))
    return 2 * need


def check_archive(ckpt: Path) -> None:
    """Bound what loading ``ckpt`` would allocate, from the zip's own directory, before any of it is read:
    torch.save writes a zip of a pickle plus one entry per tensor storage (``<name>/data/<n>``)."""
    if not zipfile.is_zipfile(ckpt):
        raise not_ours(ckpt, "it is not the zip archive torch.save writes")
    try:
        with zipfile.ZipFile(ckpt) as archive:
            entries = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise not_ours(ckpt, f"its zip directory cannot be read: {exc}") from exc
    tensors = sum(e.file_size for e in entries if "/data/" in e.filename)
    records = sum(e.file_size for e in entries if "/data/" not in e.filename)
    if tensors > tensor_budget() or records > MAX_RECORDS_BYTES:
        raise not_ours(ckpt, f"it holds {(tensors + records) / 1e6:,.1f} MB, more than a run of any step needs "
                             f"({(tensor_budget() + MAX_RECORDS_BYTES) / 1e6:,.1f} MB at most)")


def history_problem(history: list) -> str | None:
    """What is wrong with a saved history, if anything: epochs 1..n in order (n >= 1: a checkpoint is
    written after an epoch), each with finite numbers."""
    if not history:
        return "its history is empty"
    for epoch, row in enumerate(history, 1):
        if not isinstance(row, dict) or row.get("epoch") != epoch:
            return f"its history entry {epoch} is not the record of epoch {epoch}"
        bad = [key for key in (*HISTORY_KEYS, *row) if not number(row.get(key))]
        if bad:
            return f"its record of epoch {epoch} has no finite number for '{bad[0]}'"
    return None


def metrics_problem(metrics) -> str | None:
    """What is wrong with a run's metrics (metrics.json, or the checkpoint's copy), if anything: what
    make_metrics writes and its readers read, a valid history as long as its epochs, strict JSON."""
    if not isinstance(metrics, dict):
        return f"its metrics are a {type(metrics).__name__}, not a dict"
    bad = [key for key, ok in METRICS_CHECKS.items() if not ok(metrics.get(key))]
    if bad:
        return f"its metrics have no valid '{bad[0]}'"
    if not isinstance(metrics.get("history"), list):
        return "its metrics hold no history"
    if metrics["epochs"] != len(metrics["history"]):
        return "its metrics count other epochs than their history holds"
    try:
        json.dumps(metrics, allow_nan=False)
    except (TypeError, ValueError) as exc:
        return f"its metrics are not strict JSON ({exc})"
    return history_problem(metrics["history"])


def structure_problem(state: dict) -> str | None:
    """What is wrong with the entries of a loaded checkpoint, if anything (the settings are checked by
    ``utils.train.load_checkpoint``; the optimizer and scheduler by ``load_training_state``)."""
    unknown = sorted(set(state) - set(CHECKPOINT_TYPES) - set(OPTIONAL_ENTRIES))
    if unknown:
        return f"unknown entries: {', '.join(map(str, unknown))}"
    for key, kind in {**CHECKPOINT_TYPES, **OPTIONAL_ENTRIES}.items():
        if key in state and not isinstance(state[key], kind) or key in CHECKPOINT_TYPES and key not in state:
            return f"no valid '{key}' entry" if key in state else f"no '{key}' entry"
    if not all(isinstance(v, torch.Tensor) for v in state["model_state"].values()):
        return "its model_state is not a state_dict of tensors"
    if not all(torch.isfinite(v).all() for v in state["model_state"].values() if v.is_floating_point()):
        return "its weights hold NaN or infinite values"
    if state["model"] not in MODELS:
        return f"unknown model {state['model']!r}; this version knows {', '.join(MODELS)}"
    if state["config"].get("model") != state["model"]:
        return "its config names another model than the checkpoint"
    if not number(state["wall_seconds"]) or state["wall_seconds"] < 0:
        return f"its wall_seconds is {state['wall_seconds']!r}, not a time"
    problem = history_problem(state["history"])
    if problem is None and "metrics" in state:
        problem = metrics_problem(state["metrics"])
        if problem is None and (state["metrics"]["history"], state["metrics"]["model"]) != (state["history"],
                                                                                            state["model"]):
            problem = "its metrics describe another run than its history"
    return problem


def read_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """A checkpoint written by ``save_run``, from a run folder or a ``checkpoint.pt`` path, with its
    structure checked (``utils.train.load_checkpoint`` also checks the settings it names).

    Loaded with ``weights_only=True``: a pickle that would run code is refused unopened (students
    share checkpoints), and only after its size has been bounded from the zip directory. Anything that
    is not our checkpoint -- a bare state_dict, another program's file, an unknown model, a history or
    metrics that training could not use -- is a RunError naming the file, never a traceback later."""
    ckpt = checkpoint_file(path)
    if not ckpt.is_file():
        raise RunError(f"no checkpoint at {ckpt}; pass a run folder made by `python -m utils.train` "
                       "or its checkpoint.pt")
    check_archive(ckpt)
    try:
        state = torch.load(ckpt, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated, foreign, or a pickle that wants to run code
        raise RunError(f"{ckpt} is not a checkpoint this course can load safely ({type(exc).__name__}); use a "
                       "checkpoint.pt written by `python -m utils.train`, or start a new run") from exc
    if not isinstance(state, dict):
        raise not_ours(ckpt, f"it holds a {type(state).__name__}, not a checkpoint dict")
    problem = structure_problem(state)
    if problem is not None:
        raise not_ours(ckpt, problem)
    return state


def load_weights(model: torch.nn.Module, state: dict, where: str | Path, architecture: str | None = None) -> None:
    """Put a checkpoint's weights into ``model`` (the network it was trained with, when ``architecture``
    is given); weights of another network are a RunError, not a traceback."""
    if architecture is not None and state["architecture"] != architecture:
        raise RunError(f"{where} was trained with another '{state['model']}' network than utils/models.py defines "
                       "now; start a new run instead")
    try:
        model.load_state_dict(state["model_state"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise RunError(f"{checkpoint_file(where)}: its weights do not fit the '{state['model']}' network of "
                       f"utils/models.py ({first}); start a new run") from exc


def mismatch(saved, fresh, where: str) -> str | None:
    """Where a saved optimizer or scheduler state differs in kind from ``fresh``, the same object's state
    made just now: other entries or lengths, a value of another type, a number that is not finite, another
    name. Numbers may differ (they are the run's progress)."""
    if isinstance(fresh, dict):
        if not isinstance(saved, dict) or set(saved) != set(fresh):
            return f"{where} has other entries than this torch's"
        return next(filter(None, (mismatch(saved[k], v, f"{where}.{k}") for k, v in fresh.items())), None)
    if isinstance(fresh, list):
        if not isinstance(saved, list) or len(saved) != len(fresh):
            return f"{where} is not a list of {len(fresh)}"
        pairs = enumerate(zip(saved, fresh, strict=True))
        return next(filter(None, (mismatch(a, b, f"{where}[{i}]") for i, (a, b) in pairs)), None)
    if number(fresh):
        return None if number(saved) else f"{where} is {saved!r}, not a finite number"
    if isinstance(fresh, str):
        return None if saved == fresh else f"{where} is {saved!r}, not {fresh!r}"
    return None if type(saved) is type(fresh) else f"{where} is {saved!r}"


def momentum_problem(opt) -> str | None:
    """What is wrong with the loaded momentum buffers, if anything: one finite tensor per weight, its shape."""
    params = [p for group in opt.param_groups for p in group["params"]]
    if {id(key) for key in opt.state} - {id(p) for p in params}:  # by identity: == on tensors compares values
        return "optimizer_state.state names weights the network does not have"
    for i, p in enumerate(params):
        state = opt.state.get(p, {})
        buf = state.get("momentum_buffer")
        if set(state) - {"momentum_buffer"} or buf is not None and not (
                isinstance(buf, torch.Tensor) and buf.shape == p.shape and torch.isfinite(buf).all()):
            return f"the momentum of weight {i} is not a finite tensor of shape {tuple(p.shape)}"
    return None


def load_training_state(state: dict, opt, sched, where: str | Path) -> None:
    """Put a checkpoint's optimizer (momentum buffers) and scheduler (step count) into ``opt`` and ``sched``,
    once they are known to fit: the same entries as these, one momentum buffer of the right shape per weight."""
    saved_opt, saved_sched = state["optimizer_state"], state["scheduler_state"]
    problem = (mismatch(saved_sched, sched.state_dict(), "scheduler_state")
               or mismatch(saved_opt.get("param_groups"), opt.state_dict()["param_groups"], "optimizer_state"))
    if problem is None:
        try:
            opt.load_state_dict(saved_opt)
            sched.load_state_dict(saved_sched)
            problem = momentum_problem(opt)
        except (ValueError, KeyError, TypeError, AttributeError, RuntimeError) as exc:
            problem = type(exc).__name__
    if problem is not None:
        raise RunError(f"{checkpoint_file(where)}: its optimizer or scheduler state does not fit this run "
                       f"({problem}); start a new run")


def save_run(out: Path, model, opt, sched, cfg, history: list[dict], metrics: dict) -> None:
    """Checkpoint first, then metrics, each atomically. The checkpoint is the commit point: it holds
    a copy of the metrics, so a kill between the two writes is repaired by --resume."""
    ckpt = {
        "model": cfg.model,
        "architecture": metrics["architecture"],
        "config": dataclasses.asdict(cfg),
        "model_state": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer_state": opt.state_dict(),
        "scheduler_state": sched.state_dict(),
        "history": history,
        "wall_seconds": metrics["wall_seconds"],
        "metrics": metrics,
    }
    try:
        atomic_write(out / CHECKPOINT, lambda tmp: torch.save(ckpt, tmp))
        atomic_write_json(out / METRICS, metrics)
    except NoSpaceError as exc:
        then = (f"continue with --resume {out}" if (out / CHECKPOINT).exists()
                else "start the run again (nothing was saved)")
        raise RunError(f"no space left on the device of {out} while saving epoch {len(history)} (the saved files "
                       f"are intact); free some space or move the folder, then {then}") from exc
