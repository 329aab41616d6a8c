"""Run one command of a test run as a contained subprocess: no shell, stdin closed, own process group led
by a wrapper that dies with the sidecar (mcp.containment.wrapper), SCHED_IDLE, bounded output, and a
timeout that kills the whole group (grandchildren included; with a cgroup, setsid escapes too).

Priority: the command is wrapped in the `nice` and `ionice` executables when they exist (resolved with
`shutil.which`), so the low priority holds from the first instruction and no `preexec_fn` (unsafe with
threads) is needed. Niceness is a target, not an increment: a sidecar that systemd already runs at
Nice=10 does not push its tests to 19. Without the executables, the priority is set on the child's pid
right after spawn (`os.setpriority`, psutil's `ionice`): the child then runs a few milliseconds at the
parent's priority, which is harmless.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import errno
import logging
import os
import shutil
import signal
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import psutil

from mcp.containment.runtime import Containment, RunSlot, wrapper_prefix

logger = logging.getLogger(__name__)

DEFAULT_NICENESS = 10
DEFAULT_KILL_GRACE_SECONDS = 5.0
DEFAULT_OUTPUT_LIMIT_BYTES = 256 * 1024
# after the main process exits, how long stragglers holding the output pipe may delay us
_DRAIN_SECONDS = 5.0
_READ_CHUNK = 64 * 1024
# pytest flushes after every test; reading each character as it comes would wake the loop once per test.
# Pausing briefly after a small read batches them: progress lags by this much, the pipe never fills.
_BATCH_SECONDS = 0.05

# Our own secrets never reach the project's tests (a test could print its environment).
_SECRET_PREFIXES = ("TELEGRAM_", "CLOB_API_")
_SECRET_SUFFIXES = ("_TOKEN", "_SECRET", "_PASSWORD", "_PASSPHRASE", "PRIVATE_KEY")
# Variables that would make the child differ from a plain `coverage run -m pytest` in the project:
# pytest-cov's subprocess hooks (set when the sidecar itself runs under pytest-cov), our own pytest's
# state, options injected from the sidecar's environment. The project's own configuration decides.
# COVERAGE_*: e.g. COVERAGE_PROCESS_START / _CONFIG make coverage's .pth start measuring in every python.
_CONTROL_PREFIXES = ("COV_CORE_", "COVERAGE_")
_CONTROL_NAMES = frozenset(
    {
        "PYTEST_ADDOPTS",
        "PYTEST_PLUGINS",
        "PYTEST_CURRENT_TEST",
        "PYTEST_VERSION",
        "PYTEST_XDIST_WORKER",
        "PYTEST_XDIST_WORKER_COUNT",
        "FORCE_COLOR",
    }
)


def is_secret_env(name: str) -> bool:
    """Whether an environment variable holds one of our secrets (TELEGRAM_*, PRIVATE_KEY, *_TOKEN, CLOB_API_*)."""
    upper = name.upper()
    return upper.startswith(_SECRET_PREFIXES) or upper.endswith(_SECRET_SUFFIXES)


def is_control_env(name: str) -> bool:
    """Whether a variable steers pytest or coverage from outside the project (stripped from test runs)."""
    upper = name.upper()
    return upper in _CONTROL_NAMES or upper.startswith(_CONTROL_PREFIXES)


def child_environment(base: Mapping[str, str], coverage_file: Path) -> dict[str, str]:
    """The environment of a test run: ours minus secrets and measurement controls, plus a few fixed values."""
    env = {name: value for name, value in base.items() if not is_secret_env(name) and not is_control_env(name)}
    # coverage's data file goes to the run's temporary folder, never over the developer's own .coverage
    env["COVERAGE_FILE"] = str(coverage_file)
    # the sidecar only reads the project: no __pycache__ folders appear in the tree because of it
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    # plain text output, whatever the sidecar's terminal settings, so progress and summaries parse
    env["PY_COLORS"] = "0"
    env["NO_COLOR"] = "1"
    return env


@dataclass(frozen=True)
class PriorityPlan:
    """How the child gets its low priority: a wrapper argv, or adjustments after spawn."""

    prefix: tuple[str, ...]
    set_niceness_after_spawn: int | None
    set_idle_io_after_spawn: bool
    # issue 10: the run's wrapper puts itself (so the whole run) under SCHED_IDLE, nice 19 where refused
    sched_idle: bool = False


def plan_priority(
    target_niceness: int | None,
    current_niceness: int,
    nice_path: str | None,
    ionice_path: str | None,
) -> PriorityPlan:
    """Wrappers for niceness >= target and the idle I/O class; post-spawn fallbacks when they are missing."""
    prefix: list[str] = []
    renice: int | None = None
    if target_niceness is not None and target_niceness > current_niceness:
        if nice_path:
            prefix += [nice_path, "-n", str(target_niceness - current_niceness)]
        else:
            renice = target_niceness
    idle_after = False
    if target_niceness is not None:
        if ionice_path:
            # -t: run the command even where the idle class cannot be set (some containers)
            prefix += [ionice_path, "-c", "3", "-t"]
        else:
            idle_after = True
    return PriorityPlan(tuple(prefix), renice, idle_after, sched_idle=target_niceness is not None)


def system_priority_plan(target_niceness: int | None) -> PriorityPlan:
    """`plan_priority` for this machine and this process."""
    return plan_priority(
        target_niceness,
        os.getpriority(os.PRIO_PROCESS, 0),
        shutil.which("nice"),
        shutil.which("ionice"),
    )


def apply_priority_after_spawn(pid: int, plan: PriorityPlan) -> None:
    """The fallback when `nice`/`ionice` are not installed; failures only cost priority, so they are logged."""
    if plan.set_niceness_after_spawn is not None:
        try:
            os.setpriority(os.PRIO_PROCESS, pid, plan.set_niceness_after_spawn)
        except OSError as e:
            logger.warning("could not lower the priority of test process %d: %s", pid, e)
    if plan.set_idle_io_after_spawn and hasattr(psutil, "IOPRIO_CLASS_IDLE"):
        try:
            psutil.Process(pid).ionice(psutil.IOPRIO_CLASS_IDLE)
        except (psutil.Error, OSError) as e:
            logger.warning("could not set idle I/O priority on test process %d: %s", pid, e)


class OutputTail:
    """Keeps only the last `limit` bytes of everything appended, so a chatty suite cannot eat memory."""

    def __init__(self, limit: int = DEFAULT_OUTPUT_LIMIT_BYTES) -> None:
        if limit <= 0:
            raise ValueError(f"output limit must be a positive number of bytes, received {limit}")
        self._limit = limit
        self._buffer = bytearray()
        self.total_bytes = 0

    def append(self, chunk: bytes) -> None:
        self.total_bytes += len(chunk)
        self._buffer += chunk
        excess = len(self._buffer) - self._limit
        if excess > 0:
            del self._buffer[:excess]

    @property
    def truncated(self) -> bool:
        return self.total_bytes > len(self._buffer)

    def text(self) -> str:
        return self._buffer.decode("utf-8", errors="replace")


class SpawnError(OSError):
    """The command could not be started at all (interpreter vanished, wrapper not executable, ...)."""


@dataclass(frozen=True)
class ProcessOutcome:
    """How one command ended: its exit code (negative: killed by that signal) or a timeout."""

    exit_code: int | None
    timed_out: bool
    duration: float


OutputSink = Callable[[str], Awaitable[None]]


def _snapshot_descendants(pid: int) -> list[psutil.Process]:
    # taken before any signal: once the leader dies its children are re-parented and untraceable
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _kill_survivors(processes: Sequence[psutil.Process]) -> None:
    # children that left our process group (setsid) are not reached by killpg; psutil checks pid reuse
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.kill()


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


async def kill_process_group(proc: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM the child's group, wait `grace` for the leader, SIGKILL the group and any escaped descendant."""
    pgid = proc.pid  # process_group=0: the child leads its own group
    descendants = await asyncio.to_thread(_snapshot_descendants, proc.pid)
    _signal_group(pgid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(proc.wait(), timeout=grace)
    _signal_group(pgid, signal.SIGKILL)
    await asyncio.to_thread(_kill_survivors, descendants)
    await proc.wait()


async def _pump(stream: asyncio.StreamReader, tail: OutputTail, sink: OutputSink | None) -> None:
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    while chunk := await stream.read(_READ_CHUNK):
        tail.append(chunk)
        if sink is not None:
            await sink(decoder.decode(chunk))
        if len(chunk) < _READ_CHUNK // 2:
            await asyncio.sleep(_BATCH_SECONDS)


def contained_prefix(slot: RunSlot | None, priority: PriorityPlan, temp_folder: Path | None = None) -> list[str]:
    """The wrapper that leads the run's process group, dies with the sidecar and kills its group (and cgroup)
    when the run ends or the sidecar dies (mcp.containment.wrapper); it also puts the run under SCHED_IDLE."""
    return wrapper_prefix(
        slot.cgroup_dirs if slot is not None else (), idle=priority.sched_idle, temp_folder=temp_folder
    )


async def run_process(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    time_limit: float,
    tail: OutputTail,
    priority: PriorityPlan,
    sink: OutputSink | None = None,
    kill_grace: float = DEFAULT_KILL_GRACE_SECONDS,
    containment: Containment | None = None,
    temp_folder: Path | None = None,
) -> ProcessOutcome:
    """Run `priority.prefix + argv` contained; stdout and stderr go to `tail` (and `sink`, as text).

    With `containment`, the run also gets a cgroup (where writable) and a record in STATE_DIR; the wrapper
    removes `temp_folder` (the run's mcp-testing-* folder) if the sidecar dies mid-run.
    """
    command = [*priority.prefix, *argv]
    if shutil.which(command[0]) is None:
        # checked here because the wrapper starts the command itself: a missing program would
        # otherwise surface as an exit code instead of a clear spawn error
        raise SpawnError(errno.ENOENT, f"cannot start {command[0]!r} (cwd {cwd}): no such executable")
    slot = await asyncio.to_thread(containment.open_run) if containment is not None else None
    try:
        return await _run_contained(
            [*contained_prefix(slot, priority, temp_folder), *command],
            cwd,
            env,
            time_limit,
            tail,
            priority,
            sink,
            kill_grace,
            slot,
            containment,
        )
    finally:
        if slot is not None and containment is not None:
            # whatever escaped the group (setsid) but not the cgroup goes now
            await asyncio.shield(asyncio.to_thread(containment.close_run, slot))


async def _run_contained(
    command: list[str],
    cwd: Path,
    env: Mapping[str, str],
    time_limit: float,
    tail: OutputTail,
    priority: PriorityPlan,
    sink: OutputSink | None,
    kill_grace: float,
    slot: RunSlot | None,
    containment: Containment | None,
) -> ProcessOutcome:
    started = time.monotonic()
    try:
        proc = await asyncio.create_subprocess_exec(
            *command,
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            # a group of its own (killed as one), but not a session of its own: with autogroup scheduling a
            # new session is a scheduling group with an equal CPU share whatever its nice value, and a test
            # run would compete with the trading bot as an equal (tests/test_batch_performance.py)
            process_group=0,
        )
    except OSError as e:
        raise SpawnError(e.errno, f"cannot start {command[0]!r} (cwd {cwd}): {e.strerror or e}") from e
    apply_priority_after_spawn(proc.pid, priority)
    if slot is not None and containment is not None:
        await asyncio.to_thread(containment.run_started, slot, proc.pid)
    if proc.stdout is None:  # cannot happen with stdout=PIPE; checked so the type is narrowed honestly
        raise SpawnError(0, "the child's stdout pipe is missing")
    reader = asyncio.create_task(_pump(proc.stdout, tail, sink), name=f"test-output-{proc.pid}")
    finished = False
    timed_out = False
    try:
        try:
            await asyncio.wait_for(proc.wait(), timeout=max(0.0, time_limit))
        except TimeoutError:
            timed_out = True
            await kill_process_group(proc, kill_grace)
        else:
            # the suite is over: whatever it left running in its group goes too
            _signal_group(proc.pid, signal.SIGKILL)
        try:
            await asyncio.wait_for(asyncio.shield(reader), timeout=_DRAIN_SECONDS)
        except TimeoutError:
            logger.warning("a process outside the test's group still holds its output pipe; output cut short")
        finished = True
    finally:
        if not finished:
            # cancelled (or failed) mid-run: never leave the suite running behind us
            await asyncio.shield(kill_process_group(proc, kill_grace))
        if not reader.done():
            reader.cancel()
            # asyncio.wait does not re-raise the reader's cancellation, yet lets our own propagate
            await asyncio.wait([reader])
    return ProcessOutcome(
        exit_code=None if timed_out else proc.returncode,
        timed_out=timed_out,
        duration=time.monotonic() - started,
    )
