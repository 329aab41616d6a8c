"""The sidecar's entry point.

    python -m mcp.main_mcp all                 # every server enabled by MCP_*_ENABLED, supervised, with the
                                               # integrator's watch (risk_integrator) and, when TELEGRAM_BOT_TOKEN,
                                               # _CHAT_ID and _ALLOWED_USER_IDS are set, the operator commands
    python -m mcp.main_mcp monitoring          # one server (also: codebase_search, testing); monitoring
                                               # prints its report (cpu_percent, memory_mb, …) each interval
    python -m mcp.main_mcp status [--json]     # the running sidecar's health; exit 1 when not healthy
    python -m mcp.main_mcp stdio [SERVER …]    # the servers' tools over MCP stdio (for Claude Code, Inspector…)
    python -m mcp.main_mcp scan [--root DIR] [--param NAME …] [--json]
    python -m mcp.main_mcp test [--root DIR] [--python PATH] [--source PKG …] [--path P …] [--json] [--threshold F]

Exit codes: 0 clean stop / healthy / scan and tests passed; 1 every server failed, not healthy, violations
or coverage below the threshold; 2 invalid settings (each bad field listed) or bad arguments.

Server commands log to LOG_DIR/mcp_servers.log and stderr, lower their own priority to nice 10 (a no-op
when systemd's Nice=10 or the bot's `nice -n 10` already did) with idle I/O, and stop cleanly within
10 s of SIGTERM or SIGINT.
"""

# ruff: noqa: E402
# (for `stdio`, stdout is claimed for the protocol before any other import can print: see claim_stdio)
from __future__ import annotations

import sys

from mcp.protocol.stdio_fds import StdioFds, claim_stdio

_STDIO_FDS: StdioFds | None = claim_stdio() if __name__ == "__main__" and sys.argv[1:2] == ["stdio"] else None

if __name__ == "__main__" and sys.argv[1:2] == ["scan"]:
    # issue 10: the one-shot scan is heavy work from its first instruction: SCHED_IDLE before the imports below
    # (settings, pydantic, the scanner), which are most of a short scan's CPU
    from mcp.containment.policy import lower_heavy_priority

    lower_heavy_priority(0)

import argparse
import asyncio
import functools
import json
import logging
import os
import signal
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil

from config.mcp_config import EXIT_BAD_CONFIG, load_or_exit
from config.settings import Settings
from mcp import codebase_search
from mcp.containment.policy import lower_heavy_priority
from mcp.containment.runtime import get_process_containment
from mcp.monitoring_server import format_report
from mcp.preflight import sidecar_settings_problems
from mcp.server import Server
from mcp.server_registry import SERVERS, ServerFactory, selected_servers
from mcp.sidecar_builder import build_graph, monitoring_server
from mcp.status import STATUS_FILE_NAME, status_command
from mcp.supervisor import Outcome, Supervisor
from mcp.testing.cli import test_command
from mcp.tools.runtime import offer_tools_on_dashboard, serve_stdio_servers
from utils.alerts import close_alerts, configure_alerts, flush_alerts
from utils.logging_setup import configure_logging
from utils.sd_notify import SystemdNotifier, watchdog_interval

logger = logging.getLogger("mcp.main")

LOG_FILE_NAME = "mcp_servers.log"
TARGET_NICENESS = 10
# SIGTERM → exit within 10 s: servers get STOP_GRACE, the shutdown alert ALERT_TIMEOUT, the alert outbox
# ALERT_FLUSH then ALERT_CLOSE, leftovers LOOP_CLOSE each step: 4 + 1.5 + 1 + 0.75 + 2 × 0.75 = 8.75 s at worst
STOP_GRACE_SECONDS = 4.0
ALERT_TIMEOUT_SECONDS = 1.5
ALERT_FLUSH_SECONDS = 1.0
ALERT_CLOSE_SECONDS = 0.75
LOOP_CLOSE_SECONDS = 0.75
EXIT_OK, EXIT_FAILED = 0, 1


def build_parser() -> argparse.ArgumentParser:
    """The command line of the sidecar."""
    parser = argparse.ArgumentParser(prog="python -m mcp.main_mcp", description="The monitoring sidecar.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands.add_parser("all", help="run every enabled server under the supervisor")
    for name in SERVERS:
        commands.add_parser(name, help=f"run only the {name} server")
    stdio = commands.add_parser("stdio", help="serve the servers' tools over MCP stdio (one JSON message per line)")
    stdio.add_argument(
        "servers", nargs="*", metavar="SERVER", help=f"servers to serve (default: all enabled): {', '.join(SERVERS)}"
    )
    status = commands.add_parser("status", help="print the running sidecar's health")
    status.add_argument("--json", action="store_true", help="print JSON")
    reset_mcp = commands.add_parser("reset-mcp", help="reset the MCP circuit breaker (any process sees it)")
    reset_mcp.add_argument("--reason", default="CLI reset-mcp", help="recorded in the breaker's history")
    scan = commands.add_parser("scan", help="one risk-parameter scan of a code tree")
    scan.add_argument("--root", type=Path, help="tree to scan (default: MCP_SEARCH_ROOT)")
    scan.add_argument("--param", action="append", default=None, metavar="NAME", help="parameter name (repeatable)")
    scan.add_argument("--json", action="store_true", help="print JSON")
    test = commands.add_parser("test", help="one test run with coverage of a project")
    test.add_argument("--root", type=Path, help="project root (default: MCP_TESTING_PROJECT_ROOT)")
    test.add_argument("--python", type=Path, help="interpreter of the project (default: its .venv)")
    test.add_argument("--source", action="append", default=None, metavar="PKG", help="package to measure")
    test.add_argument("--path", action="append", default=None, metavar="P", help="test path (repeatable)")
    test.add_argument("--threshold", type=float, help="coverage fraction 0..1 (default: MCP_TESTING_COVERAGE_TARGET)")
    test.add_argument("--json", action="store_true", help="print JSON")
    return parser


def lower_priority(target: int = TARGET_NICENESS) -> int:
    """Raise our niceness to at least `target` and ask for idle I/O; returns the niceness now in effect."""
    current = os.nice(0)
    if current < target:
        current = os.nice(target - current)
    try:
        psutil.Process().ionice(psutil.IOPRIO_CLASS_IDLE)
    except (psutil.Error, AttributeError, OSError) as e:
        # not on Linux, or not allowed: CPU priority alone still protects trading
        logger.info("idle I/O priority not available: %s", e)
    return current


def effective_health_interval(configured: float, watchdog: float | None) -> float:
    """The health loop's period: the configured one, or half the watchdog interval when that is shorter."""
    return configured if watchdog is None else min(configured, watchdog / 2)


def print_monitoring_report(report: dict[str, Any]) -> None:
    """Print the monitoring report (one line per component) to stdout as it is produced."""
    print("\n".join(format_report(report)), flush=True)


async def serve(
    settings: Settings,
    servers: Sequence[Server],
    *,
    unavailable: dict[str, str] | None = None,
    notifier: SystemdNotifier,
    stop: asyncio.Event | None = None,
    install_signal_handlers: bool = True,
) -> int:
    """Run `servers` under a Supervisor until SIGTERM/SIGINT (or `stop`); the exit code."""
    stop = stop if stop is not None else asyncio.Event()
    loop = asyncio.get_running_loop()
    if install_signal_handlers:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, _request_stop, stop, signal.Signals(signum).name)
    supervisor = Supervisor(
        servers,
        unavailable=unavailable,
        startup_timeout=settings.mcp_startup_timeout_seconds,
        health_interval=effective_health_interval(settings.mcp_health_loop_seconds, watchdog_interval()),
        stop_grace=STOP_GRACE_SECONDS,
        notifier=notifier,
        alert_timeout=ALERT_TIMEOUT_SECONDS,
        status_file=Path(settings.state_dir) / STATUS_FILE_NAME,
    )
    # issue 10: clean up after a killed sidecar and decide heavy work's isolation before any server works
    containment = get_process_containment(Path(settings.state_dir))
    await asyncio.to_thread(containment.start)
    for server in servers:
        # the monitoring server judges its siblings from the supervisor's own records (no file round-trip)
        wire = getattr(server, "set_server_states", None)
        if wire is not None:
            wire(lambda: supervisor.health_report()["servers"])
        attach = getattr(server, "attach_supervisor", None)  # Telegram's /status reads the supervisor itself
        if attach is not None:
            attach(supervisor)
    try:
        outcome = await supervisor.run(stop)
    finally:
        await asyncio.to_thread(containment.stop)
        if install_signal_handlers:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
    if outcome is Outcome.ALL_FAILED:
        logger.critical("every server failed; the sidecar exits so that its supervisor can decide")
        return EXIT_FAILED
    logger.info("sidecar stopped cleanly")
    return EXIT_OK


async def shutdown_alerts(
    flush_seconds: float = ALERT_FLUSH_SECONDS, close_seconds: float = ALERT_CLOSE_SECONDS
) -> None:
    """Deliver what the alert outbox holds, then stop the delivery; each step bounded, nothing raised.

    What is not delivered in time stays in the outbox and goes out at the next start.
    """
    try:
        async with asyncio.timeout(flush_seconds):
            if not await flush_alerts(flush_seconds):
                logger.warning("alerts not delivered within %.1f s stay in the outbox", flush_seconds)
    except TimeoutError:
        logger.warning("alerts not delivered within %.1f s stay in the outbox", flush_seconds)
    except Exception:
        logger.exception("flushing the alerts failed; what is queued stays in the outbox")
    try:
        async with asyncio.timeout(close_seconds):
            await close_alerts(close_seconds)
    except TimeoutError:
        logger.warning("alert delivery did not close within %.2f s", close_seconds)
    except Exception:
        logger.exception("closing the alert delivery failed")


def _request_stop(stop: asyncio.Event, signame: str) -> None:
    if stop.is_set():
        logger.warning("%s received again: the stop is already under way and bounded to 10 s", signame)
        return
    logger.info("%s received: stopping", signame)
    stop.set()


def _close_loop(loop: asyncio.AbstractEventLoop, executor: ThreadPoolExecutor) -> bool:
    """Cancel what is left, give it a moment, shut the executor down; False when something would not end.

    Python 3.11's loop.shutdown_default_executor() joins its helper thread even when cancelled, so the
    executor (the loop's default one, passed in) is shut down from a daemon thread with a bounded join.
    """
    clean = True
    leftovers = [task for task in asyncio.all_tasks(loop) if not task.done()]
    for task in leftovers:
        task.cancel()
    if leftovers:
        logger.info("cancelling %d leftover task(s): %s", len(leftovers), [task.get_name() for task in leftovers])
        _, pending = loop.run_until_complete(asyncio.wait(leftovers, timeout=LOOP_CLOSE_SECONDS))
        clean = not pending
    loop.run_until_complete(loop.shutdown_asyncgens())
    executor.shutdown(wait=False, cancel_futures=True)
    joiner = threading.Thread(target=executor.shutdown, kwargs={"wait": True}, name="executor-join", daemon=True)
    joiner.start()
    joiner.join(LOOP_CLOSE_SECONDS)
    if joiner.is_alive():
        # a thread still busy (a scan over a huge tree): waiting for it would break the 10 s promise
        logger.warning("a worker thread is still busy %.2f s after the stop", LOOP_CLOSE_SECONDS)
        clean = False
    loop.close()
    return clean


def run_servers(settings: Settings, command: str, *, hard_exit: bool = True) -> int:
    """Build the sidecar's graph for `command`, supervise its servers in a fresh event loop, return the exit code.

    With `hard_exit`, a task or thread that ignores the stop makes the process leave with os._exit after
    flushing the logs, since the interpreter would otherwise wait for it at exit.
    """
    names = selected_servers(command, settings)
    problems = sidecar_settings_problems(settings, command)
    if problems:
        # refused before anything starts; the bot runs the same checks before it trades (main.py)
        print("\n".join(problems), file=sys.stderr)
        return EXIT_BAD_CONFIG
    overrides: dict[str, ServerFactory] = {}
    if command == "monitoring":
        # beside a running sidecar its ports are taken: this command still prints its reports
        overrides["monitoring"] = functools.partial(
            monitoring_server, report=print_monitoring_report, http_optional=True
        )
    # the integrator's watch and the Telegram commands belong to the one running sidecar (`all`)
    sidecar = build_graph(settings, names, services=command == "all", overrides=overrides)
    graph, servers = sidecar.graph, sidecar.servers
    # MCP over HTTP at /mcp on the dashboard's port
    offer_tools_on_dashboard(settings, servers, integrator=graph.integrator, trading=graph.trading)
    niceness = lower_priority()
    logger.info("sidecar starting (pid %d, nice %d): %s", os.getpid(), niceness, ", ".join(s.name for s in servers))
    notifier = SystemdNotifier()
    loop = asyncio.new_event_loop()
    executor = ThreadPoolExecutor(thread_name_prefix="sidecar")
    loop.set_default_executor(executor)
    code = EXIT_FAILED
    try:
        code = loop.run_until_complete(serve(settings, servers, unavailable=sidecar.unavailable, notifier=notifier))
    finally:
        loop.run_until_complete(shutdown_alerts())  # in this loop: the alert worker lives here
        clean = _close_loop(loop, executor)
        notifier.close()
    if not clean and hard_exit:
        logger.error("work that ignores the stop is still running; exiting without waiting for it")
        logging.shutdown()
        os._exit(code)
    return code


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the command line, load and validate the settings (exit 2 if invalid), run the command."""
    args = build_parser().parse_args(argv)
    settings = load_or_exit()
    command = args.command
    if command == "stdio":
        return _stdio(settings, args.servers)
    if command == "status":
        configure_logging(settings)
        return status_command(Path(settings.state_dir), sys.stdout, as_json=args.json, now=time.time)
    if command == "reset-mcp":
        configure_logging(settings)
        configure_alerts(settings)
        return _reset_mcp(settings, args.reason)
    if command == "scan":
        configure_logging(settings)
        return _scan(settings, args)
    if command == "test":
        configure_logging(settings)
        return _test(settings, args)
    configure_logging(settings, LOG_FILE_NAME)
    configure_alerts(settings)
    return run_servers(settings, command)


def _reset_mcp(settings: Settings, reason: str) -> int:
    """`reset-mcp`: close the MCP breaker in its state file (a running sidecar sees it within a second)."""
    integrator = build_graph(settings).graph.integrator  # no server runs: only the integrator is used
    if integrator is None:
        print("error: the MCP risk integrator cannot be built (the log above says why)", file=sys.stderr)
        return EXIT_FAILED

    async def reset() -> dict[str, Any]:
        try:
            return await integrator.reset_mcp_circuit_breaker(f"CLI: {reason}")
        finally:
            await flush_alerts(5.0)  # the reset notice; what is not delivered stays in the outbox
            await close_alerts()

    state = asyncio.run(reset())
    print(json.dumps(state, indent=2))
    return 0


def _stdio(settings: Settings, requested: Sequence[str]) -> int:
    """`stdio [SERVER …]`: the tools of the named servers (default: every enabled one) over MCP stdio."""
    unknown = [name for name in requested if name not in SERVERS]
    if unknown:
        print(f"error: unknown server(s) {unknown}; expected any of {list(SERVERS)}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    fds = _STDIO_FDS if _STDIO_FDS is not None else claim_stdio()
    configure_logging(settings)  # stderr only: one process per assistant session, no shared log file
    configure_alerts(settings)  # the monitoring's alert figures from these settings, not a second copy
    names = list(dict.fromkeys(requested)) or selected_servers("all", settings)
    if not names:
        print("error: no server enabled and none named", file=sys.stderr)
        return EXIT_BAD_CONFIG
    return run_stdio(settings, names, fds)


def run_stdio(settings: Settings, names: Sequence[str], fds: StdioFds, *, hard_exit: bool = True) -> int:
    """Build the sidecar's graph for `names` (monitoring without its ports) and serve their tools over
    stdio in a fresh event loop until the client closes stdin."""
    overrides: dict[str, ServerFactory] = {
        # the dashboard and metrics ports belong to the running sidecar, not to an assistant's session
        "monitoring": functools.partial(monitoring_server, serve_metrics=False, serve_dashboard=False),
    }
    sidecar = build_graph(settings, names, overrides=overrides)
    for name, why in sidecar.unavailable.items():
        logger.error("server %s unavailable over stdio: %s", name, why)
    lower_priority()
    loop = asyncio.new_event_loop()
    executor = ThreadPoolExecutor(thread_name_prefix="mcp-stdio")
    loop.set_default_executor(executor)
    code = EXIT_FAILED
    try:
        code = loop.run_until_complete(
            serve_stdio_servers(
                settings, sidecar.servers, fds, integrator=sidecar.graph.integrator, trading=sidecar.graph.trading
            )
        )
    finally:
        clean = _close_loop(loop, executor)
        # issue 10: the testing server's heavy-work cgroup and record go with this process (the loop is closed)
        get_process_containment(Path(settings.state_dir)).stop()
    if not clean and hard_exit:
        logger.warning("work in progress ignored the stop; exiting without waiting for it")
        logging.shutdown()
        os._exit(code)
    return code


def _scan(settings: Settings, args: argparse.Namespace) -> int:
    # issue 10: the one-shot scan is heavy work as a whole: idle I/O, and SCHED_IDLE (nice 19 where refused)
    lower_priority()
    logger.info("scan runs under %s", lower_heavy_priority(0).value)

    root = args.root if args.root is not None else Path(settings.mcp_search_root)
    return codebase_search.scan_command(root, args.param, args.json, sys.stdout)


def _test(settings: Settings, args: argparse.Namespace) -> int:
    # another tree than the configured project: its own packages and paths, unless given
    own_project = args.root is None
    sources = args.source if args.source is not None else (settings.mcp_testing_source_packages if own_project else [])
    paths = args.path if args.path is not None else (settings.mcp_testing_paths if own_project else [])
    threshold = args.threshold if args.threshold is not None else settings.mcp_testing_coverage_target
    return test_command(
        args.root if args.root is not None else Path(settings.mcp_testing_project_root),
        args.python if args.python is not None else (settings.mcp_testing_python if own_project else None),
        list(sources),
        list(paths),
        args.json,
        sys.stdout,
        threshold,
        timeout_seconds=settings.mcp_testing_timeout_seconds,
    )


if __name__ == "__main__":
    sys.exit(main())
