"""Fail any test that blocks an event loop for more than 100 ms (issue 12, item 8c).

The product promises that nothing blocks the event loop: scans, file and SQLite work, subprocess and psutil
waits go through `asyncio.to_thread`. This plugin holds every test to that promise. While a test runs (set-up,
call and teardown), each callback an asyncio loop runs -- a task step, a `call_soon`/`call_later` callback, an
I/O callback -- is timed, on every loop and in every thread. A callback that keeps its loop for longer than
the limit fails the test with the callback's name, the time it took, where the loop thread was while blocked,
and how to fix it.

Decisions, and why:

- How callbacks are timed. Every asyncio callback, task steps included, runs through `asyncio.Handle._run`;
  the plugin wraps it while pytest runs. asyncio's debug mode (`slow_callback_duration`) was the other way:
  it records a stack on every `call_soon`, which slows the whole suite several-fold and so inflates the very
  durations it measures, and it changes behaviour beyond timing (it raises on cross-thread calls).
- What counts is the loop thread's own time, not the wall clock. On a shared 2-core CI machine a thread
  that is ready to run can wait well over 100 ms for a CPU; that wait is not the callback's doing. On Linux
  the kernel counts it per thread (`/proc/thread-self/schedstat`, second field: run-queue delay), and the
  plugin subtracts it. What remains is the time the callback spent running or blocked in a call -- exactly
  what a `time.sleep(0.2)`, a blocking read or a `subprocess.run` costs. Where schedstat is missing
  (another OS) the wall time is used, which can only fail more, never less.
- Excluded: the first import of a module and garbage collection. A first import inside a coroutine costs a
  one-off few hundred ms in whichever test happens to run it first (the order of tests decides who pays);
  a full garbage collection lands in a callback the test did not choose. Both are timed exactly (by
  wrapping importlib's `_find_and_load` and through `gc.callbacks`) and subtracted, so a callback that
  imports something and then sleeps is still caught.
- Test set-up and teardown are guarded too: async fixtures start and stop the product's servers on the
  same loop, and a blocking shutdown is a product bug like any other. A block in set-up is reported with
  the test's call; a block during teardown errors the teardown.
- The legitimate exceptions are marked `@pytest.mark.allows_loop_block(reason="...")`: the blocks are
  still measured, and the reason is printed with them in the summary. The reason is required.
- The limit is `--loop-block-limit-ms` (default 100; 0 turns the guard off, e.g. when profiling).

While a callback runs past 60 % of the limit, a sampler thread records the loop thread's stack, so the
report says where it was blocked (`time.sleep` in which function), not only which task it was.
"""

from __future__ import annotations

import asyncio
import gc
import importlib._bootstrap as importlib_bootstrap
import os
import sys
import threading
import time
import traceback
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

DEFAULT_LIMIT_MS = 100
MARKER = "allows_loop_block"
PROJECT_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_EVERY_SECONDS = 0.02
SAMPLE_AT_FRACTION = 0.6
FIX_HINT = (
    "Move the blocking work off the loop: `await asyncio.to_thread(fn, *args)` for file, SQLite, psutil and "
    "other blocking calls; `asyncio.create_subprocess_exec` instead of subprocess.run; `await asyncio.sleep` "
    f'instead of time.sleep. If the block is deliberate, mark the test @pytest.mark.{MARKER}(reason="...").'
)


def own_seconds(wall: float, run_queue_delay: float, excluded: float) -> float:
    """The time a callback held its loop itself: wall time minus waiting for a CPU and minus excluded work."""
    return max(0.0, wall - run_queue_delay - excluded)


def parse_schedstat(raw: bytes | None) -> tuple[float, float] | None:
    """(seconds on the CPU, seconds waiting in the run queue) from a schedstat line; None if unreadable."""
    if not raw:
        return None
    fields = raw.split()
    if len(fields) < 2:
        return None
    try:
        return int(fields[0]) / 1e9, int(fields[1]) / 1e9
    except ValueError:
        return None


@dataclass
class Block:
    """One callback that held its loop for longer than the limit."""

    phase: str
    callback: str
    own: float
    wall: float
    on_cpu: float | None
    where: str

    def describe(self) -> str:
        if self.on_cpu is None:
            how = ""
        elif self.on_cpu >= self.own / 2:
            how = f"; {self.on_cpu * 1000:.0f} ms of it on the CPU, so it was computing"
        else:
            how = f"; only {self.on_cpu * 1000:.0f} ms of it on the CPU, so it waited on a blocking call"
        lines = [f"{self.callback} held the loop for {self.own * 1000:.0f} ms during {self.phase}{how}"]
        if self.wall - self.own >= 0.005:
            lines[0] += f" (wall {self.wall * 1000:.0f} ms, less time waiting for a CPU, first imports and GC)"
        if self.where:
            lines.append("    the loop thread was in:\n" + self.where)
        return "\n".join(lines)


class _ThreadCounters(threading.local):
    """Per thread: the schedstat file and the seconds spent in first imports and garbage collection."""

    def __init__(self) -> None:
        self.excluded = 0.0
        self.import_depth = 0
        self.gc_started: tuple[float, float] | None = None
        self.fd: int | None = None
        self.opened = False

    def schedstat(self) -> bytes | None:
        if not self.opened:
            # Opened lazily, only in threads that run a loop; closed when the thread object goes.
            self.opened = True
            try:
                self.fd = os.open("/proc/thread-self/schedstat", os.O_RDONLY)
            except OSError:
                return None
            weakref.finalize(threading.current_thread(), os.close, self.fd)
        if self.fd is None:
            return None
        try:
            return os.pread(self.fd, 128, 0)
        except OSError:
            return None

    def run_delay(self) -> float:
        """Seconds this thread has waited for a CPU so far; 0 in threads that run no loop (not read there)."""
        if self.fd is None:
            return 0.0
        parsed = parse_schedstat(self.schedstat())
        return parsed[1] if parsed is not None else 0.0

    def exclude(self, started: tuple[float, float]) -> None:
        """Add the own time since `started` (perf_counter, run delay) to the excluded seconds."""
        self.excluded += own_seconds(time.perf_counter() - started[0], self.run_delay() - started[1], 0.0)


@dataclass
class _Running:
    handle: asyncio.Handle
    started: float
    where: str = ""


@dataclass
class _Watch:
    """What one test's loops did: the callbacks running now (per thread) and the blocks found."""

    limit: float
    phase: str = "setup"
    running: dict[int, _Running] = field(default_factory=dict)
    blocks: list[Block] = field(default_factory=list)


def describe_callback(handle: asyncio.Handle) -> str:
    """Name what a handle runs: the task and its coroutine for a task step, else the callback itself."""
    callback = getattr(handle, "_callback", None)
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        coro = owner.get_coro()
        code = getattr(coro, "cr_code", None) or getattr(coro, "gi_code", None)
        name = getattr(coro, "__qualname__", repr(coro))
        at = f" ({_short(code.co_filename)}:{code.co_firstlineno})" if code is not None else ""
        return f"task {owner.get_name()!r} running {name}(){at}"
    text = repr(handle)
    return text if len(text) <= 200 else text[:197] + "..."


def _short(filename: str) -> str:
    try:
        return str(Path(filename).resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return filename


def _format_stack(frame: Any) -> str:
    """The innermost frames of the loop thread's stack, without the test runner's, asyncio's and ours.

    Empty when the thread is inside asyncio's own callback dispatch: the callback is then a C function (such
    as `time.sleep` passed to `call_soon`) and its name in the report says all there is."""
    entries = traceback.extract_stack(frame)
    if entries and entries[-1].filename.endswith(("asyncio/events.py", "asyncio/base_events.py")):
        return ""
    kept = [entry for entry in entries if not any(part in entry.filename for part in _RUNNER_PATHS)]
    shown = kept[-4:]
    # deep inside a library, the innermost frame of our own code is the line to change: show it too
    ours = [entry for entry in kept if _is_ours(entry.filename)]
    if ours and ours[-1] not in shown:
        return "".join(traceback.format_list([ours[-1]])) + "  ...\n" + "".join(traceback.format_list(shown)).rstrip()
    return "".join(traceback.format_list(shown)).rstrip()


def _is_ours(filename: str) -> bool:
    return filename.startswith(str(PROJECT_ROOT)) and "/site-packages/" not in filename


_RUNNER_PATHS = ("/asyncio/", "/_pytest/", "/pytest/", "/pluggy/", "/pytest_asyncio/", "<frozen ", __file__)


class LoopGuard:
    """The plugin: times every asyncio callback during each test and fails the test on a block."""

    def __init__(self, limit_seconds: float) -> None:
        self.limit = limit_seconds
        self.watch: _Watch | None = None
        self.allowed: list[tuple[str, str, list[Block]]] = []
        self._counters = _ThreadCounters()
        self._stop = threading.Event()
        self._sampler: threading.Thread | None = None
        self._undo: list[Callable[[], None]] = []

    # -- installing the probes -----------------------------------------------------------------------------

    def install(self) -> None:
        original_run = asyncio.Handle._run
        guard = self

        def timed_run(handle: asyncio.Handle) -> None:
            watch = guard.watch
            if watch is None:
                original_run(handle)
                return
            guard._timed(watch, handle, original_run)

        asyncio.Handle._run = timed_run  # type: ignore[method-assign]
        self._undo.append(lambda: setattr(asyncio.Handle, "_run", original_run))

        original_load = getattr(importlib_bootstrap, "_find_and_load", None)
        if original_load is not None:
            counters = self._counters

            def timed_load(*args: Any, **kwargs: Any) -> Any:
                counters.import_depth += 1
                # its own time only: the CPU wait inside an import is already left out of the callback's
                started = (time.perf_counter(), counters.run_delay())
                try:
                    return original_load(*args, **kwargs)
                finally:
                    counters.import_depth -= 1
                    if counters.import_depth == 0:
                        counters.exclude(started)

            importlib_bootstrap._find_and_load = timed_load  # type: ignore[attr-defined]
            self._undo.append(lambda: setattr(importlib_bootstrap, "_find_and_load", original_load))

        gc.callbacks.append(self._on_gc)
        self._undo.append(lambda: gc.callbacks.remove(self._on_gc))

        self._sampler = threading.Thread(target=self._sample, name="loop-guard-sampler", daemon=True)
        self._sampler.start()

    def uninstall(self) -> None:
        self._stop.set()
        if self._sampler is not None:
            self._sampler.join(timeout=1.0)
        for undo in reversed(self._undo):
            undo()
        self._undo.clear()

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        counters = self._counters
        if phase == "start":
            counters.gc_started = (time.perf_counter(), counters.run_delay())
        elif counters.gc_started is not None:
            counters.exclude(counters.gc_started)
            counters.gc_started = None

    def _timed(self, watch: _Watch, handle: asyncio.Handle, original_run: Callable[[asyncio.Handle], None]) -> None:
        counters = self._counters
        thread = threading.get_ident()
        outer = watch.running.get(thread)
        sched_before = counters.schedstat()
        excluded_before = counters.excluded
        running = _Running(handle, time.perf_counter())
        watch.running[thread] = running
        try:
            original_run(handle)
        finally:
            wall = time.perf_counter() - running.started
            if outer is None:
                watch.running.pop(thread, None)
            else:
                watch.running[thread] = outer
            if wall > watch.limit:
                self._judge(
                    watch, running, wall, sched_before, counters.schedstat(), counters.excluded - excluded_before
                )

    def _judge(
        self,
        watch: _Watch,
        running: _Running,
        wall: float,
        sched_before: bytes | None,
        sched_after: bytes | None,
        excluded: float,
    ) -> None:
        before, after = parse_schedstat(sched_before), parse_schedstat(sched_after)
        if before is not None and after is not None:
            on_cpu, waited = after[0] - before[0], after[1] - before[1]
        else:
            on_cpu, waited = None, 0.0
        own = own_seconds(wall, waited, excluded)
        if own > watch.limit:
            callback = describe_callback(running.handle)
            watch.blocks.append(Block(watch.phase, callback, own, wall, on_cpu, running.where))

    def _sample(self) -> None:
        """Record where each loop thread is while a callback runs past most of the limit."""
        while not self._stop.wait(SAMPLE_EVERY_SECONDS):
            watch = self.watch
            if watch is None:
                continue
            now = time.perf_counter()
            for thread, running in list(watch.running.items()):
                if running.where or now - running.started < watch.limit * SAMPLE_AT_FRACTION:
                    continue
                frame = sys._current_frames().get(thread)
                if frame is not None:
                    running.where = _format_stack(frame)

    # -- pytest hooks ----------------------------------------------------------------------------------------

    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        for item in items:
            _reason(item)  # a marker without a reason is a usage error, raised before any test runs

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> Iterator[None]:
        self.watch = _Watch(self.limit, "set-up")
        return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_call(self, item: pytest.Item) -> Iterator[None]:
        watch = self.watch
        if watch is not None:
            watch.phase = "the test"
        try:
            result = yield
        except BaseException as error:
            if watch is not None and watch.blocks and not _reason(item):
                error.add_note(_report(watch.blocks, self.limit))
            raise
        if watch is not None and watch.blocks:
            self._verdict(item, watch.blocks)
            watch.blocks = []
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(self, item: pytest.Item) -> Iterator[None]:
        watch = self.watch
        if watch is not None:
            watch.blocks = []  # blocks in set-up or the call were reported with the call
            watch.phase = "teardown"
        try:
            result = yield
        finally:
            self.watch = None
        if watch is not None and watch.blocks:
            self._verdict(item, watch.blocks)
        return result

    def _verdict(self, item: pytest.Item, blocks: list[Block]) -> None:
        reason = _reason(item)
        if reason:
            self.allowed.append((item.nodeid, reason, list(blocks)))
            return
        pytest.fail(_report(blocks, self.limit), pytrace=False)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.allowed:
            return
        terminalreporter.section("loop blocks allowed by @pytest.mark.allows_loop_block")
        for nodeid, reason, blocks in self.allowed:
            terminalreporter.write_line(f"{nodeid}: {reason}")
            for block in blocks:
                terminalreporter.write_line(f"    {block.callback}: {block.own * 1000:.0f} ms during {block.phase}")


def _reason(item: pytest.Item) -> str:
    marker = item.get_closest_marker(MARKER)
    if marker is None:
        return ""
    reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
    if not isinstance(reason, str) or not reason.strip():
        raise pytest.UsageError(
            f'{item.nodeid}: @pytest.mark.{MARKER} needs reason="why this test may block the loop"; got {marker!r}'
        )
    return reason.strip()


def _report(blocks: list[Block], limit: float) -> str:
    limit_ms = round(limit * 1000)
    head = f"loop guard: the event loop was blocked longer than the limit ({limit_ms} ms) {len(blocks)} time(s):"
    return "\n".join([head, *(block.describe() for block in blocks[:5]), FIX_HINT])


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--loop-block-limit-ms",
        type=int,
        default=DEFAULT_LIMIT_MS,
        help=f"fail a test whose loop callback holds its loop longer than this (default {DEFAULT_LIMIT_MS}; 0: off)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}(reason): this test may block the event loop; the reason is printed")
    limit_ms = config.getoption("--loop-block-limit-ms")
    if limit_ms <= 0:
        return
    guard = LoopGuard(limit_ms / 1000)
    guard.install()
    config.pluginmanager.register(guard, "loop-guard")
    config.add_cleanup(guard.uninstall)
