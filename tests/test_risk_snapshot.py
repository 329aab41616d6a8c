"""The risk snapshot: published at most once a second and on change, atomically, masked; readers validate it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from core.risk_snapshot import (
    SCHEMA_VERSION,
    RiskSnapshotWriter,
    SnapshotMissingError,
    SnapshotSchemaError,
    contains_full_address,
    mask_payload,
    read_risk_snapshot,
    risk_snapshot_path,
    should_publish,
)
from utils.atomic import StateFileError, atomic_write_json

WALLET = "0x1234567890abcdef1234567890abcdef12abcdef"
OTHER_WALLET = "0xfedcba0987654321fedcba0987654321fe654321"
CONDITION_ID = "0x" + "ab" * 32  # 64 hex digits: a market id, not a wallet; must survive masking intact
PROJECT_ROOT = Path(__file__).resolve().parent.parent


class FakeClock:
    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class RecordingWrite:
    """Stands in for the filesystem write so the tests can count writes and see what was written."""

    def __init__(self) -> None:
        self.calls: list[tuple[Path, Any, int]] = []

    def __call__(self, path: Path, payload: Any) -> None:
        self.calls.append((path, payload, threading.get_ident()))


def payload(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "pid": 4242,
        "updated_at": "2026-11-21T10:00:00+00:00",
        "updated_at_epoch": 1.0,
        "trading_mode": "paper",
        "trading_state": "ACTIVE",
        "wallet": WALLET,
        "breaker": {"state": "ACTIVE", "wallet": WALLET, "updated_at": "t0"},
        "risk_parameters": {"max_daily_loss": 100.0},
        "exposure": {"total": 0.0, "by_market": {}},
        "positions": [],
        "latency_ms": {"p50": 0.0, "p95": 0.0, "p99": 0.0, "max": 0.0, "count": 0},
        "errors": {"rate_limit": 0, "timeout": 0, "rejected": 0, "network": 0, "total": 0},
        "trades": {"executed": 0, "denied": 0, "failed": 0},
        "rss_mb": 40.0,
    }
    base.update(overrides)
    return base


# --- the decision ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "last", "changed", "heartbeat", "expected"),
    [
        (0.0, None, False, 10.0, True),  # nothing written yet
        (0.5, 0.0, True, 10.0, False),  # changed, but within the interval
        (1.0, 0.0, True, 10.0, True),  # changed, interval passed
        (5.0, 0.0, False, 10.0, False),  # unchanged, heartbeat not due
        (10.0, 0.0, False, 10.0, True),  # unchanged, heartbeat due
        (99.0, 0.0, False, None, False),  # no heartbeat configured
    ],
)
def test_should_publish_table(now: float, last: float | None, changed: bool, heartbeat: float | None, expected: bool):
    assert should_publish(now, last, changed, 1.0, heartbeat) is expected


# --- rate limit and change detection with an injected clock --------------------------------------------


def test_writes_at_most_once_per_second_and_only_on_change() -> None:
    clock, write = FakeClock(), RecordingWrite()
    writer = RiskSnapshotWriter("snap.json", min_interval=1.0, heartbeat_interval=None, clock=clock, write=write)

    assert writer.maybe_publish(payload()) is True
    assert writer.maybe_publish(payload(rss_mb=41.0)) is False  # changed, but 0 s later
    clock.advance(0.99)
    assert writer.maybe_publish(payload(rss_mb=41.0)) is False  # still inside the second
    clock.advance(0.01)
    assert writer.maybe_publish(payload(rss_mb=41.0)) is True
    clock.advance(5.0)
    assert writer.maybe_publish(payload(rss_mb=41.0)) is False  # unchanged
    assert len(write.calls) == 2
    assert write.calls[-1][1]["rss_mb"] == 41.0


def test_updated_at_fields_alone_are_not_a_change() -> None:
    clock, write = FakeClock(), RecordingWrite()
    writer = RiskSnapshotWriter("snap.json", heartbeat_interval=None, clock=clock, write=write)
    writer.maybe_publish(payload())
    clock.advance(2.0)
    moved = payload(updated_at="2026-11-21T10:00:02+00:00", updated_at_epoch=3.0)
    moved["breaker"]["updated_at"] = "t1"
    assert writer.maybe_publish(moved) is False
    assert len(write.calls) == 1


def test_heartbeat_rewrites_unchanged_content() -> None:
    clock, write = FakeClock(), RecordingWrite()
    writer = RiskSnapshotWriter("snap.json", min_interval=1.0, heartbeat_interval=10.0, clock=clock, write=write)
    writer.maybe_publish(payload())
    clock.advance(9.0)
    assert writer.maybe_publish(payload()) is False
    clock.advance(1.0)
    assert writer.maybe_publish(payload(updated_at_epoch=11.0)) is True
    assert write.calls[-1][1]["updated_at_epoch"] == 11.0


def test_flush_writes_regardless_of_interval_and_content() -> None:
    clock, write = FakeClock(), RecordingWrite()
    writer = RiskSnapshotWriter("snap.json", clock=clock, write=write)
    writer.maybe_publish(payload())
    assert writer.flush(payload()) is True
    assert len(write.calls) == 2


@pytest.mark.parametrize(("min_interval", "heartbeat"), [(-1.0, None), (5.0, 1.0)])
def test_bad_intervals_are_refused(min_interval: float, heartbeat: float | None) -> None:
    with pytest.raises(ValueError, match="interval"):
        RiskSnapshotWriter("snap.json", min_interval=min_interval, heartbeat_interval=heartbeat)


async def test_publish_writes_in_a_worker_thread_and_honours_force() -> None:
    clock, write = FakeClock(), RecordingWrite()
    writer = RiskSnapshotWriter("snap.json", clock=clock, write=write)
    assert await writer.publish(payload()) is True
    assert await writer.publish(payload(rss_mb=50.0)) is False
    assert await writer.publish(payload(rss_mb=50.0), force=True) is True
    assert len(write.calls) == 2
    assert all(call[2] != threading.get_ident() for call in write.calls)  # never on the event loop's thread


async def test_concurrent_publishes_write_once() -> None:
    clock, write = FakeClock(), RecordingWrite()
    writer = RiskSnapshotWriter("snap.json", clock=clock, write=write)
    results = await asyncio.gather(*(writer.publish(payload(rss_mb=float(i))) for i in range(5)))
    assert results.count(True) == 1
    assert len(write.calls) == 1


# --- on disk: atomic, masked, failure contained ----------------------------------------------------------


def test_file_is_valid_json_without_temp_files_and_readable(tmp_path: Path) -> None:
    path = risk_snapshot_path(tmp_path / "state")
    writer = RiskSnapshotWriter(path)
    assert writer.flush(payload()) is True
    assert path.name == "risk_state.json"
    assert [p.name for p in path.parent.iterdir()] == ["risk_state.json"]
    assert read_risk_snapshot(path)["trading_state"] == "ACTIVE"


def test_no_full_wallet_address_reaches_the_file(tmp_path: Path) -> None:
    path = tmp_path / "risk_state.json"
    data = payload(
        positions=[{"token_id": "123", "market": CONDITION_ID, "size": 1.0, "note": f"copied from {OTHER_WALLET}"}],
        breaker={"wallet": WALLET, "history": [{"reason": f"halt for {WALLET}"}]},
        exposure={"total": 1.0, "by_market": {OTHER_WALLET: 1.0}},
    )
    data["wallet"] = "plain-name-wallet"
    RiskSnapshotWriter(path).flush(data)

    text = path.read_text()
    assert not contains_full_address(text)
    assert WALLET not in text and OTHER_WALLET not in text
    assert "***abcdef" in text and "***654321" in text
    assert CONDITION_ID in text  # a 64-digit id is not an address and is kept whole
    stored = json.loads(text)
    assert stored["wallet"] == "***wallet"
    assert data["wallet"] == "plain-name-wallet"  # the caller's payload is not modified


def test_mask_payload_is_idempotent() -> None:
    once = mask_payload(payload())
    assert mask_payload(once) == once
    assert once["wallet"] == "***abcdef"


def test_a_failing_write_is_counted_keeps_the_old_file_and_is_retried(tmp_path: Path) -> None:
    path = tmp_path / "risk_state.json"
    clock = FakeClock()
    failures = {"left": 1}

    def flaky_write(target: Path, data: Any) -> None:
        if failures["left"]:
            failures["left"] -= 1
            raise OSError(28, "No space left on device")
        atomic_write_json(target, data)

    writer = RiskSnapshotWriter(path, clock=clock, write=flaky_write)
    atomic_write_json(path, payload(trading_state="OLD"))
    assert writer.maybe_publish(payload()) is False
    assert writer.write_errors == 1
    assert read_risk_snapshot(path)["trading_state"] == "OLD"
    assert writer.maybe_publish(payload()) is False  # retries wait for the interval too
    clock.advance(1.0)
    assert writer.maybe_publish(payload()) is True  # unchanged content, but it never reached the disk
    assert read_risk_snapshot(path)["trading_state"] == "ACTIVE"


@pytest.mark.integration
def test_sigkill_during_writes_leaves_a_valid_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "risk_state.json"
    child = (
        "import itertools, sys\n"
        "from core.risk_snapshot import RiskSnapshotWriter\n"
        f"w = RiskSnapshotWriter({str(path)!r}, min_interval=0.0, heartbeat_interval=None)\n"
        "big = {'schema_version': 1, 'positions': [{'token_id': str(i), 'size': float(i)} for i in range(2000)]}\n"
        "for n in itertools.count():\n"
        "    big['pid'] = n\n"
        "    w.flush(big)\n"
        "    if n == 3:\n"
        "        print('writing', flush=True)\n"
        "    if n == 30:\n"
        "        print('well into the writes', flush=True)\n"
    )
    env = {**os.environ, "PYTHONPATH": str(PROJECT_ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", child], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, env=env, cwd=tmp_path
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"writing"
        assert proc.stdout.readline().strip() == b"well into the writes"  # the kill lands among later writes
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    snapshot = read_risk_snapshot(path)
    assert snapshot["pid"] >= 3
    assert len(snapshot["positions"]) == 2000


# --- the reader: malformed files are rejected with clear errors -------------------------------------------


def test_missing_snapshot_says_the_bot_has_not_published(tmp_path: Path) -> None:
    with pytest.raises(SnapshotMissingError, match="has not published"):
        read_risk_snapshot(tmp_path / "risk_state.json")


@pytest.mark.parametrize(
    ("content", "match"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe", "not valid JSON"),
        (b"[1, 2]", "should hold a JSON object"),
        (b"", "not valid JSON"),
    ],
)
def test_unparseable_snapshot_is_rejected(tmp_path: Path, content: bytes, match: str) -> None:
    path = tmp_path / "risk_state.json"
    path.write_bytes(content)
    with pytest.raises(StateFileError, match=match):
        read_risk_snapshot(path)


@pytest.mark.parametrize("version", [2, 0, "1", None, True, 1.5])
def test_wrong_schema_version_is_rejected(tmp_path: Path, version: Any) -> None:
    path = tmp_path / "risk_state.json"
    atomic_write_json(path, payload(schema_version=version))
    with pytest.raises(SnapshotSchemaError, match=r"expected schema_version 1, received"):
        read_risk_snapshot(path)


def test_missing_schema_version_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "risk_state.json"
    data = payload()
    del data["schema_version"]
    atomic_write_json(path, data)
    with pytest.raises(SnapshotSchemaError, match="received None"):
        read_risk_snapshot(path)


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("positions", {"a": 1}, "array"),
        ("breaker", "ACTIVE", "object"),
        ("rss_mb", "40", "number"),
        ("pid", True, "int"),
        ("trading_state", 1, "string"),
        ("latency_ms", [1, 2], "object"),
    ],
)
def test_wrongly_typed_key_is_rejected(tmp_path: Path, key: str, value: Any, expected: str) -> None:
    path = tmp_path / "risk_state.json"
    atomic_write_json(path, payload(**{key: value}))
    with pytest.raises(SnapshotSchemaError, match=f"key '{key}' should be a {expected}"):
        read_risk_snapshot(path)


def test_position_that_is_not_an_object_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "risk_state.json"
    atomic_write_json(path, payload(positions=[{"token_id": "1"}, "oops"]))
    with pytest.raises(SnapshotSchemaError, match=r"positions\[1\] should be an object"):
        read_risk_snapshot(path)


def test_missing_keys_are_tolerated(tmp_path: Path) -> None:
    path = tmp_path / "risk_state.json"
    atomic_write_json(path, {"schema_version": SCHEMA_VERSION, "pid": 1})
    assert read_risk_snapshot(path) == {"schema_version": SCHEMA_VERSION, "pid": 1}
