"""Masking: wallet addresses keep their last 6 characters; secrets never leave the process in clear."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable

from pydantic import SecretStr

MASK = "***"
VISIBLE_WALLET_CHARS = 6
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
# Telegram puts the token in the URL path: https://api.telegram.org/bot<token>/sendMessage
_BOT_TOKEN_IN_URL = re.compile(r"(/bot)([0-9]+:[A-Za-z0-9_-]+)")


def mask_wallet(address: str | None) -> str:
    """`0x…abcdef` style: only the last 6 characters stay visible."""
    if not address:
        return ""
    if len(address) <= VISIBLE_WALLET_CHARS:
        return MASK
    return f"{MASK}{address[-VISIBLE_WALLET_CHARS:]}"


def mask_addresses(text: str) -> str:
    """Mask every 0x… wallet address found in free text."""
    return _ADDRESS.sub(lambda m: mask_wallet(m.group(0)), text)


def redact(text: str, secrets: Iterable[str | SecretStr | None]) -> str:
    """Replace each secret value (and any bot token in a URL) by a mask."""
    for secret in secrets:
        value = secret.get_secret_value() if isinstance(secret, SecretStr) else secret
        if value and len(value) >= 4:
            text = text.replace(value, MASK)
    return _BOT_TOKEN_IN_URL.sub(r"\1" + MASK, text)


class RedactingFilter(logging.Filter):
    """A logging filter that masks secrets and wallet addresses in every record it sees."""

    def __init__(self, secrets: Iterable[str | SecretStr | None] = ()) -> None:
        super().__init__()
        self._secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = mask_addresses(redact(message, self._secrets))
        if cleaned != message:
            record.msg = cleaned
            record.args = None
        return True
