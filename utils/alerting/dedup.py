"""Deduplication after Alertmanager: the decision is a pure function of `now`, the alert and the history.

Rules, in order:
- a resolved notice goes out once, and only for a key that is firing; it ends the key's cooldown and
  clears the duplicate window of the key's alerts, so the problem coming back is alerted at once;
- an alert more severe than the last one sent for the same fingerprint or key is an escalation and
  always goes out;
- the same fingerprint is not sent again within the duplicate window (DUPLICATE_ALERT_WINDOW_MINUTES);
- a firing key is not alerted again within the cooldown (ALERT_COOLDOWN_MINUTES), whatever its text.
A clock that moved backwards counts as "outside the window": an extra message beats a lost one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from utils.alerting.model import AlertSeverity


class Action(StrEnum):
    SEND = "send"
    SUPPRESS = "suppress"
    RESOLVED = "resolved"


@dataclass(frozen=True)
class Decision:
    action: Action
    reason: str

    @property
    def delivers(self) -> bool:
        """True when something goes out (a firing alert or a resolved notice)."""
        return self.action is not Action.SUPPRESS


@dataclass(frozen=True)
class Candidate:
    """What the decision needs to know about one alert."""

    fingerprint: str
    severity: AlertSeverity
    key: str | None = None
    resolved: bool = False


@dataclass(frozen=True)
class Sent:
    """When something was last sent, and how severe it was."""

    at: float
    severity: AlertSeverity


@dataclass(frozen=True)
class KeyRecord:
    """The last alert sent for a key, and whether the key is still firing (not yet resolved)."""

    at: float
    severity: AlertSeverity
    firing: bool


def _within(now: float, at: float, span: float) -> bool:
    elapsed = now - at
    return 0 <= elapsed < span


def decide(
    now: float,
    candidate: Candidate,
    fingerprints: Mapping[str, Sent],
    keys: Mapping[str, KeyRecord],
    window_seconds: float,
    cooldown_seconds: float,
) -> Decision:
    """Send, suppress (with the reason) or send as a resolved notice; see the module docstring."""
    record = keys.get(candidate.key) if candidate.key is not None else None
    if candidate.resolved:
        if candidate.key is None:
            return Decision(Action.SUPPRESS, "a resolved notice needs the key of the alert it resolves")
        if record is None or not record.firing:
            return Decision(Action.SUPPRESS, f"key {candidate.key!r} is not firing (resolved notices go out once)")
        return Decision(Action.RESOLVED, f"key {candidate.key!r} resolved")
    last = fingerprints.get(candidate.fingerprint)
    rank = candidate.severity.rank
    if last is not None and _within(now, last.at, window_seconds):
        if rank > last.severity.rank:
            return Decision(Action.SEND, f"escalated from {last.severity} to {candidate.severity}")
        return Decision(Action.SUPPRESS, f"duplicate within the {window_seconds:.0f} s duplicate window")
    if record is not None and record.firing and _within(now, record.at, cooldown_seconds):
        if rank > record.severity.rank:
            return Decision(Action.SEND, f"escalated from {record.severity} to {candidate.severity}")
        return Decision(Action.SUPPRESS, f"key {candidate.key!r} is in its {cooldown_seconds:.0f} s cooldown")
    return Decision(Action.SEND, "new")


class DedupState:
    """The history `decide` reads, kept in memory and bounded; `check` decides and records in one step."""

    def __init__(self, window_seconds: float, cooldown_seconds: float, *, max_entries: int = 10_000) -> None:
        self.window_seconds = window_seconds
        self.cooldown_seconds = cooldown_seconds
        self.max_entries = max_entries
        self.fingerprints: dict[str, Sent] = {}
        self.keys: dict[str, KeyRecord] = {}
        self._fingerprints_of_key: dict[str, set[str]] = {}

    def check(self, candidate: Candidate, now: float) -> Decision:
        """Decide for `candidate` at `now` and remember what went out."""
        decision = decide(now, candidate, self.fingerprints, self.keys, self.window_seconds, self.cooldown_seconds)
        self.record(candidate, decision, now)
        return decision

    def record(self, candidate: Candidate, decision: Decision, now: float) -> None:
        """Update the history with a decision (suppressed alerts leave no trace)."""
        if decision.action is Action.SUPPRESS:
            return
        key = candidate.key
        if decision.action is Action.RESOLVED and key is not None:
            previous = self.keys.get(key)
            severity = previous.severity if previous is not None else candidate.severity
            self.keys[key] = KeyRecord(at=now, severity=severity, firing=False)
            for fingerprint in self._fingerprints_of_key.pop(key, set()):
                self.fingerprints.pop(fingerprint, None)
            return
        self.fingerprints[candidate.fingerprint] = Sent(at=now, severity=candidate.severity)
        if key is not None:
            self.keys[key] = KeyRecord(at=now, severity=candidate.severity, firing=True)
            self._fingerprints_of_key.setdefault(key, set()).add(candidate.fingerprint)
        if len(self.fingerprints) + len(self.keys) > self.max_entries:
            self.prune(now)

    def firing_keys(self) -> list[str]:
        """The keys alerted and not yet resolved."""
        return [key for key, record in self.keys.items() if record.firing]

    def prune(self, now: float) -> None:
        """Forget what can no longer suppress anything; then, if still too big, the oldest entries."""
        horizon = max(self.window_seconds, self.cooldown_seconds)
        self.fingerprints = {fp: s for fp, s in self.fingerprints.items() if _within(now, s.at, self.window_seconds)}
        # a firing key is kept past its cooldown: a resolved notice may still come for it
        self.keys = {k: r for k, r in self.keys.items() if r.firing or _within(now, r.at, horizon)}
        for store in (self.fingerprints, self.keys):
            excess = len(store) - self.max_entries // 2
            if excess > 0:
                for name in sorted(store, key=lambda n: store[n].at)[:excess]:
                    del store[name]
        live = set(self.fingerprints)
        self._fingerprints_of_key = {
            key: fps & live for key, fps in self._fingerprints_of_key.items() if key in self.keys and fps & live
        }
