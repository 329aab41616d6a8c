"""Telegram delivery through python-telegram-bot's `Bot`, pointed at TELEGRAM_BASE_URL.

One `deliver` call is one `sendMessage` in HTML parse mode, mapped to an outcome:
- `RetryAfter` (flood control) → come back after `retry_after` seconds, as Telegram asked;
- `TimedOut`, `NetworkError`, an unknown `TelegramError` → transient, back off;
- `BadRequest`, `Forbidden`, `ChatMigrated` → permanent: the same message would be refused again;
- `InvalidToken` → transient: the token is the operator's to fix, the alerts wait in the outbox.

python-telegram-bot 22 warns (PTBDeprecationWarning) whenever `RetryAfter.retry_after` is read, even
inside its own constructor; our request class raises `RetryAfter` itself for a 429 and reads the
value with that one warning silenced, so a rate limit never turns into a warning or, under
`-W error`, an exception. The token is in every URL: messages from Telegram errors are redacted.
"""

from __future__ import annotations

import datetime as dtm
import json
import logging
import warnings
from typing import Any

from telegram import Bot, LinkPreviewOptions
from telegram.constants import ParseMode
from telegram.error import (
    BadRequest,
    ChatMigrated,
    Forbidden,
    InvalidToken,
    NetworkError,
    RetryAfter,
    TelegramError,
    TimedOut,
)
from telegram.request import BaseRequest, HTTPXRequest, RequestData
from telegram.warnings import PTBDeprecationWarning

from utils.alerting.channel import Outcome, OutcomeKind
from utils.alerting.outbox import OutboxRow
from utils.alerting.redaction import protect_loggers
from utils.secrets import redact

logger = logging.getLogger("utils.alerting.telegram")

CHANNEL_NAME = "telegram"
TOO_MANY_REQUESTS = 429
_NO_PREVIEW = LinkPreviewOptions(is_disabled=True)


def make_retry_after(seconds: float) -> RetryAfter:
    """A `RetryAfter` for `seconds`, built without python-telegram-bot's deprecation warning."""
    period: int | dtm.timedelta = int(seconds) if float(seconds).is_integer() else dtm.timedelta(seconds=seconds)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        return RetryAfter(period)


def retry_after_seconds(error: RetryAfter) -> float:
    """How long Telegram asked us to wait, in seconds, whether the library gives an int or a timedelta."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PTBDeprecationWarning)
        value: Any = error.retry_after
    if isinstance(value, dtm.timedelta):
        return max(value.total_seconds(), 0.0)
    return max(float(value), 0.0)


def _retry_after_in(payload: bytes) -> float | None:
    try:
        body = json.loads(payload.decode("utf-8", "replace"))
    except ValueError:
        return None
    parameters = body.get("parameters") if isinstance(body, dict) else None
    value = parameters.get("retry_after") if isinstance(parameters, dict) else None
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


class AlertRequest(HTTPXRequest):
    """HTTPX transport for the Bot API that raises flood control as `RetryAfter` without a warning."""

    async def do_request(
        self,
        url: str,
        method: str,
        request_data: RequestData | None = None,
        read_timeout: Any = BaseRequest.DEFAULT_NONE,
        write_timeout: Any = BaseRequest.DEFAULT_NONE,
        connect_timeout: Any = BaseRequest.DEFAULT_NONE,
        pool_timeout: Any = BaseRequest.DEFAULT_NONE,
    ) -> tuple[int, bytes]:
        code, payload = await super().do_request(
            url,
            method,
            request_data,
            read_timeout=read_timeout,
            write_timeout=write_timeout,
            connect_timeout=connect_timeout,
            pool_timeout=pool_timeout,
        )
        if code == TOO_MANY_REQUESTS:
            seconds = _retry_after_in(payload)
            if seconds is not None:
                raise make_retry_after(seconds)
        return code, payload


def build_request(*, connect_timeout: float, read_timeout: float, pool_size: int = 4) -> AlertRequest:
    """Our request object with the given timeouts (write as read, pool wait as connect)."""
    return AlertRequest(
        connection_pool_size=pool_size,
        read_timeout=read_timeout,
        write_timeout=read_timeout,
        connect_timeout=connect_timeout,
        pool_timeout=connect_timeout,
    )


class TelegramChannel:
    """Sends outbox rows to Telegram; the row's destination is the chat id, its payload the HTML text."""

    name = CHANNEL_NAME

    def __init__(
        self,
        token: str,
        base_url: str = "https://api.telegram.org/bot",
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
    ) -> None:
        self._token = token
        # before the Bot exists: its constructor logs the API URL, token included, at DEBUG
        protect_loggers([token])
        self._requests = (
            build_request(connect_timeout=connect_timeout, read_timeout=read_timeout),
            build_request(connect_timeout=connect_timeout, read_timeout=read_timeout, pool_size=1),
        )
        # we never call bot.initialize(): it only adds a getMe, and its InvalidToken quotes the token
        self._bot = Bot(token, base_url=base_url, request=self._requests[0], get_updates_request=self._requests[1])
        self.token_rejected = False

    def _clean(self, error: BaseException) -> str:
        text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
        return redact(text, [self._token])

    async def deliver(self, row: OutboxRow) -> Outcome:
        """One sendMessage for the row; the outcome says whether and when to try again."""
        try:
            payload = json.loads(row.payload)
            text, parse_mode = str(payload["text"]), payload.get("parse_mode", ParseMode.HTML)
        except (ValueError, KeyError, TypeError) as e:
            return Outcome(OutcomeKind.PERMANENT, f"unreadable outbox payload ({e}); expected JSON with 'text'")
        try:
            await self._bot.send_message(
                chat_id=row.destination, text=text, parse_mode=parse_mode, link_preview_options=_NO_PREVIEW
            )
        except RetryAfter as e:
            return Outcome(OutcomeKind.RETRY_AFTER, self._clean(e), retry_after=retry_after_seconds(e))
        except ChatMigrated as e:
            detail = f"the chat became supergroup {e.new_chat_id}: set TELEGRAM_CHAT_ID={e.new_chat_id}"
            return Outcome(OutcomeKind.PERMANENT, detail)
        except (BadRequest, Forbidden) as e:
            return Outcome(OutcomeKind.PERMANENT, self._clean(e))
        except InvalidToken as e:
            if not self.token_rejected:
                logger.error(
                    "Telegram rejected TELEGRAM_BOT_TOKEN (%s): check the token; alerts wait in the outbox",
                    self._clean(e),
                )
            self.token_rejected = True
            return Outcome(OutcomeKind.TRANSIENT, self._clean(e))
        except (TimedOut, NetworkError, TelegramError) as e:
            return Outcome(OutcomeKind.TRANSIENT, self._clean(e))
        self.token_rejected = False
        return Outcome.delivered()

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        for request in self._requests:
            await request.shutdown()
