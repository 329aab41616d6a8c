"""The bot's side of the sidecar: restarts are bounded, a dead sidecar never stops the copy loop."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.sidecar_process import (
    EXIT_BAD_SETTINGS,
    RestartDecision,
    RestartPolicy,
    SidecarProcess,
    restart_decision,
    restart_delay,
    sidecar_command,
)
from tests.waiting import eventually

FAST = RestartPolicy(base_delay=0.01)


# --- the supervision window, as a pure decision (no process, no clock) -------------------------------


@pytest.mark.parametrize(
    ("restarts", "now", "exit_code", "expected"),
    [
        ([], 100.0, 1, RestartDecision(True, 1.0)),  # first failure: restart after 1 s
        ([100.0], 110.0, 1, RestartDecision(True, 2.0)),
        ([100.0, 110.0], 120.0, -9, RestartDecision(True, 4.0)),
        # a fourth failure within 300 s of the first restart: give up
        ([100.0, 110.0, 120.0], 130.0, 1, RestartDecision(False, give_up="")),
        ([100.0, 110.0, 120.0], 399.9, 1, RestartDecision(False, give_up="")),
        # the window slides: the restart at 100 s left it at 400 s, so one more is allowed
        ([100.0, 110.0, 120.0], 400.0, 1, RestartDecision(True, 4.0)),
        # a sidecar that ran for hours between crashes is restarted every time (not a lifetime budget)
        ([0.0, 1000.0, 2000.0, 3000.0, 4000.0], 5000.0, 1, RestartDecision(True, 1.0)),
        # a settings error is never retried, whatever the window says
        ([], 100.0, EXIT_BAD_SETTINGS, RestartDecision(False, give_up="")),
    ],
)
def test_restart_decision_table(restarts: list[float], now: float, exit_code: int, expected: RestartDecision) -> None:
    decision = restart_decision(restarts, now, exit_code)
    assert (decision.allowed, decision.backoff_seconds) == (expected.allowed, expected.backoff_seconds)
    assert (decision.give_up is not None) == (not expected.allowed)


def test_the_reasons_say_what_happened() -> None:
    settings = restart_decision([], 0.0, EXIT_BAD_SETTINGS).give_up
    assert settings is not None and "exit code 2" in settings and "never retried" in settings
    window = restart_decision([1.0, 2.0, 3.0], 4.0, 1).give_up
    assert window is not None and "3 times in the last 300 s" in window


@given(
    st.lists(st.floats(min_value=0, max_value=10_000), max_size=12),
    st.floats(min_value=0, max_value=10_000),
    st.integers(min_value=-15, max_value=255),
)
def test_never_more_than_three_restarts_in_any_window(restarts: list[float], now: float, exit_code: int) -> None:
    decision = restart_decision(restarts, now, exit_code)
    recent = [t for t in restarts if now - 300.0 < t <= now]
    if decision.allowed:
        assert len(recent) < 3 and exit_code != EXIT_BAD_SETTINGS
        assert 1.0 <= decision.backoff_seconds <= 30.0
    else:
        assert len(recent) >= 3 or exit_code == EXIT_BAD_SETTINGS


# --- the real child process -------------------------------------------------------------------------


def test_restart_delays_double_up_to_a_cap() -> None:
    assert [restart_delay(n, base=1.0, cap=5.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]


def test_sidecar_command_runs_the_sidecar_module_at_lower_priority() -> None:
    command = sidecar_command("/usr/bin/python3")
    assert command[-3:] == ["-m", "mcp.main_mcp", "all"]
    if command[0].endswith("nice"):
        assert command[1:3] == ["-n", "10"]


@pytest.mark.integration
async def test_a_crashing_sidecar_is_restarted_three_times_then_the_bot_alerts(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    script = f"open({str(starts)!r}, 'a').write('x'); raise SystemExit(3)"
    alerts: list[str] = []

    async def alert(message: str) -> None:
        alerts.append(message)

    sidecar = SidecarProcess([sys.executable, "-c", script], cwd=tmp_path, policy=FAST, alert=alert)
    await asyncio.wait_for(sidecar.run(asyncio.Event()), timeout=30)
    assert starts.read_text() == "xxxx"  # the first start and three restarts
    assert sidecar.status.gave_up
    assert sidecar.status.last_exit_code == 3
    assert len(alerts) == 1
    assert alerts[0].startswith("Sidecar given up: it exited with code 3 and it was already restarted 3 times")
    assert "Trading continues WITHOUT monitoring" in alerts[0]


@pytest.mark.integration
async def test_a_settings_error_is_never_retried(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    script = f"open({str(starts)!r}, 'a').write('x'); raise SystemExit(2)"
    alerts: list[str] = []

    async def alert(message: str) -> None:
        alerts.append(message)

    sidecar = SidecarProcess([sys.executable, "-c", script], cwd=tmp_path, policy=FAST, alert=alert)
    await asyncio.wait_for(sidecar.run(asyncio.Event()), timeout=30)
    assert starts.read_text() == "x"
    assert sidecar.status.restarts == 0 and sidecar.status.gave_up
    assert len(alerts) == 1 and "refused its settings (exit code 2)" in alerts[0]


@pytest.mark.integration
async def test_restarts_spread_over_more_than_the_window_go_on(tmp_path: Path) -> None:
    # a moved clock instead of waiting 300 s: every exit happens "400 s" after the one before
    moments = iter(range(0, 4000, 400))
    sidecar = SidecarProcess(
        [sys.executable, "-c", "raise SystemExit(1)"],
        cwd=tmp_path,
        policy=FAST,
        alert=None,
        clock=lambda: float(next(moments)),
    )
    stop = asyncio.Event()
    task = asyncio.create_task(sidecar.run(stop))
    await eventually(lambda: sidecar.status.restarts >= 5, "five restarts", within=30)
    stop.set()
    await asyncio.wait_for(task, timeout=30)
    assert sidecar.status.restarts >= 5  # more than 3 in its life, never more than 1 in a window
    assert not sidecar.status.gave_up


@pytest.mark.integration
async def test_a_failing_alert_channel_does_not_stop_the_give_up(tmp_path: Path) -> None:
    async def broken(message: str) -> None:
        raise ConnectionError("alert channel down")

    sidecar = SidecarProcess([sys.executable, "-c", "raise SystemExit(2)"], cwd=tmp_path, policy=FAST, alert=broken)
    await asyncio.wait_for(sidecar.run(asyncio.Event()), timeout=30)
    assert sidecar.status.gave_up


@pytest.mark.integration
async def test_the_copy_loop_runs_on_while_the_sidecar_dies(tmp_path: Path) -> None:
    sidecar = SidecarProcess([sys.executable, "-c", "raise SystemExit(1)"], cwd=tmp_path, policy=FAST, alert=None)
    stop = asyncio.Event()
    ticks = 0

    async def copy_loop() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1
            await asyncio.sleep(0.01)

    loop_task = asyncio.create_task(copy_loop())
    await asyncio.wait_for(sidecar.run(stop), timeout=30)
    assert not loop_task.done()
    before = ticks
    await eventually(lambda: ticks > before, "a tick of the copy loop after the sidecar gave up")
    stop.set()
    await loop_task


@pytest.mark.integration
async def test_stop_terminates_a_running_sidecar(tmp_path: Path) -> None:
    sidecar = SidecarProcess([sys.executable, "-c", "import time; time.sleep(60)"], cwd=tmp_path, alert=None)
    stop = asyncio.Event()
    task = asyncio.create_task(sidecar.run(stop))
    await eventually(lambda: sidecar.status.pid is not None, "the sidecar starting")
    stop.set()
    await asyncio.wait_for(task, timeout=20)
    assert sidecar.status.restarts == 0


@pytest.mark.integration
async def test_a_sidecar_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    marker = tmp_path / "ignoring"
    script = (
        "import pathlib, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"pathlib.Path({str(marker)!r}).touch(); time.sleep(60)"
    )
    sidecar = SidecarProcess([sys.executable, "-c", script], cwd=tmp_path, alert=None)
    stop = asyncio.Event()
    task = asyncio.create_task(sidecar.run(stop))
    await eventually(marker.exists, "the sidecar ignoring SIGTERM")
    process = sidecar._process
    assert process is not None and marker.exists()
    await sidecar.terminate(grace=0.2)
    assert process.returncode == -9  # SIGTERM was ignored, so only the SIGKILL could end it
    stop.set()
    await asyncio.wait_for(task, timeout=10)


@pytest.mark.integration
async def test_an_unstartable_sidecar_is_logged_and_given_up(tmp_path: Path) -> None:
    sidecar = SidecarProcess([str(tmp_path / "no-such-binary")], cwd=tmp_path, alert=None)
    await asyncio.wait_for(sidecar.run(asyncio.Event()), timeout=10)
    assert sidecar.status.gave_up


@pytest.mark.integration
async def test_the_default_give_up_alert_goes_through_the_outbox_to_telegram(tmp_path: Path) -> None:
    """The bot's own CRITICAL alert, through utils.alerts: written to the outbox, then to the fake Bot API."""
    import utils.alerts as alerts
    from config.settings import Settings
    from tests.alerting.conftest import CHAT, FAST_RETRY, TOKEN
    from tests.fakes.fake_telegram import FakeTelegram
    from utils.alerting.outbox import OUTBOX_FILE_NAME

    alerts.reset_alert_manager()
    try:
        async with FakeTelegram(TOKEN) as telegram:
            settings = Settings(  # type: ignore[call-arg]
                _env_file=None,
                state_dir=tmp_path / "state",
                telegram_bot_token=TOKEN,
                telegram_chat_id=CHAT,
                telegram_base_url=telegram.base_url,
            )
            manager = alerts.configure_alerts(settings, confirm_seconds=0.0, retry=FAST_RETRY)
            sidecar = SidecarProcess([sys.executable, "-c", "raise SystemExit(2)"], cwd=tmp_path, policy=FAST)
            await asyncio.wait_for(sidecar.run(asyncio.Event()), timeout=30)
            assert await manager.flush(10.0)
            assert (tmp_path / "state" / OUTBOX_FILE_NAME).exists()
            texts = [message.text for message in telegram.messages]
            assert len(texts) == 1
            assert texts[0].startswith("<b>🔴 CRITICAL ISSUE</b>\nSidecar given up: it exited with code 2")
    finally:
        await alerts.close_alerts(grace_seconds=1.0)
        alerts.reset_alert_manager()
