"""Health levels and the pure rules that set them: thresholds, and hysteresis so a level does not flap.

A figure's level comes from two thresholds (`level_for`). A figure that hovers around a threshold would
make the level flip on every check, so a `Hysteresis` sits in front of each figure:

* a worse level is entered at its threshold, a better level only once the value is past the threshold
  by `margin` (a Schmitt trigger: the band just inside a threshold keeps the current level);
* either change takes effect only after the new level has been asked for continuously for
  `min_duration` seconds; so does the first one: until its readings have lasted `min_duration`, a figure
  is `starting` (known to nobody yet), never degraded or critical on the strength of one reading.

Everything here is pure: the caller passes the value and `now`; nothing reads a clock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from mcp.health import HealthStatus

# One enum for the whole sidecar: a component's level is what the supervisor and /health call its status.
Level = HealthStatus


def _finite(value: float, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{what} must be a finite number, received {value!r}")
    return float(value)


def level_for(value: float, warning: float, critical: float, higher_is_worse: bool = True) -> Level:
    """The level of `value`: at or past `critical` critical, at or past `warning` degraded, else healthy.

    With `higher_is_worse=False` "past" means "at or below" (free disk space, say).
    """
    value = _finite(value, "value")
    warning = _finite(warning, "warning threshold")
    critical = _finite(critical, "critical threshold")
    if higher_is_worse and warning > critical:
        raise ValueError(f"expected warning <= critical when higher is worse, received {warning} > {critical}")
    if not higher_is_worse and warning < critical:
        raise ValueError(f"expected warning >= critical when lower is worse, received {warning} < {critical}")
    if higher_is_worse:
        if value >= critical:
            return Level.CRITICAL
        return Level.DEGRADED if value >= warning else Level.HEALTHY
    if value <= critical:
        return Level.CRITICAL
    return Level.DEGRADED if value <= warning else Level.HEALTHY


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The warning and critical thresholds of one figure, and the margin a recovery must clear."""

    warning: float
    critical: float
    higher_is_worse: bool = True
    margin: float = 0.0

    def __post_init__(self) -> None:
        level_for(self.warning, self.warning, self.critical, self.higher_is_worse)  # validates the pair
        if _finite(self.margin, "margin") < 0:
            raise ValueError(f"margin must be >= 0, received {self.margin}")

    def level(self, value: float) -> Level:
        """The plain level of `value`, with no memory of the current one."""
        return level_for(value, self.warning, self.critical, self.higher_is_worse)

    def level_from(self, value: float, current: Level | None) -> Level:
        """The level `value` asks for when the figure is at `current`: worse levels at their threshold,
        better ones only once the value is past the threshold by `margin`."""
        plain = self.level(value)
        if current is None or current is Level.STARTING or plain.rank >= current.rank:
            return plain
        # judge the value as if it were `margin` worse: inside the band it still reads as the current level
        eased = self.level(value + self.margin if self.higher_is_worse else value - self.margin)
        return eased if eased.rank < current.rank else current


@dataclass(frozen=True, slots=True)
class HysteresisState:
    """Where a figure stands: its level since `since`, and the change under way (if any) since `pending_since`."""

    level: Level | None = None
    since: float | None = None
    pending: Level | None = None
    pending_since: float | None = None


def _is_worse(level: Level, current: Level) -> bool:
    # from `starting` every real level is a first verdict, judged like a change for the worse: it goes only
    # as far as the mildest of the readings that asked for it
    return current is Level.STARTING or level.rank > current.rank


def step(state: HysteresisState, proposed: Level, now: float, min_duration: float) -> HysteresisState:
    """The state after one reading that asks for `proposed` at `now`.

    Before the first reading the level is `starting`. A change (the first verdict included) takes effect
    once readings have asked for a change in the same direction for `min_duration` seconds; the level
    adopted is the mildest change every one of those readings agreed on.
    """
    if state.level is None:
        state = HysteresisState(Level.STARTING, now)
    if proposed is state.level:
        return HysteresisState(state.level, state.since)
    worse = _is_worse(proposed, state.level)
    if state.pending is None or state.pending_since is None or _is_worse(state.pending, state.level) != worse:
        pending, pending_since = proposed, now
    else:
        # getting worse: only as far as the mildest reading; getting better: only as far as the worst one
        milder = min if worse else max
        pending = milder(state.pending, proposed, key=lambda level: level.rank)
        pending_since = state.pending_since
    if now - pending_since >= min_duration:
        if proposed is pending:
            return HysteresisState(pending, now)
        # the latest reading already asks for more than was adopted: that further change starts now
        return HysteresisState(pending, now, proposed, now)
    return HysteresisState(state.level, state.since, pending, pending_since)


class Hysteresis:
    """One figure's level over time: `Thresholds` plus `step`, with a minimum duration for every change."""

    def __init__(self, thresholds: Thresholds, min_duration: float) -> None:
        if _finite(min_duration, "min_duration") < 0:
            raise ValueError(f"min_duration must be >= 0 seconds, received {min_duration}")
        self.thresholds = thresholds
        self.min_duration = float(min_duration)
        self.state = HysteresisState()

    @property
    def level(self) -> Level | None:
        """The current level (None before the first reading)."""
        return self.state.level

    def update(self, value: float, now: float) -> Level:
        """Feed one reading of the figure; the level after it."""
        proposed = self.thresholds.level_from(value, self.state.level)
        self.state = step(self.state, proposed, now, self.min_duration)
        assert self.state.level is not None  # set by the first reading
        return self.state.level

    def reset(self) -> None:
        """Forget the history (the figure became unknown); it is `starting` again until readings last."""
        self.state = HysteresisState()
