"""Crash-safe files: write a temp file in the same folder, fsync it, `os.replace` it, fsync the folder.

A reader therefore sees either the old file or the new one, never half of one, even if the writer is
killed with SIGKILL or the machine loses power mid-write.
"""

from __future__ import annotations

import contextlib
import json
import os
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


def read_json_object(path: Path | str) -> dict[str, Any] | None:
    """The JSON object stored at `path`, None if the file does not exist.

    Raises StateFileError when the file is unreadable, not JSON, or not a JSON object.
    """
    target = Path(path)
    try:
        raw = target.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StateFileError(f"cannot read {target}: {e.strerror or e}") from e
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StateFileError(f"{target} is not valid JSON: {e}") from e
    if not isinstance(payload, dict):
        raise StateFileError(f"{target} should hold a JSON object, found {type(payload).__name__}")
    return payload
