"""The dead man's switch, outside half: a GET to HEARTBEAT_URL every HEARTBEAT_INTERVAL_SECONDS.

Nothing inside a dead host can say the host is dead. An external service (healthchecks-style: a URL that
expects a ping every N seconds and alerts when pings stop) hears from this loop as long as the machine,
the sidecar and its event loop are alive, and alerts the operator on its own when they go silent.
A failed ping is logged (the URL with its token-like parts masked) and never stops anything; the next
one is tried on schedule.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from config.settings import Settings
from mcp.health import HealthStatus

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT_SECONDS = 10.0
# path segments and query values that look like tokens: long, or with digits in them
_TOKEN_LIKE = re.compile(r"^(?=.*\d).{4,}$|^.{16,}$")
# this many failed pings in a row and the service reports itself degraded
FAILURES_BEFORE_DEGRADED = 3


def mask_url(url: str) -> str:
    """The URL safe for a log line: credentials dropped, token-like path parts and every query value masked."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or "?"
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<unparseable URL>"
    segments = ["***" if _TOKEN_LIKE.match(s) else s for s in parts.path.split("/")]
    query = "&".join(f"{pair.split('=', 1)[0]}=***" for pair in parts.query.split("&") if pair) if parts.query else ""
    return f"{parts.scheme}://{host}{port}{'/'.join(segments)}" + (f"?{query}" if query else "")


Pinger = Callable[[str], Awaitable[int]]


class HeartbeatServer:
    """Pings the heartbeat URL on its interval; health says how the last pings went."""

    name = "heartbeat"

    def __init__(
        self,
        url: str,
        interval: float,
        *,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if interval <= 0:
            raise ValueError(f"HEARTBEAT_INTERVAL_SECONDS: expected seconds > 0, received {interval}")
        self._url = url
        self.shown_url = mask_url(url)
        self.interval = interval
        self.timeout = timeout
        self._sleep = sleep
        self._clock = clock
        self.pings = 0
        self.failures = 0
        self.failures_in_a_row = 0
        self.last_ok_at: float | None = None
        self.last_error: str | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> HeartbeatServer:
        """The heartbeat of HEARTBEAT_URL / HEARTBEAT_INTERVAL_SECONDS (the URL must be set)."""
        if settings.heartbeat_url is None:
            raise ValueError("HEARTBEAT_URL is not set: expected an http(s) URL to ping")
        return cls(settings.heartbeat_url.get_secret_value(), settings.heartbeat_interval_seconds)

    async def run(self, ready: asyncio.Event) -> None:
        """Ping now and then every interval, until cancelled; ready at once (a ping may fail, the loop goes on)."""
        logger.info("heartbeat: pinging %s every %g s", self.shown_url, self.interval)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            ready.set()
            while True:
                await self.ping(session)
                await self._sleep(self.interval)

    async def ping(self, session: aiohttp.ClientSession) -> bool:
        """One GET; True on a 2xx answer. Failures are counted and logged, never raised."""
        self.pings += 1
        try:
            async with session.get(self._url, allow_redirects=True) as response:
                await response.read()
                if 200 <= response.status < 300:
                    self.failures_in_a_row = 0
                    self.last_ok_at = self._clock()
                    self.last_error = None
                    return True
                problem = f"HTTP {response.status}"
        except (aiohttp.ClientError, TimeoutError) as e:
            problem = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
        problem = problem.replace(self._url, self.shown_url)  # an error text may quote the URL itself
        self.failures += 1
        self.failures_in_a_row += 1
        self.last_error = problem
        logger.warning("heartbeat ping to %s failed (%s); the next is in %g s", self.shown_url, problem, self.interval)
        return False

    def health(self) -> dict[str, Any]:
        """Pings, failures and the last problem (the URL shown masked)."""
        degraded = self.failures_in_a_row >= FAILURES_BEFORE_DEGRADED
        return {
            "status": (HealthStatus.DEGRADED if degraded else HealthStatus.HEALTHY).value,
            "message": f"last ping failed: {self.last_error}" if self.last_error else f"{self.pings} ping(s)",
            "url": self.shown_url,
            "interval_seconds": self.interval,
            "pings": self.pings,
            "failures": self.failures,
            "last_ok_at": self.last_ok_at,
        }

    def tools(self) -> list[Callable[..., Any]]:
        """None."""
        return []
