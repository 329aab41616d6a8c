"""The folders the bot writes (STATE_DIR, LOG_DIR) checked at start with a real write (issue 8, item 6).

A folder the bot cannot write would otherwise surface later as a raw traceback (the log file handler) or
a refusal deep inside the breaker. Checked up front, it is one more line in the list of bad settings.
`os.access` is not enough (root passes it everywhere, and a read-only mount passes it too): the probe
writes a nameless temporary file that vanishes when closed.
"""

from __future__ import annotations

import tempfile
from collections.abc import Mapping
from pathlib import Path

# the Settings fields that name folders the bot writes, with their variable names
WRITABLE_FOLDERS = (("state_dir", "STATE_DIR"), ("log_dir", "LOG_DIR"))


def _nearest_existing(path: Path) -> Path:
    """`path` or its nearest ancestor that exists (the folder a missing one would be created in)."""
    for candidate in (path, *path.parents):
        if candidate.exists() or candidate.is_symlink():
            return candidate
    return Path(path.anchor or ".")


def _probe_write(folder: Path) -> None:
    with tempfile.TemporaryFile(dir=folder, prefix=".write-probe-"):
        pass


def folder_problem(variable: str, path: Path, *, create: bool) -> str | None:
    """None when `path` is a folder this process can write (created first when `create`), else one sentence.

    With `create=False` a missing folder is judged by the folder it would be created in, so that checking
    writes nothing that stays (the settings may be invalid for other reasons).
    """
    hint = f"expected a folder the bot can write (fix its permissions or set {variable} elsewhere)"
    try:
        target = _nearest_existing(path)
        if not target.is_dir():
            what = "is not a folder" if target == path else f"cannot be created: {target} is not a folder"
            return f"{variable}: {path} {what}; {hint} (received {str(path)!r})"
        if create:
            path.mkdir(parents=True, exist_ok=True)
            target = path
        _probe_write(target)
    except OSError as e:
        return f"{variable}: cannot write in {path} ({e.strerror or e}); {hint} (received {str(path)!r})"
    return None


def writable_folders(settings: object) -> dict[str, Path]:
    """STATE_DIR and LOG_DIR of a Settings object, by variable name."""
    return {variable: Path(getattr(settings, field)) for field, variable in WRITABLE_FOLDERS}


def folder_problems(folders: Mapping[str, Path], *, create: bool) -> list[str]:
    """Every folder of `folders` (variable → path) the bot cannot write, one sentence each."""
    problems = (folder_problem(variable, path, create=create) for variable, path in folders.items())
    return [problem for problem in problems if problem is not None]
