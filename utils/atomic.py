"""Crash-safe files: write a temp file in the same folder, fsync it, `os.replace` it, fsync the folder.

A reader therefore sees either the old file or the new one, never half of one, even if the writer is
killed with SIGKILL or the machine loses power mid-write.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: Path | str, data: bytes) -> None:
    """Replace `path` with `data` atomically and durably."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as tmp:
            tmp.write(data)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp_name, target)
    except BaseException:
        # leave no temp files behind on failure; the error itself is re-raised unchanged
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    fsync_directory(target.parent)


def atomic_write_json(path: Path | str, payload: Any) -> None:
    """Serialise `payload` as JSON and replace `path` with it atomically."""
    data = json.dumps(payload, indent=2, sort_keys=True, default=str).encode("utf-8") + b"\n"
    atomic_write_bytes(path, data)


def fsync_directory(directory: Path) -> None:
    """Make a rename inside `directory` durable (no-op where directories cannot be opened)."""
    try:
        dir_fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        # some filesystems refuse fsync on a directory; the rename is still atomic there
        return
    finally:
        os.close(dir_fd)


class StateFileError(Exception):
    """A state file exists but cannot be used; the caller decides how to fail safe (usually: halt)."""


# A state file is a few kilobytes; anything near this cap is not one of ours (issue 8: never read it whole).
MAX_STATE_FILE_BYTES = 1024 * 1024


def describe_file_type(mode: int) -> str | None:
    """None for a regular file, else what stands there instead ("a FIFO (named pipe)", "a directory", …)."""
    if stat.S_ISREG(mode):
        return None
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def read_regular_file(
    path: Path | str, max_bytes: int = MAX_STATE_FILE_BYTES, *, what: str = "a state file"
) -> bytes | None:
    """The bytes of the regular file at `path` (at most `max_bytes`), None if nothing is there.

    Never hangs and never reads without bound: the file is opened with O_NONBLOCK (a FIFO with no writer
    would otherwise block the open forever), checked with fstat to be a regular file no larger than
    `max_bytes`, and read at most `max_bytes + 1` bytes (a file growing while read is caught too).
    Raises StateFileError saying what stands there and what was expected (`what` names the kind of file
    in the size error, e.g. "a replay file").
    """
    target = Path(path)
    try:
        fd = os.open(target, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StateFileError(f"cannot read {target}: {e.strerror or e}") from e
    try:
        info = os.fstat(fd)
        kind = describe_file_type(info.st_mode)
        if kind is not None:
            raise StateFileError(f"{target} is {kind}, expected a regular file")
        if info.st_size > max_bytes:
            raise StateFileError(f"{target} is {info.st_size} bytes, expected at most {max_bytes} for {what}")
        chunks: list[bytes] = []
        total = 0
        while total <= max_bytes and (chunk := os.read(fd, max_bytes + 1 - total)):
            chunks.append(chunk)
            total += len(chunk)
    except OSError as e:
        raise StateFileError(f"cannot read {target}: {e.strerror or e}") from e
    finally:
        os.close(fd)
    if total > max_bytes:
        raise StateFileError(f"{target} grew beyond {max_bytes} bytes while read, expected at most that")
    return b"".join(chunks)


def read_json_object(path: Path | str, max_bytes: int = MAX_STATE_FILE_BYTES) -> dict[str, Any] | None:
    """The JSON object stored at `path`, None if the file does not exist.

    Raises StateFileError when the file is not a regular file, larger than `max_bytes`, unreadable, not
    JSON, or not a JSON object.
    """
    target = Path(path)
    raw = read_regular_file(target, max_bytes)
    if raw is None:
        return None
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StateFileError(f"{target} is not valid JSON: {e}") from e
    if not isinstance(payload, dict):
        raise StateFileError(f"{target} should hold a JSON object, found {type(payload).__name__}")
    return payload
