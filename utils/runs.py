"""What a run leaves on disk and what ``--resume`` reads back: the run folder, its checkpoint and
``metrics.json``, and the record of the machine and versions it ran on.

The checkpoint is the one commit point. It is written first, atomically, and carries its own copy
of the metrics; ``metrics.json`` is written from it right after. A kill between the two writes is
repaired on resume, and a kill inside a write leaves only a temporary file that resume deletes.
Nothing here knows the training recipe: ``utils.train`` passes its settings in.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import math
import platform
import sys
from pathlib import Path

import torch

from . import GOAL
from .fsutil import atomic_write, atomic_write_json, ensure_writable_dir
from .models import MODELS
from .settings import RunError

REPO_ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT = "checkpoint.pt"
METRICS = "metrics.json"


DEVICES = ("auto", "cpu", "cuda", "mps")
RESUME_MAY_CHANGE = ("device", "data_root")  # where a run computes and reads MNIST, not what it computes


# --------------------------------------------------------------------------------------------------
# Where runs live and how their paths are shown
# --------------------------------------------------------------------------------------------------

def default_run_dir(model: str, seed: int) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return REPO_ROOT / "runs" / f"{model}-seed{seed}-{stamp}"


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
    """Delete temporary files of writes cut short by a kill; the real files are intact."""
    for leftover in out.glob(".*.tmp"):
        leftover.unlink()


def claim_folder(out: Path, saved: dict | None, overwrite: bool) -> None:
    """Make ``out`` ready for the epochs to come, once every setting has been checked: writable; for a
    resumed run, cleared of half-written temporaries, its metrics.json repaired; for ``overwrite``,
    emptied of the earlier run."""
    prepare_run_folder(out)
    if saved is not None:
        remove_leftovers(out)
        metrics = saved_metrics(saved, out)
        if metrics is not None:
            repair_metrics_json(out, metrics)
    elif overwrite:
        for name in (CHECKPOINT, METRICS):
            (out / name).unlink(missing_ok=True)


def reopen_complete(saved: dict, out: Path, log) -> dict:
    """The metrics of a run that already trained all its epochs, its folder tidied; nothing is trained."""
    metrics = saved_metrics(saved, out)
    if metrics is None:
        raise RunError(f"{out} is complete, but its metrics.json is missing or does not match its older "
                       "checkpoint.pt (which holds no copy of the metrics); start a new run")
    claim_folder(out, saved, overwrite=False)
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


def checkpoint_file(path: str | Path) -> Path:
    path = Path(path)
    return path / CHECKPOINT if path.is_dir() else path


def not_ours(ckpt: Path, what: str) -> RunError:
    return RunError(f"{ckpt} is not a checkpoint written by `python -m utils.train` ({what}); "
                    "pass a run folder made by it, or start a new run")


def read_checkpoint(path: str | Path, map_location="cpu") -> dict:
    """A checkpoint written by ``save_run``, from a run folder or a ``checkpoint.pt`` path, with its
    structure checked (``utils.train.load_checkpoint`` also checks the settings it names).

    Loaded with ``weights_only=True``: a pickle that would run code is refused unopened (students
    share checkpoints). Anything that is not our checkpoint -- a bare state_dict, another program's
    file, an unknown model -- is a RunError naming the file, never a KeyError later."""
    ckpt = checkpoint_file(path)
    if not ckpt.is_file():
        raise RunError(f"no checkpoint at {ckpt}; pass a run folder made by `python -m utils.train` "
                       "or its checkpoint.pt")
    try:
        state = torch.load(ckpt, map_location=map_location, weights_only=True)
    except Exception as exc:  # truncated, foreign, or a pickle that wants to run code
        raise RunError(f"{ckpt} is not a checkpoint this course can load safely ({type(exc).__name__}); use a "
                       "checkpoint.pt written by `python -m utils.train`, or start a new run") from exc
    if not isinstance(state, dict):
        raise not_ours(ckpt, f"it holds a {type(state).__name__}, not a checkpoint dict")
    for key, kind in CHECKPOINT_TYPES.items():
        if not isinstance(state.get(key), kind):
            raise not_ours(ckpt, f"no valid '{key}' entry" if key in state else f"no '{key}' entry")
    if not all(isinstance(v, torch.Tensor) for v in state["model_state"].values()):
        raise not_ours(ckpt, "its model_state is not a state_dict of tensors")
    if state["model"] not in MODELS:
        raise not_ours(ckpt, f"unknown model {state['model']!r}; this version knows {', '.join(MODELS)}")
    if state["config"].get("model") != state["model"]:
        raise not_ours(ckpt, "its config names another model than the checkpoint")
    return state


def load_weights(model: torch.nn.Module, state: dict, where: str | Path) -> None:
    """Put a checkpoint's weights into ``model``; weights of another network are a RunError, not a traceback."""
    try:
        model.load_state_dict(state["model_state"])
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0]
        raise RunError(f"{checkpoint_file(where)}: its weights do not fit the '{state['model']}' network of "
                       f"utils/models.py ({first}); start a new run") from exc


def load_training_state(state: dict, opt, sched, where: str | Path) -> None:
    """Put a checkpoint's optimizer (momentum buffers) and scheduler (step count) into ``opt`` and ``sched``."""
    try:
        opt.load_state_dict(state["optimizer_state"])
        sched.load_state_dict(state["scheduler_state"])
    except (ValueError, KeyError, TypeError) as exc:
        raise RunError(f"{checkpoint_file(where)}: its optimizer or scheduler state does not fit this run "
                       f"({type(exc).__name__}); start a new run") from exc


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
    atomic_write(out / CHECKPOINT, lambda tmp: torch.save(ckpt, tmp))
    atomic_write_json(out / METRICS, metrics)
