"""Walk a code tree: honour .gitignore, never follow symlinks, report what was left out and why.

Symlinks are not followed (as git and `rg` do by default): a link inside the root points at something
scanned at its own path, and following links is what makes loops and escapes possible. Each link is
still examined so the report can say which ones loop, dangle or point out of the root. Special files
(FIFOs, sockets, devices) are never opened: reading a FIFO would block the scan forever.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from operator import attrgetter
from pathlib import Path

from mcp.search.gitignore import IgnoreStack, parse_gitignore

# version-control internals, and bytecode caches (only ever .pyc files: never scanned, never worth searching)
ALWAYS_SKIPPED_DIRS = frozenset({".git", ".hg", ".svn", "__pycache__"})


class SkipReason(StrEnum):
    GITIGNORED = "gitignored"
    BINARY = "binary"
    TOO_LARGE = "too_large"
    UNREADABLE = "unreadable"
    UNREADABLE_DIRECTORY = "unreadable_directory"
    SPECIAL_FILE = "special_file"
    SYMLINK = "symlink"  # inside the root: its target is scanned at its own path
    SYMLINK_LOOP = "symlink_loop"
    SYMLINK_OUTSIDE_ROOT = "symlink_outside_root"
    SYMLINK_DANGLING = "symlink_dangling"


# reasons that deserve the operator's attention (listed under "errors" in a report)
PROBLEM_REASONS = frozenset(
    {
        SkipReason.UNREADABLE,
        SkipReason.UNREADABLE_DIRECTORY,
        SkipReason.SYMLINK_LOOP,
        SkipReason.SYMLINK_OUTSIDE_ROOT,
        SkipReason.SYMLINK_DANGLING,
    }
)


@dataclass(slots=True)
class WalkEntry:
    """A regular file found by the walk; `entry` keeps the directory listing's cached stat."""

    rel: str
    entry: os.DirEntry[str]

    @property
    def path(self) -> str:
        return self.entry.path


@dataclass(frozen=True, slots=True)
class Skipped:
    """Something under the root that was not scanned, and why."""

    rel: str
    reason: SkipReason
    detail: str = ""


@dataclass(slots=True)
class WalkResult:
    """Every regular, non-ignored file under the root plus what was left out."""

    files: list[WalkEntry] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    ignored: int = 0


def walk_tree(root: Path, *, respect_gitignore: bool = True, extra_ignores: Sequence[str] = ()) -> WalkResult:
    """List the files under `root` in a stable order, honouring .gitignore files and `extra_ignores`.

    `extra_ignores` are gitignore-syntax patterns applied at the root, below the root's own .gitignore.
    Never raises for what it finds under the root; an unreadable root raises OSError.
    """
    root_str = os.path.realpath(root)
    result = WalkResult()
    base_rules = parse_gitignore(extra_ignores)
    if respect_gitignore:
        base_rules = parse_gitignore(_read_lines(os.path.join(root_str, ".git", "info", "exclude"))) + base_rules
    top = IgnoreStack(base_rules, "", None) if base_rules else None
    os.scandir(root_str).close()  # an unreadable root is the caller's error, not a skipped directory
    stack: list[tuple[str, str, IgnoreStack | None]] = [(root_str, "", top)]
    while stack:
        directory, rel_dir, rules = stack.pop()
        try:
            with os.scandir(directory) as iterator:
                entries = list(iterator)
        except OSError as e:
            result.skipped.append(Skipped(rel_dir, SkipReason.UNREADABLE_DIRECTORY, e.strerror or str(e)))
            continue
        if respect_gitignore and any(e.name == ".gitignore" for e in entries):
            own = parse_gitignore(_read_lines(os.path.join(directory, ".gitignore")))
            if own:
                rules = IgnoreStack(own, rel_dir, rules)
        subdirs = []
        for entry in entries:
            name = entry.name
            rel = f"{rel_dir}/{name}" if rel_dir else name
            try:
                if entry.is_symlink():
                    result.skipped.append(_classify_symlink(entry.path, rel, root_str))
                    continue
                is_dir = entry.is_dir(follow_symlinks=False)
                if is_dir and name in ALWAYS_SKIPPED_DIRS:
                    continue
                if rules is not None and rules.ignored(rel, name, is_dir):
                    result.ignored += 1
                    continue
                if is_dir:
                    subdirs.append((entry.path, rel, rules))
                elif entry.is_file(follow_symlinks=False):
                    result.files.append(WalkEntry(rel, entry))
                else:
                    result.skipped.append(
                        Skipped(rel, SkipReason.SPECIAL_FILE, "not a regular file (FIFO, socket or device)")
                    )
            except OSError as e:
                result.skipped.append(Skipped(rel, SkipReason.UNREADABLE, e.strerror or str(e)))
        stack.extend(subdirs)
    # one sort at the end gives a stable order for reports and the cache, cheaper than one per directory
    result.files.sort(key=attrgetter("rel"))
    result.skipped.sort(key=attrgetter("rel"))
    return result


def _classify_symlink(path: str, rel: str, root: str) -> Skipped:
    try:
        target_stat = os.stat(path)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return Skipped(rel, SkipReason.SYMLINK_LOOP, "the link resolves to itself through a cycle of links")
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            return Skipped(rel, SkipReason.SYMLINK_DANGLING, f"target {os.readlink(path)!r} does not exist")
        return Skipped(rel, SkipReason.UNREADABLE, e.strerror or str(e))
    target = os.path.realpath(path)
    if target != root and not target.startswith(root + os.sep):
        return Skipped(rel, SkipReason.SYMLINK_OUTSIDE_ROOT, "target is outside the scanned root")
    link_dir = os.path.dirname(os.path.join(root, rel))
    if stat.S_ISDIR(target_stat.st_mode) and (link_dir == target or link_dir.startswith(target + os.sep)):
        return Skipped(rel, SkipReason.SYMLINK_LOOP, "the link points at a directory that contains it")
    return Skipped(rel, SkipReason.SYMLINK, f"target {os.path.relpath(target, root)} is scanned at its own path")


def _read_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read().splitlines()
    except OSError:
        # no such file (the usual case) or an unreadable one: no rules from it, as git does
        return []


def read_regular_file(path: str, limit: int) -> bytes:
    """The bytes of a regular file, at most `limit` + 1 of them; refuses symlinks and special files.

    O_NOFOLLOW and O_NONBLOCK mean a file swapped for a symlink or a FIFO after the walk cannot make the
    read escape the root or block. Raises OSError (with a message saying what was expected).
    """
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise OSError(errno.EINVAL, "expected a regular file, found a special file")
        chunks = []
        remaining = limit + 1
        while remaining > 0:
            wanted = min(remaining, max(info.st_size + 1, 65536))
            chunk = os.read(fd, wanted)
            chunks.append(chunk)
            remaining -= len(chunk)
            if len(chunk) < wanted:
                break  # a short read of a regular file is its end: no extra read() just to see b""
        return chunks[0] if len(chunks) == 1 else b"".join(chunks)
    finally:
        os.close(fd)
