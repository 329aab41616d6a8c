"""Runs the sidecar's servers as asyncio tasks in one process and keeps them alive.

A server counts as up only once it sets its ready event (within a start-up timeout). A crash, an early
return or a missed start-up deadline is contained: logged with its traceback, reported unhealthy, and
the server is restarted after an exponential backoff, at most 3 times within 300 s (systemd's
StartLimitBurst/StartLimitIntervalSec, one level down); after that it is marked failed and a critical
alert goes out. The other servers go on untouched. A health loop collects every server's health(),
writes `state/sidecar_status.json` for `python -m mcp.main_mcp status`, and pings systemd's watchdog, so
a stalled event loop stops the pings and systemd restarts the process.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from mcp.health import HealthStatus, worst
from mcp.restart_policy import DEFAULT_POLICY, STATE_HEALTH, RestartPolicy, ServerRecord, ServerState, restart_decision
from mcp.server import Server
from utils.alerts import AlertType, send_alert
from utils.atomic import atomic_write_json
from utils.sd_notify import SystemdNotifier

logger = logging.getLogger(__name__)

STATUS_SCHEMA_VERSION = 1
AlertSender = Callable[..., Awaitable[bool]]


class Outcome(StrEnum):
    """Why `Supervisor.run` returned."""

    STOPPED = "stopped"
    ALL_FAILED = "all_failed"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


class Supervisor:
    """Starts, watches, restarts and stops a set of servers (see the module docstring)."""

    def __init__(
        self,
        servers: Sequence[Server],
        *,
        unavailable: Mapping[str, str] | None = None,
        startup_timeout: float = 30.0,
        startup_timeouts: Mapping[str, float] | None = None,
        health_interval: float = 60.0,
        stop_grace: float = 6.0,
        policy: RestartPolicy = DEFAULT_POLICY,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        notifier: SystemdNotifier | None = None,
        alert: AlertSender = send_alert,
        alert_timeout: float = 2.0,
        status_file: Path | None = None,
    ) -> None:
        names = [server.name for server in servers] + list(unavailable or {})
        duplicates = sorted({name for name in names if names.count(name) > 1})
        if duplicates:
            raise ValueError(f"server names must be unique, received {names} (duplicates: {duplicates})")
        self.records = {server.name: ServerRecord(server.name, server) for server in servers}
        for name, reason in (unavailable or {}).items():
            # a server that cannot be built is a failed server: status and alerts must say so
            record = ServerRecord(name, None, state=ServerState.FAILED, last_error=f"cannot be built: {reason}")
            record.first_outcome.set()
            self.records[name] = record
        self._startup_timeout = startup_timeout
        self._startup_timeouts = dict(startup_timeouts or {})  # per server name, overriding the default
        self.health_interval = health_interval
        self._stop_grace = stop_grace
        self._policy = policy
        self._clock = clock
        self._wall = wall_clock
        self._sleep = sleep
        self._notifier = notifier if notifier is not None else SystemdNotifier("")
        self._alert = alert
        self._alert_timeout = alert_timeout
        self.status_file = status_file
        self.phase = "created"
        self._launched_at: float | None = None
        self._launched_wall: float | None = None
        self._all_up_announced = False
        self._all_failed = asyncio.Event()
        self._health_task: asyncio.Task[None] | None = None
        self.health_ticks = 0
        self.last_health_tick_at: str | None = None
        self.stuck: list[str] = []  # servers that ignored cancellation past the grace period at stop()
        self._side_tasks: set[asyncio.Task[None]] = set()

    # --- lifecycle ----------------------------------------------------------------------------

    def launch(self) -> None:
        """Start every server concurrently (returns at once; see `wait_started`)."""
        if self._launched_at is not None:
            raise RuntimeError("launch() was already called; build a new Supervisor to start again")
        self.phase = "starting"
        self._launched_at = self._clock()
        self._launched_wall = self._wall()
        for record in self.records.values():
            if record.server is None:
                message = f"MCP server '{record.name}' {record.last_error}; it will not run"
                self._background(self._send_alert(AlertType.CRITICAL_ISSUE, message, "critical"))
                continue
            record.supervise_task = asyncio.create_task(self._supervise(record), name=f"supervise:{record.name}")
        if all(r.state is ServerState.FAILED for r in self.records.values()):
            self._all_failed.set()

    def _background(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._side_tasks.add(task)
        task.add_done_callback(self._side_tasks.discard)

    async def wait_started(self) -> None:
        """Return once every server is up or has failed its first start (ready, crashed, or timed out)."""
        await asyncio.gather(*(record.first_outcome.wait() for record in self.records.values()))

    async def run(self, stop: asyncio.Event) -> Outcome:
        """Launch, serve until `stop` is set or every server has failed, then stop everything."""
        self.launch()
        waiters: list[asyncio.Task[Any]] = []
        try:
            started = asyncio.create_task(self.wait_started())
            stop_wait = asyncio.create_task(stop.wait())
            failed_wait = asyncio.create_task(self._all_failed.wait())
            waiters = [started, stop_wait, failed_wait]
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if started.done() and not stop.is_set() and not self._all_failed.is_set():
                await self._on_started()
                await asyncio.wait([stop_wait, failed_wait], return_when=asyncio.FIRST_COMPLETED)
            return Outcome.ALL_FAILED if self._all_failed.is_set() and not stop.is_set() else Outcome.STOPPED
        finally:
            for waiter in waiters:
                waiter.cancel()
            await self.stop()

    async def _on_started(self) -> None:
        self.phase = "running"
        up = [record.name for record in self.records.values() if record.state is ServerState.RUNNING]
        if len(up) == len(self.records):
            logger.info("start-up finished: all %d server(s) running", len(up))
        else:
            logger.warning("start-up finished with %d/%d server(s) running: %s", len(up), len(self.records), up)
        # the status file first, so that `status` already answers when systemd sees READY
        await self.health_tick()
        self._notifier.ready(self.summary())
        self._health_task = asyncio.create_task(self._health_loop(), name="supervisor:health")

    async def stop(self) -> None:
        """Cancel every server, wait at most the grace period, notify STOPPING and send the shutdown alert."""
        if self.phase in {"stopping", "stopped"}:
            return
        self.phase = "stopping"
        self._notifier.stopping()
        self._notifier.status("stopping")
        tasks: list[asyncio.Task[Any]] = []
        if self._health_task is not None:
            self._health_task.cancel()
            tasks.append(self._health_task)
        for record in self.records.values():
            for task in (record.supervise_task, record.task, *record.abandoned):
                if task is not None and not task.done():
                    task.cancel()
                    tasks.append(task)
        if tasks:
            await asyncio.wait(tasks, timeout=self._stop_grace)
        stuck = []
        for record in self.records.values():
            pending = [task for task in (record.task, *record.abandoned) if task is not None and not task.done()]
            if pending:
                stuck.append(record.name)
                record.last_error = f"did not stop within {self._stop_grace:g} s of being cancelled"
            if record.server is not None:
                record.state = ServerState.STOPPED
            record.running_since = None
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                logger.warning("task %s ended with %r while stopping", task.get_name(), task.exception())
        if stuck:
            logger.error("server(s) %s ignored cancellation for %.1f s; leaving them behind", stuck, self._stop_grace)
        self.stuck = stuck
        if self._side_tasks:
            # alerts still on their way (each bounded by alert_timeout)
            await asyncio.wait(list(self._side_tasks), timeout=self._alert_timeout)
        self.phase = "stopped"
        self._notifier.close()  # STOPPING was the last message systemd hears from this process
        await self._write_status(self.health_report())
        body = f"{len(self.records)} server(s) stopped after {self._uptime():.0f} s; restarts: {self.restarts_total}"
        if stuck:
            body += f"; did not stop in time: {', '.join(stuck)}"
        await self._send_alert(AlertType.MCP_SERVERS_STOPPED, body)

    # --- one server -----------------------------------------------------------------------------

    async def _supervise(self, record: ServerRecord) -> None:
        try:
            while True:
                error = await self._attempt(record)
                if not await self._after_failure(record, error):
                    return
        except asyncio.CancelledError:
            if record.task is not None and not record.task.done():
                record.task.cancel()
            raise

    async def _attempt(self, record: ServerRecord) -> str:
        """Run the server once; return why it is no longer running."""
        record.state = ServerState.STARTING if record.restarts == 0 else ServerState.RESTARTING
        ready = asyncio.Event()
        assert record.server is not None  # only built servers are supervised
        task = asyncio.create_task(record.server.run(ready), name=f"server:{record.name}")
        record.task = task
        waiter = asyncio.create_task(ready.wait())
        startup_timeout = self._startup_timeouts.get(record.name, self._startup_timeout)
        try:
            await asyncio.wait([task, waiter], timeout=startup_timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            waiter.cancel()
        if ready.is_set():
            await self._mark_running(record)
            await asyncio.wait([task])
            return self._why_ended(record, task)
        if task.done():
            return f"failed during start-up: {self._why_ended(record, task)}"
        task.cancel()
        await asyncio.wait([task], timeout=self._stop_grace)
        if not task.done():
            logger.error("server %r ignores cancellation after its start-up timeout; leaving it behind", record.name)
            record.abandoned.append(task)
        return f"did not become ready within {startup_timeout:g} s"

    def _why_ended(self, record: ServerRecord, task: asyncio.Task[None]) -> str:
        if task.cancelled():
            return "its task was cancelled by someone other than the supervisor"
        error = task.exception()
        if error is None:
            return "run() returned; a server must run until it is cancelled"
        logger.error("server %r crashed", record.name, exc_info=error)
        return f"{type(error).__name__}: {error}"

    async def _mark_running(self, record: ServerRecord) -> None:
        record.state = ServerState.RUNNING
        record.running_since = self._clock()
        if record.restarts:
            logger.info("server %r is ready again after %d restart(s)", record.name, record.restarts)
        else:
            logger.info("server %r is ready", record.name)
        record.first_outcome.set()
        if not self._all_up_announced and all(r.state is ServerState.RUNNING for r in self.records.values()):
            self._all_up_announced = True
            names = ", ".join(self.records)
            await self._send_alert(AlertType.MCP_SERVERS_STARTED, f"{len(self.records)} server(s) running: {names}")

    async def _after_failure(self, record: ServerRecord, error: str) -> bool:
        """Book the failure; wait the backoff and return True to restart, or mark failed and return False."""
        now = self._clock()
        record.failures = [moment for moment in record.failures if moment > now - self._policy.window_seconds]
        record.failures.append(now)
        record.last_error = error
        record.last_error_at = _iso(self._wall())
        record.running_since = None
        restart, delay = restart_decision(record.failures, now, self._policy)
        if not restart:
            record.state = ServerState.FAILED
            message = (
                f"MCP server '{record.name}' failed {len(record.failures)} times within "
                f"{self._policy.window_seconds:g} s (at most {self._policy.max_attempts} restarts allowed); "
                f"it stays down until the sidecar restarts. Last error: {error}"
            )
            logger.critical(message)
            record.first_outcome.set()
            if all(r.state is ServerState.FAILED for r in self.records.values()):
                self._all_failed.set()
            await self._send_alert(
                AlertType.CRITICAL_ISSUE, message, "critical", key=f"mcp-server-failed:{record.name}"
            )
            return False
        record.state = ServerState.RESTARTING
        logger.warning(
            "server %r is down (%s); restart %d/%d in %.1f s",
            record.name,
            error,
            len(record.failures),
            self._policy.max_attempts,
            delay,
        )
        record.first_outcome.set()
        await self._sleep(delay)
        record.restarts += 1
        return True

    # --- health and statistics ------------------------------------------------------------------

    async def _health_loop(self) -> None:
        while True:
            await self._sleep(self.health_interval)
            await self.health_tick()

    async def health_tick(self) -> dict[str, Any]:
        """One tick: collect health, ping the watchdog, update STATUS and the status file."""
        self.health_ticks += 1
        self.last_health_tick_at = _iso(self._wall())
        report = self.health_report()
        self._notifier.watchdog()
        self._notifier.status(report["summary"])
        await self._write_status(report)
        return report

    def server_health(self, record: ServerRecord) -> tuple[HealthStatus, dict[str, Any]]:
        """The server's status and its own health() when it is running; a failing health() is critical."""
        if record.state is not ServerState.RUNNING or record.server is None:
            return STATE_HEALTH[record.state], {}
        try:
            details = dict(record.server.health())
        except Exception as e:
            logger.exception("health() of server %r raised", record.name)
            return HealthStatus.CRITICAL, {"error": f"health() raised {type(e).__name__}: {e}"}
        return HealthStatus.parse(details.get("status")), details

    @property
    def restarts_total(self) -> int:
        return sum(record.restarts for record in self.records.values())

    def _uptime(self) -> float:
        return 0.0 if self._launched_at is None else self._clock() - self._launched_at

    def statistics(self) -> dict[str, Any]:
        """Uptime, restarts and the per-server state, last error and uptime (JSON-safe)."""
        now = self._clock()
        return {
            "uptime_seconds": round(self._uptime(), 3),
            "started_at": None if self._launched_wall is None else _iso(self._launched_wall),
            "restarts_total": self.restarts_total,
            "health_ticks": self.health_ticks,
            "last_health_tick_at": self.last_health_tick_at,
            "servers": {
                name: {
                    "state": record.state.value,
                    "restarts": record.restarts,
                    "failures_in_window": len(record.failures),
                    "last_error": record.last_error,
                    "last_error_at": record.last_error_at,
                    "uptime_seconds": None if record.running_since is None else round(now - record.running_since, 3),
                }
                for name, record in self.records.items()
            },
        }

    def summary(self) -> str:
        """One line for systemd's STATUS and the logs."""
        running = [r.name for r in self.records.values() if r.state is ServerState.RUNNING]
        others = [f"{r.name} {r.state.value}" for r in self.records.values() if r.state is not ServerState.RUNNING]
        overall = worst(self.server_health(r)[0] for r in self.records.values())
        text = f"{len(running)}/{len(self.records)} servers running"
        if others:
            text += f" ({'; '.join(others)})"
        return f"{text}; overall {overall.value}; restarts {self.restarts_total}"

    def health_report(self) -> dict[str, Any]:
        """The status-file payload: statistics plus each server's health and the overall status."""
        stats = self.statistics()
        statuses = []
        for name, record in self.records.items():
            status, details = self.server_health(record)
            statuses.append(status)
            stats["servers"][name].update(status=status.value, health=details)
        now = self._wall()
        return {
            "schema_version": STATUS_SCHEMA_VERSION,
            "pid": os.getpid(),
            "sidecar_state": self.phase,
            "updated_at": _iso(now),
            "updated_at_epoch": now,
            "health_interval_seconds": self.health_interval,
            "overall": worst(statuses).value,
            "summary": self.summary(),
            **stats,
        }

    async def _write_status(self, report: dict[str, Any]) -> None:
        if self.status_file is None:
            return
        try:
            await asyncio.to_thread(atomic_write_json, self.status_file, report)
        except (OSError, TypeError, ValueError) as e:
            logger.error("cannot write the status file %s: %s", self.status_file, e)

    async def _send_alert(self, alert_type: AlertType, body: str, severity: str | None = None, **kw: Any) -> None:
        # an alert channel that hangs must not hold up a restart or the 10 s stop
        try:
            async with asyncio.timeout(self._alert_timeout):
                await self._alert(alert_type, body, severity, **kw)
        except TimeoutError:
            logger.warning("%s alert not confirmed within %.1f s", alert_type.title, self._alert_timeout)
        except Exception:
            logger.exception("%s alert failed", alert_type.title)
