"""The deployment scripts' Python side (scripts/mcp/deploy_*.py) and the unit renderer, as plain functions:
the error-rate definition and the rollback decision, the health verdicts, the monitoring loop (with a fake
clock and a scripted sidecar), and their command line on malformed input.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import os
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.typedefs import Handler
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Counter, generate_latest
from pydantic import SecretStr

from config.settings import Settings
from mcp.monitoring.metrics_auth import metrics_middlewares
from tests.fakes.loopback import serve_on_loopback

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCRIPTS_MCP = PROJECT_ROOT / "scripts" / "mcp"
for folder in (SCRIPTS_MCP, PROJECT_ROOT / "scripts" / "systemd"):
    if str(folder) not in sys.path:
        sys.path.append(str(folder))

import deploy_monitor  # noqa: E402  (scripts/ is not a package: its helpers are run as files)
import deploy_rules  # noqa: E402
import deploy_support  # noqa: E402
import render_units  # noqa: E402
from deploy_monitor import Sample  # noqa: E402
from deploy_rules import Counts, MetricsFormatError, Outcome  # noqa: E402


def metrics_body(critical: int, other: int, tool_calls: int = 0, tool_errors: int = 0) -> str:
    """A /metrics body written by prometheus_client itself, with the sidecar's metric names."""
    registry = CollectorRegistry()
    checks = Counter("monitoring_health_checks", "checks", ["status"], registry=registry)
    calls = Counter("mcp_tool_calls", "calls", ["server", "tool"], registry=registry)
    errors = Counter("mcp_tool_errors", "errors", ["server", "tool", "error_type"], registry=registry)
    checks.labels("critical").inc(critical)
    checks.labels("healthy").inc(other)
    if tool_calls:
        calls.labels("testing", "run_tests").inc(tool_calls)
    if tool_errors:
        errors.labels("testing", "run_tests", "TimeoutError").inc(tool_errors)
    return generate_latest(registry).decode()


# --- error rate --------------------------------------------------------------------------------------


def test_error_rate_counts_critical_checks_and_tool_errors() -> None:
    counts = deploy_rules.parse_counts(metrics_body(critical=2, other=6, tool_calls=2, tool_errors=1))
    assert counts == Counts(errors=3, events=10)
    assert counts.rate == pytest.approx(0.3)


@pytest.mark.parametrize(
    "body",
    [
        "",
        "<html><body>the dashboard page</body></html>",
        'monitoring_health_checks_total{status="critical"} not-a-number\n',
        "garbage{{{\n",
        'node_cpu_seconds_total{cpu="0"} 12\n',
    ],
    ids=["empty", "html", "bad-value", "garbage", "another-exporter"],
)
def test_malformed_metrics_raise_a_clear_error(body: str) -> None:
    with pytest.raises(MetricsFormatError, match="expected"):
        deploy_rules.parse_counts(body)


def test_counts_without_events_have_no_rate_and_restarts_are_detected() -> None:
    assert Counts(0, 0).rate is None
    assert Counts(5, 20).since(Counts(1, 10)) == Counts(4, 10)
    assert Counts(1, 5).since(Counts(1, 10)) is None, "a counter that went down means the process restarted"


@pytest.mark.parametrize(
    ("before", "during", "ok"),
    [
        (0.10, 0.19, True),
        (0.10, 0.20, True),
        (0.10, 0.2001, False),
        (0.50, 0.10, True),
        (None, 0.05, True),
        (None, 0.11, False),
        (0.30, None, True),
    ],
)
def test_rollback_when_the_error_rate_rises_by_more_than_ten_points(
    before: float | None, during: float | None, ok: bool
) -> None:
    verdict = deploy_rules.judge_rise(before, during, 0.10)
    assert verdict.ok is ok
    assert ("limit" in verdict.reason) is (not ok)


@given(
    before=st.floats(0, 1),
    during=st.floats(0, 1),
    lower=st.floats(0, 1),
    max_rise=st.floats(0, 1),
)
def test_a_lower_error_rate_never_fails_where_a_higher_one_passes(
    before: float, during: float, lower: float, max_rise: float
) -> None:
    if deploy_rules.judge_rise(before, during, max_rise).ok:
        assert deploy_rules.judge_rise(before, min(lower, during), max_rise).ok


def test_max_rise_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(ValueError, match="between 0 and 1"):
        deploy_rules.judge_rise(0.1, 0.2, 10)


# --- health verdicts ---------------------------------------------------------------------------------


def status_json(**servers: dict[str, object]) -> dict[str, object]:
    """The shape of `python -m mcp.main_mcp status --json`."""
    return {"healthy": True, "problems": [], "status": {"pid": 42, "uptime_seconds": 9, "servers": servers}}


RUNNING = {"state": "running", "status": "healthy"}


def test_running_servers_pass_and_disabled_ones_are_skipped() -> None:
    status = status_json(codebase_search=RUNNING, monitoring=RUNNING)
    checks = deploy_rules.server_checks(status, None, frozenset({"testing"}))
    assert [(c.name, c.outcome) for c in checks] == [
        ("codebase_search", Outcome.PASS),
        ("testing", Outcome.INFO),
        ("monitoring", Outcome.PASS),
    ]
    assert checks[1].line().startswith("[INFO] testing: skipped")


def test_failed_missing_and_critical_servers_fail_with_the_reason() -> None:
    status = status_json(
        codebase_search={"state": "failed", "status": "critical", "last_error": "OSError: disk full"},
        monitoring=RUNNING,
    )
    health = {"components": {"monitoring": {"status": "critical", "message": "port 9090 in use"}}}
    lines = [check.line() for check in deploy_rules.server_checks(status, health)]
    assert lines == [
        "[FAIL] codebase_search: expected state running, received 'failed' (OSError: disk full)",
        "[FAIL] testing: missing from the sidecar's status (expected: enabled)",
        "[FAIL] monitoring: running but critical: port 9090 in use",
    ]


def test_a_degraded_server_passes_and_says_why() -> None:
    status = status_json(codebase_search=RUNNING, testing=RUNNING, monitoring=RUNNING)
    health = {"components": {"testing": {"status": "degraded", "message": "last run timed out"}}}
    testing = deploy_rules.server_checks(status, health)[1]
    assert testing.line() == "[PASS] testing: running (degraded: last run timed out)"


@pytest.mark.parametrize(
    "status",
    [
        None,
        {"status": "not a mapping"},
        {"status": {"servers": ["a", "list"]}},
        {"status": {"servers": {"testing": 3}}},
    ],
)
def test_malformed_status_fails_every_server_without_raising(status: dict[str, object] | None) -> None:
    checks = deploy_rules.server_checks(status, {"components": "nonsense"})
    assert [check.outcome for check in checks] == [Outcome.FAIL] * 3


def test_sidecar_check_lists_the_problems() -> None:
    assert deploy_rules.sidecar_check(status_json()).outcome is Outcome.PASS
    unhealthy = {"healthy": False, "problems": ["sidecar process 7 is gone"], "status": None}
    assert deploy_rules.sidecar_check(unhealthy).line() == "[FAIL] sidecar: not healthy: sidecar process 7 is gone"
    assert deploy_rules.sidecar_check(None).outcome is Outcome.FAIL
    assert "unknown" in deploy_rules.sidecar_check({"healthy": "yes", "problems": "x"}).detail


def test_resources_come_from_health_else_from_status_and_must_stay_below_the_limits() -> None:
    health = {"components": {"sidecar": {"figures": {"cpu_percent": 3.5, "memory_mb": 61.0}}}}
    assert deploy_rules.sidecar_figures(None, health) == {"cpu_percent": 3.5, "memory_mb": 61.0}
    status = status_json(monitoring={"health": {"components": {"sidecar": {"cpu_percent": 1, "memory_mb": 2}}}})
    assert deploy_rules.sidecar_figures(status, None) == {"cpu_percent": 1, "memory_mb": 2}
    checks = deploy_rules.resource_checks({"cpu_percent": 15.0, "memory_mb": 999.9}, 15.0, 1000.0)
    assert [check.line() for check in checks] == [
        "[FAIL] sidecar CPU: 15 % >= limit 15 %",
        "[PASS] sidecar memory: 999.9 MB < 1000 MB",
    ]


@pytest.mark.parametrize("value", [None, True, "12", [1]])
def test_missing_or_malformed_resource_figures_fail(value: object) -> None:
    checks = deploy_rules.resource_checks({"cpu_percent": value, "memory_mb": value}, 15.0, 1000.0)
    assert all(check.outcome is Outcome.FAIL and "no" in check.detail for check in checks)


@pytest.mark.parametrize(
    ("components", "line"),
    [
        (
            {"main_bot": {"status": "critical", "message": "bot process 7 is not running"}, "host": "healthy"},
            "[FAIL] overall health: critical (main_bot critical: bot process 7 is not running)",
        ),
        ({"main_bot": "starting", "host": "healthy"}, "[PASS] overall health: starting"),
        (
            {"sidecar": {"status": "degraded", "message": "RSS 120 MB"}},
            "[PASS] overall health: degraded (sidecar degraded: RSS 120 MB)",
        ),
        ({"host": "healthy"}, "[PASS] overall health: healthy"),
        ({"host": "on fire"}, "[FAIL] overall health: critical (host critical)"),  # unknown counts as critical
    ],
)
def test_overall_line_is_the_one_verdict(components: dict[str, Any], line: str) -> None:
    # the body's own "status" is ignored on purpose: the verdict is recomputed from the components
    assert deploy_rules.overall_check({"status": "healthy", "components": components}).line() == line


BOT_DOWN = "(the bot was not running before this deploy; not caused by it)"
DEAD_BOT = {"status": "critical", "message": "bot process 7 is not running"}


@pytest.mark.parametrize(
    ("components", "outcome", "detail"),
    [
        (
            {"main_bot": DEAD_BOT, "trade_executor": "degraded", "host": "healthy"},
            Outcome.PASS,
            f"healthy; excluded main_bot, trade_executor {BOT_DOWN}",
        ),
        (
            {"main_bot": DEAD_BOT, "host": {"status": "critical", "message": "disk full"}},
            Outcome.FAIL,
            f"critical (host critical: disk full); excluded main_bot {BOT_DOWN}",
        ),
        ({"host": "healthy"}, Outcome.PASS, "healthy"),  # nothing to exclude: nothing said
    ],
)
def test_the_overall_line_leaves_out_the_bot_and_says_so(
    components: dict[str, Any], outcome: Outcome, detail: str
) -> None:
    check = deploy_rules.overall_check({"components": components}, deploy_rules.BOT_DERIVED_COMPONENTS)
    assert (check.outcome, check.detail) == (outcome, detail)


def test_excluded_components_are_warned_with_their_real_status() -> None:
    health = {"components": {"main_bot": DEAD_BOT, "circuit_breaker": "healthy", "host": "critical"}}
    lines = [c.line() for c in deploy_rules.excluded_checks(health, deploy_rules.BOT_DERIVED_COMPONENTS)]
    assert lines == [
        f"[WARN] circuit_breaker: healthy {BOT_DOWN}",
        f"[WARN] main_bot: critical: bot process 7 is not running {BOT_DOWN}",
    ]
    assert deploy_rules.excluded_checks(health, frozenset()) == []
    assert deploy_rules.excluded_checks(None, deploy_rules.BOT_DERIVED_COMPONENTS) == []


def unhealthy_status(components: dict[str, Any], *other: str) -> dict[str, Any]:
    """`status --json` of a sidecar whose verdict fails on `components` (and with `other` problems)."""
    monitoring = {"state": "running", "status": "healthy", "health": {"components": components}}
    status = status_json(monitoring=monitoring)
    verdict_problem = "health verdict critical: main_bot critical: bot process 7 is not running"
    return {**status, "healthy": False, "problems": [*other, verdict_problem]}


def test_the_sidecar_line_rejudges_the_status_verdict_only_when_asked() -> None:
    bot = deploy_rules.BOT_DERIVED_COMPONENTS
    dead_bot_only = unhealthy_status({"main_bot": DEAD_BOT, "host": "healthy"})
    assert deploy_rules.sidecar_check(dead_bot_only).outcome is Outcome.FAIL
    assert deploy_rules.sidecar_check(dead_bot_only, bot).outcome is Outcome.PASS
    # the sidecar's own problems still fail it, and so does a critical component that is not the bot's
    gone = unhealthy_status({"main_bot": DEAD_BOT}, "sidecar process 42 is gone (crashed or killed)")
    assert (
        deploy_rules.sidecar_check(gone, bot).line()
        == "[FAIL] sidecar: not healthy: sidecar process 42 is gone (crashed or killed)"
    )
    host = unhealthy_status({"main_bot": DEAD_BOT, "host": {"status": "critical", "message": "disk full"}})
    assert deploy_rules.sidecar_check(host, bot).line() == (
        "[FAIL] sidecar: not healthy: health verdict critical: host critical: disk full"
    )


def test_no_health_body_fails_the_overall_line() -> None:
    assert deploy_rules.overall_check(None).outcome is Outcome.FAIL


# --- the monitoring loop -----------------------------------------------------------------------------


class Scripted:
    """A sidecar seen through probe(): one Sample per call, and a clock that moves only when the loop sleeps."""

    def __init__(self, samples: list[Sample]) -> None:
        self.samples = samples
        self.calls = 0
        self.now = 0.0
        self.lines: list[str] = []

    def probe(self) -> Sample:
        sample = self.samples[min(self.calls, len(self.samples) - 1)]
        self.calls += 1
        return sample

    def sleep(self, seconds: float) -> None:
        self.now += seconds

    def run(self, baseline: float | None = None, seconds: float = 5, min_events: float = 0) -> bool:
        return deploy_monitor.monitor(
            seconds=seconds,
            interval=1,
            probe=self.probe,
            emit=self.lines.append,
            baseline=baseline,
            max_rise=0.10,
            allowed_misses=2,
            min_events=min_events,
            clock=lambda: self.now,
            sleep=self.sleep,
        )


def up(errors: float, events: float, pid: int = 7) -> Sample:
    return Sample(Counts(errors, events), None, pid, True)


def test_a_stable_sidecar_passes_after_the_whole_window() -> None:
    sidecar = Scripted([up(1, 8 * n) for n in range(1, 10)])
    assert sidecar.run() is True
    assert sidecar.calls == 6, "one sample at the start, then one per second for 5 s"
    assert sidecar.lines[-1] == "[PASS] sidecar pid 7 stable for 5 s"


def test_window_mode_fails_as_soon_as_the_rate_rises() -> None:
    # first sample 1/8 critical; then every new check critical
    sidecar = Scripted([up(1, 8), up(1, 16), up(9, 24)])
    assert sidecar.run() is False
    assert sidecar.calls == 3
    assert sidecar.lines[-1].startswith("[FAIL] 2s: error rate 50.0% during vs 12.5% before")


def test_with_a_baseline_the_new_process_counters_are_compared_with_it() -> None:
    assert Scripted([up(1, 8)]).run(baseline=0.125) is True
    failing = Scripted([up(2, 8)])
    assert failing.run(baseline=0.125) is False
    assert failing.calls == 1, "judged on the very first sample"


@pytest.mark.parametrize(
    ("samples", "expected"),
    [
        ([Sample(None, None, None, False)], "not running at the start"),
        ([up(1, 8), up(1, 16, pid=8)], "pid 7 is gone (now 8"),
        ([up(1, 8), Sample(Counts(1, 16), None, 7, False)], "pid 7 is gone"),
        ([up(1, 8), up(0, 2)], "counters went down"),
        ([up(1, 8), Sample(None, "refused", 7, True)], "unreadable 2 times in a row"),
    ],
    ids=["not-running", "pid-changed", "died", "counters-reset", "metrics-unreadable"],
)
def test_crashes_and_unreadable_metrics_fail(samples: list[Sample], expected: str) -> None:
    sidecar = Scripted(samples)
    assert sidecar.run() is False
    assert expected in sidecar.lines[-1]


def test_a_rise_counts_only_once_enough_events_are_in_the_window() -> None:
    # one bad round right after the start, then calm: judged only from 24 events, when it has averaged out
    calm_after_a_bad_round = [up(1, 8), up(5, 16), up(5, 24), up(5, 32), up(5, 40), up(5, 48)]
    assert Scripted(calm_after_a_bad_round).run(min_events=24) is True
    assert Scripted(calm_after_a_bad_round).run(min_events=0) is False
    # a rise that lasts still fails, at the last sample at the latest
    lasting = Scripted([up(1, 8), up(5, 16), up(9, 24)])
    assert lasting.run(seconds=2, min_events=1000) is False
    assert lasting.lines[-1].startswith("[FAIL] 2s:")


def test_one_missed_scrape_is_tolerated() -> None:
    sidecar = Scripted([up(1, 8), Sample(None, "timed out", 7, True), up(2, 16), up(3, 24)])
    assert sidecar.run(seconds=3) is True


def test_monitor_refuses_a_nonsense_window() -> None:
    with pytest.raises(ValueError, match="interval > 0"):
        Scripted([up(1, 8)]).run(seconds=-1)


# --- files and processes the monitor reads -----------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (json.dumps({"pid": os.getpid(), "sidecar_state": "running"}), os.getpid()),
        (json.dumps({"pid": os.getpid(), "sidecar_state": "stopped"}), None),
        (json.dumps({"pid": True}), None),
        (json.dumps({"pid": "12"}), None),
        (json.dumps([1, 2]), None),
        ("{not json", None),
    ],
)
def test_status_pid_reads_only_a_live_well_formed_status(tmp_path: Path, content: str, expected: int | None) -> None:
    path = tmp_path / "sidecar_status.json"
    path.write_text(content)
    assert deploy_monitor.status_pid(path) == expected
    assert deploy_monitor.status_pid(tmp_path / "missing.json") is None


@pytest.fixture
def metrics_server() -> Iterator[str]:
    """A real loopback HTTP server answering /metrics with a sidecar-like body."""
    body = metrics_body(critical=1, other=3).encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/metrics" else 404)
            self.end_headers()
            self.wfile.write(body if self.path == "/metrics" else b"not found")

        def log_message(self, *_: object) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_probe_reads_metrics_over_http_and_the_status_file(metrics_server: str, tmp_path: Path) -> None:
    status = tmp_path / "sidecar_status.json"
    status.write_text(json.dumps({"pid": os.getpid(), "sidecar_state": "running"}))
    sample = deploy_monitor.probe(f"{metrics_server}/metrics", status)
    assert sample == Sample(Counts(1, 4), None, os.getpid(), True)
    missing = deploy_monitor.probe(f"{metrics_server}/nothing", status)
    assert missing.counts is None and "404" in (missing.problem or "")


# --- the bearer token beyond loopback ----------------------------------------------------------------

TOKEN = "deploy-test-token-7f3a"


@pytest.fixture
async def guarded_metrics() -> AsyncIterator[tuple[str, list[str | None]]]:
    """METRICS_PORT's real bearer check (as bound beyond loopback) before a sidecar-like /metrics, on 127.0.0.1
    port 0; yields the URL and the Authorization headers received."""
    received: list[str | None] = []
    body = metrics_body(critical=1, other=3)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(text=body, content_type="text/plain")

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        received.append(request.headers.get("Authorization"))
        return await handler(request)

    app = web.Application(middlewares=[record, *metrics_middlewares("0.0.0.0", SecretStr(TOKEN))])
    app.router.add_get("/metrics", metrics)
    runner, port = await serve_on_loopback(app)
    try:
        yield f"http://127.0.0.1:{port}/metrics", received
    finally:
        await runner.cleanup()


async def test_fetch_sends_the_token_as_a_bearer_header(guarded_metrics: tuple[str, list[str | None]]) -> None:
    url, received = guarded_metrics
    text = await asyncio.to_thread(deploy_monitor.fetch_text, url, token=TOKEN)
    assert deploy_rules.parse_counts(text) == Counts(1, 4)
    assert received == [f"Bearer {TOKEN}"]


@pytest.mark.parametrize(
    ("token", "expected"),
    [(None, "needs a DASHBOARD_TOKEN"), ("wrong-token", "refused the DASHBOARD_TOKEN")],
    ids=["missing", "wrong"],
)
async def test_a_401_says_the_token_was_refused_or_missing(
    guarded_metrics: tuple[str, list[str | None]], token: str | None, expected: str
) -> None:
    url, received = guarded_metrics
    with pytest.raises(deploy_monitor.TokenRefused, match=expected) as caught:
        await asyncio.to_thread(deploy_monitor.fetch_text, url, token=token)
    assert "401" in str(caught.value) and "wrong-token" not in str(caught.value)
    assert received == [None if token is None else f"Bearer {token}"], "no header at all without a token"
    sample = await asyncio.to_thread(deploy_monitor.probe, url, Path("/nonexistent/status.json"), token)
    assert sample.refused and sample.counts is None and expected in (sample.problem or "")


def test_monitor_fails_at_once_when_the_token_is_refused() -> None:
    refused = Sample(None, "http://h/metrics answered HTTP 401: ...", 7, True, refused=True)
    sidecar = Scripted([up(1, 8), refused, up(2, 16)])
    assert sidecar.run() is False
    assert sidecar.calls == 2, "a refused token does not fix itself: no second try"
    assert sidecar.lines[-1].startswith("[FAIL] metrics: token refused or missing (DASHBOARD_TOKEN): ")


@pytest.mark.parametrize("token", ["two\nlines", " padded ", "tab\there", "caf\u00e9"], ids=repr)
def test_a_token_that_cannot_be_a_header_line_is_refused_without_quoting_it(token: str) -> None:
    settings = Settings(_env_file=None, dashboard_token=token)
    with pytest.raises(ValueError, match="DASHBOARD_TOKEN must be one line of printable ASCII") as caught:
        deploy_support.dashboard_token(settings)
    assert token.strip() not in str(caught.value)
    with pytest.raises(ValueError, match="printable"):
        deploy_monitor.fetch_text("http://127.0.0.1:9/metrics", token=token.strip() + "\n")


def test_the_header_file_is_private_and_follows_the_settings(tmp_path: Path) -> None:
    path = tmp_path / "auth.header"
    deploy_support.write_auth_header(path, TOKEN)
    assert path.read_text() == f"Authorization: Bearer {TOKEN}\n"
    assert path.stat().st_mode & 0o777 == 0o600
    path.chmod(0o644)
    deploy_support.write_auth_header(path, "other-token")
    assert path.read_text() == "Authorization: Bearer other-token\n"
    assert path.stat().st_mode & 0o777 == 0o600, "an existing file is made private again"
    deploy_support.write_auth_header(path, None)
    assert not path.exists(), "no token configured: nothing is left to send"
    target = tmp_path / "elsewhere"
    target.write_text("keep")
    path.symlink_to(target)
    with pytest.raises(OSError):
        deploy_support.write_auth_header(path, TOKEN)
    assert target.read_text() == "keep", "a symlink planted in its place is not followed"


def test_settings_lines_say_whether_a_token_is_set_never_what_it_is(tmp_path: Path) -> None:
    with_token = deploy_support.settings_lines(Settings(_env_file=None, dashboard_token=TOKEN), tmp_path)
    assert "DASHBOARD_TOKEN_SET=true" in with_token
    assert not any(TOKEN in line for line in with_token)
    blank = deploy_support.settings_lines(Settings(_env_file=None, dashboard_token="  "), tmp_path)
    assert "DASHBOARD_TOKEN_SET=false" in blank


# --- helpers of the command line ---------------------------------------------------------------------


def test_settings_lines_are_absolute_and_one_line_each(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, dashboard_port=18080, state_dir=Path("st"), mcp_testing_enabled=False)
    lines = deploy_support.settings_lines(settings, tmp_path)
    assert f"STATE_DIR={tmp_path / 'st'}" in lines
    assert "DASHBOARD_PORT=18080" in lines
    assert "TESTING_ENABLED=false" in lines
    with pytest.raises(ValueError, match="DASHBOARD_HOST must be one line"):
        deploy_support.settings_lines(Settings(_env_file=None, dashboard_host="127.0.0.1\nevil"), tmp_path)


def test_unsatisfied_requirements_are_missing_or_out_of_range() -> None:
    assert deploy_support.unsatisfied(["pytest>=1", "aiohttp"]) == []
    assert deploy_support.unsatisfied(["pytest>=999", "no-such-distribution-xyz"]) == [
        "pytest>=999",
        "no-such-distribution-xyz",
    ]
    with pytest.raises(ValueError, match="expected a requirement"):
        deploy_support.unsatisfied(["!!"])


def test_bot_status_line() -> None:
    snapshot = {"pid": 10, "updated_at_epoch": 95.0, "trading_state": "ACTIVE"}
    assert deploy_support.bot_status_line(snapshot, 100.0, True) == (
        True,
        "pid 10, trading_state ACTIVE, snapshot 5 s old",
    )
    assert deploy_support.bot_status_line(snapshot, 100.0, False)[0] is False
    assert deploy_support.bot_status_line(None, 100.0, None)[0] is False


def helper(*args: str, cwd: Path = PROJECT_ROOT) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASHBOARD_", "METRICS_", "MONITOR", "MCP_"))}
    return subprocess.run(
        [sys.executable, str(SCRIPTS_MCP / "deploy_support.py"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env={**env, "PYTHONDONTWRITEBYTECODE": "1"},
        check=False,
    )


@pytest.mark.integration
def test_settings_command_names_every_bad_field(tmp_path: Path) -> None:
    install = tmp_path / "install"
    install.mkdir()
    for name in ("config", "core", "mcp", "utils"):
        (install / name).symlink_to(PROJECT_ROOT / name)
    (install / ".env").write_text("DASHBOARD_PORT=eighty\nMONITOR_INTERVAL_SECONDS=-5\n")
    result = helper("settings", "--root", str(install))
    assert result.returncode == 2
    assert "DASHBOARD_PORT" in result.stderr and "MONITOR_INTERVAL_SECONDS" in result.stderr
    (install / ".env").write_text("DASHBOARD_PORT=18080\n")
    good = helper("settings", "--root", str(install))
    assert good.returncode == 0, good.stderr
    assert "DASHBOARD_PORT=18080" in good.stdout.splitlines()
    assert f"STATE_DIR={install / 'state'}" in good.stdout.splitlines()


@pytest.mark.integration
def test_settings_command_on_a_tree_that_is_not_an_install(tmp_path: Path) -> None:
    result = helper("settings", "--root", str(tmp_path))
    assert result.returncode == 2
    assert "config.mcp_config" in result.stderr and "does not import" in result.stderr


@pytest.mark.integration
def test_components_command_exit_codes(tmp_path: Path) -> None:
    status = tmp_path / "status.json"
    status.write_text(json.dumps(status_json(codebase_search=RUNNING, testing=RUNNING, monitoring=RUNNING)))
    health = tmp_path / "health.json"
    health.write_text(
        json.dumps(
            {
                "status": "healthy",
                "components": {"sidecar": {"status": "healthy", "figures": {"cpu_percent": 1, "memory_mb": 50}}},
            }
        )
    )
    args = ["components", "--status-json", str(status), "--health-json", str(health)]
    limits = ["--cpu-limit", "15", "--memory-limit-mb", "1000"]
    ok = helper(*args, *limits)
    assert ok.returncode == 0, ok.stdout
    assert "[FAIL]" not in ok.stdout
    health.write_text("{truncated")
    broken = helper(*args, *limits)
    assert broken.returncode == 1
    assert "[FAIL] sidecar CPU: no cpu_percent figure" in broken.stdout
    assert "[FAIL] overall health: unknown (no /health body)" in broken.stdout
    assert helper(*args, *limits, "--disabled", "nonsense").returncode == 2


@pytest.mark.integration
def test_components_command_excludes_the_bot_only_with_bot_was_down(tmp_path: Path) -> None:
    status = tmp_path / "status.json"
    status.write_text(json.dumps(status_json(codebase_search=RUNNING, testing=RUNNING, monitoring=RUNNING)))
    health = tmp_path / "health.json"
    figures = {"status": "healthy", "figures": {"cpu_percent": 1, "memory_mb": 50}}
    health.write_text(json.dumps({"status": "critical", "components": {"main_bot": DEAD_BOT, "sidecar": figures}}))
    args = ["components", "--status-json", str(status), "--health-json", str(health)]
    limits = ["--cpu-limit", "15", "--memory-limit-mb", "1000"]
    judged = helper(*args, *limits)
    assert judged.returncode == 1, judged.stdout
    assert "[FAIL] overall health: critical (main_bot critical" in judged.stdout and "[WARN]" not in judged.stdout
    excused = helper(*args, *limits, "--bot-was-down")
    assert excused.returncode == 0, excused.stdout
    assert f"[WARN] main_bot: critical: bot process 7 is not running {BOT_DOWN}" in excused.stdout
    assert f"[PASS] overall health: healthy; excluded main_bot {BOT_DOWN}" in excused.stdout


# --- the unit renderer -------------------------------------------------------------------------------


def test_render_replaces_the_install_dir_and_user() -> None:
    text = (PROJECT_ROOT / "scripts" / "systemd" / "polymarket-mcp.service").read_text()
    rendered = render_units.render_unit(text, "/srv/bot/", "trader")
    assert render_units.SHIPPED_INSTALL_DIR not in rendered
    assert "ExecStart=/srv/bot/.venv/bin/python -m mcp.main_mcp all" in rendered
    assert "User=trader\n" in rendered and "Group=trader\n" in rendered
    assert "ProtectHome=yes" in rendered
    in_home = render_units.render_unit(text, "/home/ink/polymarket-copy-bot", "ink")
    assert "ProtectHome=read-only" in in_home and "ProtectHome=yes" not in in_home


@pytest.mark.parametrize(
    ("install_dir", "user", "expected"),
    [
        ("relative/dir", "bot", "absolute path"),
        ("/srv/my bot", "bot", "whitespace"),
        ("/srv/100%", "bot", "whitespace, %"),
        ("/srv/bot", "Robert'); DROP", "user/group name"),
        ("/srv/bot", "", "user/group name"),
    ],
)
def test_render_refuses_what_systemd_would_misread(install_dir: str, user: str, expected: str) -> None:
    with pytest.raises(render_units.RenderError, match=expected):
        render_units.render_unit("User=polymarket\n", install_dir, user)


def test_render_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (
        render_units.main(["--install-dir", "/srv/bot", "--output", str(tmp_path), "--unit", "polymarket-bot.service"])
        == 0
    )
    assert (tmp_path / "polymarket-bot.service").read_text().count("/srv/bot") >= 3
    assert not (tmp_path / "polymarket-mcp.service").exists()
    assert render_units.main(["--install-dir", "srv", "--output", str(tmp_path)]) == 2
    assert "absolute path" in capsys.readouterr().err
