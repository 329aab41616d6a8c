"""Progress of a pytest run read from its own console output, and a throttled reporter for callers.

pytest is run with `-q -o console_output_style=count`: one character per finished test (`.`, `F`, `s`,
...) and, at the end of each line, `[ done/total]`. Parsing that costs the run nothing (no plugin), and
pytest flushes after every character, so progress arrives as tests finish.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[float, float | None, str], Awaitable[None]]

_COUNT_AT_END = re.compile(r"\[\s*(\d+)\s*/\s*(\d+)\s*\]\s*$")
_COLLECTED = re.compile(r"\bcollected (\d+) items?\b")
# a line still being written: optional "path.py " (normal verbosity) then one letter per finished test
_PARTIAL_LETTERS = re.compile(r"^(?:\S+\.py )?([.FEsxXfp]+)\s*$")
_PARTIAL_LIMIT = 4096


@dataclass(frozen=True)
class ProgressState:
    """Tests finished so far and the total, when pytest has said it."""

    done: int
    total: int | None


class ProgressParser:
    """Feed it the output as it arrives (any chunking); it tracks how many tests have finished."""

    def __init__(self) -> None:
        self._done_before_line = 0
        self._done = 0
        self._total: int | None = None
        self._partial = ""
        # once the report sections start (=== FAILURES ===, ____ test_x ____), dots are text, not tests
        self._over = False

    @property
    def state(self) -> ProgressState:
        return ProgressState(self._done, self._total)

    def feed(self, text: str) -> ProgressState | None:
        """Consume a chunk; return the new state when it changed, else None."""
        before = self.state
        if self._over:
            return None
        *complete, self._partial = (self._partial + text).split("\n")
        for line in complete:
            self._complete_line(line)
            if self._over:
                self._partial = ""
                return self._changed(before)
        if len(self._partial) > _PARTIAL_LIMIT:
            # a chatty test printing without newlines: this is not a progress line, stop looking at it
            self._partial = ""
        match = _PARTIAL_LETTERS.match(self._partial)
        if match:
            self._advance(self._done_before_line + len(match.group(1)))
        return self._changed(before)

    def _changed(self, before: ProgressState) -> ProgressState | None:
        after = self.state
        return after if after != before else None

    def _advance(self, done: int) -> None:
        self._done = max(self._done, done if self._total is None else min(done, self._total))

    def _complete_line(self, line: str) -> None:
        if line.startswith(("===", "___")) and "test session starts" not in line:
            self._over = True
            return
        counted = _COUNT_AT_END.search(line)
        if counted:
            self._total = int(counted.group(2))
            self._advance(int(counted.group(1)))
            self._done_before_line = self._done
            return
        collected = _COLLECTED.search(line)
        if collected:
            self._total = int(collected.group(1))
            return
        match = _PARTIAL_LETTERS.match(line)
        if match:
            self._advance(self._done_before_line + len(match.group(1)))
            self._done_before_line = self._done


class ProgressReporter:
    """Calls the caller's async `progress(progress, total, message)` with strictly increasing values.

    Units are tests, plus one last unit for the coverage report, so the final call (the status) is always
    above the last test count: MCP drops a progress value that does not increase. Routine updates are
    sent at most every `min_interval` seconds; a failing callback is logged and never stops the run.
    """

    REPORT_STEP = 1

    def __init__(
        self,
        callback: ProgressCallback | None,
        *,
        min_interval: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._callback = callback
        self._min_interval = min_interval
        self._clock = clock
        self._last_sent = float("-inf")
        self._last_value = float("-inf")
        self._state = ProgressState(0, None)

    @property
    def state(self) -> ProgressState:
        return self._state

    def _total(self) -> float | None:
        return None if self._state.total is None else float(self._state.total + self.REPORT_STEP)

    async def _send(self, progress: float, total: float | None, message: str) -> None:
        if self._callback is None or progress <= self._last_value:
            return
        self._last_sent = self._clock()
        self._last_value = progress
        try:
            await self._callback(progress, total, message)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("progress callback failed; the test run goes on without it")

    async def started(self, message: str) -> None:
        """The run is starting."""
        await self._send(0.0, None, message)

    async def tests_progressed(self, state: ProgressState) -> None:
        """Finished tests, throttled unless the total just became known."""
        newly_known_total = state.total is not None and self._state.total is None
        self._state = state
        if not newly_known_total and self._clock() - self._last_sent < self._min_interval:
            return
        of = "" if state.total is None else f"/{state.total}"
        await self._send(float(state.done), self._total(), f"{state.done}{of} tests finished")

    async def reporting(self, message: str) -> None:
        """The tests are over; the coverage report is being written."""
        await self._send(self._state.done + 0.5, self._total(), message)

    async def finished(self, message: str) -> None:
        """The end, with the outcome: progress equals total."""
        final = float(self._state.done if self._state.total is None else self._state.total) + self.REPORT_STEP
        await self._send(final, final, message)
