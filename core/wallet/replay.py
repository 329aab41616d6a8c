"""Replay a recorded JSONL file of wallet trades as if the wallets were trading now (the embedded default).

File format: UTF-8, one JSON object per line, each a Polymarket Data API activity record of type TRADE
(see `core.wallet.records` for the fields and their rules), e.g.

    {"proxyWallet": "0x5f0e…", "timestamp": 1763712003, "conditionId": "0x8b1c…", "type": "TRADE",
     "size": 120.5, "usdcSize": 54.23, "transactionHash": "0x3a9d…", "price": 0.45,
     "asset": "7190…", "side": "BUY", "outcomeIndex": 0, "title": "Will …?", "outcome": "Yes"}

Blank lines are ignored. A line that is not a valid trade is skipped, counted in `stats.malformed_skipped`
and logged as `file:line: reason`; a repeated (transactionHash, asset) is skipped and counted in
`stats.duplicates_skipped`. Neither is ever fatal; only a missing or unreadable file is, and so is anything
that is not a regular file (FIFO, directory, device) or is over MAX_REPLAY_FILE_BYTES: ReplayFileError.

Pacing: trades come out in file order. Trade i is due `(t_i - t_0) / speed` seconds after the first poll,
where t are the file's timestamps (never earlier than the trade before it, so file order holds even when
timestamps go backwards); `speed=0` releases everything at once. Emitted trades carry the replay-time
timestamp (first poll + the scaled offset), so they look fresh to the copy loop. With `loop_forever`, the
file starts again after one average gap, each round's transaction hashes suffixed `-r<round>` so that
no two emitted trades share a dedup key. One poll never emits more than one file's worth of trades.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from core.wallet.base import SourceStats, WalletTrade
from core.wallet.records import MalformedRecordError, is_wallet_address, parse_activity_record
from utils.atomic import StateFileError, read_regular_file

logger = logging.getLogger(__name__)

# The file is parsed whole in memory (pacing needs every timestamp before the first poll), so it is capped.
# The shipped file is tens of kilobytes and one trade line is ~400 bytes: 64 MiB holds some 150,000 trades,
# far more than any recording worth replaying, while keeping the parsed schedule well under a gigabyte of RAM.
# Past it, the path is almost surely not a replay file (a disk image, a log, /dev/zero behind a symlink).
MAX_REPLAY_FILE_BYTES = 64 * 1024 * 1024

# Past this many, malformed and duplicate lines are counted but summarised rather than logged one by one.
MAX_LINES_LOGGED = 20


class ReplayFileError(Exception):
    """The replay file cannot be read: point REPLAY_FILE at a readable JSONL file and start again."""


@dataclass(frozen=True, slots=True)
class ReplayLine:
    """One trade read from the file, with where it came from."""

    line: int
    trade: WalletTrade


@dataclass(slots=True)
class ReplayContents:
    """What a replay file holds: good trades in file order, and the lines skipped with their reasons."""

    trades: list[ReplayLine] = field(default_factory=list)
    malformed: list[tuple[int, str]] = field(default_factory=list)
    duplicates: list[tuple[int, str]] = field(default_factory=list)


def parse_replay_bytes(data: bytes) -> ReplayContents:
    """Parse a whole JSONL replay file; never raises on bad lines, it records them instead."""
    contents = ReplayContents()
    first_seen: dict[tuple[str, str], int] = {}
    for number, raw in enumerate(data.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            contents.malformed.append((number, f"not UTF-8 text ({e.reason} at byte {e.start})"))
            continue
        try:
            record = json.loads(text)
        except json.JSONDecodeError as e:
            contents.malformed.append((number, f"not JSON ({e.msg} at column {e.colno})"))
            continue
        try:
            trade = parse_activity_record(record)
        except MalformedRecordError as e:
            contents.malformed.append((number, e.reason))
            continue
        earlier = first_seen.get(trade.dedup_key)
        if earlier is not None:
            contents.duplicates.append((number, f"same transactionHash and asset as line {earlier}"))
            continue
        first_seen[trade.dedup_key] = number
        contents.trades.append(ReplayLine(number, trade))
    return contents


def file_offsets(trades: list[WalletTrade]) -> list[float]:
    """Seconds after the first trade, in file order, never decreasing (a trade never overtakes the one before)."""
    if not trades:
        return []
    start = trades[0].timestamp
    offsets: list[float] = []
    latest = 0.0
    for trade in trades:
        latest = max(latest, (trade.timestamp - start).total_seconds())
        offsets.append(latest)
    return offsets


def round_period(offsets: list[float]) -> float:
    """File seconds from the start of one round to the start of the next: the span plus one average gap."""
    if len(offsets) < 2 or offsets[-1] <= 0:
        return offsets[-1] + 1.0 if offsets else 1.0
    return offsets[-1] + offsets[-1] / (len(offsets) - 1)


def normalise_wallets(wallets: Iterable[str] | None, setting: str = "TARGET_WALLETS") -> frozenset[str] | None:
    """Lower-cased wallet set for case-insensitive matching; None (no filter) when none are given."""
    if not wallets:
        return None
    bad = [wallet for wallet in wallets if not is_wallet_address(wallet.strip())]
    if bad:
        raise ValueError(f"{setting}: expected addresses of 0x followed by 40 hex characters, received {bad!r}")
    return frozenset(wallet.strip().lower() for wallet in wallets)


def _utc_now() -> datetime:
    return datetime.now(UTC)


class ReplayTradeSource:
    """A `TradeSource` that replays a JSONL file of Data API TRADE records, paced by their timestamps."""

    def __init__(
        self,
        path: str | Path,
        *,
        wallets: list[str] | None = None,
        speed: float = 1.0,
        clock: Callable[[], datetime] = _utc_now,
        loop_forever: bool = False,
        max_bytes: int = MAX_REPLAY_FILE_BYTES,
    ) -> None:
        if speed < 0:
            raise ValueError(f"REPLAY_SPEED: expected 0 (as fast as possible) or a positive factor, received {speed}")
        self.path = Path(path)
        self.stats = SourceStats()
        self._wallets = normalise_wallets(wallets)
        self._speed = speed
        self._clock = clock
        self._loop_forever = loop_forever
        self._max_bytes = max_bytes
        self._load_lock = asyncio.Lock()
        self._schedule: list[ReplayLine] | None = None
        self._offsets: list[float] = []
        self._period = 1.0
        self._started_at: datetime | None = None
        self._cursor = 0
        self._round = 0
        self._closed = False

    async def load(self) -> None:
        """Read and check the file now (optional: the first poll does it); raises ReplayFileError."""
        async with self._load_lock:
            if self._schedule is not None:
                return
            # the hardened read (issue 8): O_NONBLOCK open, fstat, regular file only, bounded. A FIFO in
            # place of the file would otherwise block the read (and this poll) forever
            try:
                data = await asyncio.to_thread(
                    read_regular_file, self.path, self._max_bytes, what="a replay file (REPLAY_FILE)"
                )
            except StateFileError as e:
                raise ReplayFileError(
                    f"cannot read the replay file (REPLAY_FILE): {e}; point REPLAY_FILE at a JSONL file of trades, "
                    "e.g. data/replay_trades.jsonl"
                ) from e
            if data is None:
                raise ReplayFileError(
                    f"replay file not found: {self.path} (resolved to {self.path.absolute()}); set REPLAY_FILE to an "
                    "existing JSONL file of trades, e.g. data/replay_trades.jsonl"
                )
            contents = parse_replay_bytes(data)
            self._report(contents)
            kept = [line for line in contents.trades if self._wallets is None or line.trade.wallet in self._wallets]
            if contents.trades and not kept:
                in_file = sorted({line.trade.wallet[-6:] for line in contents.trades})
                logger.warning(
                    "replay file %s has no trade from the followed wallets (TARGET_WALLETS); its wallets end in %s",
                    self.path,
                    ", ".join(in_file),
                )
            self._offsets = file_offsets([line.trade for line in kept])
            self._period = round_period(self._offsets)
            self._schedule = kept

    def _report(self, contents: ReplayContents) -> None:
        self.stats.malformed_skipped += len(contents.malformed)
        self.stats.duplicates_skipped += len(contents.duplicates)
        for number, reason in contents.malformed[:MAX_LINES_LOGGED]:
            logger.warning("%s:%d: skipped malformed trade line: %s", self.path, number, reason)
        for number, reason in contents.duplicates[:MAX_LINES_LOGGED]:
            logger.warning("%s:%d: skipped duplicate trade: %s", self.path, number, reason)
        hidden = sum(max(0, len(lines) - MAX_LINES_LOGGED) for lines in (contents.malformed, contents.duplicates))
        if hidden:
            logger.warning("%s: %d more skipped lines not shown (counted in the source's stats)", self.path, hidden)
        logger.info(
            "replay file %s: %d trades, %d malformed and %d duplicate lines skipped",
            self.path,
            len(contents.trades),
            len(contents.malformed),
            len(contents.duplicates),
        )

    async def poll(self) -> list[WalletTrade]:
        """The trades whose replay time has come since the last poll, in file order."""
        if self._closed:
            raise RuntimeError(f"poll() on a closed ReplayTradeSource ({self.path}); build a new source")
        await self.load()
        assert self._schedule is not None  # set by load()
        self.stats.polls += 1
        now = self._clock()
        if self._started_at is None:
            self._started_at = now
        elapsed = (now - self._started_at).total_seconds()
        due: list[WalletTrade] = []
        while self._schedule and len(due) < len(self._schedule):
            if self._cursor == len(self._schedule):
                if not self._loop_forever:
                    break
                self._round += 1
                self._cursor = 0
            offset = self._round * self._period + self._offsets[self._cursor]
            if self._speed > 0 and offset / self._speed > elapsed:
                break
            due.append(self._replayed(self._schedule[self._cursor].trade, offset, now))
            self._cursor += 1
        self.stats.trades_emitted += len(due)
        return due

    def _replayed(self, trade: WalletTrade, offset: float, now: datetime) -> WalletTrade:
        assert self._started_at is not None
        when = now if self._speed == 0 else self._started_at + timedelta(seconds=offset / self._speed)
        tx_hash = trade.tx_hash if self._round == 0 else f"{trade.tx_hash}-r{self._round}"
        return replace(trade, tx_hash=tx_hash, timestamp=when)

    @property
    def exhausted(self) -> bool:
        """True once every trade has been emitted and the file is not looping."""
        return self._schedule is not None and not self._loop_forever and self._cursor >= len(self._schedule)

    async def close(self) -> None:
        """Forget the loaded trades; a closed source cannot be polled again."""
        self._closed = True
        self._schedule = []
        self._offsets = []
