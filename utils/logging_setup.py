"""One logging set-up for every entry point: console plus a rotating file, secrets masked in both."""

from __future__ import annotations

import logging
import logging.handlers
from pathlib import Path

from config.settings import Settings
from utils.secrets import RedactingFilter

LOG_FORMAT = "%(asctime)s %(levelname)-8s %(name)s: %(message)s"


def secret_values(settings: Settings) -> list[str]:
    """Every secret the settings hold, as plain strings, for the redacting filter."""
    values = []
    for name in (
        "private_key",
        "telegram_bot_token",
        "dashboard_token",
        "clob_api_key",
        "clob_api_secret",
        "clob_api_passphrase",
        "heartbeat_url",  # a dead man's switch URL carries its token in the path
    ):
        secret = getattr(settings, name)
        if secret is not None:
            values.append(secret.get_secret_value())
    return values


def configure_logging(settings: Settings, log_file_name: str | None = None) -> None:
    """Log to stderr and, when a file name is given, to `LOG_DIR/<name>` (rotated at 10 MB, 5 kept)."""
    redactor = RedactingFilter(secret_values(settings))
    handlers: list[logging.Handler] = [logging.StreamHandler()]
    if log_file_name:
        log_dir = Path(settings.log_dir)
        log_dir.mkdir(parents=True, exist_ok=True)
        handlers.append(
            logging.handlers.RotatingFileHandler(log_dir / log_file_name, maxBytes=10_000_000, backupCount=5)
        )
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    for handler in handlers:
        handler.setFormatter(logging.Formatter(LOG_FORMAT))
        handler.addFilter(redactor)
        root.addHandler(handler)
    root.setLevel(settings.log_level)
    # httpx logs every request URL at INFO, and Telegram puts the bot token in the URL path
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
