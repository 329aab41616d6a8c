"""The polling decisions: backoff with jitter, Retry-After, request pacing, the bounded memory of seen keys."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.wallet.polling import BoundedKeySet, RequestPacer, backoff_delay, parse_retry_after

NOW = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("failures", "jitter", "expected"),
    [
        (0, 0.5, 0.0),  # no failure, no wait
        (1, 0.0, 0.5),  # ceiling 1 s: at least half of it
        (1, 0.999, 0.9995),
        (2, 0.0, 1.0),  # ceiling doubles
        (3, 0.5, 3.0),  # ceiling 4: 2 + 0.5 * 2
        (10, 0.0, 30.0),  # ceiling capped at 60
        (5000, 0.0, 30.0),  # no overflow after a very long outage
    ],
)
def test_backoff_doubles_up_to_the_cap_with_jitter(failures: int, jitter: float, expected: float) -> None:
    assert backoff_delay(failures, base=1.0, cap=60.0, jitter=jitter) == pytest.approx(expected)


@given(
    failures=st.integers(min_value=1, max_value=10_000),
    jitter=st.floats(min_value=0, max_value=1, exclude_max=True),
    base=st.floats(min_value=0.01, max_value=10),
    cap=st.floats(min_value=0.01, max_value=3600),
)
def test_backoff_stays_between_half_the_ceiling_and_the_cap(
    failures: int, jitter: float, base: float, cap: float
) -> None:
    delay = backoff_delay(failures, base=base, cap=cap, jitter=jitter)
    ceiling = min(cap, base * 2 ** min(failures - 1, 62))
    assert ceiling / 2 <= delay <= ceiling <= cap
    assert backoff_delay(failures + 1, base=base, cap=cap, jitter=jitter) >= delay


@pytest.mark.parametrize("jitter", [-0.1, 1.0, 2.0])
def test_backoff_refuses_jitter_outside_unit_interval(jitter: float) -> None:
    with pytest.raises(ValueError, match=r"jitter: expected a number in \[0, 1\)"):
        backoff_delay(1, base=1, cap=2, jitter=jitter)


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("7", 7.0),
        (" 120 ", 120.0),
        ("0", 0.0),
        ("1.5", 1.5),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0),  # already past: go now
        ("Mon, 05 Jan 2026 12:01:00 -0000", 60.0),  # an unmarked zone is GMT
        (None, None),
        ("", None),
        ("soon", None),
        ("-3", None),
        ("nan", None),
        ("inf", None),
    ],
)
def test_retry_after_in_seconds_or_as_a_date(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header, NOW) == expected


class ManualTime:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


async def test_pacer_spaces_requests_by_the_interval() -> None:
    time = ManualTime()
    pacer = RequestPacer(4.0, monotonic=time.monotonic, sleep=time.sleep)
    for _ in range(4):
        await pacer.wait()
    assert time.sleeps == [0.25, 0.25, 0.25]


async def test_pacer_does_not_wait_when_requests_are_already_far_apart() -> None:
    time = ManualTime()
    pacer = RequestPacer(2.0, monotonic=time.monotonic, sleep=time.sleep)
    await pacer.wait()
    time.now += 0.3
    await pacer.wait()  # 0.2 s still to go
    time.now += 10
    await pacer.wait()
    assert time.sleeps == [pytest.approx(0.2)]


@pytest.mark.parametrize("rate", [0, -1.0])
def test_pacer_refuses_a_rate_that_is_not_positive(rate: float) -> None:
    time = ManualTime()
    with pytest.raises(ValueError, match="max_per_second: expected a rate > 0"):
        RequestPacer(rate, monotonic=time.monotonic, sleep=time.sleep)


def test_bounded_key_set_forgets_the_oldest_first() -> None:
    seen = BoundedKeySet(3)
    assert [seen.add(k) for k in ("a", "b", "a", "c", "d")] == [True, True, False, True, True]
    assert len(seen) == 3
    assert "a" not in seen
    assert all(key in seen for key in "bcd")
    assert seen.add("a") is True  # forgotten, so new again


def test_bounded_key_set_needs_room_for_one_key() -> None:
    with pytest.raises(ValueError, match="capacity"):
        BoundedKeySet(0)
