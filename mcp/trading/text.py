"""The trading view as short texts for a phone: the replies of /pnl, /positions, /trades [n] and /daily.

Pure functions over the dicts of mcp.trading.view (the same figures the page shows), plain text
(the command layer escapes it for Telegram's HTML). Lines stay short: a phone shows ~35 characters.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MAX_TITLE_CHARS = 48


def usdc(value: Any, signed: bool = False) -> str:
    """2 decimals; signed adds "+" to gains; "–" for unknown."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "–"
    return f"{value:+.2f}" if signed else f"{value:.2f}"


def pct(value: Any) -> str:
    """One decimal and a % sign; "–" for unknown."""
    return "–" if not isinstance(value, int | float) or isinstance(value, bool) else f"{value:.1f} %"


def number(value: Any) -> str:
    """A size or a price without trailing zeros ("–" for unknown)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "–"
    return f"{value:.4f}".rstrip("0").rstrip(".")


def ago(seconds: Any) -> str:
    """A relative time ("12 s ago", "3 min ago", "2 h ago", "4 d ago")."""
    if not isinstance(seconds, int | float) or isinstance(seconds, bool):
        return "at an unknown time"
    s = int(max(0.0, seconds))
    if s < 60:
        return f"{s} s ago"
    if s < 3600:
        return f"{s // 60} min ago"
    if s < 86400:
        return f"{s // 3600} h ago"
    return f"{s // 86400} d ago"


def _title(text: str) -> str:
    return text if len(text) <= MAX_TITLE_CHARS else text[: MAX_TITLE_CHARS - 1] + "…"


def _note(view: Mapping[str, Any]) -> list[str]:
    return [f"({view['message']})"] if view.get("message") else []


def pnl_text(view: Mapping[str, Any]) -> str:
    """/pnl: today's P&L, equity, and how much of the daily-loss limit is used."""
    pnl = view["pnl"]
    lines = [
        f"Day {pnl['day'] or '–'}",
        f"P&L {usdc(pnl['total_pnl'], True)} USDC",
        f"  realized {usdc(pnl['realized_pnl'], True)}",
        f"  unrealized {usdc(pnl['unrealized_pnl'], True)}",
        f"  fees {usdc(pnl['fees'])}",
        f"Equity {usdc(pnl['equity'])} USDC (cash {usdc(pnl['cash'])})",
        f"Loss limit: {usdc(pnl['daily_loss'])} of {usdc(pnl['max_daily_loss'])} used "
        f"({pct(pnl['loss_limit_used_percent'])})",
        f"Copies {pnl['copies']} · denials {pnl['denials']}",
    ]
    return "\n".join(lines + _note(view))


def positions_text(view: Mapping[str, Any]) -> str:
    """/positions: each holding with size, prices, unrealized P&L and exposure against the per-market limit."""
    exposure = view["exposure"]
    rows: Sequence[Mapping[str, Any]] = view["positions"]
    lines = [
        f"{len(rows)} open · exposure {usdc(exposure['total'])} of {usdc(exposure['limit'])} USDC "
        f"({pct(exposure['limit_used_percent'])})"
    ]
    for index, p in enumerate(rows, start=1):
        outcome = f" — {p['outcome']}" if p["outcome"] else ""
        lines.append(f"{index}. {_title(p['market_title'])}{outcome}")
        lines.append(
            f"   {number(p['size'])} @ {number(p['avg_price'])} · mark {number(p['mark'])} · "
            f"P&L {usdc(p['unrealized_pnl'], True)}"
        )
        lines.append(
            f"   exposure {usdc(p['exposure'])} of {usdc(p['exposure_limit'])} "
            f"({pct(p['exposure_limit_used_percent'])})"
        )
    if not rows:
        lines.append("No open positions.")
    return "\n".join(lines + _note(view))


def trades_text(view: Mapping[str, Any]) -> str:
    """/trades: the newest followed trades, what we did and why."""
    rows: Sequence[Mapping[str, Any]] = view["recent_trades"]
    lines = [f"Last {len(rows)} followed trade(s), newest first"]
    for t in rows:
        outcome = f" {t['outcome']}" if t["outcome"] else ""
        lines.append(
            f"{ago(t['age_seconds'])} · {t['followed_wallet']} {t['side']} {number(t['size'])} @ {number(t['price'])}"
        )
        lines.append(f"  {_title(t['market_title'])}{outcome}")
        if t["decision"] == "denied":
            why = ", ".join(t["deny_reasons"]) or "no reason recorded"
            lines.append(f"  → denied: {why}")
        elif t["decision"] == "copied":
            latency = f" in {t['latency_ms']:.0f} ms" if isinstance(t["latency_ms"], int | float) else ""
            fill = f" {number(t['fill_size'])} @ {number(t['fill_price'])}" if t["fill_size"] is not None else ""
            lines.append(f"  → copied{fill}{latency}")
        else:
            lines.append(f"  → {t['decision']}" + (f": {', '.join(t['deny_reasons'])}" if t["deny_reasons"] else ""))
    if not rows:
        lines.append("No followed trades yet.")
    return "\n".join(lines + _note(view))


def daily_text(days: Sequence[Mapping[str, Any]]) -> str:
    """/daily: one line per trading day, newest first."""
    if not days:
        return "No trading days in the ledger yet."
    lines = ["Day · P&L (realized) · copies/denials"]
    for day in days:
        lines.append(
            f"{day['day']} · {usdc(day['total_pnl'], True)} ({usdc(day['realized_pnl'], True)}) · "
            f"{day['copies']}/{day['denials']}"
        )
    return "\n".join(lines)
