"""Keep the bot token (and every other secret) out of log records from Telegram's and httpx's loggers.

python-telegram-bot puts the token in the URL path (`…/bot<token>/sendMessage`), logs that URL at
DEBUG when a Bot is built, and httpx logs every request URL at INFO. A filter on the root handlers is
not enough (records reach other handlers first, pytest's caplog among them), so the filter goes on the
loggers that create the records, each of them: a logger's filters do not apply to its children's
records. It also rewrites the formatted traceback, because an exception's text may carry a URL.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from pydantic import SecretStr

from utils.secrets import RedactingFilter, mask_addresses, redact

PROTECTED_PREFIXES = ("telegram", "httpx", "httpcore", "alerts", "utils.alerting", "aiohttp.client")
QUIET_LOGGERS = ("httpx", "httpcore")


class TracebackRedactingFilter(RedactingFilter):
    """A `RedactingFilter` that also masks secrets in the record's traceback and stack text."""

    def __init__(self, secrets: Iterable[str | SecretStr | None] = ()) -> None:
        super().__init__(secrets)
        self.secret_values: set[str] = set()
        self.add(secrets)

    def add(self, secrets: Iterable[str | SecretStr | None]) -> None:
        """Mask these secrets too from now on."""
        for secret in secrets:
            value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
            if value and value not in self.secret_values:
                self.secret_values.add(value)
                self._secrets.append(value)

    def filter(self, record: logging.LogRecord) -> bool:
        super().filter(record)
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        if record.stack_info:
            record.stack_info = self._clean(record.stack_info)
        return True

    def _clean(self, text: str) -> str:
        return mask_addresses(redact(text, self._secrets))


def _protected(name: str) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in PROTECTED_PREFIXES)


def protect_loggers(secrets: Iterable[str | SecretStr | None]) -> int:
    """Attach (or extend) the redacting filter on every existing Telegram/httpx/alerts logger.

    Call it after importing telegram (its loggers are created at import). Quiets httpx and httpcore to
    WARNING, since their INFO lines are request URLs. Returns how many loggers are protected.
    """
    secrets = list(secrets)
    for name in QUIET_LOGGERS:
        quiet = logging.getLogger(name)
        if quiet.level == logging.NOTSET or quiet.level < logging.WARNING:
            quiet.setLevel(logging.WARNING)
    names = {name for name in logging.root.manager.loggerDict if _protected(name)}
    names.update(PROTECTED_PREFIXES)
    for name in names:
        logger = logging.getLogger(name)
        existing = next((f for f in logger.filters if isinstance(f, TracebackRedactingFilter)), None)
        if existing is None:
            logger.addFilter(TracebackRedactingFilter(secrets))
        else:
            existing.add(secrets)
    return len(names)
