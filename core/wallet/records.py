"""One Polymarket Data API activity record (a TRADE) → `WalletTrade`, or a clear reason why not.

The replay file and the live Data API share this record shape, so both sources validate through
`parse_activity_record`. Field names are the Data API's (`GET /activity`):

    proxyWallet      str    the trader's wallet, 0x + 40 hex
    transactionHash  str    the on-chain transaction (one transaction may trade several assets)
    asset            str    the outcome token id (a long decimal string)
    conditionId      str    the market (0x + 64 hex on Polymarket)
    side             str    "BUY" or "SELL" (read case-insensitively)
    size             number shares, > 0
    price            number USDC per share, strictly between 0 and 1
    timestamp        number unix seconds (not milliseconds), > 0
    outcome, title   str    optional labels ("Yes", "Will it rain?"); null is read as ""
    type             str    optional; when present it must be "TRADE"

Any other field (usdcSize, outcomeIndex, slug, name, ...) is accepted and ignored.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from core.clob.base import Side
from core.wallet.base import WalletTrade
from utils.secrets import mask_addresses

REQUIRED_FIELDS = ("proxyWallet", "transactionHash", "asset", "conditionId", "side", "size", "price", "timestamp")
WALLET_PATTERN = re.compile(r"^0x[0-9a-fA-F]{40}$")
# Unix seconds beyond this (year 5138) are almost surely milliseconds; Polymarket uses seconds.
MAX_UNIX_SECONDS = 1e11


class MalformedRecordError(ValueError):
    """This record cannot be a trade: skip it (and count it); `reason` says what was expected and received."""

    def __init__(self, reason: str) -> None:
        # Reasons quote values, and values may hold wallet addresses: mask them once, here.
        self.reason = mask_addresses(reason)
        super().__init__(self.reason)


def is_wallet_address(value: str) -> bool:
    """True for a 0x-prefixed 40-hex-digit address (any case)."""
    return bool(WALLET_PATTERN.match(value))


def _type_name(value: object) -> str:
    return "null" if value is None else type(value).__name__


def _text(record: Mapping[str, Any], name: str) -> str:
    value = record[name]
    if not isinstance(value, str):
        raise MalformedRecordError(f"{name}: expected a string, received {_type_name(value)} {value!r}")
    value = value.strip()
    if not value:
        raise MalformedRecordError(f"{name}: expected a non-empty string, received an empty one")
    return value


def _optional_text(record: Mapping[str, Any], name: str) -> str:
    value = record.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise MalformedRecordError(f"{name}: expected a string or null, received {_type_name(value)} {value!r}")
    return value


def _number(record: Mapping[str, Any], name: str) -> float:
    value = record[name]
    # bool is an int subclass in Python; `true` is never a size or a price.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise MalformedRecordError(f"{name}: expected a number, received {_type_name(value)} {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise MalformedRecordError(f"{name}: expected a finite number, received {value!r}")
    return number


def parse_timestamp(value: object) -> datetime:
    """Unix seconds (int or float) → aware UTC datetime; raises MalformedRecordError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        received = f"{_type_name(value)} {value!r}"
        raise MalformedRecordError(f"timestamp: expected unix seconds as a number, received {received}")
    if not math.isfinite(value) or value <= 0:
        raise MalformedRecordError(f"timestamp: expected positive unix seconds, received {value!r}")
    if value >= MAX_UNIX_SECONDS:
        raise MalformedRecordError(f"timestamp: expected unix seconds, received {value!r} (milliseconds?)")
    return datetime.fromtimestamp(value, UTC)


def parse_activity_record(record: object) -> WalletTrade:
    """Validate one activity record and build the trade; raises MalformedRecordError with the reason."""
    if not isinstance(record, Mapping):
        raise MalformedRecordError(f"expected a JSON object, received {_type_name(record)}")
    missing = [name for name in REQUIRED_FIELDS if name not in record]
    if missing:
        raise MalformedRecordError(f"missing field(s): {', '.join(missing)}")

    kind = record.get("type")
    if kind is not None and kind != "TRADE":
        raise MalformedRecordError(f"type: expected 'TRADE', received {kind!r}")

    wallet = _text(record, "proxyWallet")
    if not is_wallet_address(wallet):
        raise MalformedRecordError(f"proxyWallet: expected 0x followed by 40 hex characters, received {wallet!r}")

    side_text = _text(record, "side").upper()
    if side_text not in Side.__members__:
        raise MalformedRecordError(f"side: expected 'BUY' or 'SELL', received {record['side']!r}")

    size = _number(record, "size")
    if size <= 0:
        raise MalformedRecordError(f"size: expected shares > 0, received {size!r}")
    price = _number(record, "price")
    if not 0 < price < 1:
        raise MalformedRecordError(f"price: expected a price strictly between 0 and 1, received {price!r}")

    return WalletTrade(
        wallet=wallet.lower(),
        tx_hash=_text(record, "transactionHash"),
        token_id=_text(record, "asset"),
        market=_text(record, "conditionId"),
        side=Side(side_text),
        size=size,
        price=price,
        timestamp=parse_timestamp(record["timestamp"]),
        outcome=_optional_text(record, "outcome"),
        title=_optional_text(record, "title"),
    )
