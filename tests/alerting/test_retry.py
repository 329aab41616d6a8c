"""When to retry a delivery (pure): RetryAfter honoured as given, capped exponential backoff with jitter."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from utils.alerting.channel import Outcome, OutcomeKind
from utils.alerting.delivery import RetryPolicy, backoff_delay, retry_at

POLICY = RetryPolicy(base_seconds=1.0, factor=2.0, cap_seconds=60.0, jitter=0.5)


@pytest.mark.parametrize(
    ("outcome", "attempts", "random_value", "expected"),
    [
        (Outcome(OutcomeKind.RETRY_AFTER, retry_after=7.0), 0, 0.9, 1007.0),  # exactly as Telegram asked
        (Outcome(OutcomeKind.RETRY_AFTER, retry_after=7.0), 12, 0.0, 1007.0),  # not stretched by backoff
        (Outcome(OutcomeKind.TRANSIENT), 0, 0.0, 1001.0),
        (Outcome(OutcomeKind.TRANSIENT), 3, 0.0, 1008.0),
        (Outcome(OutcomeKind.TRANSIENT), 3, 1.0, 1004.0),  # at most half taken off by jitter
        (Outcome(OutcomeKind.TRANSIENT), 50, 0.0, 1060.0),  # capped
        (Outcome(OutcomeKind.TRANSIENT), 10_000, 0.0, 1060.0),  # no overflow
        (Outcome.delivered(), 0, 0.0, None),
        (Outcome(OutcomeKind.PERMANENT, "Bad Request"), 0, 0.0, None),
    ],
)
def test_retry_at(outcome: Outcome, attempts: int, random_value: float, expected: float | None) -> None:
    assert retry_at(outcome, attempts, 1000.0, POLICY, random_value) == expected


@given(attempts=st.integers(min_value=0, max_value=200), random_value=st.floats(min_value=0, max_value=1))
def test_property_backoff_stays_between_half_and_the_cap(attempts: int, random_value: float) -> None:
    delay = backoff_delay(attempts, POLICY, random_value)
    assert POLICY.base_seconds * 0.5 <= delay <= POLICY.cap_seconds
    assert delay <= backoff_delay(attempts + 1, POLICY, 0.0)
