"""build_clob_client: paper by default, the Polymarket CLOB V2 adapter when TRADING_MODE=live."""

from __future__ import annotations

import sys

import pytest
from eth_account import Account

from config.settings import Settings
from core.clob.base import ClobClient
from core.clob.factory import build_clob_client
from core.clob.paper import PaperClobClient
from core.clob.polymarket import PolymarketClobClient, PolymarketExtraMissingError


def test_paper_mode_builds_the_paper_client_from_the_settings() -> None:
    client = build_clob_client(Settings(_env_file=None, paper_starting_balance=321.0, paper_seed=99))
    assert isinstance(client, PaperClobClient) and isinstance(client, ClobClient)
    assert (client.balance, client.seed) == (321.0, 99)


def test_paper_mode_does_not_need_the_polymarket_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    # The extra is installed here; hiding it shows paper trading never imports it.
    monkeypatch.setitem(sys.modules, "py_clob_client_v2", None)
    assert isinstance(build_clob_client(Settings(_env_file=None)), PaperClobClient)


def test_live_mode_builds_the_polymarket_adapter_without_network() -> None:
    settings = Settings(
        _env_file=None,
        trading_mode="live",
        private_key=Account.create().key.hex(),
        clob_host="http://127.0.0.1:9",  # never contacted: building the client makes no request
    )
    client = build_clob_client(settings)
    assert isinstance(client, PolymarketClobClient) and isinstance(client, ClobClient)


def test_live_mode_without_the_extra_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "py_clob_client_v2", None)
    settings = Settings(_env_file=None, trading_mode="live", private_key=Account.create().key.hex())
    with pytest.raises(PolymarketExtraMissingError, match="polymarket-copy-bot\\[polymarket\\]"):
        build_clob_client(settings)
