"""build_trade_source: WALLET_SOURCE picks the source; REPLAY_FILE resolves from cwd, then the project root."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import Settings
from core.wallet.data_api import DataApiTradeSource
from core.wallet.factory import build_trade_source, resolve_replay_file
from core.wallet.replay import ReplayFileError, ReplayTradeSource

WALLET = "0x" + "e5" * 20


def settings(**fields: object) -> Settings:
    return Settings(_env_file=None, **fields)  # type: ignore[call-arg]


async def test_the_default_is_the_shipped_replay_file_from_any_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, project_root: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no data/ here: the project root's copy is used
    source = build_trade_source(settings(replay_speed=0))
    assert isinstance(source, ReplayTradeSource)
    assert source.path == project_root / "data" / "replay_trades.jsonl"
    trades = await source.poll()
    assert len(trades) == 300
    assert len(await source.poll()) == 300  # loops by default, so a long paper run keeps trading
    await source.close()


def test_a_relative_replay_file_in_the_working_directory_wins(tmp_path: Path, project_root: Path) -> None:
    (tmp_path / "data").mkdir()
    local = tmp_path / "data" / "replay_trades.jsonl"
    local.write_text("")
    assert resolve_replay_file(Path("data/replay_trades.jsonl"), cwd=tmp_path, project_root=project_root) == local


def test_an_absolute_replay_file_is_used_as_is(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text("")
    source = build_trade_source(settings(replay_file=path), loop_replay=False)
    assert isinstance(source, ReplayTradeSource)
    assert source.path == path


def test_a_missing_replay_file_names_the_setting_and_every_place_looked(tmp_path: Path) -> None:
    with pytest.raises(ReplayFileError) as raised:
        resolve_replay_file(Path("data/nope.jsonl"), cwd=tmp_path, project_root=tmp_path / "root")
    message = str(raised.value)
    assert "REPLAY_FILE=data/nope.jsonl" in message
    assert str(tmp_path / "data" / "nope.jsonl") in message
    assert str(tmp_path / "root" / "data" / "nope.jsonl") in message


async def test_target_wallets_filter_the_replay(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    source = build_trade_source(settings(replay_speed=0, target_wallets=WALLET), loop_replay=False)
    assert await source.poll() == []  # the shipped wallets are made up, this one is not among them
    await source.close()


def test_data_api_source_is_built_from_settings() -> None:
    source = build_trade_source(
        settings(
            wallet_source="data_api",
            target_wallets=f"{WALLET}",
            data_api_url="http://127.0.0.1:9",
            wallet_poll_interval_seconds=2.5,
            stale_trade_seconds=60,
        )
    )
    assert isinstance(source, DataApiTradeSource)
    assert source.wallets == [WALLET]


def test_data_api_without_wallets_says_which_setting_to_fill() -> None:
    with pytest.raises(ValueError, match="TARGET_WALLETS"):
        build_trade_source(settings(wallet_source="data_api"))
