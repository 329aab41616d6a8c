"""The latency ring buffer: bounded, oldest evicted first, percentiles equal to a brute-force computation."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.latency import LatencyRecorder, nearest_rank

latencies = st.floats(min_value=0.0, max_value=10_000.0, allow_nan=False)


@pytest.mark.parametrize(
    ("values", "quantile", "expected"),
    [([], 0.5, 0.0), ([7.0], 0.99, 7.0), ([1.0, 2.0, 3.0, 4.0], 0.5, 2.0), ([1.0, 2.0, 3.0, 4.0], 0.75, 3.0)],
)
def test_nearest_rank_table(values: list[float], quantile: float, expected: float) -> None:
    assert nearest_rank(values, quantile) == expected


@pytest.mark.parametrize("quantile", [-0.1, 1.01, math.nan])
def test_nearest_rank_refuses_a_bad_quantile(quantile: float) -> None:
    with pytest.raises(ValueError, match="quantile must be within"):
        nearest_rank([1.0], quantile)


@given(st.lists(latencies, max_size=300), st.integers(min_value=1, max_value=64))
def test_window_and_percentiles_match_brute_force(values: list[float], capacity: int) -> None:
    recorder = LatencyRecorder(capacity)
    for value in values:
        recorder.record_ms(value)
    window = values[-capacity:]
    assert recorder.recent() == window
    assert len(recorder) == len(window)
    ordered = sorted(window)
    summary = recorder.summary()
    for key, q in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99)):
        expected = ordered[max(1, math.ceil(q * len(ordered))) - 1] if ordered else 0.0
        assert summary[key] == expected
    assert summary["max"] == (ordered[-1] if ordered else 0.0)
    assert summary["mean"] == pytest.approx(math.fsum(window) / len(window) if window else 0.0, abs=1e-6)
    assert summary["count"] == len(window)
    assert summary["total"] == len(values)


def test_buffer_is_bounded_and_counts_over_budget() -> None:
    recorder = LatencyRecorder(4, budget_ms=100.0)
    for value in (150.0, 1.0, 2.0, 3.0, 4.0, 5.0):
        recorder.record_ms(value)
    assert recorder.recent() == [2.0, 3.0, 4.0, 5.0]
    summary = recorder.summary()
    assert (summary["max"], summary["over_budget"], summary["total"]) == (5.0, 1, 6)
    assert recorder.max_ever_ms == 150.0


def test_record_ns_converts_to_milliseconds() -> None:
    recorder = LatencyRecorder(2)
    assert recorder.record_ns(2_500_000) == 2.5


@pytest.mark.parametrize("value", [-1.0, math.nan, math.inf])
def test_bad_latencies_are_refused(value: float) -> None:
    recorder = LatencyRecorder(2)
    with pytest.raises(ValueError, match="latency must be a finite number"):
        recorder.record_ms(value)
    assert len(recorder) == 0


@pytest.mark.parametrize("capacity", [0, -5])
def test_capacity_must_be_positive(capacity: int) -> None:
    with pytest.raises(ValueError, match="capacity must be a positive int"):
        LatencyRecorder(capacity)
