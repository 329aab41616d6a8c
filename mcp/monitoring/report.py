"""📊 PERFORMANCE REPORT: the day's figures in one message, daily at PERFORMANCE_REPORT_TIME and on demand.

Pure parts: `report_figures` (the snapshot, the health report and the outbox summary → `ReportFigures`),
`build_report_text` (figures → text) and `next_report_due` (when the next daily report is due, given
now). The I/O edge, `collect_report`, reads the bot's risk snapshot and the alert outbox off the event
loop and the monitoring's cached health report; the sidecar's alert-rules service sends it daily, the
monitoring server's MCP tool `get_performance_report` and Telegram's /report answer it on demand.

Sources: trades copied (`trades.executed`), denied by reason (`denials`), realized P&L, the day's loss
and breaker trips from the bot's snapshot; decision → ack p50/p99 from the snapshot's latency buffer;
the sidecar's CPU and RSS and the coverage from the health report; alerts delivered, pending and dead
from the shared outbox over the last 24 h (bot and sidecar together), and alerts suppressed by dedup
as the sidecar's own count since it started (suppressed alerts never reach the outbox).
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from pathlib import Path
from typing import Any

from config.settings import Settings
from core.risk_snapshot import read_risk_snapshot, risk_snapshot_path
from utils.alerting.outbox import OUTBOX_FILE_NAME
from utils.atomic import StateFileError

REPORT_OFF = "off"
REPORT_WINDOW = timedelta(hours=24)
MAX_DENIAL_REASONS = 8


def report_time(value: str) -> time | None:
    """The daily report's UTC time of day from PERFORMANCE_REPORT_TIME ("HH:MM"), None when "off".

    Raises ValueError naming what was expected, for a value that bypassed Settings' validation.
    """
    text = value.strip().lower()
    if text == REPORT_OFF:
        return None
    try:
        hours, minutes = (int(part) for part in text.split(":"))
        return time(hours, minutes, tzinfo=UTC)
    except ValueError as e:
        raise ValueError(f"PERFORMANCE_REPORT_TIME: expected HH:MM (UTC) or 'off', received {value!r}") from e


def next_report_due(now: datetime, at: time | None) -> datetime | None:
    """The first report time strictly after `now` (UTC), None when the daily report is off.

    A sidecar started after today's time waits for tomorrow's: a late start sends no catch-up report.
    """
    if at is None:
        return None
    moment = now.astimezone(UTC)
    today = datetime.combine(moment.date(), at.replace(tzinfo=None), tzinfo=UTC)
    return today if today > moment else today + timedelta(days=1)


@dataclass(frozen=True, slots=True)
class ReportFigures:
    """Everything the report says; None means unknown (said as such, never as zero)."""

    generated_at: datetime
    bot_problem: str | None = None
    copied: int | None = None
    denied: int | None = None
    failed: int | None = None
    denials: Mapping[str, int] = field(default_factory=dict)
    realized_pnl: float | None = None
    daily_loss: float | None = None
    trading_state: str | None = None
    breaker_trips: int | None = None
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None
    latency_count: int | None = None
    sidecar_cpu_percent: float | None = None
    sidecar_rss_mb: float | None = None
    coverage: float | None = None
    alerts_delivered: int | None = None
    alerts_pending: int | None = None
    alerts_dead: int | None = None
    alerts_suppressed: int | None = None
    alerts_problem: str | None = None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _count(value: Any) -> int | None:
    number = _number(value)
    return int(number) if number is not None else None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _trips_since(history: Any, since: datetime) -> int | None:
    if not isinstance(history, list):
        return None
    count = 0
    for entry in history:
        at = _mapping(entry).get("time")
        try:
            if isinstance(at, str) and datetime.fromisoformat(at) >= since:
                count += 1
        except ValueError:
            continue
    return count


def report_figures(
    now: datetime,
    snapshot: Mapping[str, Any] | None,
    health: Mapping[str, Any],
    outbox: Mapping[str, int] | None,
    *,
    snapshot_problem: str | None = None,
    suppressed: int | None = None,
    outbox_problem: str | None = None,
) -> ReportFigures:
    """The report's figures from the bot's snapshot, the health report and the outbox summary (pure)."""
    components = _mapping(health.get("components"))
    sidecar = _mapping(_mapping(components.get("sidecar")).get("figures"))
    testing = _mapping(_mapping(components.get("testing")).get("figures"))
    bot: dict[str, Any] = {}
    if snapshot is not None:
        trades, latency, breaker = (_mapping(snapshot.get(key)) for key in ("trades", "latency_ms", "breaker"))
        count = _count(latency.get("count"))
        denials = {str(k): int(v) for k, v in _mapping(snapshot.get("denials")).items() if _count(v) is not None}
        bot = {
            "copied": _count(trades.get("executed")),
            "denied": _count(trades.get("denied")),
            "failed": _count(trades.get("failed")),
            "denials": denials,
            "realized_pnl": _number(snapshot.get("realized_pnl")),
            "daily_loss": _number(breaker.get("daily_loss")),
            "trading_state": snapshot.get("trading_state") if isinstance(snapshot.get("trading_state"), str) else None,
            "breaker_trips": _trips_since(breaker.get("trip_history"), now - REPORT_WINDOW),
            "latency_p50_ms": _number(latency.get("p50")) if count else None,
            "latency_p99_ms": _number(latency.get("p99")) if count else None,
            "latency_count": count,
        }
    box = outbox or {}
    return ReportFigures(
        generated_at=now,
        bot_problem=snapshot_problem if snapshot is None else None,
        sidecar_cpu_percent=_number(sidecar.get("cpu_percent")),
        sidecar_rss_mb=_number(sidecar.get("memory_mb")),
        coverage=_number(testing.get("coverage")),
        alerts_delivered=box.get("sent") if outbox is not None else None,
        alerts_pending=box.get("pending") if outbox is not None else None,
        alerts_dead=box.get("dead") if outbox is not None else None,
        alerts_suppressed=suppressed,
        alerts_problem=outbox_problem,
        **bot,
    )


def _shown(value: float | int | None, fmt: str = "{:g}", unit: str = "") -> str:
    return "unknown" if value is None else fmt.format(value) + unit


def build_report_text(figures: ReportFigures) -> str:
    """The report's text: its heading, then one line per topic (unknown figures said as unknown)."""
    f = figures
    lines = [f"📊 PERFORMANCE REPORT\n{f.generated_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"]
    if f.bot_problem is not None:
        lines.append(f"Bot figures unavailable: {f.bot_problem}")
    else:
        lines.append(f"Trades: {_shown(f.copied)} copied, {_shown(f.denied)} denied, {_shown(f.failed)} failed")
        if f.denials:
            ranked = sorted(f.denials.items(), key=lambda item: (-item[1], item[0]))
            shown = ", ".join(f"{reason} {count}" for reason, count in ranked[:MAX_DENIAL_REASONS])
            more = len(ranked) - MAX_DENIAL_REASONS
            lines.append(f"Denied by reason: {shown}" + (f" (+{more} more)" if more > 0 else ""))
        daily = None if f.daily_loss is None else -f.daily_loss
        lines.append(
            f"P&L: realized {_shown(f.realized_pnl, '{:+.2f}')}, today {_shown(daily, '{:+.2f}')}; "
            f"trading {f.trading_state or 'unknown'}"
        )
        lines.append(f"Breaker trips (24 h): {_shown(f.breaker_trips)}")
        lines.append(
            f"Decision → ack: p50 {_shown(f.latency_p50_ms, '{:.1f}', ' ms')}, "
            f"p99 {_shown(f.latency_p99_ms, '{:.1f}', ' ms')} over {_shown(f.latency_count)} trade(s)"
        )
    cpu, rss = _shown(f.sidecar_cpu_percent, "{:.1f}", " %"), _shown(f.sidecar_rss_mb, "{:.0f}", " MB")
    lines.append(f"Sidecar: CPU {cpu}, RSS {rss}; coverage {_shown(f.coverage, '{:.1%}')}")
    if f.alerts_problem is not None:
        lines.append(f"Alerts: unknown ({f.alerts_problem}); suppressed by dedup {_shown(f.alerts_suppressed)}")
    elif f.alerts_delivered is None:
        lines.append(f"Alerts: log only (no outbox); suppressed {_shown(f.alerts_suppressed)}")
    else:
        lines.append(
            f"Alerts (24 h): {f.alerts_delivered} sent, {f.alerts_pending} pending, {f.alerts_dead} dead letter(s); "
            f"suppressed by dedup {_shown(f.alerts_suppressed)}"
        )
    return "\n".join(lines)


# --- the I/O edge ----------------------------------------------------------------------------------------


def outbox_summary(path: Path, since: float) -> dict[str, int] | None:
    """Alerts (distinct alert ids) created since `since` in the outbox, by state; None when there is none.

    Read-only (the bot and the sidecar write it); an alert sent to one channel counts as sent.
    """
    if not path.exists():
        return None
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0) as db:
            rows = db.execute(
                "SELECT alert_id, state FROM outbox WHERE created_at >= ?",
                (since,),
            ).fetchall()
    except sqlite3.Error as e:
        raise StateFileError(f"cannot read the alert outbox {path}: {e}") from e
    states: dict[str, str] = {}
    rank = {"sent": 2, "pending": 1, "dead": 0}
    for alert_id, state in rows:
        if rank.get(state, -1) > rank.get(states.get(alert_id, ""), -1):
            states[alert_id] = state
    summary = {"sent": 0, "pending": 0, "dead": 0}
    for state in states.values():
        summary[state] = summary.get(state, 0) + 1
    return summary


def _read_snapshot(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    try:
        return read_risk_snapshot(path), None
    except StateFileError as e:
        return None, str(e)


async def collect_report(
    settings: Settings,
    health: Mapping[str, Any],
    *,
    now: datetime | None = None,
    suppressed: int | None = None,
    state_dir: Path | None = None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> str:
    """Read the snapshot and the outbox (off the loop), then build the report's text."""
    moment = now or clock()
    folder = Path(state_dir if state_dir is not None else settings.state_dir)
    snapshot, problem = await asyncio.to_thread(_read_snapshot, risk_snapshot_path(folder))
    since = (moment - REPORT_WINDOW).timestamp()
    outbox, outbox_problem = None, None
    try:
        outbox = await asyncio.to_thread(outbox_summary, folder / OUTBOX_FILE_NAME, since)
    except StateFileError as e:
        outbox_problem = str(e)
    figures = report_figures(
        moment, snapshot, health, outbox, snapshot_problem=problem, suppressed=suppressed, outbox_problem=outbox_problem
    )
    return build_report_text(figures)
