"""The SQLite outbox: order per queue, states, the delivery lease, and bad files (corrupt, unwritable)."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from utils.alerting.outbox import NewRow, Outbox, OutboxError, RowState, corrupt_name


class Clock:
    def __init__(self, now: float = 1_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def row(n: int, channel: str = "telegram", destination: str = "42", key: str | None = None) -> NewRow:
    return NewRow(f"alert-{n}", channel, destination, f"fp{n}", key, "warning", "firing", f'{{"text": "m{n}"}}')


@pytest.fixture
async def outbox(tmp_path: Path) -> AsyncIterator[Outbox]:
    box = Outbox(tmp_path / "state" / "alerts_outbox.sqlite3", clock=Clock())
    await box.open()
    yield box
    await box.close()


async def test_rows_come_out_oldest_first_per_queue(outbox: Outbox) -> None:
    ids = await outbox.enqueue(
        [row(1), row(2), row(3, destination="-100"), row(4, channel="alertmanager", destination="")]
    )
    assert ids == sorted(ids)
    assert sorted(await outbox.pending_queues()) == [("alertmanager", ""), ("telegram", "-100"), ("telegram", "42")]
    head = await outbox.head("telegram", "42")
    assert head is not None and head.id == ids[0] and head.payload == '{"text": "m1"}'
    await outbox.mark_sent(ids[0])
    head = await outbox.head("telegram", "42")
    assert head is not None and head.id == ids[1]
    assert await outbox.counts() == {"pending": 3, "sent": 1, "dead": 0}


async def test_reschedule_dead_letters_and_requeue(outbox: Outbox) -> None:
    first, second = await outbox.enqueue([row(1), row(2)])
    await outbox.reschedule(first, 2_000.0, "TimedOut")
    head = await outbox.head("telegram", "42")
    assert head is not None and (head.id, head.attempts, head.next_attempt_at, head.last_error) == (
        first,
        1,
        2_000.0,
        "TimedOut",
    )
    await outbox.mark_dead(first, "BadRequest: chat not found")
    assert (await outbox.states([first, second, 999])) == {first: RowState.DEAD, second: RowState.PENDING}
    dead = await outbox.rows(RowState.DEAD)
    assert [(r.id, r.attempts, r.last_error) for r in dead] == [(first, 2, "BadRequest: chat not found")]
    assert await outbox.requeue_dead("alertmanager") == 0
    assert await outbox.requeue_dead() == 1
    assert (await outbox.states([first]))[first] is RowState.PENDING


async def test_prune_removes_only_old_finished_rows(outbox: Outbox) -> None:
    a, b, c = await outbox.enqueue([row(1), row(2), row(3)])
    await outbox.mark_sent(a)
    await outbox.mark_dead(b, "refused")
    assert await outbox.prune(sent_older_than=999.0, dead_older_than=2_000.0) == 1  # only the dead row is old enough
    assert set(await outbox.states([a, b, c])) == {a, c}


async def test_recent_rows_include_each_keys_last_row(tmp_path: Path) -> None:
    clock = Clock(100.0)
    box = Outbox(tmp_path / "o.sqlite3", clock=clock)
    await box.open()
    try:
        await box.enqueue([row(1, key="cpu")])
        clock.now = 5_000.0
        await box.enqueue([row(2)])
        recent = await box.recent(since=4_000.0)
        assert [r.alert_id for r in recent] == ["alert-1", "alert-2"]
        assert (await box.recent(since=6_000.0))[0].alert_key == "cpu"
    finally:
        await box.close()


async def test_the_lease_lets_one_process_deliver_each_channel(tmp_path: Path) -> None:
    path = tmp_path / "shared.sqlite3"
    clock = Clock()
    bot, sidecar = Outbox(path, clock=clock), Outbox(path, clock=clock)
    await bot.open()
    await sidecar.open()
    try:
        assert await bot.acquire_lease("bot", 15, "telegram")
        assert await bot.acquire_lease("bot", 15, "telegram")  # renewal
        assert not await sidecar.acquire_lease("sidecar", 15, "telegram")
        assert await sidecar.acquire_lease("sidecar", 15, "alertmanager")  # another channel, another lease
        clock.now += 16  # the bot died without releasing: its lease expires
        assert await sidecar.acquire_lease("sidecar", 15, "telegram")
        assert not await bot.acquire_lease("bot", 15, "telegram")
        await sidecar.release_leases("sidecar")
        assert await bot.acquire_lease("bot", 15, "telegram")
        assert await bot.acquire_lease("bot", 15, "alertmanager")
    finally:
        await bot.close()
        await sidecar.close()


def _garbage_file(path: Path) -> None:
    path.write_bytes(b"this is not an SQLite database at all" * 100)


def _damaged_pages(path: Path) -> None:
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE outbox (payload TEXT)")
    conn.executemany("INSERT INTO outbox VALUES (?)", [("x" * 500,)] * 200)
    conn.commit()
    conn.close()
    data = bytearray(path.read_bytes())
    data[4096 * 2 : 4096 * 2 + 3000] = b"\xff" * 3000
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_garbage_file, _damaged_pages], ids=["not-sqlite", "damaged-pages"])
async def test_a_corrupt_outbox_is_moved_aside_and_replaced(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, damage: Callable[[Path], None]
) -> None:
    path = tmp_path / "alerts_outbox.sqlite3"
    damage(path)
    bad_bytes = path.read_bytes()
    clock = Clock(1_700_000_000.0)
    box = Outbox(path, clock=clock)
    with caplog.at_level(logging.ERROR):
        await box.open()
    try:
        moved = corrupt_name(path, clock.now)
        assert box.recovered_from == moved
        assert moved.read_bytes() == bad_bytes  # kept as it was, for the operator
        assert moved.name.startswith("alerts_outbox.sqlite3.corrupt-20231114T")
        assert any("ALERT OUTBOX CORRUPT" in r.getMessage() and str(moved) in r.getMessage() for r in caplog.records)
        assert await box.enqueue([row(1)]) == [1]  # the fresh outbox works
    finally:
        await box.close()


async def test_an_outbox_that_cannot_be_created_says_where_and_why(tmp_path: Path) -> None:
    blocker = tmp_path / "state"
    blocker.write_text("a file where the state folder should be")
    box = Outbox(blocker / "alerts_outbox.sqlite3")
    with pytest.raises(OutboxError, match=r"cannot create the outbox folder .*state"):
        await box.open()
    await box.close()


async def test_an_outbox_from_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    box = Outbox(path)
    with pytest.raises(OutboxError, match="schema version 99, expected 1"):
        await box.open()
    await box.close()
    assert path.exists()  # not moved aside: it is not corrupt, just not ours to change


async def test_calls_on_a_closed_outbox_say_so(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.sqlite3")
    with pytest.raises(OutboxError, match="not open"):
        await box.enqueue([row(1)])


async def test_a_new_outbox_is_readable_by_its_owner_only(outbox: Outbox) -> None:
    assert isinstance(outbox.path, Path)
    assert outbox.path.stat().st_mode & 0o777 == 0o600


async def test_rows_survive_reopening(tmp_path: Path) -> None:
    path = tmp_path / "o.sqlite3"
    first = Outbox(path)
    await first.open()
    ids = await first.enqueue([row(1), row(2)])
    await first.close()
    second = Outbox(path)
    await second.open()
    try:
        assert await second.states(ids) == {ids[0]: RowState.PENDING, ids[1]: RowState.PENDING}
    finally:
        await second.close()
