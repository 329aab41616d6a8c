"""The delivery worker: drains the outbox queue by queue, in order, retrying until each row is settled.

Per (channel, destination) queue one task sends the oldest pending row and nothing behind it until
that row is sent or dead: a 429 or an outage of one chat holds back that chat only, and one failing
channel never blocks another. When to retry is a pure function of the outcome, the attempt count and
`now` (`retry_at`). The worker survives every error except cancellation; `stop()` lets an attempt in
flight finish (so a delivered message is recorded as sent, not sent again) before it gives up the lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import random
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass

from utils.alerting.channel import Channel, Outcome, OutcomeKind
from utils.alerting.outbox import Outbox, OutboxRow, RowState

logger = logging.getLogger("utils.alerting.delivery")

SENT_RETENTION_SECONDS = 7 * 86400
DEAD_RETENTION_SECONDS = 30 * 86400
PRUNE_EVERY_SECONDS = 3600.0


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff for transient failures: base × factor^attempt, capped, minus up to `jitter` of it at random."""

    base_seconds: float = 1.0
    factor: float = 2.0
    cap_seconds: float = 60.0
    jitter: float = 0.5
    # a worker whose own bookkeeping fails (disk full) waits this long before trying again
    error_pause_seconds: float = 5.0


def backoff_delay(attempts: int, policy: RetryPolicy, random_value: float) -> float:
    """Delay before the next try after `attempts` failed ones (0 = the first failure); `random_value` in [0, 1)."""
    exponent = max(attempts, 0)
    raw = policy.cap_seconds
    if exponent < 64:
        raw = min(policy.cap_seconds, policy.base_seconds * policy.factor**exponent)
    return raw * (1.0 - policy.jitter * min(max(random_value, 0.0), 1.0))


def retry_at(outcome: Outcome, attempts: int, now: float, policy: RetryPolicy, random_value: float) -> float | None:
    """When to try a row again after `outcome`; None when it must not be retried (delivered or dead)."""
    if outcome.kind is OutcomeKind.RETRY_AFTER:
        # honoured as given: Telegram's flood control answers early retries with a longer ban
        return now + max(outcome.retry_after or 0.0, 0.0)
    if outcome.kind is OutcomeKind.TRANSIENT:
        return now + backoff_delay(attempts, policy, random_value)
    return None


Hook = Callable[[OutboxRow], None]


def _call_hook(hook: Hook | None, row: OutboxRow) -> None:
    if hook is None:
        return
    try:
        hook(row)
    except Exception:
        logger.exception("an alert delivery hook failed (metrics); delivery goes on")


class DeliveryWorker:
    """Drains `outbox` through `channels` (by channel name) while it holds the outbox's delivery lease."""

    def __init__(
        self,
        outbox: Outbox,
        channels: Mapping[str, Channel],
        *,
        policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        owner: str | None = None,
        lease_ttl_seconds: float = 15.0,
        poll_interval_seconds: float = 2.0,
        on_delivered: Hook | None = None,
        on_dead: Hook | None = None,
    ) -> None:
        self.outbox = outbox
        self.channels = dict(channels)
        self.policy = policy or RetryPolicy()
        self._clock = clock
        self._rng = rng or random.Random()
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease_ttl = lease_ttl_seconds
        self.poll_interval = poll_interval_seconds
        self.on_delivered = on_delivered
        self.on_dead = on_dead
        self._leases: dict[str, float] = {}  # channel -> when its lease was last renewed
        self._wake = asyncio.Event()
        self._changed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._dispatcher: asyncio.Task[None] | None = None
        self._queues: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._last_prune = float("-inf")
        self._grace = 5.0
        self.stats = {"delivered": 0, "retried": 0, "dead": 0, "worker_errors": 0}

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the dispatcher task on the running loop (idempotent)."""
        if self._dispatcher is None or self._dispatcher.done():
            self._stopping.clear()
            self._dispatcher = asyncio.create_task(self._dispatch(), name="alert-delivery")

    @property
    def running(self) -> bool:
        """True while the dispatcher task is alive."""
        return self._dispatcher is not None and not self._dispatcher.done()

    def wake(self) -> None:
        """Something was enqueued: look at the outbox now rather than at the next poll."""
        self._wake.set()

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """Stop after the attempts in flight (cut short after `grace_seconds`); channels closed, lease released."""
        self._grace = grace_seconds
        self._stopping.set()
        self._wake.set()
        dispatcher = self._dispatcher
        if dispatcher is None or dispatcher.done():
            return
        # the dispatcher's own clean-up waits up to the grace for the queues; this bounds the whole stop
        done, _ = await asyncio.wait({dispatcher}, timeout=grace_seconds + 2.0)
        if not done:
            dispatcher.cancel()
            await asyncio.wait({dispatcher})

    async def _shutdown(self) -> None:
        """Runs as the dispatcher ends, stopped or cancelled (a one-shot `asyncio.run` ending)."""
        queues = [task for task in self._queues.values() if not task.done()]
        if queues and self._stopping.is_set():
            _, late = await asyncio.wait(queues, timeout=self._grace)
            if late:
                logger.warning(
                    "alert delivery did not stop within %.1f s; %d attempt(s) cut short", self._grace, len(late)
                )
        for task in queues:
            task.cancel()
        if queues:
            await asyncio.wait(queues)
        self._queues.clear()
        for channel in self.channels.values():
            try:
                await channel.aclose()
            except Exception:
                logger.exception("closing the %s alert channel failed", channel.name)
        if self._leases:
            self._leases.clear()
            try:
                await self.outbox.release_leases(self.owner)
            except Exception:
                logger.exception("could not release the alert delivery leases; they expire in %.0f s", self.lease_ttl)

    # --- waiting for delivery --------------------------------------------------------------------
    async def wait_settled(self, row_ids: Sequence[int], wait_seconds: float) -> bool:
        """Wait until none of `row_ids` is pending (sent or dead); False if `wait_seconds` ran out first."""
        return await self._wait_until(lambda: self._pending_among(row_ids), wait_seconds)

    async def flush(self, wait_seconds: float) -> bool:
        """Wait until nothing is pending in this worker's channels; False if `wait_seconds` ran out first."""
        return await self._wait_until(self._pending_here, wait_seconds)

    async def _pending_among(self, row_ids: Sequence[int]) -> bool:
        states = await self.outbox.states(row_ids)
        return any(state is RowState.PENDING for state in states.values())

    async def _pending_here(self) -> bool:
        return any(channel in self.channels for channel, _ in await self.outbox.pending_queues())

    async def _wait_until(self, pending: Callable[[], Awaitable[bool]], wait_seconds: float) -> bool:
        deadline = time.monotonic() + wait_seconds
        while True:
            self._changed.clear()
            if not await pending():
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            # rows delivered by this process wake us at once; another process's, at the next poll
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 0.25)):
                    await self._changed.wait()

    # --- the dispatcher --------------------------------------------------------------------------
    async def _dispatch(self) -> None:
        try:
            while not self._stopping.is_set():
                self._wake.clear()
                try:
                    await self._dispatch_once()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    self.stats["worker_errors"] += 1
                    logger.exception(
                        "alert delivery: reading the outbox failed; retrying in %.0f s", self.poll_interval
                    )
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.poll_interval):
                        await self._wake.wait()
        finally:
            # also on cancellation: connections closed and the lease handed back before the loop goes
            await self._shutdown()

    async def _dispatch_once(self) -> None:
        # at rest this is one indexed read per poll: leases are only taken for channels with work
        queues = [queue for queue in await self.outbox.pending_queues() if queue[0] in self.channels]
        held = {channel for channel in {queue[0] for queue in queues} if await self._hold_lease(channel)}
        for queue in queues:
            task = self._queues.get(queue)
            if queue[0] in held and (task is None or task.done()):
                self._queues[queue] = asyncio.create_task(self._drain(queue), name=f"alert-queue-{queue[0]}")
        now = self._clock()
        if now - self._last_prune >= PRUNE_EVERY_SECONDS:
            self._last_prune = now
            removed = await self.outbox.prune(now - SENT_RETENTION_SECONDS, now - DEAD_RETENTION_SECONDS)
            if removed:
                logger.info("alert outbox: pruned %d old sent/dead row(s)", removed)

    @property
    def holds_lease(self) -> bool:
        """True while this worker holds an unexpired lease on at least one channel."""
        now = self._clock()
        return any(now - renewed < self.lease_ttl for renewed in self._leases.values())

    async def _hold_lease(self, channel: str) -> bool:
        now = self._clock()
        renewed = self._leases.get(channel)
        if renewed is not None and 0 <= now - renewed < self.lease_ttl / 3:
            return True
        if await self.outbox.acquire_lease(self.owner, self.lease_ttl, channel):
            if renewed is None:
                logger.info("alert delivery: this process (%s) now delivers the %s queue", self.owner, channel)
            self._leases[channel] = now
            return True
        self._leases.pop(channel, None)
        return False

    # --- one queue -------------------------------------------------------------------------------
    async def _drain(self, queue: tuple[str, str]) -> None:
        channel = self.channels[queue[0]]
        while not self._stopping.is_set():
            try:
                row = await self.outbox.head(*queue)
                if row is None:
                    return
                wait = row.next_attempt_at - self._clock()
                if wait > 0:
                    await self._pause(wait)
                    continue
                if not await self._hold_lease(queue[0]):
                    return
                outcome = await self._attempt(channel, row)
                await self._settle(row, outcome)
            except asyncio.CancelledError:
                raise
            except Exception:
                self.stats["worker_errors"] += 1
                logger.exception("alert delivery on %s failed outside the channel; pausing", queue[0])
                await self._pause(self.policy.error_pause_seconds)

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()

    async def _attempt(self, channel: Channel, row: OutboxRow) -> Outcome:
        try:
            return await channel.deliver(row)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            # a channel bug must not stop the queue: logged with its traceback, then retried like an outage
            logger.exception("alert channel %s raised instead of returning an outcome", channel.name)
            return Outcome(OutcomeKind.TRANSIENT, f"{type(e).__name__}: {e}")

    async def _settle(self, row: OutboxRow, outcome: Outcome) -> None:
        now = self._clock()
        if outcome.kind is OutcomeKind.DELIVERED:
            await self.outbox.mark_sent(row.id)
            self.stats["delivered"] += 1
            _call_hook(self.on_delivered, row)
        elif outcome.kind is OutcomeKind.PERMANENT:
            await self.outbox.mark_dead(row.id, outcome.detail)
            self.stats["dead"] += 1
            logger.error(
                "alert #%d refused by %s for good (%s); kept as a dead letter in the outbox",
                row.id,
                row.channel,
                outcome.detail,
            )
            _call_hook(self.on_dead, row)
        else:
            when = retry_at(outcome, row.attempts, now, self.policy, self._rng.random()) or now
            await self.outbox.reschedule(row.id, when, outcome.detail)
            self.stats["retried"] += 1
            logger.warning(
                "alert #%d to %s not delivered (attempt %d: %s); next try in %.1f s",
                row.id,
                row.channel,
                row.attempts + 1,
                outcome.detail,
                when - now,
            )
            return
        self._changed.set()
