"""Delivery against a fake Bot API on loopback: dedup, order, retries, dead letters, restarts, staging."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.alerting.conftest import CHAT, STAGING_CHAT, TOKEN, alert, pipeline_config
from tests.fakes.fake_alertmanager import FakeAlertmanager
from tests.fakes.fake_telegram import Drop, Failure, FakeTelegram, RateLimited, Refuse, Stall
from tests.waiting import eventually
from utils.alerting.channel import Channel
from utils.alerting.model import AlertSeverity
from utils.alerting.outbox import OutboxRow, RowState
from utils.alerting.pipeline import AlertPipeline, PipelineConfig, default_channels

pytestmark = pytest.mark.integration


# --- through the fake Bot API ----------------------------------------------------------------------
async def test_one_thousand_identical_alerts_make_one_message(
    telegram: FakeTelegram, make_pipeline: Callable[..., AlertPipeline]
) -> None:
    pipeline = make_pipeline(telegram)
    submissions = [await pipeline.submit(alert("🔴 CRITICAL ISSUE\ndisk full")) for _ in range(1000)]
    assert sum(1 for s in submissions if s.decision.delivers) == 1
    assert await pipeline.flush(10.0)
    assert [m.text for m in telegram.messages] == ["<b>🔴 CRITICAL ISSUE</b>\ndisk full"]
    assert telegram.send_attempts == 1


def _flaky(until_attempt: int) -> Callable[[int], Failure | None]:
    """429 with retry_after, stalls past the client timeout, dropped connections, then healthy."""

    def policy(attempt: int) -> Failure | None:
        if attempt > until_attempt:
            return None
        return {1: RateLimited(retry_after=1), 4: Stall(0.6), 7: Drop()}.get(attempt % 10)

    return policy


@pytest.mark.slow
async def test_two_hundred_distinct_alerts_survive_429_timeouts_and_drops_in_order_once(
    telegram: FakeTelegram, make_pipeline: Callable[..., AlertPipeline]
) -> None:
    telegram.fail_with(_flaky(until_attempt=30))
    pipeline = make_pipeline(telegram)
    texts = [f"alert {n:03d} <&>" for n in range(200)]
    for text in texts:
        assert (await pipeline.submit(alert(text))).decision.delivers
    assert await pipeline.flush(60.0)
    expected = [f"<b>alert {n:03d} &lt;&amp;&gt;</b>" for n in range(200)]
    assert [m.text for m in telegram.messages] == expected  # all, in order, none twice
    kinds = {type(f) for f in telegram.failures_served}
    assert kinds == {RateLimited, Stall, Drop}
    assert pipeline.outbox is not None
    assert await pipeline.outbox.counts() == {"pending": 0, "sent": 200, "dead": 0}


@pytest.mark.slow
async def test_delivery_resumes_after_a_restart_from_the_same_outbox(
    telegram: FakeTelegram, make_pipeline: Callable[..., AlertPipeline], tmp_path: Path
) -> None:
    outbox = tmp_path / "shared" / "alerts_outbox.sqlite3"
    telegram.fail_with(_flaky(until_attempt=40))
    first = make_pipeline(telegram, outbox=outbox)
    for n in range(200):
        await first.submit(alert(f"alert {n:03d}"))
    await telegram.wait_for_messages(40, within=30.0)
    await first.aclose(grace_seconds=5.0)  # the sidecar restarts mid-way
    delivered_before = len(telegram.messages)
    assert delivered_before < 200

    second = make_pipeline(telegram, outbox=outbox)
    assert await second.flush(60.0)
    assert [m.text for m in telegram.messages] == [f"<b>alert {n:03d}</b>" for n in range(200)]
    # the restarted pipeline remembers what was sent: the same alert again is a duplicate
    assert not (await second.submit(alert("alert 000"))).decision.delivers


async def test_bad_request_and_forbidden_become_dead_letters_and_later_alerts_still_go(
    telegram: FakeTelegram, make_pipeline: Callable[..., AlertPipeline], caplog: pytest.LogCaptureFixture
) -> None:
    telegram.fail(
        Refuse(400, "Bad Request: can't parse entities"), Refuse(403, "Forbidden: bot was blocked by the user")
    )
    pipeline = make_pipeline(telegram)
    with caplog.at_level(logging.ERROR, logger="utils.alerting.delivery"):
        ids = [(await pipeline.submit(alert(f"a{n}"))).row_ids[0] for n in range(4)]
        assert await pipeline.flush(10.0)
    assert [m.text for m in telegram.messages] == ["<b>a2</b>", "<b>a3</b>"]
    assert pipeline.outbox is not None
    states = await pipeline.outbox.states(ids)
    assert [states[i] for i in ids] == [RowState.DEAD, RowState.DEAD, RowState.SENT, RowState.SENT]
    dead = await pipeline.outbox.rows(RowState.DEAD)
    assert [r.last_error for r in dead] == [
        "BadRequest: Can't parse entities",
        "Forbidden: Forbidden: bot was blocked by the user",
    ]
    assert sum("kept as a dead letter" in r.getMessage() for r in caplog.records) == 2
    assert telegram.send_attempts == 4  # never retried


async def test_dead_letters_can_be_requeued_once_the_operator_fixed_things(
    telegram: FakeTelegram, make_pipeline: Callable[..., AlertPipeline]
) -> None:
    telegram.fail(Refuse(403, "Forbidden: bot is not a member of the chat"))
    pipeline = make_pipeline(telegram)
    await pipeline.submit(alert("kept"))
    assert await pipeline.flush(10.0)
    assert telegram.messages == []
    assert await pipeline.requeue_dead() == 1
    assert await pipeline.flush(10.0)
    assert [m.text for m in telegram.messages] == ["<b>kept</b>"]


async def test_a_rejected_token_keeps_alerts_pending_and_says_so_once(
    make_pipeline: Callable[..., AlertPipeline], caplog: pytest.LogCaptureFixture
) -> None:
    async with FakeTelegram("111:the-real-token-is-another-one") as other:
        pipeline = make_pipeline(other)  # configured with the canary token: 401 Unauthorized
        with caplog.at_level(logging.ERROR):
            ids = [(await pipeline.submit(alert(f"a{n}"))).row_ids[0] for n in range(2)]
            assert not await pipeline.flush(0.5)
        assert pipeline.outbox is not None
        assert set((await pipeline.outbox.states(ids)).values()) == {RowState.PENDING}
        rejected = [r for r in caplog.records if "rejected TELEGRAM_BOT_TOKEN" in r.getMessage()]
        assert len(rejected) == 1


async def test_rate_limit_is_honoured_as_given(
    telegram: FakeTelegram, make_pipeline: Callable[..., AlertPipeline]
) -> None:
    telegram.fail(RateLimited(retry_after=1))
    pipeline = make_pipeline(telegram)
    submission = await pipeline.submit(alert("flood"))
    assert pipeline.outbox is not None
    await telegram.wait_for_attempts(1, within=5.0)
    outbox = pipeline.outbox

    async def attempted_row() -> OutboxRow | None:  # the worker records the outcome right after the answer
        (row,) = await outbox.rows(RowState.PENDING)
        return row if row.attempts else None

    row = await eventually(attempted_row, "the failed attempt recorded in the outbox", within=5.0)
    assert row.id == submission.row_ids[0] and row.attempts == 1
    # scheduled one retry_after after the failed attempt, not the 10 ms transient backoff
    assert row.next_attempt_at - row.created_at >= 1.0
    assert "RetryAfter" in (row.last_error or "")
    assert await pipeline.flush(5.0)
    assert len(telegram.messages) == 1


async def test_staging_alerts_are_marked_and_go_to_the_staging_chat(
    telegram: FakeTelegram, make_pipeline: Callable[..., AlertPipeline]
) -> None:
    pipeline = make_pipeline(telegram, staging_chat_id=STAGING_CHAT)
    await pipeline.submit(alert("deploy started", staging=True))
    await pipeline.submit(alert("production alert"))
    assert await pipeline.flush(10.0)
    assert [m.text for m in telegram.messages_to(STAGING_CHAT)] == ["<b>[STAGING]</b> <b>deploy started</b>"]
    assert [m.text for m in telegram.messages_to(CHAT)] == ["<b>production alert</b>"]
    assert {m.parse_mode for m in telegram.messages} == {"HTML"}


async def test_without_a_staging_chat_staging_alerts_go_to_the_main_chat_marked(
    telegram: FakeTelegram, make_pipeline: Callable[..., AlertPipeline]
) -> None:
    pipeline = make_pipeline(telegram)
    await pipeline.submit(alert("deploy started", staging=True))
    assert await pipeline.flush(10.0)
    assert [m.text for m in telegram.messages_to(CHAT)] == ["<b>[STAGING]</b> <b>deploy started</b>"]


async def test_a_stalled_chat_does_not_hold_up_another_chat(
    telegram: FakeTelegram, make_pipeline: Callable[..., AlertPipeline]
) -> None:
    # the main chat is rate limited for a second; the staging chat's queue is independent
    telegram.fail(RateLimited(retry_after=1))
    pipeline = make_pipeline(telegram, staging_chat_id=STAGING_CHAT)
    await pipeline.submit(alert("main first"))
    await telegram.wait_for_attempts(1, within=5.0)  # the main chat is now waiting out its retry_after
    await pipeline.submit(alert("staging second", staging=True))
    await telegram.wait_for_messages(1, within=5.0)
    assert telegram.messages[0].chat_id == STAGING_CHAT
    assert await pipeline.flush(5.0)
    assert [m.chat_id for m in telegram.messages] == [STAGING_CHAT, CHAT]


async def test_mute_holds_telegram_alerts_below_critical(
    telegram: FakeTelegram, make_pipeline: Callable[..., AlertPipeline]
) -> None:
    pipeline = make_pipeline(telegram)
    pipeline.mute(600)
    assert (await pipeline.submit(alert("noise"))).channels == []
    assert (await pipeline.submit(alert("fire", AlertSeverity.CRITICAL))).channels == ["telegram"]
    pipeline.mute(0)
    assert (await pipeline.submit(alert("after"))).channels == ["telegram"]
    assert await pipeline.flush(10.0)
    assert [m.text for m in telegram.messages] == ["<b>fire</b>", "<b>after</b>"]


async def test_two_processes_sharing_the_outbox_deliver_everything_once(
    telegram: FakeTelegram, make_pipeline: Callable[..., AlertPipeline], tmp_path: Path
) -> None:
    outbox = tmp_path / "alerts_outbox.sqlite3"
    bot, sidecar = make_pipeline(telegram, outbox=outbox), make_pipeline(telegram, outbox=outbox)
    for n in range(20):
        await (bot if n % 2 else sidecar).submit(alert(f"m{n:02d}"))
    assert await bot.flush(10.0) and await sidecar.flush(10.0)
    assert [m.text for m in telegram.messages] == [f"<b>m{n:02d}</b>" for n in range(20)]
    assert [
        bot.worker is not None and bot.worker.holds_lease,
        sidecar.worker is not None and sidecar.worker.holds_lease,
    ].count(True) == 1


async def test_a_process_without_a_channel_never_holds_up_its_queue(
    telegram: FakeTelegram, make_pipeline: Callable[..., AlertPipeline], tmp_path: Path
) -> None:
    outbox = tmp_path / "alerts_outbox.sqlite3"
    async with FakeAlertmanager() as alertmanager:
        bot = make_pipeline(telegram, outbox=outbox)  # no ALERTMANAGER_URL in the bot's environment
        await bot.submit(alert("from the bot"))
        assert await bot.flush(5.0)
        sidecar = make_pipeline(telegram, outbox=outbox, alertmanager_url=alertmanager.base_url)
        await sidecar.submit(alert("from the sidecar"))
        await alertmanager.wait_for(1)
        assert await sidecar.flush(5.0)
        assert [m.text for m in telegram.messages] == ["<b>from the bot</b>", "<b>from the sidecar</b>"]
        assert bot.worker is not None and bot.worker.holds_lease  # the bot still delivers Telegram
        await sidecar.aclose()


async def test_a_corrupt_outbox_is_replaced_and_reported_by_an_alert(
    telegram: FakeTelegram, make_pipeline: Callable[..., AlertPipeline], tmp_path: Path
) -> None:
    outbox = tmp_path / "alerts_outbox.sqlite3"
    outbox.write_bytes(b"\x00garbage" * 1000)
    pipeline = make_pipeline(telegram, outbox=outbox)
    await pipeline.submit(alert("after the crash"))
    assert await pipeline.flush(10.0)
    texts = [m.text for m in telegram.messages]
    assert len(texts) == 2
    assert texts[0].startswith("<b>🔴 CRITICAL ISSUE</b>\nThe alert outbox was corrupt and was moved aside to ")
    assert ".corrupt-" in texts[0]
    assert texts[1] == "<b>after the crash</b>"


async def test_an_unwritable_state_dir_falls_back_to_memory_and_still_delivers(
    telegram: FakeTelegram,
    make_pipeline: Callable[..., AlertPipeline],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("not a folder")
    pipeline = make_pipeline(telegram, outbox=blocker / "alerts_outbox.sqlite3")
    with caplog.at_level(logging.ERROR):
        await pipeline.submit(alert("still delivered"))
        assert await pipeline.flush(10.0)
    assert [m.text for m in telegram.messages] == ["<b>still delivered</b>"]
    assert any("kept in memory only" in r.getMessage() for r in caplog.records)


def test_one_shot_event_loops_reuse_the_pipeline(tmp_path: Path) -> None:
    """`asyncio.run(send(...))` twice in one process (the README's troubleshooting check) both deliver.

    The first run ends without closing anything, as a one-shot script does: the second loop must get a
    fresh worker and fresh connections, and inherit the delivery lease at once.
    """
    delivered: list[str] = []
    pipeline: AlertPipeline | None = None

    async def once(text: str, *, close: bool) -> None:
        nonlocal pipeline
        async with FakeTelegram(TOKEN) as fake:
            config = pipeline_config(tmp_path / "o.sqlite3", fake)
            if pipeline is None:
                pipeline = AlertPipeline(config)
            else:
                # a new loop: the fake listens on a new port, as if a proxy had restarted
                pipeline.config = config
            submission = await pipeline.submit(alert(text))
            assert await pipeline.wait_settled(submission.row_ids, 5.0)
            delivered.extend(m.text for m in fake.messages)
            if close:
                await pipeline.aclose()

    asyncio.run(once("first run", close=False))
    asyncio.run(once("second run", close=True))
    assert delivered == ["<b>first run</b>", "<b>second run</b>"]


async def test_the_channels_are_built_off_the_event_loop(telegram: FakeTelegram, tmp_path: Path) -> None:
    """Each Telegram transport loads the CA bundle (tens of ms of CPU): that happens in a worker thread."""
    built_on: list[int] = []

    def channels(config: PipelineConfig) -> dict[str, Channel]:
        built_on.append(threading.get_ident())
        return default_channels(config)

    pipeline = AlertPipeline(pipeline_config(tmp_path / "outbox.sqlite3", telegram), channel_factory=channels)
    try:
        await pipeline.submit(alert("built off the loop"))
        assert await pipeline.flush(10.0)
    finally:
        await pipeline.aclose()
    assert built_on and threading.get_ident() not in built_on
    assert [m.text for m in telegram.messages] == ["<b>built off the loop</b>"]
