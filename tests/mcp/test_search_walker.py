"""The tree walk: .gitignore semantics (checked against git itself), symlinks, special files."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from mcp.search.gitignore import IgnoreStack, compile_rule, parse_gitignore, translate_glob
from mcp.search.walker import SkipReason, read_regular_file, walk_tree


@pytest.mark.parametrize(
    ("glob", "path", "matches"),
    [
        ("*.py", "a.py", True),
        ("*.py", "dir/a.py", False),  # '*' never crosses '/'
        ("a?c", "abc", True),
        ("a?c", "a/c", False),
        ("**/cache", "cache", True),
        ("**/cache", "x/y/cache", True),
        ("docs/**", "docs/a/b.md", True),
        ("docs/**", "docs", False),
        ("a/**/z", "a/z", True),
        ("a/**/z", "a/b/c/z", True),
        ("[ab]x", "bx", True),
        ("[!ab]x", "cx", True),
        ("[!ab]x", "ax", False),
        ("[a-c]1", "b1", True),
        ("x[", "x[", True),  # an unclosed bracket is literal
        ("\\*.txt", "*.txt", True),
        ("\\*.txt", "a.txt", False),
        ("a**b", "axxb", True),  # '**' not next to '/' is a plain '*'
    ],
)
def test_translate_glob(glob: str, path: str, matches: bool) -> None:
    import re

    assert (re.match(translate_glob(glob), path, re.S) is not None) is matches


@pytest.mark.parametrize(
    ("line", "negated", "dir_only", "anchored"),
    [
        ("build/", False, True, False),
        ("/top.txt", False, False, True),
        ("!keep.log", True, False, False),
        ("docs/*.md", False, False, True),
        ("\\!literal", False, False, False),
    ],
)
def test_rule_flags(line: str, negated: bool, dir_only: bool, anchored: bool) -> None:
    rule = compile_rule(line)
    assert rule is not None
    assert (rule.negated, rule.dir_only, rule.anchored) == (negated, dir_only, anchored)


@pytest.mark.parametrize("line", ["", "   ", "# a comment", "/"])
def test_non_pattern_lines_are_skipped(line: str) -> None:
    assert compile_rule(line) is None


def test_last_matching_line_wins_and_deeper_files_win() -> None:
    root = IgnoreStack(parse_gitignore(["*.log", "!keep.log"]), "", None)
    sub = IgnoreStack(parse_gitignore(["keep.log"]), "sub", root)
    assert root.ignored("a.log", "a.log", is_dir=False)
    assert not root.ignored("keep.log", "keep.log", is_dir=False)
    assert sub.ignored("sub/keep.log", "keep.log", is_dir=False)
    assert not sub.ignored("sub/x.py", "x.py", is_dir=False)


GITIGNORE = """\
# comments and blank lines are skipped

*.log
!keep.log
build/
/top_only.txt
docs/**/*.tmp
**/cache
a/**/z.txt
\\#hash.txt
[ab]x.txt
data?.csv
trailing.txt   \n"""

SUB_GITIGNORE = """\
*.py
!keep.py
deep/
"""

FILES = [
    "app.log", "keep.log", "main.py", "build/out.bin", "src/build/x.py", "top_only.txt", "src/top_only.txt",
    "docs/a/b/c.tmp", "docs/c.tmp", "docs/readme.md", "cache/x", "src/cache/y", "a/z.txt", "a/b/c/z.txt",
    "a/b/y.txt", "#hash.txt", "ax.txt", "bx.txt", "cx.txt", "data1.csv", "data10.csv", "trailing.txt",
    "sub/one.py", "sub/keep.py", "sub/deep/x.txt", "sub/deeper/x.txt", "sub/notes.txt", "build.txt",
]  # fmt: skip


def build_tree(root: Path) -> None:
    (root / ".gitignore").write_text(GITIGNORE)
    (root / "sub").mkdir()
    (root / "sub" / ".gitignore").write_text(SUB_GITIGNORE)
    for rel in FILES:
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x\n")


def test_walk_applies_the_gitignore_files(tmp_path: Path) -> None:
    build_tree(tmp_path)
    found = {entry.rel for entry in walk_tree(tmp_path).files}
    assert found == {
        ".gitignore", "keep.log", "main.py", "src/top_only.txt", "docs/readme.md", "a/b/y.txt",
        "cx.txt", "data10.csv", "sub/.gitignore", "sub/keep.py", "sub/deeper/x.txt", "sub/notes.txt", "build.txt",
    }  # fmt: skip


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_walk_agrees_with_git_ls_files(tmp_path: Path) -> None:
    """Our matcher against the reference implementation: `git ls-files -co --exclude-standard`."""
    build_tree(tmp_path)
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True, env=env, timeout=30)
    listed = subprocess.run(
        ["git", "-C", str(tmp_path), "ls-files", "-co", "--exclude-standard", "-z"],
        check=True,
        capture_output=True,
        env=env,
        timeout=30,
    ).stdout.decode()
    by_git = {path for path in listed.split("\0") if path}
    assert {entry.rel for entry in walk_tree(tmp_path).files} == by_git


def test_git_info_exclude_and_extra_patterns_apply(tmp_path: Path) -> None:
    (tmp_path / ".git" / "info").mkdir(parents=True)
    (tmp_path / ".git" / "info" / "exclude").write_text("secret.txt\n")
    for name in ("secret.txt", "vendor/lib.py", "app.py"):
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x")
    walk = walk_tree(tmp_path, extra_ignores=["/vendor/"])
    assert [entry.rel for entry in walk.files] == ["app.py"]
    assert walk.ignored == 2
    unfiltered = walk_tree(tmp_path, respect_gitignore=False).files
    assert {entry.rel for entry in unfiltered} == {"secret.txt", "app.py", "vendor/lib.py"}


def test_symlinks_are_reported_not_followed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "real.py").write_text("x = 1\n")
    (tmp_path / "outside.py").write_text("secret = 1\n")
    (root / "pkg" / "alias.py").symlink_to("real.py")
    (root / "pkg" / "up").symlink_to("..")  # a loop if followed
    (root / "self").symlink_to("self")  # resolves to itself: ELOOP
    (root / "a").symlink_to("b")
    (root / "b").symlink_to("a")
    (root / "escape.py").symlink_to(tmp_path / "outside.py")
    (root / "dangling.py").symlink_to(root / "missing.py")
    walk = walk_tree(root)
    assert [entry.rel for entry in walk.files] == ["pkg/real.py"]
    reasons = {s.rel: s.reason for s in walk.skipped}
    assert reasons == {
        "pkg/alias.py": SkipReason.SYMLINK,
        "pkg/up": SkipReason.SYMLINK_LOOP,
        "self": SkipReason.SYMLINK_LOOP,
        "a": SkipReason.SYMLINK_LOOP,
        "b": SkipReason.SYMLINK_LOOP,
        "escape.py": SkipReason.SYMLINK_OUTSIDE_ROOT,
        "dangling.py": SkipReason.SYMLINK_DANGLING,
    }


def test_special_files_are_never_opened(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.py")  # opening a FIFO for reading would block the scan forever
    with socket.socket(socket.AF_UNIX) as server:
        server.bind(str(tmp_path / "sock.py"))
        walk = walk_tree(tmp_path)
    assert walk.files == []
    assert {(s.rel, s.reason) for s in walk.skipped} == {
        ("pipe.py", SkipReason.SPECIAL_FILE),
        ("sock.py", SkipReason.SPECIAL_FILE),
    }


def test_reading_refuses_fifos_and_symlinks_swapped_in_after_the_walk(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe.py")
    with pytest.raises(OSError, match="expected a regular file"):
        read_regular_file(str(tmp_path / "pipe.py"), 100)
    (tmp_path / "target.py").write_text("x")
    (tmp_path / "link.py").symlink_to(tmp_path / "target.py")
    with pytest.raises(OSError):
        read_regular_file(str(tmp_path / "link.py"), 100)


def test_reading_stops_after_the_limit(tmp_path: Path) -> None:
    (tmp_path / "big.py").write_bytes(b"x" * 5000)
    assert len(read_regular_file(str(tmp_path / "big.py"), 100)) == 101
    assert read_regular_file(str(tmp_path / "big.py"), 10_000) == b"x" * 5000
    (tmp_path / "empty.py").write_bytes(b"")
    assert read_regular_file(str(tmp_path / "empty.py"), 100) == b""


def test_an_unreadable_root_is_the_callers_error(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        walk_tree(tmp_path / "missing")
