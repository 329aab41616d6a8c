"""The trading view as pure functions: the figures in, the JSON every surface shows out.

One function builds each block (P&L, positions, recent copies, followed wallets, denial reasons, equity
curve); the dashboard's GET /api/trading, the Telegram commands and the MCP tools all call them, so the
three show the same figures. Money is rounded to cents, prices and sizes to 4 decimals, times are ISO 8601
(the page turns them into "12 s ago"); no epoch number leaves this module. Wallets arrive masked from the
ledger; token ids are shortened to their last 6 characters for display (the full id stays in `token_id`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

MONEY_DECIMALS = 2
FIGURE_DECIMALS = 4
SHORT_ID_CHARS = 6
MAX_CURVE_POINTS = 240
LONG_ID_CHARS = 16  # ids longer than this (Polymarket's 78-digit token ids) are shown as …last 6


@dataclass(frozen=True, slots=True)
class Limits:
    """The risk limits the view measures against (the bot's own values from its snapshot when published)."""

    max_daily_loss: float
    max_position_size: float
    max_total_exposure: float

    @classmethod
    def resolve(cls, snapshot: Mapping[str, Any] | None, defaults: Limits) -> Limits:
        """The snapshot's `risk_parameters` where present and valid, else `defaults` (the sidecar's settings)."""
        params = (snapshot or {}).get("risk_parameters")
        params = params if isinstance(params, Mapping) else {}

        def pick(name: str, fallback: float) -> float:
            value = _number(params.get(name))
            return value if value is not None and value > 0 else fallback

        return cls(
            pick("max_daily_loss", defaults.max_daily_loss),
            pick("max_position_size", defaults.max_position_size),
            pick("max_total_exposure", defaults.max_total_exposure),
        )


@dataclass(frozen=True, slots=True)
class LedgerFigures:
    """What the ledger reader answered (core.ledger_view objects), or `problem` saying why there is nothing."""

    positions: Sequence[Any] = ()
    trades: Sequence[Any] = ()
    pnl: Any = None
    followed: Sequence[tuple[str, int, int]] = ()
    deny_reasons: Mapping[str, int] = field(default_factory=dict)
    curve: Sequence[tuple[float, float]] = ()
    problem: str | None = None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def money(value: Any) -> float | None:
    """A USDC amount rounded to cents (None stays None; -0.0 becomes 0.0)."""
    number = _number(value)
    return None if number is None else round(number, MONEY_DECIMALS) + 0.0


def figure(value: Any) -> float | None:
    """A price or a size rounded to 4 decimals (None stays None)."""
    number = _number(value)
    return None if number is None else round(number, FIGURE_DECIMALS) + 0.0


def percent(part: float | None, whole: float | None) -> float | None:
    """`part` as a percentage of `whole`, one decimal; None when either is unknown or whole is not positive."""
    if part is None or whole is None or whole <= 0:
        return None
    return round(100.0 * part / whole, 1)


def iso(epoch: float | None) -> str | None:
    """Unix seconds as ISO 8601 UTC with a Z (None for unknown)."""
    number = _number(epoch)
    if number is None:
        return None
    return datetime.fromtimestamp(number, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def masked(wallet: str) -> str:
    """A wallet as "…" + its last 6 characters (the ledger stores it so; this guards a full address)."""
    text = str(wallet)
    return text if text.startswith("…") or len(text) <= SHORT_ID_CHARS + 1 else "…" + text[-SHORT_ID_CHARS:]


def short_id(token_id: str) -> str:
    """A long token id as "…" + its last 6 characters (ids of up to 16 characters unchanged)."""
    text = str(token_id)
    return text if len(text) <= LONG_ID_CHARS else "…" + text[-SHORT_ID_CHARS:]


def breaker_daily_loss(snapshot: Mapping[str, Any] | None) -> float | None:
    """The circuit breaker's own count of today's loss (equity against the day's start), when published."""
    breaker = (snapshot or {}).get("breaker")
    return _number(breaker.get("daily_loss")) if isinstance(breaker, Mapping) else None


def pnl_block(pnl: Any, limits: Limits, breaker_loss: float | None = None) -> dict[str, Any]:
    """Today's P&L (realized + unrealized) and how much of the daily-loss limit is used.

    The gauge shows the breaker's own loss figure when the snapshot carries it (that is what trips), else
    the loss implied by today's P&L; `daily_loss_source` says which.
    """
    realized = money(getattr(pnl, "realized_pnl", 0.0)) or 0.0
    unrealized = money(getattr(pnl, "unrealized_pnl", 0.0)) or 0.0
    total = money(realized + unrealized) or 0.0
    loss = max(0.0, -total) if breaker_loss is None else max(0.0, breaker_loss)
    day = getattr(pnl, "day", None)
    return {
        "day": day.isoformat() if day is not None else None,
        "realized_pnl": realized,
        "unrealized_pnl": unrealized,
        "total_pnl": total,
        "fees": money(getattr(pnl, "fees", 0.0)) or 0.0,
        "cash": money(getattr(pnl, "cash", None)),
        "equity": money(getattr(pnl, "equity", None)),
        "day_start_equity": money(getattr(pnl, "day_start_equity", None)),
        "copies": int(getattr(pnl, "copies", 0) or 0),
        "denials": int(getattr(pnl, "denials", 0) or 0),
        "daily_loss": money(loss) or 0.0,
        "daily_loss_source": "ledger" if breaker_loss is None else "breaker",
        "max_daily_loss": money(limits.max_daily_loss),
        "loss_limit_used_percent": percent(loss, limits.max_daily_loss) or 0.0,
    }


def position_rows(positions: Sequence[Any], limits: Limits) -> list[dict[str, Any]]:
    """One row per held position, largest exposure first, with its exposure against the per-market limit."""
    rows = []
    for position in positions:
        notional = money(position.notional) or 0.0
        rows.append(
            {
                "token_id": position.token_id,
                "token": short_id(position.token_id),
                "market_title": position.market_title or short_id(position.token_id),
                "outcome": position.outcome,
                "size": figure(position.size),
                "avg_price": figure(position.avg_price),
                "mark": figure(position.mark),
                "unrealized_pnl": money(position.unrealized_pnl) or 0.0,
                "exposure": notional,
                "exposure_limit": money(limits.max_position_size),
                "exposure_limit_used_percent": percent(notional, limits.max_position_size),
            }
        )
    rows.sort(key=lambda row: -row["exposure"])
    return rows


def trade_rows(trades: Sequence[Any], now: float) -> list[dict[str, Any]]:
    """The recent followed trades, newest first, each with what we decided and why."""
    rows = []
    for trade in trades:
        seen = _number(trade.seen_at)
        rows.append(
            {
                "seen_at": iso(seen),
                "age_seconds": None if seen is None else round(max(0.0, now - seen), 1),
                "followed_wallet": masked(trade.followed_wallet),
                "market_title": trade.market_title or short_id(trade.token_id),
                "outcome": trade.outcome,
                "token": short_id(trade.token_id),
                "side": trade.side,
                "size": figure(trade.size),
                "price": figure(trade.price),
                "decision": trade.decision,
                "deny_reasons": list(trade.deny_reasons),
                "fill_size": figure(trade.fill_size),
                "fill_price": figure(trade.fill_price),
                "fees": money(trade.fees) or 0.0,
                "latency_ms": None if trade.latency_ms is None else round(float(trade.latency_ms), 1),
            }
        )
    return rows


def wallet_rows(followed: Sequence[tuple[str, int, int]]) -> list[dict[str, Any]]:
    """Followed wallets (masked) with how many of their trades we copied and denied, busiest first."""
    rows = [
        {"wallet": masked(wallet), "copied": int(copied), "denied": int(denied)} for wallet, copied, denied in followed
    ]
    rows.sort(key=lambda row: (-(row["copied"] + row["denied"]), row["wallet"]))
    return rows


def denial_rows(counts: Mapping[str, int]) -> list[dict[str, Any]]:
    """Today's denial reasons with their counts, most frequent first."""
    return [{"reason": reason, "count": int(count)} for reason, count in sorted(counts.items(), key=lambda i: -i[1])]


def thin(points: Sequence[Any], limit: int) -> list[Any]:
    """At most `limit` points, evenly spaced, always keeping the first and the last."""
    if limit < 2:
        raise ValueError(f"expected a limit of at least 2 points, received {limit}")
    if len(points) <= limit:
        return list(points)
    step = (len(points) - 1) / (limit - 1)
    return [points[round(index * step)] for index in range(limit)]


def curve_points(curve: Sequence[tuple[float, float]], limit: int = MAX_CURVE_POINTS) -> list[list[Any]]:
    """The day's equity curve as [ISO time, equity] pairs (the page parses the times), thinned to `limit`:
    one equity row per fill makes thousands on a busy day, more than a 360-pixel chart can show."""
    points = [[iso(ts), money(equity)] for ts, equity in curve if iso(ts) is not None and money(equity) is not None]
    return thin(points, limit)


def exposure_block(rows: Sequence[Mapping[str, Any]], limits: Limits) -> dict[str, Any]:
    """Total exposure (sum of position costs) against MAX_TOTAL_EXPOSURE."""
    total = money(sum(row["exposure"] for row in rows)) or 0.0
    return {
        "total": total,
        "limit": money(limits.max_total_exposure),
        "limit_used_percent": percent(total, limits.max_total_exposure) or 0.0,
        "open_positions": len(rows),
    }


def trading_view(
    snapshot: Mapping[str, Any] | None,
    snapshot_problem: str | None,
    figures: LedgerFigures,
    *,
    now: float,
    defaults: Limits,
) -> dict[str, Any]:
    """The whole trading section: the body of GET /api/trading (and what /pnl, /positions, the tools read)."""
    limits = Limits.resolve(snapshot, defaults)
    positions = position_rows(figures.positions, limits)
    updated = _number((snapshot or {}).get("updated_at_epoch"))
    status = "ok" if figures.problem is None else "no_ledger"
    return {
        "status": status,
        "message": figures.problem or "",
        "generated_at": iso(now),
        "trading_mode": (snapshot or {}).get("trading_mode"),
        "trading_state": (snapshot or {}).get("trading_state"),
        "snapshot_updated_at": iso(updated),
        "snapshot_problem": snapshot_problem,
        "pnl": pnl_block(figures.pnl, limits, breaker_daily_loss(snapshot)),
        "exposure": exposure_block(positions, limits),
        "positions": positions,
        "recent_trades": trade_rows(figures.trades, now),
        "followed_wallets": wallet_rows(figures.followed),
        "deny_reasons": denial_rows(figures.deny_reasons),
        "equity_curve": curve_points(figures.curve),
        "limits": {
            "max_daily_loss": money(limits.max_daily_loss),
            "max_position_size": money(limits.max_position_size),
            "max_total_exposure": money(limits.max_total_exposure),
        },
    }
