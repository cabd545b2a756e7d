"""One process per run directory: an advisory lock held while a run trains or resumes.

A second ``algd train --out DIR`` (or ``--resume DIR``) while the first still runs would interleave
two runs' files in one directory. The lock is ``fcntl.flock`` on ``DIR/.lock``: the kernel drops
it when its process ends, however it ends (SIGKILL included), so a stale lock never blocks a
restart. Where ``fcntl`` does not exist (Windows) or the file system refuses locks (some network
mounts), runs are not locked.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import IO, Iterator

from algd.config import ConfigError

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"  #: the lock file inside a run directory (empty; it stays after the run)


def _try_lock(run_dir: Path) -> IO[str] | None:
    """The open, locked lock file, or None when another process holds the lock."""
    handle = open(Path(run_dir) / LOCK_NAME, "a")
    if fcntl is None:  # pragma: no cover - Windows
        return handle
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.close()
        return None
    except OSError:  # a file system without locks (some network mounts): run unlocked
        pass
    return handle


def _in_use(run_dir: Path) -> ConfigError:
    return ConfigError(f"{run_dir} is in use by another algd process (a run in progress there); "
                       "wait for it to end, or choose another --out (nothing was written)")


def in_use(run_dir: Path) -> bool:
    """Another process trains or resumes the run in ``run_dir`` right now."""
    if not (Path(run_dir) / LOCK_NAME).exists():
        return False
    handle = _try_lock(run_dir)
    if handle is None:
        return True
    handle.close()  # closing releases the lock
    return False


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold ``run_dir``'s lock for the ``with`` block; :class:`ConfigError` if another process
    holds it."""
    handle = _try_lock(run_dir)
    if handle is None:
        raise _in_use(run_dir)
    try:
        yield
    finally:
        handle.close()


def refuse_if_in_use(run_dir: Path) -> None:
    """Raise :class:`ConfigError` when another process runs in ``run_dir``."""
    if in_use(run_dir):
        raise _in_use(run_dir)
