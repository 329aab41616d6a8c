"""sd_notify speaks systemd's datagram protocol to a real AF_UNIX socket, and is silent without one."""

from __future__ import annotations

import logging
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from utils.sd_notify import SystemdNotifier, socket_address, watchdog_interval


@pytest.fixture
def receiver(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5)
    yield sock, path
    sock.close()


def test_messages_reach_the_socket_named_by_notify_socket(
    receiver: tuple[socket.socket, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    sock, path = receiver
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    notifier = SystemdNotifier()
    try:
        assert notifier.enabled
        assert notifier.ready()
        assert notifier.status("3/3 servers running\nsecond line")
        assert notifier.watchdog()
        assert notifier.stopping()
        assert notifier.ready("all up")
    finally:
        notifier.close()
    received = [sock.recv(4096).decode() for _ in range(5)]
    assert received == [
        "READY=1",
        "STATUS=3/3 servers running second line",  # a newline would start a new assignment
        "WATCHDOG=1",
        "STOPPING=1",
        "READY=1\nSTATUS=all up",
    ]
    assert notifier.sent == 5


def test_abstract_socket_address() -> None:
    assert socket_address("@systemd/notify") == b"\0systemd/notify"
    assert socket_address("/run/systemd/notify") == "/run/systemd/notify"


def test_abstract_namespace_socket_receives() -> None:
    name = f"polymarket-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(b"\0" + name.encode())
    sock.settimeout(5)
    notifier = SystemdNotifier(f"@{name}")
    try:
        assert notifier.watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"
    finally:
        notifier.close()
        sock.close()


def test_unset_notify_socket_is_a_no_op(caplog: pytest.LogCaptureFixture) -> None:
    assert "NOTIFY_SOCKET" not in os.environ
    notifier = SystemdNotifier()
    with caplog.at_level(logging.DEBUG, logger="utils.sd_notify"):
        assert not notifier.enabled
        assert notifier.ready() is False
        assert notifier.status("x") is False
        assert notifier.watchdog() is False
        assert notifier.stopping() is False
    assert caplog.records == []
    assert notifier.sent == 0


def test_explicit_empty_path_disables_even_when_the_environment_has_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFY_SOCKET", "/nonexistent/notify.sock")
    assert not SystemdNotifier("").enabled


def test_a_missing_socket_never_raises_and_warns_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    notifier = SystemdNotifier(str(tmp_path / "nobody-listens.sock"))
    with caplog.at_level(logging.DEBUG, logger="utils.sd_notify"):
        assert notifier.ready() is False
        assert notifier.watchdog() is False
        assert notifier.stopping() is False
    notifier.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "nobody-listens.sock" in warnings[0].getMessage() and "READY=1" in warnings[0].getMessage()
    assert sum(1 for r in caplog.records if r.levelno == logging.DEBUG) == 2


def test_a_full_receive_queue_drops_the_message_instead_of_blocking(receiver: tuple[socket.socket, str]) -> None:
    _, path = receiver
    notifier = SystemdNotifier(path)
    try:
        results = [notifier.status("x" * 1024) for _ in range(10_000)]
    finally:
        notifier.close()
    assert results[0] is True
    assert results[-1] is False  # the receiver never reads: the queue filled up and sends were dropped


@pytest.mark.parametrize(
    ("environ", "pid", "expected"),
    [
        ({}, 10, None),
        ({"WATCHDOG_USEC": "30000000"}, 10, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "10"}, 10, 30.0),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "11"}, 10, None),  # meant for another process
        ({"WATCHDOG_USEC": "0"}, 10, None),
        ({"WATCHDOG_USEC": "-5"}, 10, None),
        ({"WATCHDOG_USEC": "thirty"}, 10, None),
        ({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "me"}, 10, None),
    ],
)
def test_watchdog_interval(environ: dict[str, str], pid: int, expected: float | None) -> None:
    assert watchdog_interval(environ, pid=pid) == expected


def test_watchdog_interval_defaults_to_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WATCHDOG_USEC", "2500000")
    monkeypatch.setenv("WATCHDOG_PID", str(os.getpid()))
    assert watchdog_interval() == 2.5
