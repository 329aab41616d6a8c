"""Per-trade latency (decision → order acknowledged) in a bounded ring buffer, percentiles on demand.

The ring keeps the arrival order (so the oldest sample is the one evicted) and a sorted list mirrors
it: recording costs one binary search and two memmoves of at most `capacity` floats, and reading any
percentile is an index into the sorted list. Readers (the metrics, the risk snapshot, the sidecar) call
far more often than trades happen, so the work sits on the write side.
"""

from __future__ import annotations

import math
from array import array
from bisect import bisect_left, insort
from collections.abc import Sequence

DEFAULT_CAPACITY = 2048
NS_PER_MS = 1_000_000


def nearest_rank(sorted_values: Sequence[float], quantile: float) -> float:
    """The nearest-rank percentile of ascending `sorted_values` (0.0 when there are none)."""
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must be within [0, 1], received {quantile!r}")
    n = len(sorted_values)
    if n == 0:
        return 0.0
    rank = max(1, math.ceil(quantile * n))
    return float(sorted_values[rank - 1])


class LatencyRecorder:
    """The last `capacity` latencies in milliseconds, plus all-time counters."""

    def __init__(self, capacity: int = DEFAULT_CAPACITY, *, budget_ms: float | None = None) -> None:
        if capacity <= 0:
            raise ValueError(f"latency buffer capacity must be a positive int, received {capacity!r}")
        self.capacity = capacity
        self.budget_ms = budget_ms
        self._ring = array("d", bytes(8 * capacity))
        self._next = 0
        self._size = 0
        self._sorted: list[float] = []
        self._sum = 0.0
        self.total = 0
        self.over_budget = 0
        self.max_ever_ms = 0.0

    def record_ns(self, elapsed_ns: int) -> float:
        """Record one latency measured in nanoseconds; returns it in milliseconds."""
        return self.record_ms(elapsed_ns / NS_PER_MS)

    def record_ms(self, latency_ms: float) -> float:
        """Record one latency in milliseconds (negative or non-finite values are refused)."""
        if not math.isfinite(latency_ms) or latency_ms < 0:
            raise ValueError(f"latency must be a finite number of ms >= 0, received {latency_ms!r}")
        if self._size == self.capacity:
            evicted = self._ring[self._next]
            del self._sorted[bisect_left(self._sorted, evicted)]
            self._sum -= evicted
        else:
            self._size += 1
        self._ring[self._next] = latency_ms
        self._next = (self._next + 1) % self.capacity
        insort(self._sorted, latency_ms)
        self._sum += latency_ms
        self.total += 1
        if self.total % self.capacity == 0:
            # a running sum drifts by rounding as values come and go; re-add it exactly once per lap
            self._sum = math.fsum(self._sorted)
        if latency_ms > self.max_ever_ms:
            self.max_ever_ms = latency_ms
        if self.budget_ms is not None and latency_ms > self.budget_ms:
            self.over_budget += 1
        return latency_ms

    def __len__(self) -> int:
        return self._size

    def percentile(self, quantile: float) -> float:
        """The nearest-rank percentile over the buffered window, in ms."""
        return nearest_rank(self._sorted, quantile)

    def recent(self) -> list[float]:
        """The buffered latencies, oldest first (a copy)."""
        if self._size < self.capacity:
            return list(self._ring[: self._size])
        return list(self._ring[self._next :]) + list(self._ring[: self._next])

    def summary(self) -> dict[str, float | int]:
        """p50/p95/p99/max/mean over the window, `count` in the window, `total` and `over_budget` all-time."""
        values = self._sorted
        n = len(values)
        return {
            "p50": nearest_rank(values, 0.50),
            "p95": nearest_rank(values, 0.95),
            "p99": nearest_rank(values, 0.99),
            "max": values[-1] if n else 0.0,
            "mean": self._sum / n if n else 0.0,
            "count": n,
            "total": self.total,
            "over_budget": self.over_budget,
        }
