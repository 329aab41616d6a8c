"""The supervisor keeps its promises: ready handshake, contained crashes, bounded restarts, bounded stop."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp.restart_policy import RestartPolicy, ServerState, restart_decision
from mcp.supervisor import Outcome, Supervisor
from tests.fakes.fake_servers import (
    AlertRecorder,
    BrokenHealthServer,
    CrashingServer,
    FakeClock,
    NeverReadyServer,
    ReadyServer,
    ReturningServer,
    StubbornServer,
)
from tests.waiting import eventually
from utils.alerts import AlertType
from utils.sd_notify import SystemdNotifier

NOW = 10_000.0


def make_supervisor(servers: list, clock: FakeClock | None = None, **kw) -> tuple[Supervisor, AlertRecorder]:
    alerts = AlertRecorder()
    fake = clock or FakeClock()
    supervisor = Supervisor(servers, clock=fake, sleep=fake.sleep, alert=alerts, **kw)
    return supervisor, alerts


# --- the restart decision (pure) ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("failures", "expected"),
    [
        ([NOW], (True, 1.0)),
        ([NOW - 10, NOW], (True, 2.0)),
        ([NOW - 20, NOW - 10, NOW], (True, 4.0)),
        ([NOW - 30, NOW - 20, NOW - 10, NOW], (False, 0.0)),
        # the oldest failure left the 300 s window: only three count
        ([NOW - 301, NOW - 20, NOW - 10, NOW], (True, 4.0)),
        # exactly 300 s ago is outside the window
        ([NOW - 300, NOW - 20, NOW - 10, NOW], (True, 4.0)),
        ([NOW - 299, NOW - 20, NOW - 10, NOW], (False, 0.0)),
        ([], (True, 0.0)),
    ],
)
def test_restart_decision_table(failures: list[float], expected: tuple[bool, float]) -> None:
    assert restart_decision(failures, NOW) == expected


def test_restart_delay_is_capped() -> None:
    policy = RestartPolicy(max_attempts=10, base_delay_seconds=1.0, factor=2.0, max_delay_seconds=5.0)
    delays = [restart_decision([NOW] * n, NOW, policy)[1] for n in range(1, 8)]
    assert delays == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0]


@settings(database=None)
@given(
    offsets=st.lists(st.floats(min_value=0, max_value=1000, allow_nan=False), max_size=12),
    max_attempts=st.integers(min_value=1, max_value=6),
)
def test_restart_decision_properties(offsets: list[float], max_attempts: int) -> None:
    policy = RestartPolicy(max_attempts=max_attempts)
    failures = [NOW - offset for offset in offsets]
    restart, delay = restart_decision(failures, NOW, policy)
    recent = sum(1 for offset in offsets if offset < policy.window_seconds)
    assert restart == (recent <= max_attempts)
    assert 0.0 <= delay <= policy.max_delay_seconds
    if restart and recent:
        # one more failure never shortens the wait, unless it is the one that stops restarts
        more_restart, more_delay = restart_decision([*failures, NOW], NOW, policy)
        assert not more_restart or more_delay >= delay


# --- start-up -----------------------------------------------------------------------------------


async def test_a_server_counts_as_up_only_once_it_is_ready() -> None:
    gate = asyncio.Event()
    slow, quick = ReadyServer("slow", gate=gate), ReadyServer("quick")
    supervisor, alerts = make_supervisor([slow, quick])
    supervisor.launch()
    started = asyncio.create_task(supervisor.wait_started())
    await eventually(lambda: supervisor.records["quick"].state is ServerState.RUNNING, "quick state is RUNNING")
    assert slow.runs == 1
    assert supervisor.records["slow"].state is ServerState.STARTING
    assert not started.done()
    assert alerts.of_type(AlertType.MCP_SERVERS_STARTED) == []
    gate.set()
    await started
    assert supervisor.records["slow"].state is ServerState.RUNNING
    assert len(alerts.of_type(AlertType.MCP_SERVERS_STARTED)) == 1
    await supervisor.stop()


async def test_start_up_timeout_is_a_failed_start_and_the_others_run_on() -> None:
    never, fine = NeverReadyServer("never"), ReadyServer("fine")
    supervisor, alerts = make_supervisor([never, fine], startup_timeout=0.05)
    supervisor.launch()
    await supervisor.wait_started()
    await eventually(lambda: supervisor.records["never"].state is ServerState.FAILED, "never state is FAILED")
    record = supervisor.records["never"]
    assert "did not become ready within 0.05 s" in (record.last_error or "")
    assert never.runs == 4 and never.cancelled == 4  # the first start and 3 restarts, each cancelled
    assert supervisor.records["fine"].state is ServerState.RUNNING
    assert fine.runs == 1 and fine.cancelled == 0
    # the start-up alert waits for all servers to be up, which never happened
    assert alerts.of_type(AlertType.MCP_SERVERS_STARTED) == []
    assert len(alerts.of_type(AlertType.CRITICAL_ISSUE)) == 1
    await supervisor.stop()


async def test_start_up_timeout_can_be_set_per_server() -> None:
    never, slow = NeverReadyServer("never"), NeverReadyServer("slow")
    supervisor, _ = make_supervisor([never, slow], startup_timeout=3600, startup_timeouts={"never": 0.05})
    supervisor.launch()
    await eventually(lambda: supervisor.records["never"].last_error is not None, "never last_error is not None")
    assert supervisor.records["never"].last_error == "did not become ready within 0.05 s"
    assert supervisor.records["slow"].state is ServerState.STARTING and slow.cancelled == 0
    await supervisor.stop()


# --- crashes --------------------------------------------------------------------------------------


async def test_a_crash_is_contained_logged_and_restarted(caplog: pytest.LogCaptureFixture) -> None:
    crashing, steady = CrashingServer("crashing", crashes=1), ReadyServer("steady")
    clock = FakeClock()
    supervisor, _ = make_supervisor([crashing, steady], clock)
    with caplog.at_level(logging.ERROR, logger="mcp.supervisor"):
        supervisor.launch()
        await eventually(lambda: supervisor.records["crashing"].restarts == 1, "crashing restarts == 1")
        await eventually(
            lambda: supervisor.records["crashing"].state is ServerState.RUNNING, "crashing state is RUNNING"
        )
    record = supervisor.records["crashing"]
    assert record.last_error == "RuntimeError: crashing crash #1"
    assert clock.sleeps == [1.0]
    assert steady.runs == 1 and steady.cancelled == 0
    assert supervisor.records["steady"].state is ServerState.RUNNING
    crash_logs = [r for r in caplog.records if "crashed" in r.getMessage()]
    assert crash_logs and crash_logs[0].exc_info is not None  # the traceback is in the log
    await supervisor.stop()


async def test_three_restarts_within_300s_then_failed_with_a_critical_alert() -> None:
    crashing, steady = CrashingServer("crashing", crashes=100), ReadyServer("steady")
    clock = FakeClock()
    supervisor, alerts = make_supervisor([crashing, steady], clock)
    supervisor.launch()
    await eventually(lambda: supervisor.records["crashing"].state is ServerState.FAILED, "crashing state is FAILED")
    assert crashing.runs == 4
    assert clock.sleeps == [1.0, 2.0, 4.0]
    record = supervisor.records["crashing"]
    assert record.restarts == 3
    critical = alerts.of_type(AlertType.CRITICAL_ISSUE)
    assert len(critical) == 1
    _, body, severity, key = critical[0]
    assert severity == "critical"
    assert key == "mcp-server-failed:crashing"
    assert "'crashing' failed 4 times within 300 s" in body and "crashing crash #4" in body
    assert supervisor.records["steady"].state is ServerState.RUNNING
    stats = supervisor.statistics()
    assert stats["restarts_total"] == 3
    assert stats["servers"]["crashing"]["state"] == "failed"
    assert stats["servers"]["steady"]["state"] == "running"
    await supervisor.stop()


async def test_crashes_far_apart_keep_being_restarted() -> None:
    clock = FakeClock()
    crashing = CrashingServer("crashing", crashes=6, before_crash=lambda: clock.advance(400.0))
    supervisor, alerts = make_supervisor([crashing], clock)
    supervisor.launch()
    await eventually(lambda: supervisor.records["crashing"].restarts == 6, "crashing restarts == 6")
    await eventually(lambda: supervisor.records["crashing"].state is ServerState.RUNNING, "crashing RUNNING")
    assert clock.sleeps == [1.0] * 6  # each crash is the only one in its window
    assert alerts.of_type(AlertType.CRITICAL_ISSUE) == []
    await supervisor.stop()


@pytest.mark.parametrize(
    ("server", "expected_error"),
    [
        (ReturningServer("returning"), "run() returned; a server must run until it is cancelled"),
        (CrashingServer("early", crashes=1, before_ready=True), "failed during start-up: RuntimeError: early crash #1"),
    ],
)
async def test_returning_or_crashing_before_ready_count_as_failures(server: ReadyServer, expected_error: str) -> None:
    supervisor, _ = make_supervisor([server], policy=RestartPolicy(max_attempts=1))
    supervisor.launch()
    await eventually(
        lambda: supervisor.records[server.name].last_error is not None, "the server last_error is not None"
    )
    assert supervisor.records[server.name].last_error == expected_error
    await supervisor.stop()


async def test_when_every_server_has_failed_run_returns_all_failed() -> None:
    # the real clock here (run() also starts the health loop), with millisecond backoffs
    alerts = AlertRecorder()
    servers = [CrashingServer("a", crashes=100), CrashingServer("b", crashes=100)]
    policy = RestartPolicy(base_delay_seconds=0.001)
    supervisor = Supervisor(servers, alert=alerts, policy=policy, health_interval=3600)
    outcome = await asyncio.wait_for(supervisor.run(asyncio.Event()), timeout=10)
    assert outcome is Outcome.ALL_FAILED
    assert len(alerts.of_type(AlertType.CRITICAL_ISSUE)) == 2
    assert len(alerts.of_type(AlertType.MCP_SERVERS_STOPPED)) == 1


def test_duplicate_server_names_are_refused() -> None:
    with pytest.raises(ValueError, match="duplicates: \\['same'\\]"):
        Supervisor([ReadyServer("same"), ReadyServer("same")])


# --- stop ---------------------------------------------------------------------------------------


async def test_stop_waits_for_a_server_that_finishes_its_cleanup_within_the_grace() -> None:
    stubborn, plain = StubbornServer("stubborn"), ReadyServer("plain")
    supervisor, alerts = make_supervisor([stubborn, plain], stop_grace=30.0)
    supervisor.launch()
    await supervisor.wait_started()
    stopping = asyncio.create_task(supervisor.stop())
    await eventually(lambda: stubborn.cancelled >= 1, "stubborn.cancelled >= 1")
    for _ in range(20):
        await asyncio.sleep(0)
    assert not stopping.done()  # still inside the grace period, waiting for the cleanup
    stubborn.release.set()
    await stopping
    assert stubborn.finished
    assert supervisor.stuck == []
    assert {r.state for r in supervisor.records.values()} == {ServerState.STOPPED}
    assert plain.cancelled == 1
    assert len(alerts.of_type(AlertType.MCP_SERVERS_STOPPED)) == 1


async def test_stop_gives_up_on_a_server_that_ignores_cancellation_past_the_grace() -> None:
    stubborn, plain = StubbornServer("stubborn"), ReadyServer("plain")
    supervisor, alerts = make_supervisor([stubborn, plain], stop_grace=0.05)
    supervisor.launch()
    await supervisor.wait_started()
    await supervisor.stop()
    assert supervisor.stuck == ["stubborn"]
    assert supervisor.records["stubborn"].last_error == "did not stop within 0.05 s of being cancelled"
    assert plain.cancelled == 1
    (_, body, _, _) = alerts.of_type(AlertType.MCP_SERVERS_STOPPED)[0]
    assert "did not stop in time: stubborn" in body
    stubborn.release.set()  # let the test's loop finish the leftover task
    await eventually(lambda: stubborn.finished, "stubborn.finished")


async def test_stop_is_idempotent() -> None:
    supervisor, alerts = make_supervisor([ReadyServer("one")])
    supervisor.launch()
    await supervisor.wait_started()
    await supervisor.stop()
    await supervisor.stop()
    assert len(alerts.of_type(AlertType.MCP_SERVERS_STOPPED)) == 1


# --- health, status file, systemd -----------------------------------------------------------------


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    path = str(tmp_path / "n.sock")
    receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    receiver.bind(path)
    receiver.settimeout(5)
    yield receiver, path
    receiver.close()


def drain(receiver: socket.socket) -> list[str]:
    """Every datagram already queued on `receiver` (none are waited for)."""
    messages = []
    receiver.setblocking(False)
    try:
        while True:
            try:
                messages.append(receiver.recv(4096).decode())
            except BlockingIOError:
                return messages
    finally:
        receiver.settimeout(5)


async def test_health_tick_reports_each_server_and_pings_the_watchdog(
    tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    receiver, path = notify_socket
    status_file = tmp_path / "state" / "sidecar_status.json"
    servers = [ReadyServer("fine"), ReadyServer("slow", status="degraded"), BrokenHealthServer("broken")]
    supervisor, _ = make_supervisor(servers, notifier=SystemdNotifier(path), status_file=status_file)
    supervisor.launch()
    await supervisor.wait_started()
    report = await supervisor.health_tick()
    assert report["overall"] == "critical"
    assert report["servers"]["fine"]["status"] == "healthy"
    assert report["servers"]["slow"]["status"] == "degraded"
    assert report["servers"]["broken"]["status"] == "critical"
    assert "health() raised ValueError" in report["servers"]["broken"]["health"]["error"]
    assert report["summary"] == "3/3 servers running; overall critical; restarts 0"
    on_disk = json.loads(status_file.read_text())
    assert on_disk["servers"]["fine"]["state"] == "running" and on_disk["health_ticks"] == 1
    assert drain(receiver) == ["WATCHDOG=1", "STATUS=3/3 servers running; overall critical; restarts 0"]
    await supervisor.stop()
    assert drain(receiver) == ["STOPPING=1", "STATUS=stopping"]
    assert json.loads(status_file.read_text())["sidecar_state"] == "stopped"


async def test_run_notifies_ready_then_stops_cleanly_on_the_stop_event(
    tmp_path: Path, notify_socket: tuple[socket.socket, str]
) -> None:
    receiver, path = notify_socket
    status_file = tmp_path / "sidecar_status.json"
    servers = [ReadyServer("a"), ReadyServer("b")]
    alerts = AlertRecorder()
    supervisor = Supervisor(
        servers, notifier=SystemdNotifier(path), status_file=status_file, alert=alerts, health_interval=3600
    )
    stop = asyncio.Event()
    running = asyncio.create_task(supervisor.run(stop))
    received = [(await asyncio.to_thread(receiver.recv, 4096)).decode() for _ in range(3)]
    assert received == [
        "WATCHDOG=1",
        "STATUS=2/2 servers running; overall healthy; restarts 0",
        "READY=1\nSTATUS=2/2 servers running; overall healthy; restarts 0",
    ]
    assert json.loads(status_file.read_text())["sidecar_state"] == "running"
    stop.set()
    assert await running is Outcome.STOPPED
    assert [s.cancelled for s in servers] == [1, 1]
    assert [a[0] for a in alerts.alerts] == [AlertType.MCP_SERVERS_STARTED, AlertType.MCP_SERVERS_STOPPED]
    assert "STOPPING=1" in drain(receiver)


async def test_a_hanging_alert_channel_does_not_hold_up_the_stop() -> None:
    async def hanging_alert(*_args: object, **_kw: object) -> bool:
        await asyncio.Event().wait()
        return True

    supervisor = Supervisor([ReadyServer("a")], alert=hanging_alert, alert_timeout=0.05)
    supervisor.launch()
    await supervisor.wait_started()
    await asyncio.wait_for(supervisor.stop(), timeout=10)
    assert supervisor.phase == "stopped"


async def test_a_server_that_cannot_be_built_is_reported_failed_and_the_others_run() -> None:
    supervisor, alerts = make_supervisor([ReadyServer("fine")], unavailable={"broken": "ImportError: no module x"})
    supervisor.launch()
    await supervisor.wait_started()
    report = supervisor.health_report()
    assert report["servers"]["broken"]["state"] == "failed"
    assert report["servers"]["broken"]["last_error"] == "cannot be built: ImportError: no module x"
    assert report["servers"]["fine"]["state"] == "running"
    await supervisor.stop()
    (_, body, severity, _) = alerts.of_type(AlertType.CRITICAL_ISSUE)[0]
    assert severity == "critical" and "'broken' cannot be built: ImportError: no module x" in body
    assert supervisor.records["broken"].state is ServerState.FAILED  # stays failed, it never ran


async def test_nothing_buildable_means_all_failed() -> None:
    alerts = AlertRecorder()
    supervisor = Supervisor([], unavailable={"only": "ImportError: gone"}, alert=alerts)
    assert await asyncio.wait_for(supervisor.run(asyncio.Event()), timeout=10) is Outcome.ALL_FAILED
    assert len(alerts.of_type(AlertType.CRITICAL_ISSUE)) == 1
