"""The dashboard's safety rules: where it may listen, how a bearer token is checked, which headers every
response carries, and the last scrub that keeps secrets out of what it serves.

All of it is pure or nearly so (the scrubber holds the secret values it must remove), so each rule is
tested on its own, without a server.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Mapping

from aiohttp import web
from pydantic import SecretStr

from config.settings import Settings
from utils.secrets import mask_addresses, mask_wallet, redact

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost", "ip6-loopback"})

# default-src 'self' with no 'unsafe-inline': the page's script and style come from /static/ only
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    # nothing the sidecar serves is worth caching: health changes every check, the page is tiny
    "Cache-Control": "no-store",
    # aiohttp's default names its exact version; an operator's scanner has no use for it
    "Server": "polymarket-mcp",
}


class DashboardBindError(ValueError):
    """The dashboard would listen where it must not: set DASHBOARD_TOKEN or bind DASHBOARD_HOST to loopback."""


def is_loopback_host(host: str) -> bool:
    """True when `host` only accepts connections from this machine (127.0.0.0/8, ::1, localhost).

    Names are not resolved (this stays pure): any name other than localhost counts as non-loopback, and
    so do the wildcard addresses ("", 0.0.0.0, ::), which listen on every interface.
    """
    name = host.strip().strip("[]").lower()
    if name in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def _token_value(token: SecretStr | str | None) -> str | None:
    value = token.get_secret_value() if isinstance(token, SecretStr) else token
    return value if value and value.strip() else None


def check_bind_safety(host: str, token: SecretStr | str | None) -> None:
    """Refuse (raise DashboardBindError) a non-loopback DASHBOARD_HOST when no DASHBOARD_TOKEN is set."""
    if is_loopback_host(host) or _token_value(token) is not None:
        return
    shown = host if host.strip() else "'' (every interface)"
    raise DashboardBindError(
        f"refusing to serve the dashboard on DASHBOARD_HOST={shown} without DASHBOARD_TOKEN: a non-loopback "
        "address lets other machines reach /health and POST /reset-circuit-breaker. Expected DASHBOARD_HOST "
        "to be a loopback address (127.0.0.1, ::1, localhost) or DASHBOARD_TOKEN to be set "
        "(e.g. DASHBOARD_TOKEN=$(python -c 'import secrets; print(secrets.token_urlsafe(32))'))"
    )


class BearerToken:
    """The configured token, kept only as a SHA-256 digest, and a constant-time check of a presented one."""

    __slots__ = ("_digest",)

    def __init__(self, token: SecretStr | str | None) -> None:
        value = _token_value(token)
        self._digest = None if value is None else hashlib.sha256(value.encode()).digest()

    @property
    def configured(self) -> bool:
        """False when no token is set: the endpoints that need one are disabled."""
        return self._digest is not None

    def matches(self, presented: str | None) -> bool:
        """Constant time: both sides are hashed to 32 bytes first, so neither content nor length leaks."""
        if self._digest is None:
            return False
        candidate = hashlib.sha256((presented or "").encode("utf-8", "surrogateescape")).digest()
        # evaluated even for an absent token, so that "missing" and "wrong" take the same path
        same = hmac.compare_digest(candidate, self._digest)
        return same and presented is not None

    def __repr__(self) -> str:
        return f"BearerToken(configured={self.configured})"


def bearer_from_header(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header; None when absent or another scheme."""
    if not header:
        return None
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not credentials.strip():
        return None
    return credentials.strip()


async def add_security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare hook: every response, error pages included, gets the security headers."""
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value


class Scrubber:
    """The last line of defence: removes secret values and full wallet addresses from outgoing text."""

    __slots__ = ("_secrets", "_wallets")

    def __init__(self, secrets: Iterable[SecretStr | str | None], wallets: Iterable[str | None] = ()) -> None:
        self._secrets = [value for value in (_token_value(s) for s in secrets) if value is not None]
        # wallets are replaced by their masked form (last 6 characters), which is allowed to appear
        self._wallets = [(w, mask_wallet(w)) for w in wallets if w and len(w) > 6]

    @classmethod
    def from_settings(cls, settings: Settings) -> Scrubber:
        """Every secret setting (tokens, keys) and every configured wallet address."""
        return cls(
            [
                settings.private_key,
                settings.telegram_bot_token,
                settings.dashboard_token,
                settings.clob_api_key,
                settings.clob_api_secret,
                settings.clob_api_passphrase,
            ],
            [settings.wallet_address, settings.clob_funder_address, *settings.target_wallets],
        )

    def __call__(self, text: str) -> str:
        """`text` without any secret and with every wallet address masked."""
        for wallet, masked in self._wallets:
            if wallet in text:
                text = text.replace(wallet, masked)
        text = redact(text, self._secrets)
        return mask_addresses(text) if "0x" in text else text

    def __repr__(self) -> str:
        return f"Scrubber(secrets={len(self._secrets)}, wallets={len(self._wallets)})"
