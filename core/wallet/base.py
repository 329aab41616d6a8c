"""The trades of the followed wallets, from any source, behind one protocol."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable

from core.clob.base import Side


@dataclass(frozen=True, slots=True)
class WalletTrade:
    """One trade made by a followed wallet, as the copy loop sees it."""

    wallet: str
    tx_hash: str
    token_id: str  # the outcome token ("asset" in the Data API)
    market: str  # condition id
    side: Side
    size: float  # shares
    price: float  # USDC per share
    timestamp: datetime  # timezone-aware, UTC
    outcome: str = ""
    title: str = ""

    @property
    def dedup_key(self) -> tuple[str, str]:
        """Transaction hash + asset: one transaction can trade several outcome tokens."""
        return (self.tx_hash, self.token_id)


@dataclass(slots=True)
class SourceStats:
    """Counters every source keeps, for logs and the risk snapshot."""

    polls: int = 0
    trades_emitted: int = 0
    malformed_skipped: int = 0
    duplicates_skipped: int = 0
    stale_skipped: int = 0
    errors: int = 0


@runtime_checkable
class TradeSource(Protocol):
    """Yields new trades of the followed wallets; never the same trade twice."""

    stats: SourceStats

    async def poll(self) -> list[WalletTrade]:
        """The trades that appeared since the last poll (oldest first); [] when there are none."""
        ...

    async def close(self) -> None:
        """Release connections and files."""
        ...
