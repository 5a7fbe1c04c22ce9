"""File-system safety: atomic writes (a reader sees the old file or the new one, never half of one), all or
none of several files, a full disk named as such, folders and output files proven writable before long work,
and exclusive locks that the kernel releases when their holder dies."""
from __future__ import annotations

import contextlib
import datetime
import errno
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; see exclusive_lock
    fcntl = None

LOW_SPACE = 1 << 20  # a write that failed with less than this left on its device ran out of space


class NoSpaceError(OSError):
    """A write ran out of room on its device; the message names the folder."""


def temporary_prefix(path: str | os.PathLike) -> str:
    """Every temporary file of ``atomic_write(path, ...)`` is named ``.<name>.<random>.tmp``."""
    return f".{Path(path).name}."


def temporaries(path: str | os.PathLike) -> list[Path]:
    """The temporary files that writes of ``path`` cut short by a kill left behind (our naming only)."""
    path = Path(path)
    return sorted(path.parent.glob(f"{temporary_prefix(path)}*.tmp"))


def out_of_space(exc: BaseException, folder: Path) -> bool:
    """True when ``exc`` is a full device: ENOSPC/EDQUOT, or a writer's own error (torch.save's
    ``unexpected pos``) raised while less than LOW_SPACE was left where it wrote."""
    if isinstance(exc, OSError):
        return exc.errno in (errno.ENOSPC, errno.EDQUOT)
    try:
        return isinstance(exc, RuntimeError) and shutil.disk_usage(folder).free < LOW_SPACE
    except OSError:
        return False


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp_path)``, fsync, then rename the temporary file onto ``path``.

    The temporary file lives in the same folder, so the final ``os.replace`` is atomic.
    If ``write`` raises (or the process dies), ``path`` is left as it was; a full device
    is a NoSpaceError."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path), suffix=".tmp")
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
    except BaseException as exc:
        full = out_of_space(exc, path.parent)  # asked before the temporary file frees its space
        tmp_path.unlink(missing_ok=True)
        if full:
            raise NoSpaceError(errno.ENOSPC, f"no space left on the device of {path.parent} while writing "
                               f"{path.name}", str(path)) from exc
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def atomic_write_json(path: str | os.PathLike, obj) -> Path:
    """Strict JSON only: a NaN or infinity raises ValueError before anything is written,
    because other tools (and the JSON standard) cannot read them."""
    text = json.dumps(obj, indent=2, sort_keys=False, allow_nan=False) + "\n"
    return atomic_write(path, lambda tmp: tmp.write_text(text))


def atomic_write_all(files: dict[Path, bytes]) -> None:
    """Replace every file of ``files`` or none: each is first proven writable and staged as a temporary
    file beside it, then renamed into place; a rename that fails puts the ones already renamed back."""
    staged: dict[Path, Path] = {}
    try:
        for path in files:
            with open(path, "r+b"):  # an immutable or read-only file refuses here, before anything changes
                pass
        for path, data in files.items():
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=temporary_prefix(path), suffix=".tmp")
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
            shutil.copymode(path, tmp)
            staged[path] = Path(tmp)
        originals = {path: path.read_bytes() for path in files}
        done: list[Path] = []
        try:
            for path, tmp in staged.items():
                os.replace(tmp, path)
                done.append(path)
        except BaseException:
            for path in done:
                atomic_write_bytes(path, originals[path])
            raise
    finally:
        for tmp in staged.values():
            tmp.unlink(missing_ok=True)


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create the folder ``path`` if needed and prove it takes a file, before any long work is done.

    Raises OSError (NotADirectoryError, PermissionError, ...) when it cannot. The probe file is
    named like an atomic write's temporary file, so a kill right here leaves nothing new behind."""
    if not str(path).strip():
        raise FileNotFoundError(errno.ENOENT, "an empty path names no folder", str(path))
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "Not a directory (it is a file)", str(path))
    path.mkdir(parents=True, exist_ok=True)
    fd, probe = tempfile.mkstemp(dir=path, prefix=temporary_prefix(path / "write-test"), suffix=".tmp")
    os.close(fd)
    Path(probe).unlink(missing_ok=True)  # a run tidying this folder may have removed it already
    return path


def ensure_writable_file(path: str | os.PathLike) -> Path:
    """Prove that ``path`` can be written (its folder created if needed) before the work that fills it."""
    if not str(path).strip():
        raise FileNotFoundError(errno.ENOENT, "an empty path names no file", str(path))
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(errno.EISDIR, "Is a directory (a file name is needed)", str(path))
    ensure_writable_dir(path.parent)
    return path


class LockHeld(RuntimeError):
    """Another process holds the lock; ``holder`` is what it wrote into the lock file."""

    def __init__(self, path: Path, holder: str):
        super().__init__(f"{path} is held by {holder}")
        self.path, self.holder = path, holder


def holder_text() -> str:
    return (f"PID {os.getpid()} on {socket.gethostname()}, "
            f"since {datetime.datetime.now().isoformat(sep=' ', timespec='seconds')}")


@contextlib.contextmanager
def exclusive_lock(path: str | os.PathLike, wait: bool = False) -> Iterator[None]:
    """Hold an exclusive ``flock`` on the file ``path`` for the with-block, or raise LockHeld naming the
    holder (``wait``: block until it is free instead). The kernel releases the lock when its process
    dies, so a SIGKILL leaves at most an unlocked file, which the next holder takes over; the file is
    removed on release. Where there are no locks -- no ``fcntl`` (Windows), or a file system without
    ``flock`` (some network and FUSE mounts) -- no lock is taken, and nothing stops a second writer."""
    if fcntl is None:
        yield
        return
    path = Path(path)
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            holder = os.pread(fd, 500, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise LockHeld(path, holder) from None
        except OSError as exc:
            os.close(fd)
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                raise
            path.unlink(missing_ok=True)
            yield  # this file system keeps no locks
            return
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)  # the previous holder removed this file as it let go: lock the one there now
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, holder_text().encode() + b"\n", 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            path.unlink()  # while still held, so that no one can lock a file that is about to vanish
        os.close(fd)
