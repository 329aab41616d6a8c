"""A fake Telegram Bot API: a real aiohttp app on 127.0.0.1, port 0, speaking HTTP as python-telegram-bot does.

Routes are `/bot<token>/<method>` (GET or POST; form, multipart or JSON parameters), answers are the
Bot API's envelopes: `{"ok": true, "result": …}` or `{"ok": false, "error_code": …, "description": …,
"parameters": {"retry_after": N}}`. A wrong token gets 401, an unknown method 404.

`sendMessage` can be scripted to fail, one scripted failure per request, in order:

    async with FakeTelegram(TOKEN) as tg:
        tg.fail(RateLimited(retry_after=1), Stall(), Drop(), Refuse(400, "Bad Request: chat not found"))
        bot = Bot(TOKEN, base_url=tg.base_url)

`Stall` answers after `seconds` (past the client's read timeout) and does NOT deliver: the request never
reached Telegram's processing, so a retry is not a duplicate. `Drop` closes the connection without an
answer. Every delivered message is recorded in `messages`, in order. `push_update` queues an update
for `getUpdates`, which long-polls like the real one (bounded by `max_long_poll`).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

from tests.fakes.loopback import serve_on_loopback


@dataclass(frozen=True)
class RateLimited:
    """429 Too Many Requests with parameters.retry_after (seconds, an integer in the Bot API)."""

    retry_after: int = 1


@dataclass(frozen=True)
class Stall:
    """Answer only after `seconds` (make it longer than the client's timeout); not delivered."""

    seconds: float = 1.0


@dataclass(frozen=True)
class Drop:
    """Close the connection without any answer; not delivered."""


@dataclass(frozen=True)
class Refuse:
    """An error answer such as 400 Bad Request or 403 Forbidden; not delivered."""

    status: int = 400
    description: str = "Bad Request: chat not found"


@dataclass(frozen=True)
class Garbage:
    """A 200 answer whose body is not JSON (a broken proxy)."""

    body: bytes = b"<html>proxy error</html>"


Failure = RateLimited | Stall | Drop | Refuse | Garbage


@dataclass
class SentMessage:
    message_id: int
    chat_id: str
    text: str
    parse_mode: str | None
    params: dict[str, Any] = field(default_factory=dict)


def _decode(value: Any) -> Any:
    """python-telegram-bot sends non-string parameters JSON-encoded inside form fields."""
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return json.loads(value)
    return value


class FakeTelegram:
    """The fake Bot API server; `await start()` (or `async with`) gives `base_url` to pass as Bot's base_url."""

    def __init__(
        self,
        token: str,
        *,
        bot_id: int = 777000111,
        username: str = "fake_alert_bot",
        max_long_poll: float = 0.2,
    ) -> None:
        self.token = token
        self.bot_id = bot_id
        self.username = username
        self.max_long_poll = max_long_poll
        self.messages: list[SentMessage] = []
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.failures_served: list[Failure] = []
        self.send_attempts = 0
        self._script: deque[Failure] = deque()
        self._policy: Callable[[int], Failure | None] | None = None
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._new_update = asyncio.Event()
        self._delivered = asyncio.Event()
        self._attempted = asyncio.Event()
        self._runner: web.AppRunner | None = None
        self.port = 0

    # --- lifecycle ---------------------------------------------------------------------------------
    def build_app(self) -> web.Application:
        """The aiohttp application (one catch-all route per method)."""
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        return app

    async def start(self) -> str:
        """Serve on 127.0.0.1, port 0; returns the base URL (`…/bot`, python-telegram-bot appends the token)."""
        self._runner, self.port = await serve_on_loopback(self.build_app(), shutdown_timeout=0.5)
        return self.base_url

    async def stop(self) -> None:
        """Stop serving (long polls end at once)."""
        self._new_update.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def base_url(self) -> str:
        """What to pass as `base_url` / TELEGRAM_BASE_URL."""
        return f"http://127.0.0.1:{self.port}/bot"

    # --- scripting ---------------------------------------------------------------------------------
    def fail(self, *failures: Failure) -> None:
        """Queue failures for the next sendMessage requests, one per request."""
        self._script.extend(failures)

    def fail_with(self, policy: Callable[[int], Failure | None] | None) -> None:
        """Decide each sendMessage attempt (numbered from 1) by a function; None delivers."""
        self._policy = policy

    def push_update(self, update: dict[str, Any]) -> int:
        """Queue a raw update (its update_id is assigned); returns the id."""
        update_id = next(self._update_ids)
        self._updates.append({**update, "update_id": update_id})
        self._new_update.set()
        return update_id

    def push_command(self, text: str, *, chat_id: int, user_id: int, chat_type: str = "private") -> int:
        """Queue a message update carrying a bot command, as Telegram sends it."""
        command = text.split()[0]
        message = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": chat_type},
            "from": {"id": user_id, "is_bot": False, "first_name": "operator"},
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": len(command)}],
        }
        return self.push_update({"message": message})

    def messages_to(self, chat_id: int | str) -> list[SentMessage]:
        """The delivered messages of one chat, in order."""
        return [m for m in self.messages if m.chat_id == str(chat_id)]

    async def wait_for_attempts(self, count: int, within: float = 10.0) -> None:
        """Wait until sendMessage was answered at least `count` times, failures included."""
        async with asyncio.timeout(within):
            while len(self.messages) + len(self.failures_served) < count:
                self._attempted.clear()
                await self._attempted.wait()

    async def wait_for_messages(self, count: int, within: float = 10.0) -> list[SentMessage]:
        """Wait until at least `count` messages were delivered (raises TimeoutError after `within` s)."""
        async with asyncio.timeout(within):
            while len(self.messages) < count:
                self._delivered.clear()
                await self._delivered.wait()
        return self.messages

    # --- the protocol ------------------------------------------------------------------------------
    async def _params(self, request: web.Request) -> dict[str, Any]:
        params: dict[str, Any] = dict(request.query)
        if request.body_exists:
            if request.content_type == "application/json":
                body = await request.json()
                if isinstance(body, dict):
                    params.update(body)
            else:
                form = await request.post()
                params.update({key: _decode(value) for key, value in form.items() if isinstance(value, str)})
        return params

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        method = request.match_info["method"]
        if request.match_info["token"] != self.token:
            return self._error(401, "Unauthorized")
        params = await self._params(request)
        self.requests.append((method, params))
        handler = {
            "getMe": self._get_me,
            "sendMessage": self._send_message,
            "getUpdates": self._get_updates,
            "deleteWebhook": self._true,
            "setMyCommands": self._true,
            "close": self._true,
            "logOut": self._true,
        }.get(method)
        if handler is None:
            return self._error(404, "Not Found")
        return await handler(request, params)

    @staticmethod
    def _ok(result: Any) -> web.Response:
        return web.json_response({"ok": True, "result": result})

    @staticmethod
    def _error(status: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
        if parameters:
            body["parameters"] = parameters
        return web.json_response(body, status=status)

    async def _true(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        return self._ok(True)

    async def _get_me(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        return self._ok({"id": self.bot_id, "is_bot": True, "first_name": "Fake Alerts", "username": self.username})

    def _next_failure(self) -> Failure | None:
        if self._script:
            return self._script.popleft()
        if self._policy is not None:
            return self._policy(self.send_attempts)
        return None

    async def _send_message(self, request: web.Request, params: dict[str, Any]) -> web.StreamResponse:
        self.send_attempts += 1
        failure = self._next_failure()
        if failure is not None:
            response = await self._serve_failure(request, failure)
            self.failures_served.append(failure)
            self._attempted.set()
            return response
        if "chat_id" not in params or not str(params.get("text", "")):
            return self._error(400, "Bad Request: message text is empty")
        text = str(params["text"])
        if len(text.encode("utf-16-le")) // 2 > 4096:
            return self._error(400, "Bad Request: message is too long")
        message_id = next(self._message_ids)
        chat_id = str(params["chat_id"])
        self.messages.append(SentMessage(message_id, chat_id, text, params.get("parse_mode"), params))
        self._delivered.set()
        self._attempted.set()
        chat_type = "private" if not chat_id.startswith("-") else "group"
        return self._ok(
            {
                "message_id": message_id,
                "date": int(time.time()),
                "chat": {"id": int(chat_id), "type": chat_type},
                "text": text,
            }
        )

    async def _serve_failure(self, request: web.Request, failure: Failure) -> web.StreamResponse:
        if isinstance(failure, RateLimited):
            return self._error(
                429,
                f"Too Many Requests: retry after {failure.retry_after}",
                {"retry_after": failure.retry_after},
            )
        if isinstance(failure, Refuse):
            return self._error(failure.status, failure.description)
        if isinstance(failure, Garbage):
            return web.Response(body=failure.body, content_type="text/html")
        if isinstance(failure, Stall):
            await asyncio.sleep(failure.seconds)
            return self._error(500, "Internal Server Error: stalled")
        # Drop: close the socket under the client without writing a status line
        transport = request.transport
        if transport is not None:
            transport.close()
        return web.Response(status=500)

    async def _get_updates(self, request: web.Request, params: dict[str, Any]) -> web.Response:
        offset = int(params.get("offset") or 0)
        wait = min(float(params.get("timeout") or 0), self.max_long_poll)
        pending = [u for u in self._updates if u["update_id"] >= offset]
        if not pending and wait > 0:
            self._new_update.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    await self._new_update.wait()
            pending = [u for u in self._updates if u["update_id"] >= offset]
        # confirmed updates (below offset) are forgotten, as Telegram does
        self._updates = [u for u in self._updates if u["update_id"] >= offset]
        return self._ok(pending)
