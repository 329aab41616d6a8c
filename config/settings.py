"""The one definition of every setting: environment and `.env` (`.env.staging` when ENVIRONMENT=staging).

Names are the contract of reference 000 §Configuration and 001 §Staging Configuration; every field here
is documented in `.env.example` (a test keeps the two in step). Secrets are `SecretStr` so that printing
a Settings object never shows them.
"""

from __future__ import annotations

import os
import re
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parent.parent


class Environment(StrEnum):
    DEVELOPMENT = "development"
    STAGING = "staging"
    PRODUCTION = "production"


class TradingMode(StrEnum):
    PAPER = "paper"
    LIVE = "live"


class WalletSourceKind(StrEnum):
    REPLAY = "replay"
    DATA_API = "data_api"


def _split_csv(value: Any) -> Any:
    """Accept `a,b,c` from the environment as well as a JSON list."""
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


CsvList = Annotated[list[str], NoDecode]
_HOST_NAME_BAD = re.compile(r"[/\\\s@?#]")
CsvIntList = Annotated[list[int], NoDecode]


class Settings(BaseSettings):
    """Every setting of the bot and the sidecar, with its default."""

    model_config = SettingsConfigDict(
        env_file=(".env",),
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        validate_default=True,
        # issue 8: `MAX_DAILY_LOSS=inf` (or nan) is never a limit; every float setting must be finite
        allow_inf_nan=False,
    )

    # --- environment -----------------------------------------------------------------------------
    environment: Environment = Environment.DEVELOPMENT
    log_level: str = "INFO"
    log_dir: Path = Path("logs")
    state_dir: Path = Path("state")

    # --- trading: mode, wallets, sources --------------------------------------------------------
    trading_mode: TradingMode = TradingMode.PAPER
    wallet_address: str = "0x0000000000000000000000000000000000000000"
    private_key: SecretStr | None = None
    clob_host: str = "https://clob.polymarket.com"
    clob_chain_id: int = 137
    clob_api_key: SecretStr | None = None
    clob_api_secret: SecretStr | None = None
    clob_api_passphrase: SecretStr | None = None
    clob_signature_type: int = Field(default=0, ge=0, le=3)
    clob_funder_address: str | None = None
    clob_request_timeout_seconds: float = Field(default=10.0, gt=0)
    target_wallets: CsvList = Field(default_factory=list)
    wallet_source: WalletSourceKind = WalletSourceKind.REPLAY
    replay_file: Path = Path("data/replay_trades.jsonl")
    replay_speed: float = Field(default=1.0, ge=0.0)
    data_api_url: str = "https://data-api.polymarket.com"
    wallet_poll_interval_seconds: float = Field(default=5.0, gt=0)
    stale_trade_seconds: float = Field(default=300.0, gt=0)
    copy_ratio: float = Field(default=0.1, gt=0, le=10)

    # --- paper CLOB ------------------------------------------------------------------------------
    paper_starting_balance: float = Field(default=1000.0, ge=0)
    paper_latency_ms: float = Field(default=0.0, ge=0)
    paper_error_rate: float = Field(default=0.0, ge=0, le=1)
    paper_error_kinds: CsvList = Field(default_factory=lambda: ["rate_limit", "timeout", "rejected", "network"])
    paper_seed: int = 42

    # --- risk parameters (the executor's pre-trade checks and the circuit breaker) --------------
    max_daily_loss: float = Field(default=100.0, gt=0)
    max_order_size: float = Field(default=50.0, gt=0)
    max_position_size: float = Field(default=200.0, gt=0)
    max_total_exposure: float = Field(default=800.0, gt=0)
    max_open_positions: int = Field(default=10, gt=0)
    max_slippage: float = Field(default=0.05, ge=0, le=1)
    min_order_size: float = Field(default=1.0, ge=0)
    max_orders_per_minute: int = Field(default=30, gt=0)
    stop_loss: float = Field(default=0.25, gt=0, le=1)
    consecutive_loss_limit: int = Field(default=5, gt=0)
    error_burst_count: int = Field(default=5, gt=0)
    error_burst_window_seconds: float = Field(default=60.0, gt=0)
    circuit_breaker_cooldown_seconds: float = Field(default=3600.0, gt=0)
    trading_day_timezone: str = "UTC"
    trading_latency_budget_ms: float = Field(default=100.0, gt=0)

    # --- issue 8 (i8guard): live mode reconciles our books with the exchange -------------------
    reconcile_interval_seconds: float = Field(default=60.0, gt=0)
    reconcile_position_tolerance: float = Field(default=1.0, ge=0)
    reconcile_cash_tolerance: float = Field(default=5.0, ge=0)
    reconcile_confirm_seconds: float = Field(default=10.0, ge=0)

    # --- MCP servers (reference 000 §Configuration) ---------------------------------------------
    mcp_codebase_search_enabled: bool = True
    mcp_testing_enabled: bool = True
    mcp_monitoring_enabled: bool = True
    mcp_resource_limit_mb: float = Field(default=1000.0, gt=0)
    mcp_resource_limit_cpu_percent: float = Field(default=15.0, gt=0, le=100)
    mcp_breaker_cpu_limit_percent: float = Field(default=5.0, gt=0, le=100)
    mcp_integration_enabled: bool = True
    mcp_circuit_breaker_enabled: bool = True
    mcp_circuit_breaker_cooldown_seconds: float = Field(default=300.0, gt=0)
    mcp_market_hours_enabled: bool = True
    mcp_market_hours_start: int = Field(default=9, ge=0, le=23)
    mcp_market_hours_end: int = Field(default=16, ge=0, le=24)
    mcp_testing_coverage_target: float = Field(default=0.85, ge=0, le=1)
    mcp_testing_alert_on_coverage_drop: bool = True
    mcp_search_root: Path = PROJECT_ROOT
    mcp_testing_project_root: Path = PROJECT_ROOT
    mcp_testing_python: Path | None = None
    mcp_testing_paths: CsvList = Field(default_factory=lambda: ["tests"])
    mcp_testing_source_packages: CsvList = Field(default_factory=lambda: ["core", "mcp", "utils", "config"])
    mcp_testing_timeout_seconds: float = Field(default=900.0, gt=0)
    mcp_health_loop_seconds: float = Field(default=60.0, gt=0)
    mcp_startup_timeout_seconds: float = Field(default=30.0, gt=0)
    mcp_tools_page_size: int = Field(default=50, ge=1, le=1000)

    # --- monitoring (reference 000 §Configuration, 001 §Staging Configuration) ----------------
    monitoring_enabled: bool = True
    dashboard_enabled: bool = True
    alert_enabled: bool = True
    metrics_enabled: bool = True
    monitor_interval_seconds: float = Field(default=30.0, gt=0)
    monitoring_max_cpu_percent: float = Field(default=1.0, gt=0, le=100)
    monitoring_max_memory_mb: float = Field(default=100.0, gt=0)
    dashboard_host: str = "127.0.0.1"
    dashboard_port: int = Field(default=8080, ge=0, le=65535)
    dashboard_refresh_seconds: float = Field(default=5.0, gt=0)
    dashboard_token: SecretStr | None = None
    metrics_port: int = Field(default=9090, ge=0, le=65535)
    daily_loss_warning_percent: float = Field(default=0.12, gt=0, le=1)
    daily_loss_critical_percent: float = Field(default=0.15, gt=0, le=1)

    # --- issue 10 (i10http): HTTP hardening of both ports, regex-search concurrency -----------------
    # extra Host names the dashboard/MCP and metrics ports answer, besides loopback and DASHBOARD_HOST
    dashboard_allowed_hosts: CsvList = Field(default_factory=list)
    http_header_timeout_seconds: float = Field(default=10.0, gt=0, le=3600)
    http_body_timeout_seconds: float = Field(default=10.0, gt=0, le=3600)
    http_max_connections_per_client: int = Field(default=32, ge=1, le=100_000)
    mcp_search_max_concurrent_per_client: int = Field(default=2, ge=1, le=64)

    # --- alerts ----------------------------------------------------------------------------------
    telegram_bot_token: SecretStr | None = None
    telegram_chat_id: str | None = None
    telegram_staging_chat_id: str | None = None
    telegram_allowed_user_ids: CsvIntList = Field(default_factory=list)
    telegram_base_url: str = "https://api.telegram.org/bot"
    alert_on_trade: bool = False
    alert_on_error: bool = True
    alert_on_circuit_breaker: bool = True
    alert_cooldown_minutes: float = Field(default=5.0, ge=0)
    duplicate_alert_window_minutes: float = Field(default=10.0, ge=0)
    alertmanager_url: str | None = None

    # --- issue 9, alert rules / performance report / dead man's switch (i9alerts) ------------------
    performance_report_time: str = "08:00"
    heartbeat_url: SecretStr | None = None
    heartbeat_interval_seconds: float = Field(default=60.0, gt=0)

    @field_validator(
        "target_wallets",
        "paper_error_kinds",
        "mcp_testing_paths",
        "mcp_testing_source_packages",
        "dashboard_allowed_hosts",
        mode="before",
    )
    @classmethod
    def _csv(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("telegram_allowed_user_ids", mode="before")
    @classmethod
    def _csv_ints(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator(
        "private_key",
        "telegram_bot_token",
        "dashboard_token",
        "clob_api_key",
        "clob_api_secret",
        "clob_api_passphrase",
        "telegram_chat_id",
        "telegram_staging_chat_id",
        "alertmanager_url",
        "clob_funder_address",
        "mcp_testing_python",
        "heartbeat_url",
        mode="before",
    )
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        # `TELEGRAM_BOT_TOKEN=` in a .env file means "not set", not "the empty token".
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("dashboard_allowed_hosts")
    @classmethod
    def _host_names(cls, value: list[str]) -> list[str]:
        # compared with the Host header's name: a scheme, path or space can never match, so say so now
        bad = [item for item in value if _HOST_NAME_BAD.search(item)]
        if bad:
            raise ValueError(
                "expected host names such as dash.example.com, 10.0.0.5 or [fd00::5] (no scheme, path or space); "
                f"fix {', '.join(repr(item[:80]) for item in bad)}"
            )
        return [item.lower() for item in value]

    @field_validator("trading_day_timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as e:
            raise ValueError("expected an IANA timezone name such as 'UTC' or 'America/New_York'") from e
        return value

    @field_validator("paper_error_kinds")
    @classmethod
    def _known_error_kinds(cls, value: list[str]) -> list[str]:
        allowed = {"rate_limit", "timeout", "rejected", "network"}
        unknown = [kind for kind in value if kind not in allowed]
        if unknown:
            raise ValueError(f"expected kinds among {sorted(allowed)}, unknown: {unknown}")
        return value

    @field_validator("performance_report_time")
    @classmethod
    def _report_time(cls, value: str) -> str:
        text = value.strip().lower()
        if text in {"", "off", "none", "disabled"}:
            return "off"
        match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", text)
        if match is None:
            raise ValueError(f"expected HH:MM in UTC (e.g. 08:00) or 'off', received {value!r}")
        return f"{int(match.group(1)):02d}:{match.group(2)}"

    @field_validator("heartbeat_url")
    @classmethod
    def _heartbeat_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        url = value.get_secret_value().strip()
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", url):
            raise ValueError("expected an http(s):// URL such as https://hc-ping.example/<uuid>")
        return SecretStr(url)

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        level = value.upper()
        if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
            raise ValueError("expected one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
        return level

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        problems = cross_field_problems(self)
        if problems:
            raise ValueError(PROBLEM_SEPARATOR.join(problems))
        return self


PROBLEM_SEPARATOR = "; "


def cross_field_problems(settings: Settings) -> list[str]:
    """The rules that involve two settings at once, each broken rule as one sentence."""
    problems = []
    if settings.mcp_market_hours_start >= settings.mcp_market_hours_end:
        problems.append(
            f"MCP_MARKET_HOURS_START ({settings.mcp_market_hours_start}) must be before "
            f"MCP_MARKET_HOURS_END ({settings.mcp_market_hours_end})"
        )
    if settings.daily_loss_warning_percent >= settings.daily_loss_critical_percent:
        problems.append(
            f"DAILY_LOSS_WARNING_PERCENT ({settings.daily_loss_warning_percent}) must be below "
            f"DAILY_LOSS_CRITICAL_PERCENT ({settings.daily_loss_critical_percent})"
        )
    if settings.max_order_size > settings.max_position_size:
        problems.append(
            f"MAX_ORDER_SIZE ({settings.max_order_size}) must not exceed "
            f"MAX_POSITION_SIZE ({settings.max_position_size})"
        )
    if settings.min_order_size > settings.max_order_size:
        problems.append(
            f"MIN_ORDER_SIZE ({settings.min_order_size}) must not exceed MAX_ORDER_SIZE ({settings.max_order_size})"
        )
    # issue 8: two servers cannot share one port (0 = any free port, so two zeros are fine)
    if settings.dashboard_port == settings.metrics_port and settings.dashboard_port != 0:
        problems.append(
            f"DASHBOARD_PORT ({settings.dashboard_port}) and METRICS_PORT ({settings.metrics_port}) must differ: "
            "the dashboard and /metrics are two servers"
        )
    if settings.trading_mode is TradingMode.LIVE and settings.private_key is None:
        problems.append("TRADING_MODE=live needs PRIVATE_KEY (the wallet's key for signing orders)")
    return problems


def env_files_for(environment: str | None, root: Path | None = None) -> tuple[Path, ...]:
    """The .env files to read, later ones winning: `.env`, then `.env.staging` when staging."""
    base = root if root is not None else Path.cwd()
    files = [base / ".env"]
    if (environment or "").lower() == Environment.STAGING:
        files.append(base / ".env.staging")
    return tuple(files)


def load_settings(root: Path | None = None, **overrides: Any) -> Settings:
    """Read Settings from the environment and the .env files under `root` (default: the working directory).

    Raises pydantic's ValidationError on bad values; `config.mcp_config.validate_monitoring_config()`
    turns that into one message listing every bad field.
    """
    return Settings(_env_file=env_files_for(os.environ.get("ENVIRONMENT"), root), **overrides)  # type: ignore[call-arg]


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process's Settings, read once (the documented accessor; tests build their own Settings)."""
    return load_settings()
