"""The integrator's risk-parameter scan: gated, one at a time per process, shaped by reports.scan_result."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from core.integrations import reports
from core.integrations.capabilities import CapabilitySlot, CapabilityUnavailable
from core.integrations.gate_rules import GateKind
from core.integrations.heavy_work_gate import HeavyWorkGate
from core.integrations.integrator_stats import IntegratorTally

log = logging.getLogger(__name__)


class ParameterScan:
    """Where every risk parameter is used, from the search capability, unless the gate defers it."""

    def __init__(
        self, gate: HeavyWorkGate, tally: IntegratorTally, search: CapabilitySlot, *, clock: Callable[[], datetime]
    ) -> None:
        self._gate = gate
        self._tally = tally
        self._search = search
        self._clock = clock
        self._running = False

    async def scan(self) -> dict[str, Any]:
        """The scan answer: completed, deferred (with the reason) or error (with the message)."""
        decision = await self._gate.gate(GateKind.SCAN)
        if not decision.allowed:
            return reports.deferred_scan(decision)
        if self._running:
            return reports.empty_scan("deferred", reason="scan deferred: a scan is already running in this process")
        self._running = True
        try:
            report = await self._search.get().risk_parameter_report()
        except CapabilityUnavailable as e:
            self._tally.counts["scan_errors"] += 1
            log.error("risk parameter scan cannot run: %s", e)
            return reports.empty_scan("error", message=f"risk parameter scan cannot run: {e}")
        except Exception as e:
            self._tally.counts["scan_errors"] += 1
            log.exception("risk parameter scan failed")
            return reports.empty_scan("error", message=f"risk parameter scan failed: {type(e).__name__}: {e}")
        finally:
            self._running = False
        now = self._clock()
        result = reports.scan_result(report, now)
        if result["status"] == "completed":
            self._tally.counts["scans"] += 1
            self._tally.last_scan_at = now.isoformat()
        else:
            self._tally.counts["scan_errors"] += 1
        return result
