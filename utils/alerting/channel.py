"""The seam between the delivery worker and a destination: one attempt in, one outcome out.

A channel never raises for a delivery problem; it says what happened and the worker decides when (or
whether) to try again. Adding a channel means one class with `name`, `deliver` and `aclose`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from utils.alerting.outbox import OutboxRow


class OutcomeKind(StrEnum):
    DELIVERED = "delivered"
    RETRY_AFTER = "retry_after"  # the destination said when to come back (Telegram flood control, HTTP 429)
    TRANSIENT = "transient"  # timeouts, dropped connections, 5xx: try again with backoff
    PERMANENT = "permanent"  # the destination refused this message for good: dead letter


@dataclass(frozen=True)
class Outcome:
    kind: OutcomeKind
    detail: str = ""
    retry_after: float | None = None

    @classmethod
    def delivered(cls) -> Outcome:
        """The message reached the destination."""
        return cls(OutcomeKind.DELIVERED)


class Channel(Protocol):
    """Where alerts go: Telegram, Alertmanager, …"""

    name: str

    async def deliver(self, row: OutboxRow) -> Outcome:
        """Make one attempt at delivering the row's payload; never raises for a delivery failure."""
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...
