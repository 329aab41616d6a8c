"""What the trade executor answers for each trade, and the cached memory figure its readers serve."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol

from core.clob.base import OrderAck, OrderRequest, Side
from core.pre_trade_checks import Decision

# CLOB error kinds as counted in metrics and the snapshot; "other" is a ClobError of no known kind.
ERROR_KINDS = ("rate_limit", "timeout", "rejected", "network", "other")
# psutil's memory_info is a syscall: readers serve a cached value refreshed at most this often.
RSS_REFRESH_SECONDS = 5.0
BYTES_PER_MB = 1024 * 1024


class ExecutionStatus(StrEnum):
    EXECUTED = "executed"
    DENIED = "denied"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class ExecutionResult:
    """What happened to one copied trade (or stop-loss exit), and why.

    `reason`: for a denial the DenyReason code; for a failure `clob_<kind>` or `unfilled`; for an
    execution "" or how the size was adjusted (`capped_by_max_order_size`, `capped_by_holding`) or
    `stop_loss`.
    """

    status: ExecutionStatus
    reason: str = ""
    token_id: str = ""
    side: Side | None = None
    order: OrderRequest | None = None
    ack: OrderAck | None = None
    latency_ms: float | None = None
    realized_pnl: float = 0.0
    decisions: tuple[Decision, ...] = ()

    @property
    def figures(self) -> Mapping[str, Any]:
        """The figures of the last check that ran (the denying one for a denial)."""
        return self.decisions[-1].figures if self.decisions else {}


class MemoryInfoSource(Protocol):
    """The part of `psutil.Process` the executor reads."""

    def memory_info(self) -> Any: ...


class CachedRss:
    """This process's resident memory in MB, sampled at most every `refresh_seconds` of `clock`."""

    def __init__(
        self,
        clock: Callable[[], float],
        process: MemoryInfoSource | None = None,
        refresh_seconds: float = RSS_REFRESH_SECONDS,
    ) -> None:
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._process = process
        self._value = 0.0
        self._sampled_at: float | None = None

    def mb(self) -> float:
        """The cached figure, refreshed first if it is older than `refresh_seconds`."""
        now = self._clock()
        if self._sampled_at is None or now - self._sampled_at >= self.refresh_seconds:
            if self._process is None:
                import psutil  # imported on first use: nothing heavy at import time

                self._process = psutil.Process()
            self._value = self._process.memory_info().rss / BYTES_PER_MB
            self._sampled_at = now
        return self._value
