"""Dedup decisions (pure): fingerprints, the duplicate window, the key cooldown, escalation, resolution."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from utils.alerting.dedup import Action, Candidate, Decision, DedupState, KeyRecord, Sent, decide
from utils.alerting.fingerprint import alert_fingerprint, fnv1a_64, label_fingerprint
from utils.alerting.model import Alert, AlertSeverity

W, C = 600.0, 300.0  # duplicate window and key cooldown, seconds
INFO, WARN, CRIT = AlertSeverity.INFO, AlertSeverity.WARNING, AlertSeverity.CRITICAL


def test_fnv1a_64_matches_the_published_test_vectors() -> None:
    assert fnv1a_64(b"") == 0xCBF29CE484222325
    assert fnv1a_64(b"a") == 0xAF63DC4C8601EC8C
    assert fnv1a_64(b"foobar") == 0x85944171F73967E8


def test_label_fingerprint_ignores_label_order_but_not_values() -> None:
    assert label_fingerprint({"a": "1", "b": "2"}) == label_fingerprint({"b": "2", "a": "1"})
    assert label_fingerprint({"a": "1", "b": "2"}) != label_fingerprint({"a": "1", "b": "3"})
    # the separator keeps ("ab","c") and ("a","bc") apart
    assert label_fingerprint({"ab": "c"}) != label_fingerprint({"a": "bc"})


@pytest.mark.parametrize(
    ("first", "second", "same"),
    [
        (Alert("disk full"), Alert("disk full  "), True),
        (Alert("disk full"), Alert("disk full", AlertSeverity.CRITICAL), True),  # severity is not identity
        (Alert("disk full"), Alert("disk nearly full"), False),
        (Alert("disk full"), Alert("disk full", staging=True), False),
        (Alert("disk full"), Alert("disk full", alertname="RESOURCE_WARNING"), False),
        (Alert("disk full", key="disk"), Alert("disk full"), False),
        (Alert("x", labels={"server": "a"}), Alert("x", labels={"server": "b"}), False),
    ],
)
def test_alert_fingerprint(first: Alert, second: Alert, same: bool) -> None:
    assert (alert_fingerprint(first) == alert_fingerprint(second)) is same


def _decide(
    now: float, candidate: Candidate, fps: dict[str, Sent] | None = None, keys: dict[str, KeyRecord] | None = None
) -> Decision:
    return decide(now, candidate, fps or {}, keys or {}, W, C)


@pytest.mark.parametrize(
    ("name", "now", "candidate", "fps", "keys", "action", "reason_part"),
    [
        ("new alert", 0.0, Candidate("f1", WARN), {}, {}, Action.SEND, "new"),
        (
            "duplicate inside window",
            599.0,
            Candidate("f1", WARN),
            {"f1": Sent(0.0, WARN)},
            {},
            Action.SUPPRESS,
            "duplicate",
        ),
        ("window edge is outside", 600.0, Candidate("f1", WARN), {"f1": Sent(0.0, WARN)}, {}, Action.SEND, "new"),
        (
            "lower severity duplicate",
            10.0,
            Candidate("f1", INFO),
            {"f1": Sent(0.0, WARN)},
            {},
            Action.SUPPRESS,
            "duplicate",
        ),
        (
            "escalation passes window",
            10.0,
            Candidate("f1", CRIT),
            {"f1": Sent(0.0, WARN)},
            {},
            Action.SEND,
            "escalated",
        ),
        ("clock moved back", 0.0, Candidate("f1", WARN), {"f1": Sent(50.0, WARN)}, {}, Action.SEND, "new"),
        (
            "key cooldown holds new text",
            299.0,
            Candidate("f2", WARN, key="cpu"),
            {},
            {"cpu": KeyRecord(0.0, WARN, True)},
            Action.SUPPRESS,
            "cooldown",
        ),
        (
            "cooldown over",
            300.0,
            Candidate("f2", WARN, key="cpu"),
            {},
            {"cpu": KeyRecord(0.0, WARN, True)},
            Action.SEND,
            "new",
        ),
        (
            "escalation passes cooldown",
            5.0,
            Candidate("f2", CRIT, key="cpu"),
            {},
            {"cpu": KeyRecord(0.0, WARN, True)},
            Action.SEND,
            "escalated from warning to critical",
        ),
        (
            "resolved key fires again at once",
            5.0,
            Candidate("f2", WARN, key="cpu"),
            {},
            {"cpu": KeyRecord(0.0, WARN, False)},
            Action.SEND,
            "new",
        ),
        (
            "resolution of a firing key",
            5.0,
            Candidate("r", INFO, key="cpu", resolved=True),
            {},
            {"cpu": KeyRecord(0.0, WARN, True)},
            Action.RESOLVED,
            "resolved",
        ),
        (
            "second resolution",
            6.0,
            Candidate("r", INFO, key="cpu", resolved=True),
            {},
            {"cpu": KeyRecord(5.0, WARN, False)},
            Action.SUPPRESS,
            "not firing",
        ),
        (
            "resolution of unknown key",
            0.0,
            Candidate("r", INFO, key="x", resolved=True),
            {},
            {},
            Action.SUPPRESS,
            "not firing",
        ),
        ("resolution needs a key", 0.0, Candidate("r", INFO, resolved=True), {}, {}, Action.SUPPRESS, "needs the key"),
    ],
)
def test_decide_table(
    name: str,
    now: float,
    candidate: Candidate,
    fps: dict[str, Sent],
    keys: dict[str, KeyRecord],
    action: Action,
    reason_part: str,
) -> None:
    decision = _decide(now, candidate, fps, keys)
    assert decision.action is action, name
    assert reason_part in decision.reason, name


def test_state_sends_identical_alerts_once_per_window() -> None:
    state = DedupState(W, C)
    decisions = [state.check(Candidate("same", WARN), now=float(t)) for t in range(1000)]
    assert sum(d.delivers for d in decisions) == 2  # t=0 and t=600
    assert [t for t, d in enumerate(decisions) if d.delivers] == [0, 600]


def test_resolution_is_sent_once_and_reopens_the_key() -> None:
    state = DedupState(W, C)
    assert state.check(Candidate("cpu-95", WARN, key="cpu"), 0.0).action is Action.SEND
    assert state.check(Candidate("cpu-95", WARN, key="cpu"), 1.0).action is Action.SUPPRESS
    assert state.firing_keys() == ["cpu"]
    assert state.check(Candidate("ok", INFO, key="cpu", resolved=True), 2.0).action is Action.RESOLVED
    assert state.check(Candidate("ok", INFO, key="cpu", resolved=True), 3.0).action is Action.SUPPRESS
    assert state.firing_keys() == []
    # the same problem again right after the resolution is news
    assert state.check(Candidate("cpu-95", WARN, key="cpu"), 4.0).action is Action.SEND


def test_zero_window_and_cooldown_send_everything() -> None:
    state = DedupState(0.0, 0.0)
    assert all(state.check(Candidate("f", WARN, key="k"), 1.0).delivers for _ in range(3))


def test_prune_keeps_firing_keys_and_bounds_memory() -> None:
    state = DedupState(W, C, max_entries=100)
    state.check(Candidate("old", WARN, key="long-running"), 0.0)
    for i in range(1000):
        state.check(Candidate(f"f{i}", INFO), 10_000.0 + i)
    assert len(state.fingerprints) + len(state.keys) <= 100
    assert "long-running" in state.firing_keys()


@given(
    times=st.lists(st.floats(min_value=0, max_value=5000, allow_nan=False), min_size=1, max_size=60),
    window=st.floats(min_value=1, max_value=1000),
)
def test_property_no_two_sends_of_one_fingerprint_within_the_window(times: list[float], window: float) -> None:
    state = DedupState(window, 0.0)
    sent_at = [t for t in sorted(times) if state.check(Candidate("f", WARN), t).delivers]
    assert all(later - earlier >= window for earlier, later in itertools.pairwise(sent_at))
    assert sent_at[0] == min(times)  # the first one always goes out
