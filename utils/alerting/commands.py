"""Operator commands over Telegram: /status /health /coverage /scan /mute <minutes> /reset_mcp, the trading
view's /pnl /positions /trades [n] /daily [days] (and /help).

Deny by default: an update is handled only if its chat is TELEGRAM_CHAT_ID (or the staging chat) AND
its sender is in TELEGRAM_ALLOWED_USER_IDS; with either list empty nobody is allowed. Denied updates
get no answer (an answer would tell a stranger the bot is there) and are logged with their ids.
The work is done by an injected `CommandBackend` (the sidecar implements it); each call is bounded by a
timeout and a failure becomes a reply, never a crash of the polling loop. Long polling runs through
python-telegram-bot's Application against TELEGRAM_BASE_URL, on our request class (no token in logs,
flood control without deprecation warnings).
"""

from __future__ import annotations

import asyncio
import datetime as dtm
import json
import logging
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from telegram import Update
from telegram.constants import ParseMode
from telegram.error import InvalidToken, NetworkError, TelegramError, TimedOut
from telegram.ext import (
    Application,
    ApplicationBuilder,
    ApplicationHandlerStop,
    CommandHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)

from config.settings import Settings
from utils.alerting.redaction import protect_loggers
from utils.alerting.render import render_telegram
from utils.alerting.telegram_channel import build_request
from utils.logging_setup import secret_values
from utils.secrets import mask_addresses, redact

logger = logging.getLogger("utils.alerting.commands")

Reply = str | Mapping[str, Any]
MAX_MUTE_MINUTES = 1440
MUTE_USAGE = f"Usage: /mute <minutes> — a whole number from 0 to {MAX_MUTE_MINUTES} (0 unmutes)"


class CommandBackend(Protocol):
    """What the commands do; the sidecar implements it. Each returns text or a JSON-like mapping."""

    async def status(self) -> Reply:
        """The sidecar's status: servers, uptime, gate."""
        ...

    async def health(self) -> Reply:
        """The latest health check results."""
        ...

    async def coverage(self) -> Reply:
        """The latest test coverage."""
        ...

    async def scan(self) -> Reply:
        """Run (or defer) a risk-parameter scan and report."""
        ...

    async def mute(self, minutes: int) -> Reply:
        """Mute non-critical Telegram alerts for `minutes` (0 unmutes)."""
        ...

    async def reset_mcp(self) -> Reply:
        """Reset the MCP circuit breaker."""
        ...

    async def report(self) -> Reply:
        """The 📊 PERFORMANCE REPORT now (issue 9)."""
        ...

    # --- trading view (issue 11) ---
    async def pnl(self) -> Reply:
        """Today's P&L against the daily-loss limit."""
        ...

    async def positions(self) -> Reply:
        """What the bot holds."""
        ...

    async def trades(self, count: int) -> Reply:
        """The `count` newest followed trades and what was done with them."""
        ...

    async def daily(self, days: int) -> Reply:
        """P&L per day for the last `days` days."""
        ...


COMMANDS: dict[str, str] = {
    "status": "sidecar status",
    "health": "latest health checks",
    "coverage": "latest test coverage",
    "scan": "risk-parameter scan",
    "mute": "mute alerts: /mute <minutes>",
    "reset_mcp": "reset the MCP circuit breaker",
    "report": "📊 performance report now",
    "pnl": "today's P&L and the loss limit",
    "positions": "what the bot holds",
    "trades": "recent followed trades: /trades [n]",
    "daily": "P&L per day: /daily [days]",
    "help": "this list",
}


@dataclass(frozen=True)
class AccessPolicy:
    """Who may command the bot: both the chat and the user must be listed; empty lists allow nobody."""

    chat_ids: frozenset[int]
    user_ids: frozenset[int]

    @classmethod
    def from_settings(cls, settings: Settings) -> AccessPolicy:
        """TELEGRAM_CHAT_ID and TELEGRAM_STAGING_CHAT_ID, TELEGRAM_ALLOWED_USER_IDS."""
        chats = set()
        for value in (settings.telegram_chat_id, settings.telegram_staging_chat_id):
            if value is None:
                continue
            try:
                chats.add(int(value))
            except ValueError:
                # a @channel_username chat cannot send commands; it is simply not an allowed chat
                logger.warning("chat id %r is not numeric: commands from it are not accepted", value)
        return cls(frozenset(chats), frozenset(settings.telegram_allowed_user_ids))

    def allows(self, chat_id: int | None, user_id: int | None) -> bool:
        """True only for a listed chat and a listed user."""
        return chat_id is not None and user_id is not None and chat_id in self.chat_ids and user_id in self.user_ids


# --- trading view (issue 11): /trades [n] and /daily [days] ---
DEFAULT_TRADES = 10
MAX_TRADES = 50
DEFAULT_DAYS = 7
MAX_DAYS = 30
TRADES_USAGE = f"Usage: /trades [n] — n a whole number from 1 to {MAX_TRADES} (default {DEFAULT_TRADES})"
DAILY_USAGE = f"Usage: /daily [days] — days a whole number from 1 to {MAX_DAYS} (default {DEFAULT_DAYS})"


class CommandUsageError(ValueError):
    """A command's arguments are wrong; the message is the reply (what was expected, what was received)."""


def _parse_whole_number(args: Sequence[str], low: int, high: int, usage: str) -> int:
    """The one argument as a whole number in low..high; CommandUsageError (usage + what was received) otherwise."""
    if len(args) != 1:
        received = repr(" ".join(args)) if args else "nothing"
        raise CommandUsageError(f"{usage}; received {received}")
    text = args[0].strip()
    try:
        number = int(text)
    except ValueError:
        raise CommandUsageError(f"{usage}; received {text[:40]!r}") from None
    if not low <= number <= high:
        raise CommandUsageError(f"{usage}; received {number}")
    return number


def parse_mute_minutes(args: Sequence[str]) -> int:
    """The minutes of `/mute <minutes>`; raises CommandUsageError with the usage otherwise."""
    return _parse_whole_number(args, 0, MAX_MUTE_MINUTES, MUTE_USAGE)


def parse_optional_count(args: Sequence[str], default: int, maximum: int, usage: str) -> int:
    """The optional whole number of `/trades [n]` or `/daily [days]` (1..maximum); CommandUsageError otherwise."""
    return _parse_whole_number(args, 1, maximum, usage) if args else default


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, Mapping | list | tuple):
        return json.dumps(value, default=str, ensure_ascii=False)[:300]
    return str(value)


def format_reply(title: str, reply: Reply, clean: Callable[[str], str] = mask_addresses) -> str:
    """Telegram HTML for a backend answer: a bold title, then text or one `key: value` line per entry.

    `clean` masks secrets and wallet addresses in the plain text before it is escaped.
    """
    if isinstance(reply, Mapping):
        lines = []
        for key, value in reply.items():
            if isinstance(value, Mapping):
                lines.extend(f"{key}.{sub}: {_value(item)}" for sub, item in value.items())
            else:
                lines.append(f"{key}: {_value(value)}")
        body = "\n".join(lines) or "(nothing to report)"
    else:
        body = str(reply).strip() or "(nothing to report)"
    return render_telegram(clean(f"{title}\n{body}"))


class TelegramCommands:
    """Long-polls Telegram for commands and answers allowed ones through the backend."""

    def __init__(
        self,
        token: str,
        backend: CommandBackend,
        policy: AccessPolicy,
        *,
        base_url: str = "https://api.telegram.org/bot",
        poll_seconds: float = 10.0,
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        command_timeout: float = 30.0,
        secrets: Iterable[str] = (),
    ) -> None:
        self._token = token
        # every secret, masked in replies too: a backend's report must not carry one to a chat
        self._secrets = [token, *secrets]
        self.backend = backend
        self.policy = policy
        self.base_url = base_url
        self.poll_seconds = poll_seconds
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.command_timeout = command_timeout
        self.stats = {"handled": 0, "denied": 0, "failed": 0, "unknown": 0, "polling_errors": 0}
        self.application: Application[Any, Any, Any, Any, Any, Any] | None = None

    @classmethod
    def from_settings(cls, settings: Settings, backend: CommandBackend, **kw: Any) -> TelegramCommands | None:
        """Commands for these settings; None (with a log line saying why) when they cannot run."""
        if settings.telegram_bot_token is None:
            logger.info("Telegram commands are off: TELEGRAM_BOT_TOKEN is not set")
            return None
        policy = AccessPolicy.from_settings(settings)
        if not policy.chat_ids or not policy.user_ids:
            logger.warning(
                "Telegram commands are off: set TELEGRAM_CHAT_ID and TELEGRAM_ALLOWED_USER_IDS to allow operators"
            )
            return None
        token = settings.telegram_bot_token.get_secret_value()
        kw.setdefault("secrets", secret_values(settings))
        return cls(token, backend, policy, base_url=settings.telegram_base_url, **kw)

    def _clean(self, text: str) -> str:
        return mask_addresses(redact(text, self._secrets))

    def _format(self, title: str, reply: Reply) -> str:
        return format_reply(title, reply, self._clean)

    # --- lifecycle ---------------------------------------------------------------------------------
    def build_application(self) -> Application[Any, Any, Any, Any, Any, Any]:
        """The python-telegram-bot Application with the gate and the command handlers."""
        protect_loggers([self._token])
        long_poll = self.read_timeout + self.poll_seconds
        application = (
            ApplicationBuilder()
            .token(self._token)
            .base_url(self.base_url)
            .request(build_request(connect_timeout=self.connect_timeout, read_timeout=self.read_timeout))
            .get_updates_request(
                build_request(connect_timeout=self.connect_timeout, read_timeout=long_poll, pool_size=1)
            )
            .job_queue(None)
            .build()
        )
        application.add_handler(TypeHandler(Update, self._gate), group=-1)
        for name in COMMANDS:
            application.add_handler(CommandHandler(name, self._command_callback(name)))
        application.add_handler(MessageHandler(filters.COMMAND, self._unknown))
        application.add_error_handler(self._on_error)
        protect_loggers([self._token])  # the Application created its loggers on import
        return application

    async def start(self) -> None:
        """Check the token (getMe), then poll in the background; raises RuntimeError if the token is rejected."""
        # off the loop: its two HTTPX transports each load the CA bundle (~20 ms of CPU apiece)
        application = await asyncio.to_thread(self.build_application)
        try:
            await application.initialize()
        except Exception as e:
            # the Application is not initialised, so its shutdown would skip the bot's open connections
            await application.bot.shutdown()
            if isinstance(e, InvalidToken):
                # the library's message quotes the token itself
                raise RuntimeError(
                    f"Telegram rejected TELEGRAM_BOT_TOKEN ({self._clean(str(e))}): commands are off"
                ) from None
            raise
        await application.start()
        updater = application.updater
        if updater is None:
            raise RuntimeError("the Telegram Application has no updater: cannot poll for commands")
        await updater.start_polling(
            timeout=dtm.timedelta(seconds=self.poll_seconds),
            drop_pending_updates=False,
            allowed_updates=["message"],
            error_callback=self._on_polling_error,
        )
        self.application = application
        logger.info("Telegram commands: polling (%s)", ", ".join(f"/{name}" for name in COMMANDS))

    async def stop(self) -> None:
        """Stop polling and release the connections."""
        application, self.application = self.application, None
        if application is None:
            return
        if application.updater is not None and application.updater.running:
            await application.updater.stop()
        if application.running:
            await application.stop()
        await application.shutdown()

    async def run(self, ready: asyncio.Event, *, retry_cap_seconds: float = 60.0) -> None:
        """Poll until cancelled (the `mcp.server.Server` shape); `ready` is set once polling runs.

        Telegram unreachable at start-up is retried with a capped backoff; a rejected token raises.
        """
        delay = min(1.0, retry_cap_seconds)
        while True:
            try:
                await self.start()
                break
            except (TimedOut, NetworkError) as e:
                self.stats["polling_errors"] += 1
                logger.warning("Telegram unreachable for commands (%s); retrying in %.0f s", self._clean(str(e)), delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, retry_cap_seconds)
        ready.set()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.shield(self.stop())

    def health(self) -> dict[str, Any]:
        """Polling state and counters."""
        return {"status": "healthy" if self.application is not None else "stopped", **self.stats}

    # --- handlers ----------------------------------------------------------------------------------
    async def _gate(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat = update.effective_chat if isinstance(update, Update) else None
        user = update.effective_user if isinstance(update, Update) else None
        chat_id = chat.id if chat is not None else None
        user_id = user.id if user is not None else None
        if self.policy.allows(chat_id, user_id):
            return
        self.stats["denied"] += 1
        logger.warning("Telegram update denied: chat %s, user %s is not an allowed operator", chat_id, user_id)
        raise ApplicationHandlerStop

    def _command_callback(self, name: str) -> Callable[[Update, ContextTypes.DEFAULT_TYPE], Awaitable[None]]:
        async def callback(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
            await self._answer(update, name, list(context.args or []))

        return callback

    async def _call_backend(self, name: str, args: list[str]) -> Reply:
        if name == "help":
            return "\n".join(f"/{command} — {text}" for command, text in COMMANDS.items())
        if name == "mute":
            return await self.backend.mute(parse_mute_minutes(args))
        if name == "trades":
            return await self.backend.trades(parse_optional_count(args, DEFAULT_TRADES, MAX_TRADES, TRADES_USAGE))
        if name == "daily":
            return await self.backend.daily(parse_optional_count(args, DEFAULT_DAYS, MAX_DAYS, DAILY_USAGE))
        method: Callable[[], Awaitable[Reply]] = getattr(self.backend, name)
        return await method()

    async def _answer(self, update: Update, name: str, args: list[str]) -> None:
        try:
            async with asyncio.timeout(self.command_timeout):
                reply = await self._call_backend(name, args)
            text = self._format(f"/{name}", reply)
            self.stats["handled"] += 1
        except CommandUsageError as e:
            text = self._format(f"/{name}", str(e))
            self.stats["failed"] += 1
        except TimeoutError:
            text = self._format(f"/{name}", f"no answer within {self.command_timeout:.0f} s; try again later")
            self.stats["failed"] += 1
        except Exception as e:
            logger.exception("Telegram command /%s failed", name)
            text = self._format(f"/{name}", f"failed: {type(e).__name__}: {self._clean(str(e))}")
            self.stats["failed"] += 1
        await self._reply(update, text)

    async def _unknown(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        self.stats["unknown"] += 1
        message = update.effective_message
        received = (message.text or "").split()[0] if message is not None and message.text else "?"
        known = " ".join(f"/{name}" for name in COMMANDS)
        await self._reply(update, self._format("Unknown command", f"received {received}; known commands: {known}"))

    async def _reply(self, update: Update, text: str) -> None:
        message = update.effective_message
        if message is None:
            return
        try:
            await message.reply_text(text, parse_mode=ParseMode.HTML)
        except TelegramError as e:
            logger.warning("could not answer a Telegram command: %s", self._clean(f"{type(e).__name__}: {e}"))

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        error = context.error
        self.stats["failed"] += 1
        detail = f"{type(error).__name__}: {error}" if error is not None else "unknown error"
        logger.error("error while handling a Telegram update: %s", self._clean(detail))

    def _on_polling_error(self, error: TelegramError) -> None:
        self.stats["polling_errors"] += 1
        logger.warning("Telegram polling failed (retrying): %s", self._clean(f"{type(error).__name__}: {error}"))
