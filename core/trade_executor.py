"""The trade executor: copies a followed wallet's trade through the pre-trade checks to the CLOB.

One trade at a time (an asyncio lock), so two trades can never both pass the exposure checks with the
same headroom. Latency is measured per order, decision → acknowledgement, on the monotonic
`perf_counter_ns` clock, from the moment the executor starts deciding (after the lock) until the CLOB
acknowledges; it covers the book fetch, the checks and the submit. The readers (`get_performance_metrics`,
`monitor_risk_parameters`, `snapshot`) only copy small figures; they never call the CLOB.

Sizing and which checks apply to entries and exits: see `core/pre_trade_checks.py`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from config.settings import Settings, get_settings
from core.circuit_breaker import CircuitBreaker
from core.clob.base import ClobClient, ClobError, OrderAck, OrderBook, OrderRequest, Side
from core.clob.paper import PaperClobClient
from core.execution_result import (
    ERROR_KINDS,
    RSS_REFRESH_SECONDS,
    CachedRss,
    ExecutionResult,
    ExecutionStatus,
    MemoryInfoSource,
)
from core.executor_reports import (
    EXTRA_USAGE_PARAMETERS,
    TRIP_KIND_PARAMETER,
    coverage_impact_report,
    risk_parameter_values,
    usage_report,
)
from core.latency import DEFAULT_CAPACITY, LatencyRecorder
from core.ledger import FillRecord, LedgerState, OutcomeRecord, TradeLedger
from core.portfolio import FillOutcome, Portfolio
from core.pre_trade_checks import (
    RATE_WINDOW_SECONDS,
    Decision,
    OrderPlan,
    RiskLimits,
    check_balance,
    check_breaker,
    check_holding,
    check_liquidity,
    check_max_order,
    check_min_order,
    check_open_positions,
    check_order_rate,
    check_position_limit,
    check_reconcile,
    check_slippage,
    check_stop_loss,
    check_total_exposure,
    check_trade_input,
    plan_copy_order,
    walk_book_by_size,
)
from core.reconcile import ReconcileGate
from core.risk_snapshot import SCHEMA_VERSION
from core.wallet.base import WalletTrade
from utils.secrets import mask_addresses, mask_wallet

log = logging.getLogger(__name__)


def _utc_now() -> datetime:
    return datetime.now(UTC)


# The result reason of a followed trade the ledger shows was already acted on (not copied again).
ALREADY_IN_LEDGER = "already_in_ledger"


def _fees(ack: OrderAck) -> float:
    # the exchange's fee on this fill when its acknowledgement states one (the paper CLOB charges none)
    value = ack.raw.get("fees", 0.0) if isinstance(ack.raw, dict) else 0.0
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0


def _default_breaker(settings: Settings) -> CircuitBreaker:
    # the state folder may not exist on a fresh machine; the breaker must not start by crashing
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    return CircuitBreaker.from_settings(settings)


def _default_clob(settings: Settings) -> ClobClient:
    return PaperClobClient(settings)


class TradeExecutor:
    """Copies trades after the pre-trade checks; keeps positions, latency and error counts; feeds the breaker."""

    def __init__(
        self,
        clob_client: ClobClient | None = None,
        *,
        settings: Settings | None = None,
        circuit_breaker: CircuitBreaker | None = None,
        clock: Callable[[], float] = time.monotonic,
        latency_buffer_size: int = DEFAULT_CAPACITY,
        timer_ns: Callable[[], int] = time.perf_counter_ns,
        wall_clock: Callable[[], datetime] = _utc_now,
        process: MemoryInfoSource | None = None,
        rss_refresh_seconds: float = RSS_REFRESH_SECONDS,
        seed_paper_books: bool | None = None,
        ledger: TradeLedger | None = None,
    ) -> None:
        self.settings = settings if settings is not None else get_settings()
        self.limits = RiskLimits.from_settings(self.settings)
        self._owns_clob = clob_client is None
        self.clob: ClobClient = clob_client if clob_client is not None else _default_clob(self.settings)
        self.breaker = circuit_breaker if circuit_breaker is not None else _default_breaker(self.settings)
        self.portfolio = Portfolio()
        # issue 8: closed by core.reconciler (live mode) while our books and the exchange's disagree
        self.reconcile_gate = ReconcileGate()
        self.latency = LatencyRecorder(latency_buffer_size, budget_ms=self.settings.trading_latency_budget_ms)
        # issue 10: trade arrival (the poll that brought it) -> ack, queueing included; what a busy machine stretches
        self.arrival_latency = LatencyRecorder(latency_buffer_size, budget_ms=self.settings.trading_latency_budget_ms)
        self._clock = clock
        self._timer_ns = timer_ns
        self._wall_clock = wall_clock
        self._rss = CachedRss(clock, process, rss_refresh_seconds)
        self._lock = asyncio.Lock()
        self._submits: deque[float] = deque()
        self._order_seq = 0
        self._trades: Counter[str] = Counter({status.value: 0 for status in ExecutionStatus})
        self._denials: Counter[str] = Counter()
        self._errors: Counter[str] = Counter({kind: 0 for kind in ERROR_KINDS})
        self._breaker_feed_errors = 0
        self._usage: dict[str, list[int]] = {}
        daily_limit = self.breaker.get_state().get("daily_loss_limit")
        self._risk_parameters = risk_parameter_values(
            self.settings, float(daily_limit) if isinstance(daily_limit, int | float) else None
        )
        self._extra_parameters = {name: getattr(self.settings, name) for name in EXTRA_USAGE_PARAMETERS}
        self._wallet = mask_wallet(self.settings.wallet_address)
        # None: only when this executor built the paper client itself (a caller's client keeps its books)
        self._seed_paper_books = self._owns_clob if seed_paper_books is None else seed_paper_books
        # --- issue 8 (ledger): every trade is written to the ledger after its ack is timed, under the lock
        self.ledger = ledger
        self.ledger_write_errors = 0
        self.ledger_duplicates = 0
        self._labels: dict[str, tuple[str, str]] = {}  # token_id -> (market title, outcome)
        self._pending_marks: dict[str, float] = {}
        self._marks_written: dict[str, float] = {}  # the last mark written per token
        self._last_error = ""
        self._breaker_due: tuple[Side, FillOutcome] | None = None

    # --- the copy path ------------------------------------------------------------------------------

    async def execute_copy(self, trade: WalletTrade, arrival_ns: int | None = None) -> ExecutionResult:
        """Copy one trade of a followed wallet: size it, run every pre-trade check, send it, book the fill.

        `arrival_ns` (from `now_ns()` when the trade arrived) adds the arrival -> ack latency of an acked order.
        """
        async with self._lock:
            trade_row = await self._ledger_seen(trade)
            if trade_row is False:
                return ExecutionResult(ExecutionStatus.DENIED, ALREADY_IN_LEDGER, trade.token_id, trade.side)
            if trade.title or trade.outcome:
                self._labels[trade.token_id] = (trade.title, trade.outcome)
            result = await self._copy(trade)
            if arrival_ns is not None and result.latency_ms is not None:
                self.arrival_latency.record_ns(self._timer_ns() - arrival_ns)
            self._count(result)
            await self._settle(trade_row if isinstance(trade_row, int) else None, result, trade.market)
        return result

    def now_ns(self) -> int:
        """The executor's latency clock, to stamp a trade's arrival for `execute_copy`."""
        return self._timer_ns()

    async def enforce_stop_losses(self) -> list[ExecutionResult]:
        """Exit each position whose book mid is STOP_LOSS or more below its cost (exits pass a halted breaker)."""
        results: list[ExecutionResult] = []
        async with self._lock:
            for token_id in list(self.portfolio.positions):
                market = self.portfolio.positions[token_id].market
                result = await self._stop_loss_exit(token_id)
                if result is not None:
                    self._count(result)
                    results.append(result)
                    await self._settle(None, result, market)
            await self._ledger_marks()
        return results

    async def _copy(self, trade: WalletTrade) -> ExecutionResult:
        decisions: list[Decision] = []
        token_id, side = trade.token_id, trade.side
        if not self._passes(decisions, check_trade_input(side, trade.size, trade.price)):
            return self._denied(token_id, side, decisions)
        if self.portfolio.cash is None:
            failure = await self._load_cash(token_id, side, decisions)
            if failure is not None:
                return failure
        start = self._timer_ns()
        is_entry = side is Side.BUY
        held = self.portfolio.held(token_id)
        if is_entry:
            allows = self.breaker.allows_new_entries()
            gate = check_breaker(True, allows, "ACTIVE" if allows else str(self.breaker.state))
        else:
            gate = check_holding(held)
        if not self._passes(decisions, gate):
            return self._denied(token_id, side, decisions)
        if is_entry and self.reconcile_gate.blocks_entries:
            self._passes(decisions, check_reconcile(True, self.reconcile_gate.markets))
            return self._denied(token_id, side, decisions)
        if self._seed_paper_books:
            self._seed_book(token_id, trade.price)
        try:
            book = await self.clob.get_order_book(token_id)
        except ClobError as e:
            return self._failed(token_id, side, e, decisions)
        self._mark(token_id, book.mid())
        plan = plan_copy_order(side, trade.size, self.limits.copy_ratio, held, book, self.limits.max_order_size)
        self._use("copy_ratio", denied=False)
        executed_reason = f"capped_by_{plan.capped_by}" if plan.capped_by else ""
        return await self._checked_submit(
            token_id, trade.market, plan, trade.price, book, decisions, start, executed_reason
        )

    def _seed_book(self, token_id: str, price: float) -> None:
        # A paper book generated at random would sit far from where the followed wallet traded, and the
        # slippage check would deny every copy. Each copied trade just happened at `price`, so that is where
        # the simulated market is now: re-anchor at every copy. Clients without `seed_book` (live) are left alone.
        seed_book = getattr(self.clob, "seed_book", None)
        if seed_book is not None:
            seed_book(token_id, price)

    async def _stop_loss_exit(self, token_id: str) -> ExecutionResult | None:
        position = self.portfolio.positions[token_id]
        decisions: list[Decision] = []
        start = self._timer_ns()
        try:
            book = await self.clob.get_order_book(token_id)
        except ClobError as e:
            return self._failed(token_id, Side.SELL, e, decisions)
        mid = book.mid()
        self._mark(token_id, mid)
        if self._passes(decisions, check_stop_loss(position.avg_price, mid, self.settings.stop_loss)):
            return None
        fill = walk_book_by_size(book.bids, position.size)
        plan = OrderPlan(Side.SELL, position.size, position.size, fill, None, True)
        best = book.best_bid()
        reference = best if best is not None else position.avg_price
        return await self._checked_submit(
            token_id, position.market, plan, reference, book, decisions, start, "stop_loss"
        )

    def _order_checks(
        self, token_id: str, plan: OrderPlan, reference_price: float, book: OrderBook
    ) -> Iterator[Decision]:
        # generated lazily: the first denial stops the rest, so usage counts show what really ran
        limits, portfolio = self.limits, self.portfolio
        notional = plan.fill.notional
        yield check_liquidity(plan.fill)
        yield check_min_order(notional, limits.min_order_size, plan.closes_position)
        if plan.side is Side.BUY:
            yield check_max_order(notional, limits.max_order_size)
            yield check_position_limit(portfolio.position_notional(token_id), notional, limits.max_position_size)
            yield check_total_exposure(portfolio.total_exposure, notional, limits.max_total_exposure)
            yield check_open_positions(
                len(portfolio.positions), token_id not in portfolio.positions, limits.max_open_positions
            )
            yield check_balance(portfolio.cash, plan.size * (plan.fill.worst_price or reference_price))
        best = book.best_ask() if plan.side is Side.BUY else book.best_bid()
        yield check_slippage(plan.side, plan.fill, reference_price, best, limits.max_slippage)
        now = self._clock()
        while self._submits and now - self._submits[0] >= RATE_WINDOW_SECONDS:
            self._submits.popleft()
        yield check_order_rate(self._submits, now, limits.max_orders_per_minute)

    async def _checked_submit(
        self,
        token_id: str,
        market: str,
        plan: OrderPlan,
        reference_price: float,
        book: OrderBook,
        decisions: list[Decision],
        start_ns: int,
        executed_reason: str,
    ) -> ExecutionResult:
        for decision in self._order_checks(token_id, plan, reference_price, book):
            if not self._passes(decisions, decision):
                return self._denied(token_id, plan.side, decisions)
        self._order_seq += 1
        order = OrderRequest(
            token_id=token_id,
            side=plan.side,
            size=plan.size,
            limit_price=plan.fill.worst_price or reference_price,
            client_order_id=f"copy-{os.getpid()}-{self._order_seq}",
        )
        self._submits.append(self._clock())
        try:
            ack = await self.clob.place_order(order)
        except ClobError as e:
            return self._failed(token_id, plan.side, e, decisions, order)
        latency_ms = self.latency.record_ns(self._timer_ns() - start_ns)
        if ack.filled_size <= 0:
            return ExecutionResult(
                ExecutionStatus.FAILED, "unfilled", token_id, plan.side, order, ack, latency_ms, 0.0, tuple(decisions)
            )
        outcome = self.portfolio.apply_fill(token_id, market, plan.side, ack.filled_size, ack.avg_price)
        if outcome.opened:
            self._mark(token_id, book.mid())  # a new position is marked at the book, not at its cost
        fees = _fees(ack)
        if fees and self.portfolio.cash is not None:
            self.portfolio.cash -= fees
        # the breaker is fed in `_settle`, after the ledger has the fill: a kill between the two writes leaves
        # the ledger a fill ahead, and the restart feeds the breaker the ledger's restored equity
        self._breaker_due = (plan.side, outcome)
        return ExecutionResult(
            ExecutionStatus.EXECUTED,
            executed_reason,
            token_id,
            plan.side,
            order,
            ack,
            latency_ms,
            outcome.realized_pnl,
            tuple(decisions),
        )

    async def _load_cash(self, token_id: str, side: Side, decisions: list[Decision]) -> ExecutionResult | None:
        # the first trade learns the balance once; fills keep it current after that (no I/O per trade)
        try:
            balance = await self.clob.get_balance()
        except ClobError as e:
            return self._failed(token_id, side, e, decisions)
        self.portfolio.cash = float(balance)
        await self._feed_breaker(None, None)
        return None

    async def _feed_breaker(self, side: Side | None, outcome: FillOutcome | None) -> None:
        # the async variants keep the breaker's fsync'd state write off the event loop; the write is
        # durable before the next trade is decided (this runs under the executor's lock)
        try:
            if side is Side.SELL and outcome is not None:
                await self.breaker.record_trade_result_async(outcome.realized_pnl)
            equity = self.portfolio.equity()
            if equity is not None:
                await self.breaker.update_equity_async(equity)
        except Exception:
            # the fill already happened and must stay booked; the failure is counted and logged loudly
            self._breaker_feed_errors += 1
            log.exception("could not feed the circuit breaker after a fill; its view of P&L may lag")

    # --- the trade ledger (issue 8) -------------------------------------------------------------------

    def restore(self, state: LedgerState) -> None:
        """Start from the ledger's book: positions, last marks, labels and (paper) cash; the paper CLOB too."""
        book = state.book
        self.portfolio = book.portfolio
        self._labels = dict(book.labels)
        self._marks_written = dict(book.marks)
        restore_account = getattr(self.clob, "restore_account", None)
        if restore_account is not None and self.portfolio.cash is not None:
            restore_account(self.portfolio.cash, {t: p.size for t, p in self.portfolio.positions.items()})
        if self._seed_paper_books:
            # the simulated market resumes where the bot last saw it: a fresh book would start each held token
            # at an arbitrary price, and the restart alone would move the day's P&L
            for token_id, position in self.portfolio.positions.items():
                self._seed_book(token_id, position.mark)

    async def publish_restored_equity(self) -> None:
        """Give the breaker the restored equity at start (it re-checks the day's loss against it)."""
        async with self._lock:
            equity = self.portfolio.equity()
            if self.ledger is not None and equity is not None:
                # the equity curve starts where the breaker's view of this run starts
                await self.ledger.record_equity(equity, self.portfolio.cash)
            await self._feed_breaker(None, None)

    def _ledger_failed(self) -> None:
        # a ledger that keeps failing is an error burst: the breaker halts new entries (exits still pass)
        self.ledger_write_errors += 1
        try:
            self.breaker.record_error("ledger_write")
        except Exception:
            self._breaker_feed_errors += 1
            log.exception("could not record a ledger write error in the circuit breaker")

    def _mark(self, token_id: str, price: float | None) -> None:
        self.portfolio.mark(token_id, price)
        position = self.portfolio.positions.get(token_id)
        if price is not None and position is not None and price != self._marks_written.get(token_id):
            # only a changed mark is written: the stop-loss round reads every held book every few seconds
            self._pending_marks[token_id] = price
            self._marks_written[token_id] = price

    async def _ledger_seen(self, trade: WalletTrade) -> int | bool | None:
        # False: already in the ledger (acted on before a restart); None: no ledger or it could not be written
        if self.ledger is None:
            return None
        try:
            row = await self.ledger.record_seen(
                wallet=trade.wallet,
                tx_hash=trade.tx_hash,
                token_id=trade.token_id,
                market=trade.market,
                title=trade.title,
                outcome=trade.outcome,
                side=str(trade.side),
                size=trade.size,
                price=trade.price,
                traded_at=trade.timestamp.timestamp(),
            )
        except Exception:
            self._ledger_failed()
            log.exception("could not record a followed trade in the ledger %s", self.ledger.path)
            return None
        if row is None:
            self.ledger_duplicates += 1
            log.info(
                "trade %s… token …%s is already in the ledger (acted on before): not copied again",
                trade.tx_hash[:12],
                trade.token_id[-8:],
            )
            return False
        return row

    async def _settle(self, trade_row: int | None, result: ExecutionResult, market: str) -> None:
        # after the decision -> ack window, both durable before the next trade: the ledger first, then the
        # breaker (one after the other: two fsyncs side by side measured slower here than in sequence)
        await self._ledger_outcome(trade_row, result, market)
        due, self._breaker_due = self._breaker_due, None
        if due is not None:
            await self._feed_breaker(*due)

    async def _ledger_outcome(self, trade_row: int | None, result: ExecutionResult, market: str) -> None:
        if self.ledger is None:
            return
        record = self._outcome_record(result, market)
        self._pending_marks = {}
        try:
            await self.ledger.record_outcome(trade_row, record)
        except Exception:
            # the trade already happened; the ledger lags until the next write and a restart would miss it
            self._ledger_failed()
            log.critical(
                "could not write a trade to the ledger %s; a restart would not restore it",
                self.ledger.path,
                exc_info=True,
            )

    async def _ledger_marks(self) -> None:
        if self.ledger is None or not self._pending_marks:
            return
        marks, self._pending_marks = self._pending_marks, {}
        try:
            await self.ledger.record_marks(marks)
        except Exception:
            self._ledger_failed()
            log.exception("could not write marks to the ledger %s", self.ledger.path)

    def _outcome_record(self, result: ExecutionResult, market: str) -> OutcomeRecord:
        title, outcome = self._labels.get(result.token_id, ("", ""))
        order, ack = result.order, result.ack
        fill = None
        if result.status is ExecutionStatus.EXECUTED and ack is not None and ack.filled_size > 0:
            fill = FillRecord(ack.filled_size, ack.avg_price, _fees(ack), result.realized_pnl)
        denied = result.status is ExecutionStatus.DENIED
        failed_kind = result.reason[len("clob_") :] if result.reason.startswith("clob_") else None
        return OutcomeRecord(
            token_id=result.token_id,
            side=str(result.side) if result.side is not None else "",
            status=result.status.value,
            reason=result.reason,
            deny_reasons=tuple(
                d.reason.value if d.reason is not None else d.check for d in result.decisions if not d.allowed
            )
            if denied
            else (),
            latency_ms=result.latency_ms,
            market=market,
            title=title,
            outcome=outcome,
            client_order_id=order.client_order_id if order is not None else None,
            order_size=order.size if order is not None else 0.0,
            limit_price=order.limit_price if order is not None else 0.0,
            exchange_order_id=ack.order_id if ack is not None else None,
            order_status=str(ack.status) if ack is not None else None,
            fill=fill,
            error_kind=failed_kind,
            error_message=self._last_error if failed_kind is not None else "",
            marks=dict(self._pending_marks),
            equity=self.portfolio.equity() if fill is not None else None,
            cash=self.portfolio.cash if fill is not None else None,
        )

    # --- bookkeeping --------------------------------------------------------------------------------

    def _passes(self, decisions: list[Decision], decision: Decision) -> bool:
        decisions.append(decision)
        key = decision.parameter or ("circuit_breaker" if decision.check == "circuit_breaker" else None)
        if key is not None:
            self._use(key, denied=not decision.allowed)
        if not decision.allowed and decision.check == "circuit_breaker":
            trip_kind = self.breaker.get_state().get("trip_kind")
            parameter = TRIP_KIND_PARAMETER.get(str(trip_kind))
            if parameter is not None:
                self._use(parameter, denied=True)
        return decision.allowed

    def _use(self, key: str, *, denied: bool) -> None:
        counts = self._usage.get(key)
        if counts is None:
            counts = self._usage[key] = [0, 0]
        counts[0] += 1
        if denied:
            counts[1] += 1

    def _denied(self, token_id: str, side: Side, decisions: list[Decision]) -> ExecutionResult:
        last = decisions[-1]
        log.debug("order denied for token …%s: %s", token_id[-8:], last.message)
        reason = last.reason.value if last.reason is not None else last.check
        return ExecutionResult(ExecutionStatus.DENIED, reason, token_id, side, decisions=tuple(decisions))

    def _failed(
        self,
        token_id: str,
        side: Side,
        error: ClobError,
        decisions: list[Decision],
        order: OrderRequest | None = None,
    ) -> ExecutionResult:
        kind = error.kind if error.kind in ERROR_KINDS else "other"
        self._errors[kind] += 1
        self._last_error = mask_addresses(str(error))
        try:
            self.breaker.record_error(kind)
        except Exception:
            self._breaker_feed_errors += 1
            log.exception("could not record a %s error in the circuit breaker", kind)
        log.warning("CLOB %s error for token …%s: %s", kind, token_id[-8:], error)
        return ExecutionResult(
            ExecutionStatus.FAILED, f"clob_{kind}", token_id, side, order, decisions=tuple(decisions)
        )

    def _count(self, result: ExecutionResult) -> None:
        self._trades[result.status.value] += 1
        if result.status is ExecutionStatus.DENIED:
            self._denials[result.reason] += 1

    def _errors_dict(self) -> dict[str, int]:
        errors = {kind: self._errors[kind] for kind in ERROR_KINDS}
        errors["total"] = sum(errors.values())
        return errors

    def _exposure(self) -> dict[str, Any]:
        return {"total": self.portfolio.total_exposure, "by_market": self.portfolio.exposure_by_market()}

    # --- readers (read-only, cheap, every value a fresh copy) ----------------------------------------

    async def get_performance_metrics(self) -> dict[str, Any]:
        """Latency percentiles (ms), trade outcomes, CLOB errors by kind, denials by reason."""
        return {
            "latency_ms": self.latency.summary(),
            "arrival_latency_ms": self.arrival_latency.summary(),
            "latency_budget_ms": self.settings.trading_latency_budget_ms,
            "trades": dict(self._trades),
            "errors": self._errors_dict(),
            "denials": dict(self._denials),
            "breaker_feed_errors": self._breaker_feed_errors,
            "ledger_write_errors": self.ledger_write_errors,
            "realized_pnl": self.portfolio.realized_pnl,
        }

    async def monitor_risk_parameters(self) -> dict[str, Any]:
        """Read-only view for the sidecar: parameters, breaker state, exposure, positions, memory."""
        portfolio = self.portfolio
        return {
            "risk_parameters": dict(self._risk_parameters),
            "breaker_state": str(self.breaker.state),
            "exposure": self._exposure(),
            "positions": portfolio.positions_list(),
            "open_positions": len(portfolio.positions),
            "cash": portfolio.cash,
            "equity": portfolio.equity(),
            "realized_pnl": portfolio.realized_pnl,
            "memory": {"rss_mb": self._rss.mb(), "refresh_seconds": self._rss.refresh_seconds},
            "read_only": True,
        }

    async def check_mcp_test_coverage_impact(self, coverage: float) -> dict[str, Any]:
        """How a test-coverage figure (0..1) bears on the risk code; never changes trading."""
        return coverage_impact_report(coverage, self.settings.mcp_testing_coverage_target)

    async def get_risk_parameter_usage_report(self) -> dict[str, Any]:
        """Each risk parameter: value, setting, how many checks used it and how many denials it caused."""
        usage = {key: (counts[0], counts[1]) for key, counts in self._usage.items()}
        return usage_report(self._risk_parameters, self._extra_parameters, usage)

    def snapshot(self) -> dict[str, Any]:
        """The risk-snapshot payload (`state/risk_state.json`), built from cached figures."""
        now = self._wall_clock()
        breaker_state = self.breaker.get_state()
        return {
            "schema_version": SCHEMA_VERSION,
            "pid": os.getpid(),
            "updated_at": now.isoformat(),
            "updated_at_epoch": now.timestamp(),
            "trading_mode": str(self.settings.trading_mode),
            "trading_state": str(breaker_state.get("state", self.breaker.state)),
            "wallet": self._wallet,
            "breaker": breaker_state,
            "risk_parameters": dict(self._risk_parameters),
            "exposure": self._exposure(),
            "positions": self.portfolio.positions_list(),
            "latency_ms": self.latency.summary(),
            "arrival_latency_ms": self.arrival_latency.summary(),
            "errors": self._errors_dict(),
            "trades": dict(self._trades),
            "denials": dict(self._denials),
            "realized_pnl": self.portfolio.realized_pnl,  # issue 9: the performance report's P&L
            "rss_mb": self._rss.mb(),
            "reconcile": self.reconcile_gate.as_dict(),  # issue 8: live mode; never blocks in paper mode
        }

    async def close(self) -> None:
        """Close the CLOB client if this executor created it."""
        if self._owns_clob:
            await self.clob.close()
