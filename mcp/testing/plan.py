"""What one test run will do: the project root, the interpreter, the commands, and the code fingerprint.

Checks here are cheap and synchronous except `code_fingerprint`, which walks the tree and is called
through `asyncio.to_thread`.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# what a run's outcome depends on: the code, and the files that configure pytest and coverage
_FINGERPRINT_SUFFIXES = (".py", ".pyi", ".toml", ".cfg", ".ini")
_FINGERPRINT_NAMES = frozenset({".coveragerc", "conftest.py"})
_SKIPPED_DIRS = frozenset({"__pycache__", "node_modules"})


class BadArgumentError(ValueError):
    """A test path or source package that could escape the project or be read as an option; fix the call."""


@dataclass(frozen=True)
class RunPlan:
    """Everything a run needs, validated: build it with `make_plan`."""

    root: Path
    python: Path
    test_paths: tuple[str, ...]
    source_packages: tuple[str, ...]

    def coverage_run_argv(self, junit_xml: Path) -> list[str]:
        """`python -m coverage run [--source …] -m pytest <paths> -q …`: the project's own config decides the rest."""
        argv = [str(self.python), "-m", "coverage", "run"]
        if self.source_packages:
            argv.append("--source=" + ",".join(self.source_packages))
        argv += ["-m", "pytest", *self.test_paths, "-q", "-p", "no:cacheprovider"]
        # one progress character per test and "[done/total]" per line: progress without a plugin
        argv += ["-o", "console_output_style=count", f"--junitxml={junit_xml}"]
        return argv

    def coverage_json_argv(self, json_path: Path) -> list[str]:
        return [str(self.python), "-m", "coverage", "json", "-q", "-o", str(json_path)]

    def coverage_combine_argv(self) -> list[str]:
        return [str(self.python), "-m", "coverage", "combine", "-q"]

    def fingerprint_salt(self) -> list[str]:
        """The run's settings, part of the fingerprint: other paths or another interpreter mean another run."""
        return [str(self.python), *self.test_paths, "--", *self.source_packages]


def resolve_root(root: Path) -> Path | None:
    """The absolute project root, or None when it is not an existing directory."""
    try:
        resolved = root.expanduser().resolve()
    except (OSError, RuntimeError):
        return None
    return resolved if resolved.is_dir() else None


def default_interpreter(root: Path) -> Path:
    """The project's own `.venv/bin/python` when there is one, else the sidecar's interpreter."""
    candidate = root / ".venv" / "bin" / "python"
    return candidate if candidate.exists() else Path(sys.executable)


def interpreter_problem(python: Path) -> str | None:
    """Why `python` cannot be executed, or None when it can (its symlink is kept: venvs rely on it)."""
    if not python.exists():
        return f"interpreter {python} does not exist: set MCP_TESTING_PYTHON or --python to an existing python"
    if not python.is_file():
        return f"interpreter {python} is not a file"
    if not os.access(python, os.X_OK):
        return f"interpreter {python} is not executable: chmod +x it or point to another python"
    return None


def _validated(root: Path, value: object, kind: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise BadArgumentError(f"{kind}: expected a non-empty string, received {value!r}")
    if value.startswith("-") or "\x00" in value:
        raise BadArgumentError(f"{kind}: expected a path inside the project, received an option-like {value!r}")
    file_part = value.split("::", 1)[0]  # pytest node ids: tests/test_x.py::test_y
    if Path(file_part).is_absolute():
        raise BadArgumentError(f"{kind}: expected a path relative to {root}, received absolute {value!r}")
    if not (root / file_part).resolve().is_relative_to(root):
        raise BadArgumentError(f"{kind}: expected a path inside {root}, received {value!r} which leaves it")
    return value


def validate_test_paths(root: Path, paths: Sequence[object]) -> tuple[str, ...]:
    """Test paths / node ids as given, once each is known to stay inside `root` and not to be an option."""
    if isinstance(paths, str):
        raise BadArgumentError(f"test paths: expected a list of strings, received the string {paths!r}")
    return tuple(_validated(root, path, "test path") for path in paths)


def validate_sources(root: Path, sources: Sequence[object]) -> tuple[str, ...]:
    """Source packages (module names or folders) for `coverage run --source`."""
    if isinstance(sources, str):
        raise BadArgumentError(f"source packages: expected a list of strings, received the string {sources!r}")
    checked = []
    for source in sources:
        value = _validated(root, source, "source package")
        if "," in value:
            raise BadArgumentError(f"source package: expected one name per entry, received {value!r} with a comma")
        checked.append(value)
    return tuple(checked)


def make_plan(root: Path, python: Path, test_paths: Sequence[object], sources: Sequence[object]) -> RunPlan:
    """A validated plan; raises BadArgumentError for paths or packages that are not acceptable."""
    return RunPlan(
        root=root,
        python=python,
        test_paths=validate_test_paths(root, test_paths),
        source_packages=validate_sources(root, sources),
    )


def _is_virtualenv(directory: str) -> bool:
    return os.path.exists(os.path.join(directory, "pyvenv.cfg"))


def code_fingerprint(root: Path, salt: Sequence[str] = ()) -> str:
    """SHA-256 over (path, size, mtime_ns) of the code and config files under `root`, plus `salt`.

    Hidden folders, caches and virtualenvs (any folder holding pyvenv.cfg) are skipped: they are not the
    project's code. Symlinked folders are not followed. Blocking: call it through asyncio.to_thread.
    """
    digest = hashlib.sha256()
    for part in salt:
        digest.update(part.encode("utf-8", errors="surrogateescape") + b"\x00")
    entries: list[str] = []
    for directory, subdirs, files in os.walk(root):
        subdirs[:] = [
            name
            for name in subdirs
            if not name.startswith(".")
            and name not in _SKIPPED_DIRS
            and not name.endswith(".egg-info")
            and not _is_virtualenv(os.path.join(directory, name))
        ]
        for name in files:
            if not (name.endswith(_FINGERPRINT_SUFFIXES) or name in _FINGERPRINT_NAMES):
                continue
            path = os.path.join(directory, name)
            try:
                stat = os.stat(path)
            except OSError:
                continue  # deleted while we walked: the next fingerprint will not see it either
            entries.append(f"{os.path.relpath(path, root)}\x00{stat.st_size}\x00{stat.st_mtime_ns}")
    for entry in sorted(entries):
        digest.update(entry.encode("utf-8", errors="surrogateescape") + b"\n")
    return digest.hexdigest()


def interpreter_identity(python: Path) -> str:
    """Changes when the interpreter is replaced (a rebuilt venv), so the next run is not skipped."""
    try:
        stat = python.stat()
    except OSError:
        return f"{python}:missing"
    return f"{python}:{stat.st_size}:{stat.st_mtime_ns}"


@dataclass(frozen=True)
class Preparation:
    """The outcome of the checks before a run: a plan and its fingerprint, or the problem found."""

    plan: RunPlan | None
    fingerprint: str | None
    problem: str | None
    problem_kind: str | None  # "missing_project", "missing_interpreter" or "bad_arguments"
    root: Path | None
    python: Path | None


def choose_interpreter(root: Path, configured: Path | None) -> Path:
    """The configured interpreter (relative: to the project root), else `default_interpreter(root)`."""
    if configured is None:
        return default_interpreter(root)
    python = Path(configured).expanduser()
    return python if python.is_absolute() else root / python


def prepare_run(
    root_setting: Path, python_setting: Path | None, test_paths: Sequence[object], sources: Sequence[object]
) -> Preparation:
    """Every check before a run, then the fingerprint. Blocking (stats, a tree walk): call it in a thread."""
    root = resolve_root(root_setting)
    if root is None:
        message = f"project root {root_setting} is not an existing directory: set MCP_TESTING_PROJECT_ROOT"
        return Preparation(None, None, message, "missing_project", None, None)
    python = choose_interpreter(root, python_setting)
    problem = interpreter_problem(python)
    if problem is not None:
        return Preparation(None, None, problem, "missing_interpreter", root, python)
    try:
        plan = make_plan(root, python, test_paths, sources)
    except BadArgumentError as e:
        return Preparation(None, None, str(e), "bad_arguments", root, python)
    fingerprint = code_fingerprint(root, [*plan.fingerprint_salt(), interpreter_identity(python)])
    return Preparation(plan, fingerprint, None, None, root, python)
