"""Settings: every variable of the reference exists, .env.example is current, bad values are all reported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from config.env_docs import SECTIONS
from config.mcp_config import ConfigurationError, validate_monitoring_config
from config.settings import Settings, load_settings

# reference 000 §Configuration and 001 §Staging Configuration: the names are the contract
REFERENCE_VARIABLES = [
    "MCP_CODEBASE_SEARCH_ENABLED",
    "MCP_TESTING_ENABLED",
    "MCP_MONITORING_ENABLED",
    "MCP_RESOURCE_LIMIT_MB",
    "MCP_RESOURCE_LIMIT_CPU_PERCENT",
    "MCP_INTEGRATION_ENABLED",
    "MCP_CIRCUIT_BREAKER_ENABLED",
    "MCP_MARKET_HOURS_ENABLED",
    "MCP_MARKET_HOURS_START",
    "MCP_MARKET_HOURS_END",
    "MCP_TESTING_COVERAGE_TARGET",
    "MCP_TESTING_ALERT_ON_COVERAGE_DROP",
    "MONITORING_ENABLED",
    "DASHBOARD_ENABLED",
    "ALERT_ENABLED",
    "METRICS_ENABLED",
    "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_CHAT_ID",
    "ALERT_COOLDOWN_MINUTES",
    "DUPLICATE_ALERT_WINDOW_MINUTES",
    "DASHBOARD_REFRESH_SECONDS",
    "DASHBOARD_PORT",
    "METRICS_PORT",
    "DAILY_LOSS_WARNING_PERCENT",
    "DAILY_LOSS_CRITICAL_PERCENT",
    "ENVIRONMENT",
    "MONITORING_MAX_CPU_PERCENT",
    "MONITORING_MAX_MEMORY_MB",
    "MONITOR_INTERVAL_SECONDS",
    "DASHBOARD_HOST",
    "STATE_DIR",
    "TELEGRAM_BASE_URL",
    "ALERTMANAGER_URL",
]

REFERENCE_DEFAULTS = {
    "mcp_resource_limit_mb": 1000,
    "mcp_resource_limit_cpu_percent": 15.0,
    "mcp_market_hours_start": 9,
    "mcp_market_hours_end": 16,
    "mcp_testing_coverage_target": 0.85,
    "alert_cooldown_minutes": 5,
    "duplicate_alert_window_minutes": 10,
    "dashboard_refresh_seconds": 5,
    "dashboard_port": 8080,
    "metrics_port": 9090,
    "daily_loss_warning_percent": 0.12,
    "daily_loss_critical_percent": 0.15,
    "dashboard_host": "127.0.0.1",
}


def test_every_reference_variable_is_a_setting() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    assert [v for v in REFERENCE_VARIABLES if v not in fields] == []


@pytest.mark.parametrize(("name", "expected"), sorted(REFERENCE_DEFAULTS.items()))
def test_reference_defaults(name: str, expected: object) -> None:
    assert getattr(Settings(_env_file=None), name) == expected


def test_every_setting_is_documented_once() -> None:
    documented = [name for fields in SECTIONS.values() for name in fields]
    assert sorted(documented) == sorted(Settings.model_fields)


def test_env_example_is_current(project_root: Path) -> None:
    sys.path.insert(0, str(project_root / "scripts"))
    try:
        from gen_env_example import render
    finally:
        sys.path.remove(str(project_root / "scripts"))
    assert (project_root / ".env.example").read_text(encoding="utf-8") == render(), (
        "run .venv/bin/python scripts/gen_env_example.py"
    )


def test_env_example_loads_as_a_valid_env_file(project_root: Path, tmp_path: Path) -> None:
    (tmp_path / ".env").write_text((project_root / ".env.example").read_text(encoding="utf-8"))
    settings = load_settings(tmp_path)
    assert settings.dashboard_port == 8080
    assert settings.telegram_bot_token is None


def test_staging_file_wins_over_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("MCP_TESTING_COVERAGE_TARGET=0.85\nDASHBOARD_PORT=8181\n")
    (tmp_path / ".env.staging").write_text("ENVIRONMENT=staging\nMCP_TESTING_COVERAGE_TARGET=0.90\n")
    assert load_settings(tmp_path).mcp_testing_coverage_target == 0.85
    monkeypatch.setenv("ENVIRONMENT", "staging")
    staging = load_settings(tmp_path)
    assert staging.mcp_testing_coverage_target == 0.90
    assert staging.dashboard_port == 8181  # still read from .env
    assert staging.environment == "staging"


def test_environment_variables_win_over_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / ".env").write_text("DASHBOARD_PORT=8181\n")
    monkeypatch.setenv("DASHBOARD_PORT", "8282")
    assert load_settings(tmp_path).dashboard_port == 8282


def test_secrets_never_print(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(
        _env_file=None,
        telegram_bot_token="123456:CANARY-TOKEN",
        private_key="0xCANARYKEY",
        dashboard_token="tok-canary",
    )
    text = repr(settings) + str(settings) + settings.model_dump_json()
    for canary in ("CANARY-TOKEN", "CANARYKEY", "tok-canary"):
        assert canary not in text


def test_lists_from_comma_separated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TARGET_WALLETS", "0xaaa, 0xbbb,,")
    monkeypatch.setenv("TELEGRAM_ALLOWED_USER_IDS", "1,22")
    settings = load_settings(Path("/nonexistent"))
    assert settings.target_wallets == ["0xaaa", "0xbbb"]
    assert settings.telegram_allowed_user_ids == [1, 22]


def test_empty_secret_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "  ")
    assert load_settings(Path("/nonexistent")).telegram_bot_token is None


def test_every_bad_field_is_listed_with_value_and_expectation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHBOARD_PORT", "99999")
    monkeypatch.setenv("MAX_SLIPPAGE", "lots")
    monkeypatch.setenv("TRADING_DAY_TIMEZONE", "Mars/Olympus")
    monkeypatch.setenv("MCP_MARKET_HOURS_START", "17")
    monkeypatch.setenv("MCP_TESTING_ALERT_ON_COVERAGE_DROP", "maybe")
    with pytest.raises(ConfigurationError) as caught:
        validate_monitoring_config(Path("/nonexistent"))
    message = str(caught.value)
    assert len(caught.value.problems) == 5
    for expected in (
        "DASHBOARD_PORT",
        "99999",
        "MAX_SLIPPAGE",
        "'lots'",
        "TRADING_DAY_TIMEZONE",
        "Mars/Olympus",
        "IANA",
        "MCP_MARKET_HOURS_START (17) must be before MCP_MARKET_HOURS_END (16)",
        "MCP_TESTING_ALERT_ON_COVERAGE_DROP",
        "'maybe'",
    ):
        assert expected in message


def test_cross_field_rules() -> None:
    with pytest.raises(ConfigurationError) as caught:
        validate_monitoring_config(
            Path("/nonexistent"), daily_loss_warning_percent=0.2, max_order_size=500, trading_mode="live"
        )
    message = str(caught.value)
    assert "DAILY_LOSS_WARNING_PERCENT (0.2) must be below DAILY_LOSS_CRITICAL_PERCENT (0.15)" in message
    assert "MAX_ORDER_SIZE (500.0) must not exceed MAX_POSITION_SIZE" in message
    assert "needs PRIVATE_KEY" in message


def test_bad_secret_value_is_not_echoed() -> None:
    with pytest.raises(ConfigurationError) as caught:
        validate_monitoring_config(Path("/nonexistent"), dashboard_port="x", dashboard_token="tok-canary")
    assert "tok-canary" not in str(caught.value)


def test_reference_validation_command_runs_in_a_fresh_process(project_root: Path, tmp_path: Path) -> None:
    """The reference's `python -c "from config.mcp_config import validate_monitoring_config; ..."`."""
    command = "from config.mcp_config import validate_monitoring_config; validate_monitoring_config()"
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(project_root)}
    ok = subprocess.run([sys.executable, "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    env["DASHBOARD_PORT"] = "not-a-port"
    bad = subprocess.run([sys.executable, "-c", command], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert bad.returncode != 0
    assert "DASHBOARD_PORT" in bad.stderr and "not-a-port" in bad.stderr
