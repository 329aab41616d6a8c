"""One bot per state folder: an exclusive `fcntl.flock` on `STATE_DIR/.bot.lock`, held for the bot's life.

Two bots on one STATE_DIR would overwrite each other's circuit-breaker and risk files, so one bot's halt
could be erased by the other. The lock is the kernel's: it is released when the holding process dies,
however it dies (kill -9 included), so there is never a stale lock to clean up by hand. The file stays in
place between runs (removing it would let a bot lock a fresh inode while another still holds the old one);
its content is only the holder's pid, for the message a refused process prints.

The lock file descriptor is not inherited by child processes (Python opens files non-inheritable), so
the sidecar the bot spawns never keeps the folder locked after the bot is gone.

`python main.py --reset-circuit-breaker` takes the same lock while it rewrites the breaker's file: it is
refused while a bot runs, and a bot started during a reset is refused too.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import Self

LOCK_FILE_NAME = ".bot.lock"
MAX_PID_BYTES = 32  # "<pid>\n" with room to spare; the file is never read beyond this


class StateDirBusyError(RuntimeError):
    """Another process holds the state folder: stop it first, or give this one its own STATE_DIR."""

    def __init__(self, state_dir: Path, holder_pid: int | None, action: str) -> None:
        self.state_dir = state_dir
        self.holder_pid = holder_pid
        super().__init__(busy_message(state_dir, holder_pid, action))


class StateDirLockError(RuntimeError):
    """The lock file cannot be created or locked at all (permissions, a directory in its place, …)."""


def lock_path(state_dir: Path | str) -> Path:
    """Where the lock lives: `<STATE_DIR>/.bot.lock`."""
    return Path(state_dir) / LOCK_FILE_NAME


def parse_pid(raw: bytes) -> int | None:
    """The pid written in a lock file, None when the content is not a positive integer."""
    text = raw[:MAX_PID_BYTES].decode("ascii", errors="replace").strip()
    if not text.isdigit():
        return None
    pid = int(text)
    return pid if pid > 0 else None


def busy_message(state_dir: Path, holder_pid: int | None, action: str) -> str:
    """What a refused process tells the operator: who holds the folder, and what to do."""
    holder = f"pid {holder_pid}" if holder_pid is not None else "another process (pid unknown)"
    return (
        f"cannot {action}: STATE_DIR {state_dir} is in use by {holder}, a bot already running on this folder "
        f"(lock {lock_path(state_dir)}). Two bots on one folder would overwrite each other's risk state. "
        "Stop that bot first (SIGTERM), or give this one its own STATE_DIR"
    )


class StateDirLock:
    """The exclusive lock on one state folder; `acquire()` or `with StateDirLock(dir, action):`."""

    def __init__(self, state_dir: Path | str, action: str = "start the bot") -> None:
        self.state_dir = Path(state_dir)
        self.path = lock_path(state_dir)
        self.action = action
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock at once or raise StateDirBusyError naming the holder (never waits)."""
        if self._fd is not None:
            return
        try:
            self.state_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise StateDirLockError(
                f"cannot create the state-folder lock {self.path}: {e.strerror or e}. Expected a writable "
                "STATE_DIR (fix its permissions or set STATE_DIR to another folder)"
            ) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = parse_pid(os.pread(fd, MAX_PID_BYTES, 0))
            os.close(fd)
            raise StateDirBusyError(self.state_dir, holder, self.action) from None
        except OSError as e:
            os.close(fd)
            raise StateDirLockError(f"cannot lock {self.path}: {e.strerror or e}") from e
        # the pid is only for the refusal message: no fsync needed, the lock itself is the kernel's
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        """Let the folder go (the process exiting does the same)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)  # no pid left behind that could be taken for a live holder
        os.close(fd)  # closing the last descriptor releases the flock

    def __enter__(self) -> Self:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
