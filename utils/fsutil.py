"""Atomic file writes: a reader sees the old file or the new one, never half of one."""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)``, fsync, then rename the temporary file onto ``path``.

    The temporary file lives in the same folder, so the final ``os.replace`` is atomic.
    If ``write`` raises (or the process dies), ``path`` is left as it was.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp_path = Path(tmp)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the file normal permissions
    try:
        write(tmp_path)
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_json(path: str | os.PathLike, obj) -> Path:
    """Strict JSON only: a NaN or infinity raises ValueError before anything is written,
    because other tools (and the JSON standard) cannot read them."""
    text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create the folder ``path`` if needed and prove it takes a file, before any long work is done.

    Raises OSError (NotADirectoryError, PermissionError, ...) when it cannot. The probe file is
    named like an atomic write's temporary file, so a kill right here leaves nothing new behind."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(20, "Not a directory (it is a file)", str(path))
    path.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=path, prefix=".write-test.", suffix=".tmp")
    os.close(fd)
    os.unlink(probe)
    return path
