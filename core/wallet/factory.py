"""Build the configured trade source: WALLET_SOURCE=replay (the default, a shipped file) or data_api."""

from __future__ import annotations

import os
from pathlib import Path

import aiohttp

from config.settings import PROJECT_ROOT, Settings, WalletSourceKind
from core.wallet.base import TradeSource
from core.wallet.data_api import DataApiTradeSource
from core.wallet.replay import MAX_REPLAY_FILE_BYTES, ReplayFileError, ReplayTradeSource
from utils.atomic import describe_file_type


def resolve_replay_file(path: Path, *, cwd: Path | None = None, project_root: Path = PROJECT_ROOT) -> Path:
    """An absolute path as is; a relative one from the working directory, else from the project root.

    Raises ReplayFileError naming every place looked at, or what stands there instead of a regular file
    (a FIFO, a directory, a device) or its size when over MAX_REPLAY_FILE_BYTES, so `python main.py` works
    from any directory with the default REPLAY_FILE and a wrong setting is reported clearly at start-up.
    """
    if path.is_absolute():
        candidates = [path]
    else:
        candidates = [(cwd if cwd is not None else Path.cwd()) / path, project_root / path]
    for candidate in candidates:
        # os.stat never opens the path, so a FIFO standing there cannot block this check
        try:
            info = os.stat(candidate)
        except FileNotFoundError:
            continue
        except OSError as e:
            raise ReplayFileError(
                f"REPLAY_FILE={path}: cannot look at {candidate}: {e.strerror or e}; fix its permissions or point "
                "REPLAY_FILE elsewhere"
            ) from e
        kind = describe_file_type(info.st_mode)
        if kind is not None:
            # something stands where the file should be: say what, rather than "no such file"
            raise ReplayFileError(
                f"REPLAY_FILE={path}: {candidate} is {kind}, expected a regular JSONL file of trades; point "
                "REPLAY_FILE at one (the shipped one is data/replay_trades.jsonl)"
            )
        if info.st_size > MAX_REPLAY_FILE_BYTES:
            raise ReplayFileError(
                f"REPLAY_FILE={path}: {candidate} is {info.st_size} bytes, expected at most {MAX_REPLAY_FILE_BYTES} "
                "for a replay file; point REPLAY_FILE at a smaller recording"
            )
        return candidate
    tried = ", ".join(str(candidate) for candidate in dict.fromkeys(candidates))
    raise ReplayFileError(
        f"REPLAY_FILE={path}: no such file (looked at {tried}); point REPLAY_FILE at a JSONL file of trades "
        "(the shipped one is data/replay_trades.jsonl) or set WALLET_SOURCE=data_api"
    )


def build_trade_source(
    settings: Settings,
    *,
    loop_replay: bool = True,
    session: aiohttp.ClientSession | None = None,
    cwd: Path | None = None,
) -> TradeSource:
    """The trade source WALLET_SOURCE names, configured from Settings.

    The replay loops by default so that a long paper-trading run keeps getting trades; TARGET_WALLETS
    filters it when set. The Data API source needs TARGET_WALLETS. Raises ReplayFileError or ValueError
    with the setting to fix.
    """
    if settings.wallet_source is WalletSourceKind.REPLAY:
        return ReplayTradeSource(
            resolve_replay_file(settings.replay_file, cwd=cwd),
            wallets=settings.target_wallets or None,
            speed=settings.replay_speed,
            loop_forever=loop_replay,
        )
    if settings.wallet_source is WalletSourceKind.DATA_API:
        return DataApiTradeSource(
            settings.target_wallets,
            base_url=settings.data_api_url,
            session=session,
            stale_after_seconds=settings.stale_trade_seconds,
            poll_interval=settings.wallet_poll_interval_seconds,
        )
    raise ValueError(
        f"WALLET_SOURCE: expected one of {[kind.value for kind in WalletSourceKind]}, "
        f"received {settings.wallet_source!r}"
    )
