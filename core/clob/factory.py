"""Choosing the CLOB client from the settings: paper by default, Polymarket CLOB V2 when live."""

from __future__ import annotations

from config.settings import Settings, TradingMode
from core.clob.base import ClobClient
from core.clob.paper import PaperClobClient


def build_clob_client(settings: Settings) -> ClobClient:
    """PaperClobClient when TRADING_MODE=paper, PolymarketClobClient when TRADING_MODE=live.

    Live mode imports py-clob-client-v2 only here, so paper trading never needs the optional extra.
    """
    if settings.trading_mode is TradingMode.PAPER:
        return PaperClobClient(settings)
    # local: paper trading, the default, never loads the live adapter
    from core.clob.polymarket import PolymarketClobClient

    return PolymarketClobClient(settings)
