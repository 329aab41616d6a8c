"""A limit on wrong tokens at POST /login, per client IP (issue 11): 5 failures a minute, then 429.

DASHBOARD_TOKEN is long and random, so guessing it is hopeless anyway; the limit keeps a script from
hammering the form (and the log) and makes a mistyped-token loop visible. The decision is a pure function of
the recent failure times and `now`; `LoginLimiter` only keeps those times, per IP, with an injected clock.
The IP is the connection's peer address: a forwarded-for header is not trusted (any client can send one).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Sequence

MAX_FAILURES = 5
WINDOW_SECONDS = 60.0
# bounds the memory a flood from many addresses can take: past it, the least recently failing IP is forgotten
MAX_TRACKED_CLIENTS = 10_000


def retry_after(
    failures: Sequence[float], now: float, *, limit: int = MAX_FAILURES, window: float = WINDOW_SECONDS
) -> int | None:
    """Whole seconds the client must wait before trying again, or None when it may try now.

    `failures` are the times (oldest first) of its wrong tokens. Once `limit` of them fall within the last
    `window` seconds, it waits until the oldest of those leaves the window (at least 1 s).
    """
    recent = [moment for moment in failures if now - moment < window]
    if len(recent) < limit:
        return None
    return max(1, math.ceil(recent[-limit] + window - now))


class LoginLimiter:
    """Per-IP failure times for `retry_after`; a right token clears that IP's record."""

    __slots__ = ("_clock", "_failures", "_limit", "_max_clients", "_window")

    def __init__(
        self,
        clock: Callable[[], float] = time.monotonic,
        *,
        limit: int = MAX_FAILURES,
        window: float = WINDOW_SECONDS,
        max_clients: int = MAX_TRACKED_CLIENTS,
    ) -> None:
        if limit < 1 or window <= 0 or max_clients < 1:
            raise ValueError(
                f"expected limit >= 1, window > 0 and max_clients >= 1, received {limit}, {window}, {max_clients}"
            )
        self._clock = clock
        self._limit = limit
        self._window = window
        self._max_clients = max_clients
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, client: str) -> int | None:
        """Seconds `client` must wait before its next attempt, None when it may try now."""
        failures = self._failures.get(client)
        if failures is None:
            return None
        return retry_after(failures, self._clock(), limit=self._limit, window=self._window)

    def failed(self, client: str) -> None:
        """Record a wrong token from `client` (only the last `limit` times matter, so only those are kept)."""
        failures = self._failures.pop(client, None) or deque(maxlen=self._limit)
        failures.append(self._clock())
        self._failures[client] = failures  # most recent at the end
        while len(self._failures) > self._max_clients:
            self._failures.popitem(last=False)

    def succeeded(self, client: str) -> None:
        """A right token: forget `client`'s failures."""
        self._failures.pop(client, None)
