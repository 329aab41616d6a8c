"""Helpers of the deployment scripts (scripts/deploy_mcp_servers.sh, scripts/mcp/*.sh), run with the install's
own interpreter so that they read the settings exactly as the sidecar does.

    python scripts/mcp/deploy_support.py settings --root /opt/polymarket-copy-bot [--auth-header-file F]
    python scripts/mcp/deploy_support.py release-check --source ~/polymarket-copy-bot --root /opt/polymarket-copy-bot
    python scripts/mcp/deploy_support.py components --status-json S --health-json H \
        --cpu-limit 15 --memory-limit-mb 1000
    python scripts/mcp/deploy_support.py error-rate --url http://127.0.0.1:9090/metrics [--root DIR]
    python scripts/mcp/deploy_support.py monitor --url U --status-file F --seconds 300 --interval 10 [--baseline R] \
        [--root DIR]
    python scripts/mcp/deploy_support.py bot-status --state-dir D
    python scripts/mcp/deploy_support.py sidecar-pid --state-dir D
    python scripts/mcp/deploy_support.py missing-deps --root DIR

Exit codes: 0 fine, 1 the check failed (printed), 2 bad arguments or invalid settings (printed on stderr).

DASHBOARD_TOKEN never leaves these processes except as a request header: `settings` prints only whether one
is set (DASHBOARD_TOKEN_SET) and writes the header for curl into a 0600 file; `error-rate` and `monitor` with
--root read it from the install's settings themselves. It is never printed or put on a command line.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from deploy_monitor import DEFAULT_MIN_EVENTS, monitor, pid_alive, probe, status_pid, token_is_sendable
from deploy_rules import (
    BOT_DERIVED_COMPONENTS,
    DEFAULT_MAX_RISE,
    SERVER_NAMES,
    MetricsFormatError,
    Outcome,
    excluded_checks,
    overall_check,
    parse_counts,
    resource_checks,
    server_checks,
    sidecar_check,
    sidecar_figures,
)

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
STATUS_FILE_NAME = "sidecar_status.json"
SNAPSHOT_FILE_NAME = "risk_state.json"
# modules a release must import before it replaces the running one
RELEASE_MODULES = ("config.settings", "config.mcp_config", "mcp.main_mcp", "core.integrations.mcp_risk_integration")


def _use_tree(root: Path) -> None:
    """Import the project from `root` first, and read its .env from there (as the sidecar does from its cwd)."""
    sys.path.insert(0, str(root))
    os.chdir(root)


class TreeError(RuntimeError):
    """The tree is not a polymarket-copy-bot install: its configuration module does not import."""


def _config_module(root: Path) -> tuple[type[Exception], Any]:
    """(ConfigurationError, validate_monitoring_config) of the tree first on sys.path."""
    try:
        module = importlib.import_module("config.mcp_config")
    except Exception as e:  # a tree whose config module is missing or broken is reported, not a traceback
        raise TreeError(f"config.mcp_config of {root} does not import: {type(e).__name__}: {e}") from e
    # compared without resolving links: an install may link its packages in from elsewhere
    origin = Path(os.path.abspath(module.__file__ or ""))
    if not origin.is_relative_to(Path(os.path.abspath(root))):
        # an editable or site-packages install of the project would otherwise stand in for the tree
        raise TreeError(f"config.mcp_config of {root} does not import: found only {origin}, outside the tree")
    return module.ConfigurationError, module.validate_monitoring_config


def dashboard_token(settings: Any) -> str | None:
    """The install's DASHBOARD_TOKEN, None when none is set; ValueError when it cannot go in a header line."""
    # getattr: the settings of an older release (pre-flight reads the running install) may have no such field
    secret = getattr(settings, "dashboard_token", None)
    value = secret.get_secret_value() if hasattr(secret, "get_secret_value") else secret
    if not isinstance(value, str) or not value.strip():
        return None
    if not (value.isascii() and token_is_sendable(value)):
        # the message never quotes the token
        raise ValueError(
            "DASHBOARD_TOKEN must be one line of printable ASCII without spaces at its ends "
            f"(it is sent as an HTTP header); received {len(value)} characters that are not"
        )
    return value


def write_auth_header(path: Path, token: str | None) -> None:
    """curl's header file (`curl -H @path`) carrying `token`, readable by its owner only; removed without one."""
    if token is None:
        path.unlink(missing_ok=True)
        return
    # 0600 from the first byte (O_CREAT's mode, then fchmod for a file that already existed); no symlink followed
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        os.fchmod(handle.fileno(), 0o600)
        handle.write(f"Authorization: Bearer {token}\n")


def settings_lines(settings: Any, root: Path) -> list[str]:
    """KEY=VALUE lines the shell scripts read (paths made absolute against `root`); never the token itself."""

    def absolute(path: Path) -> Path:
        return path if path.is_absolute() else root / path

    values = {
        "ENVIRONMENT": str(settings.environment),
        "DASHBOARD_ENABLED": str(settings.dashboard_enabled).lower(),
        "DASHBOARD_HOST": settings.dashboard_host,
        "DASHBOARD_PORT": settings.dashboard_port,
        "METRICS_ENABLED": str(settings.metrics_enabled).lower(),
        "METRICS_PORT": settings.metrics_port,
        "STATE_DIR": absolute(Path(settings.state_dir)),
        "LOG_DIR": absolute(Path(settings.log_dir)),
        "CPU_LIMIT_PERCENT": settings.mcp_resource_limit_cpu_percent,
        "MEMORY_LIMIT_MB": settings.mcp_resource_limit_mb,
        "CODEBASE_SEARCH_ENABLED": str(settings.mcp_codebase_search_enabled).lower(),
        "TESTING_ENABLED": str(settings.mcp_testing_enabled).lower(),
        "MONITORING_ENABLED": str(settings.mcp_monitoring_enabled).lower(),
        "DASHBOARD_TOKEN_SET": str(dashboard_token(settings) is not None).lower(),
    }
    lines = []
    for key, value in values.items():
        text = str(value)
        if "\n" in text or "\r" in text:
            raise ValueError(f"{key} must be one line, received {text!r}")
        lines.append(f"{key}={text}")
    return lines


class SettingsError(RuntimeError):
    """The install's settings cannot be read: not an install, or invalid (the message lists every bad field)."""


def install_settings(root: Path) -> Any:
    """The settings of the install at `root`, read as its sidecar reads them (its code, its .env)."""
    _use_tree(root)
    try:
        configuration_error, validate = _config_module(root)
    except TreeError as e:
        raise SettingsError(str(e)) from e
    try:
        return validate(root)
    except (configuration_error, ValueError) as e:
        raise SettingsError(f"settings in {root}: {e}") from e


def install_token(root: Path | None) -> str | None:
    """DASHBOARD_TOKEN of the install at `root` (None without a root or a token); SettingsError when unreadable.

    It is sent whatever DASHBOARD_HOST is: the URL (127.0.0.1 for DASHBOARD_HOST=0.0.0.0) cannot tell whether
    the sidecar needs it, and on loopback the sidecar ignores it, so sending it there is harmless.
    """
    if root is None:
        return None
    try:
        return dashboard_token(install_settings(root.resolve()))
    except ValueError as e:
        raise SettingsError(f"settings in {root}: {e}") from e


def cmd_settings(args: argparse.Namespace) -> int:
    """`settings`: print the install's settings as KEY=VALUE lines; exit 2 with every bad field when invalid.

    With --auth-header-file the bearer header for curl is written there (0600) when a token is set, and the
    file removed when none is, so that a script never sends a token the settings no longer have.
    """
    root = args.root.resolve()
    header_file = None if args.auth_header_file is None else args.auth_header_file.resolve()
    try:
        settings = install_settings(root)
        lines = settings_lines(settings, root)
        if header_file is not None:
            write_auth_header(header_file, dashboard_token(settings))
    except SettingsError as e:
        print(str(e), file=sys.stderr)
        return EXIT_USAGE
    except ValueError as e:
        print(f"settings in {root}: {e}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as e:
        print(f"cannot write the token header file {header_file}: {e}", file=sys.stderr)
        return EXIT_USAGE
    print("\n".join(lines))
    return EXIT_OK


def cmd_release_check(args: argparse.Namespace) -> int:
    """`release-check`: import the release's modules and validate its settings against the install's .env."""
    source, root = args.source.resolve(), args.root.resolve()
    # the release's code, the install's configuration (.env in the install dir)
    sys.path.insert(0, str(source))
    if root.is_dir():
        os.chdir(root)
    failed = False
    for name in RELEASE_MODULES:
        try:
            module = importlib.import_module(name)
        except Exception as e:  # any import-time error of the release is a reason not to deploy it
            print(f"[FAIL] release imports {name}: {type(e).__name__}: {e}")
            failed = True
            continue
        where = Path(getattr(module, "__file__", "") or "")
        if source not in where.resolve().parents:
            print(f"[FAIL] release imports {name}: expected it from {source}, received {where}")
            failed = True
    if failed:
        return EXIT_FAILED
    print(f"[PASS] release imports: {', '.join(RELEASE_MODULES)}")
    configuration_error, validate = _config_module(source)
    try:
        validate(root if root.is_dir() else None)
    except configuration_error as e:
        print(f"[FAIL] release settings with the configuration of {root}: {e}")
        return EXIT_FAILED
    print(f"[PASS] release settings valid with the configuration of {root}")
    return EXIT_OK


def _load_json(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


def cmd_components(args: argparse.Namespace) -> int:
    """`components`: print the sidecar, server and resource checks; exit 1 when one fails."""
    status, health = _load_json(args.status_json), _load_json(args.health_json)
    unknown = sorted(set(args.disabled) - set(SERVER_NAMES))
    if unknown:
        print(f"--disabled expects any of {list(SERVER_NAMES)}, received {unknown}", file=sys.stderr)
        return EXIT_USAGE
    # a deploy made while the bot was already down leaves the bot-derived components out of its verdict
    excluded = BOT_DERIVED_COMPONENTS if args.bot_was_down else frozenset()
    checks = [
        overall_check(health, excluded),
        *excluded_checks(health, excluded),
        sidecar_check(status, excluded),
        *server_checks(status, health, frozenset(args.disabled)),
    ]
    checks += resource_checks(sidecar_figures(status, health), args.cpu_limit, args.memory_limit_mb)
    for check in checks:
        print(check.line())
    return EXIT_FAILED if any(check.outcome is Outcome.FAIL for check in checks) else EXIT_OK


def cmd_error_rate(args: argparse.Namespace) -> int:
    """`error-rate`: print rate=… errors=… events=… of a /metrics endpoint; exit 1 when unreadable.

    With --root the install's DASHBOARD_TOKEN (if any) is sent as a bearer header.
    """
    from deploy_monitor import TokenRefused, fetch_text

    try:
        token = install_token(args.root)
    except SettingsError as e:
        print(str(e), file=sys.stderr)
        return EXIT_USAGE
    try:
        counts = parse_counts(fetch_text(args.url, token=token))
    except TokenRefused as e:
        print(f"cannot read the error rate: token refused or missing (DASHBOARD_TOKEN): {e}", file=sys.stderr)
        return EXIT_FAILED
    except (OSError, MetricsFormatError) as e:
        print(f"cannot read the error rate from {args.url}: {e}", file=sys.stderr)
        return EXIT_FAILED
    rate = "none" if counts.rate is None else f"{counts.rate:.6f}"
    print(f"rate={rate} errors={counts.errors:g} events={counts.events:g}")
    return EXIT_OK


def cmd_monitor(args: argparse.Namespace) -> int:
    """`monitor`: the monitoring step (deploy_monitor.monitor) against a live sidecar.

    With --root the install's DASHBOARD_TOKEN (if any) is sent with every scrape.
    """

    def emit(line: str) -> None:
        print(line, flush=True)

    status_file = args.status_file.resolve()  # before install_settings changes the working directory
    try:
        token = install_token(args.root)
    except SettingsError as e:
        print(str(e), file=sys.stderr)
        return EXIT_USAGE
    try:
        ok = monitor(
            seconds=args.seconds,
            interval=args.interval,
            probe=lambda: probe(args.url, status_file, token),
            emit=emit,
            baseline=args.baseline,
            max_rise=args.max_rise,
            allowed_misses=args.allowed_misses,
            min_events=args.min_events,
        )
    except ValueError as e:
        print(str(e), file=sys.stderr)
        return EXIT_USAGE
    return EXIT_OK if ok else EXIT_FAILED


def bot_status_line(snapshot: dict[str, Any] | None, now: float, alive: bool | None) -> tuple[bool, str]:
    """(running, sentence) for the bot described by its risk snapshot."""
    if snapshot is None:
        return False, "no risk snapshot (the bot has not run with this STATE_DIR, or it is unreadable)"
    pid = snapshot.get("pid")
    updated = snapshot.get("updated_at_epoch")
    age = f"{now - updated:.0f} s old" if isinstance(updated, int | float) else "of unknown age"
    if not alive:
        return False, f"pid {pid} from the snapshot is not running (snapshot {age})"
    return True, f"pid {pid}, trading_state {snapshot.get('trading_state')}, snapshot {age}"


def cmd_bot_status(args: argparse.Namespace) -> int:
    """`bot-status`: one line about the bot from its risk snapshot; exit 0 when it runs."""
    snapshot = _load_json(args.state_dir / SNAPSHOT_FILE_NAME)
    pid = snapshot.get("pid") if snapshot else None
    alive = isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 and pid_alive(pid)
    running, line = bot_status_line(snapshot, time.time(), alive)
    print(line)
    return EXIT_OK if running else EXIT_FAILED


def cmd_sidecar_pid(args: argparse.Namespace) -> int:
    """`sidecar-pid`: print the live sidecar's pid from its status file; exit 1 when none."""
    pid = status_pid(args.state_dir / STATUS_FILE_NAME)
    if pid is None or not pid_alive(pid):
        return EXIT_FAILED
    print(pid)
    return EXIT_OK


_REQUIREMENT_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _satisfies(requirement: str, installed: str) -> bool:
    """Whether version `installed` is in the range of `requirement` (presence is enough without `packaging`)."""
    try:
        from packaging.requirements import InvalidRequirement, Requirement
    except ImportError:  # pip vendors packaging, but a bare venv may not have it installed
        return True
    try:
        return Requirement(requirement).specifier.contains(installed, prereleases=True)
    except InvalidRequirement as e:
        raise ValueError(f"invalid requirement {requirement!r} in pyproject.toml: {e}") from e


def unsatisfied(requirements: Sequence[str]) -> list[str]:
    """The requirement strings the running interpreter does not satisfy (missing, or outside the version range)."""
    from importlib import metadata

    missing = []
    for text in requirements:
        match = _REQUIREMENT_NAME.match(text)
        if match is None:
            raise ValueError(f"expected a requirement such as 'aiohttp>=3.9', received {text!r}")
        try:
            installed = metadata.version(match.group(1))
        except metadata.PackageNotFoundError:
            missing.append(text)
            continue
        if not _satisfies(text, installed):
            missing.append(text)
    return missing


def cmd_missing_deps(args: argparse.Namespace) -> int:
    """`missing-deps`: print the [project].dependencies of a tree that this interpreter does not satisfy."""
    import tomllib

    path = args.root / "pyproject.toml"
    try:
        project = tomllib.loads(path.read_text(encoding="utf-8")).get("project", {})
        requirements = project.get("dependencies", [])
        if not isinstance(requirements, list):
            raise ValueError(f"[project].dependencies must be a list, received {type(requirements).__name__}")
        missing = unsatisfied([str(item) for item in requirements])
    except (OSError, tomllib.TOMLDecodeError, ValueError) as e:
        print(f"cannot read the dependencies from {path}: {e}", file=sys.stderr)
        return EXIT_USAGE
    for text in missing:
        print(text)
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The helper's command line."""
    parser = argparse.ArgumentParser(prog="deploy_support.py", description="Helpers of the deployment scripts.")
    commands = parser.add_subparsers(dest="command", required=True)
    settings = commands.add_parser("settings", help="print the settings the scripts need as KEY=VALUE lines")
    settings.add_argument("--root", type=Path, required=True)
    settings.add_argument("--auth-header-file", type=Path, help="write curl's bearer header here (0600)")
    settings.set_defaults(run=cmd_settings)
    release = commands.add_parser("release-check", help="import a release and validate its settings")
    release.add_argument("--source", type=Path, required=True)
    release.add_argument("--root", type=Path, required=True)
    release.set_defaults(run=cmd_release_check)
    components = commands.add_parser("components", help="judge the servers and resources from status and /health")
    components.add_argument("--status-json", type=Path)
    components.add_argument("--health-json", type=Path)
    components.add_argument("--disabled", action="append", default=[], metavar="SERVER")
    components.add_argument("--cpu-limit", type=float, required=True)
    components.add_argument("--memory-limit-mb", type=float, required=True)
    components.add_argument(
        "--bot-was-down",
        action="store_true",
        help="the bot was not running before the deploy: show main_bot, trade_executor, circuit_breaker as [WARN]"
        " and leave them out of the verdict",
    )
    components.set_defaults(run=cmd_components)
    rate = commands.add_parser("error-rate", help="print the error rate of a /metrics endpoint")
    rate.add_argument("--url", required=True)
    rate.add_argument("--root", type=Path, help="send the DASHBOARD_TOKEN of this install's settings")
    rate.set_defaults(run=cmd_error_rate)
    watch = commands.add_parser("monitor", help="sample the sidecar and fail when its error rate rises")
    watch.add_argument("--url", required=True)
    watch.add_argument("--status-file", type=Path, required=True)
    watch.add_argument("--seconds", type=float, required=True)
    watch.add_argument("--interval", type=float, required=True)
    watch.add_argument("--baseline", type=float, default=None)
    watch.add_argument("--max-rise", type=float, default=DEFAULT_MAX_RISE)
    watch.add_argument("--allowed-misses", type=int, default=2)
    watch.add_argument("--min-events", type=float, default=DEFAULT_MIN_EVENTS)
    watch.add_argument("--root", type=Path, help="send the DASHBOARD_TOKEN of this install's settings")
    watch.set_defaults(run=cmd_monitor)
    bot = commands.add_parser("bot-status", help="is the bot running? (from its risk snapshot)")
    bot.add_argument("--state-dir", type=Path, required=True)
    bot.set_defaults(run=cmd_bot_status)
    sidecar = commands.add_parser("sidecar-pid", help="the running sidecar's pid (from its status file)")
    sidecar.add_argument("--state-dir", type=Path, required=True)
    sidecar.set_defaults(run=cmd_sidecar_pid)
    deps = commands.add_parser("missing-deps", help="print the unsatisfied dependencies of a tree's pyproject.toml")
    deps.add_argument("--root", type=Path, required=True)
    deps.set_defaults(run=cmd_missing_deps)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one helper command; its exit code."""
    args = build_parser().parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
