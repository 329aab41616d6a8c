"""The bot's side of the sidecar: restarts are bounded, a dead sidecar never stops the copy loop."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from core.sidecar_process import SidecarProcess, restart_delay, sidecar_command

pytestmark = pytest.mark.integration


def test_restart_delays_double_up_to_a_cap() -> None:
    assert [restart_delay(n, base=1.0, cap=5.0) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 5.0]


def test_sidecar_command_runs_the_sidecar_module_at_lower_priority() -> None:
    command = sidecar_command("/usr/bin/python3")
    assert command[-3:] == ["-m", "mcp.main_mcp", "all"]
    if command[0].endswith("nice"):
        assert command[1:3] == ["-n", "10"]


async def test_a_crashing_sidecar_is_restarted_at_most_three_times(tmp_path: Path) -> None:
    starts = tmp_path / "starts"
    script = f"open({str(starts)!r}, 'a').write('x'); raise SystemExit(3)"
    sidecar = SidecarProcess([sys.executable, "-c", script], cwd=tmp_path, base_delay=0.01)
    await asyncio.wait_for(sidecar.run(asyncio.Event()), timeout=30)
    assert starts.read_text() == "xxxx"  # the first start and three restarts
    assert sidecar.status.gave_up
    assert sidecar.status.last_exit_code == 3


async def test_the_copy_loop_runs_on_while_the_sidecar_dies(tmp_path: Path) -> None:
    sidecar = SidecarProcess([sys.executable, "-c", "raise SystemExit(1)"], cwd=tmp_path, base_delay=0.01)
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
    await asyncio.sleep(0.1)
    assert ticks > before
    stop.set()
    await loop_task


async def test_stop_terminates_a_running_sidecar(tmp_path: Path) -> None:
    sidecar = SidecarProcess([sys.executable, "-c", "import time; time.sleep(60)"], cwd=tmp_path)
    stop = asyncio.Event()
    task = asyncio.create_task(sidecar.run(stop))
    for _ in range(200):
        if sidecar.status.pid is not None:
            break
        await asyncio.sleep(0.01)
    stop.set()
    await asyncio.wait_for(task, timeout=20)
    assert sidecar.status.restarts == 0


async def test_a_sidecar_that_ignores_sigterm_is_killed(tmp_path: Path) -> None:
    marker = tmp_path / "ignoring"
    script = (
        "import pathlib, signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        f"pathlib.Path({str(marker)!r}).touch(); time.sleep(60)"
    )
    sidecar = SidecarProcess([sys.executable, "-c", script], cwd=tmp_path)
    stop = asyncio.Event()
    task = asyncio.create_task(sidecar.run(stop))
    for _ in range(500):
        if marker.exists():
            break
        await asyncio.sleep(0.01)
    process = sidecar._process
    assert process is not None and marker.exists()
    await sidecar.terminate(grace=0.2)
    assert process.returncode == -9  # SIGTERM was ignored, so only the SIGKILL could end it
    stop.set()
    await asyncio.wait_for(task, timeout=10)


async def test_an_unstartable_sidecar_is_logged_and_given_up(tmp_path: Path) -> None:
    sidecar = SidecarProcess([str(tmp_path / "no-such-binary")], cwd=tmp_path)
    await asyncio.wait_for(sidecar.run(asyncio.Event()), timeout=10)
    assert sidecar.status.gave_up
