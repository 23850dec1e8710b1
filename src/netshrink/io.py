"""Atomic file writes: a reader never sees a half-written file, and no temporary file outlives
its process (removed on an exception or SIGTERM; a killed process's are removed by the next
run's `remove_stale`)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

# `.<stem>.<pid>.<random>.tmp<suffix>` (files) and `.<name>.<pid>.run` / `.<name>.old-<pid>` (folders)
_STALE = re.compile(r"^\.(?:.+)\.(\d+)\.[^.]+\.tmp(?:\.[^.]+)?$|^\.(?:.+)\.(?:old-|run-)(\d+)$")


def _fsync(path: Path, directory: bool = False) -> None:
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_path(path: Path | str, fsync: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside `path`; on success it is flushed to disk (`fsync`) and
    renamed onto `path`. On an exception the temporary file is removed and `path` is left untouched."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.stem}.{os.getpid()}.", suffix=f".tmp{path.suffix}"
    )
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp_path, 0o666 & ~umask)  # mkstemp makes 0600; give the usual permissions
        if fsync:
            _fsync(tmp_path)
        os.replace(tmp_path, path)
        if fsync:
            _fsync(path.parent, directory=True)
    finally:
        tmp_path.unlink(missing_ok=True)


def write_text(path: Path | str, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: Path | str, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def torch_save(path: Path | str, obj: Any) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def write_with(path: Path | str, writer: Callable[[Path], None]) -> None:
    """Call `writer(tmp)` and move the result onto `path` atomically."""
    with atomic_path(path) as tmp:
        writer(tmp)


def file_sha256(path: Path | str) -> str:
    """The SHA-256 of a file's bytes, in hex."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale(folder: Path | str) -> list[Path]:
    """Remove the temporary files and folders in `folder` (not below it) that a process which
    no longer runs left behind; return what was removed."""
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        match = _STALE.match(entry.name)
        if not match:
            continue
        pid = int(match.group(1) or match.group(2))
        if pid == os.getpid() or _alive(pid):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def exit_on_sigterm() -> None:
    """Turn SIGTERM into SystemExit(143) in the main thread, so that `finally` blocks (which
    remove temporary files) run as they do on Ctrl-C."""

    def handler(signum: int, frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


class Busy(RuntimeError):
    """Another live process holds a lock (`hold_lock`); the message names it, `holder_text`
    says which process."""

    holder_text: str = ""


@contextmanager
def hold_lock(path: Path | str, what: str, info: dict[str, Any] | None = None) -> Iterator[None]:
    """Hold an exclusive lock on `path` for the block, or raise `Busy` naming the process that
    holds it (pid, command, since when). `what` says what the lock guards, for the message.

    The lock is the kernel's (`flock`): it dies with its process, so a killed run never leaves
    a lock behind; the file only says who holds it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = json.loads(os.pread(fd, 1 << 16, 0).decode() or "{}")
            except ValueError:
                holder = {}
            text = (f"process {holder.get('pid', '?')} ({holder.get('command', 'command unknown')}, "
                    f"started {holder.get('started', '?')})")  # fmt: skip
            busy = Busy(
                f"{what} is already running in {text}; wait for it to finish or stop it "
                f"(kill {holder.get('pid', '<pid>')}) and run again"
            )
            busy.holder_text = text
            raise busy from None
        me = {"pid": os.getpid(), "command": " ".join(sys.argv) or sys.executable,
              "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"), **(info or {})}  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
