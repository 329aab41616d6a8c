"""Codebase search server: where are the risk parameters used, and is anyone writing them? (SPEC §6)

Scans a code tree for the risk parameters (a configurable list plus every Settings field), classifying
each Python use as definition / read / write / hard-coded literal and matching config files by text;
flags writes outside the allowed modules, literals that shadow a setting and `.env.example` drift.
Scans run in a worker thread, incrementally (a cache keyed by path, size and mtime), and only when the
injected gate (the integrator's market-hours breaker) allows heavy work. The tools are plain typed
coroutines with typed results (mcp/search/tool_results.py, their outputSchemas); failures come back as
results with "status": "error", never as exceptions.

One-shot use, for operators and CI: `python -m mcp.main_mcp scan [--root DIR] [--param NAME …] [--json]`
calls `scan_command`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import IO, Any

from config.settings import Settings, get_settings
from mcp.containment.heavy import run_heavy
from mcp.protocol.clip import clip
from mcp.search.cache import ScanCache
from mcp.search.matcher import validate_names
from mcp.search.report import ScanReport, format_text
from mcp.search.scanner import ScanOptions, scan_tree
from mcp.search.textsearch import DEFAULT_TIME_BUDGET_SECONDS, SearchError, search_files
from mcp.search.tool_results import (
    NoScanYet,
    ParameterUsagesResult,
    RiskParameterReportResult,
    SearchCodeResult,
    SearchFailure,
    UsagesUnavailable,
)
from mcp.search.walker import walk_tree

__all__ = ["DEFAULT_RISK_PARAMETERS", "CodebaseSearchServer", "default_parameters", "scan_command", "scan_tree"]

logger = logging.getLogger(__name__)

DEFAULT_RISK_PARAMETERS: tuple[str, ...] = (
    "max_daily_loss",
    "max_position_size",
    "max_order_size",
    "max_total_exposure",
    "max_open_positions",
    "max_slippage",
    "min_order_size",
    "stop_loss",
    "max_orders_per_minute",
    "consecutive_loss_limit",
    "cooldown_seconds",
    "circuit_breaker_cooldown_seconds",
    "error_burst_count",
    "error_burst_window_seconds",
    "daily_loss_warning_percent",
    "daily_loss_critical_percent",
    "trading_latency_budget_ms",
)
CACHE_FILE_NAME = "codebase_search_cache.json"
FAILURES_BEFORE_CRITICAL = 3

# The integrator's gate: gate("scan") -> (allowed, reason), or an object with .allowed and .reason
Gate = Callable[[str], Awaitable[Any]]


def default_parameters() -> list[str]:
    """The risk parameters plus every Settings field, canonical and de-duplicated."""
    return validate_names([*DEFAULT_RISK_PARAMETERS, *Settings.model_fields])


class CodebaseSearchServer:
    """The sidecar's codebase search server (implements mcp.server.Server)."""

    name = "codebase_search"

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        root: Path | None = None,
        parameters: Sequence[str] | None = None,
        cache_path: Path | None = None,
        rescan_interval: float = 300.0,
        gate: Gate | None = None,
        options: ScanOptions | None = None,
        search_time_budget: float = DEFAULT_TIME_BUDGET_SECONDS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        settings = settings if settings is not None else get_settings()
        if rescan_interval <= 0:
            raise ValueError(f"expected rescan_interval > 0 seconds, received {rescan_interval}")
        if search_time_budget <= 0:
            raise ValueError(f"expected search_time_budget > 0 seconds, received {search_time_budget}")
        self.root = Path(root if root is not None else settings.mcp_search_root)
        self.parameters: list[str] = validate_names(parameters) if parameters is not None else default_parameters()
        self.options = options or ScanOptions()
        self.rescan_interval = rescan_interval
        self.search_time_budget = search_time_budget
        self._cache = ScanCache(cache_path if cache_path is not None else Path(settings.state_dir) / CACHE_FILE_NAME)
        self._gate = gate
        self._clock = clock
        self._lock = asyncio.Lock()
        self._thread_lock = threading.Lock()  # a cancelled scan's thread may still be running: one at a time
        self._report: ScanReport | None = None
        self._scan_status = "starting"  # "starting" | "ok" | "deferred" | "error"
        self._reason = ""
        self._last_attempt: float | None = None
        self._scans = 0
        self._deferrals = 0
        self._consecutive_failures = 0

    # --- lifecycle -----------------------------------------------------------------------------------
    async def run(self, ready: asyncio.Event) -> None:
        """Initial scan (off the event loop, if the gate allows), ready, then a rescan every interval."""
        await self.refresh()
        ready.set()
        while True:
            await asyncio.sleep(self.rescan_interval)
            await self.refresh()

    def health(self) -> dict[str, Any]:
        """Cached state: healthy while scans succeed or are deferred by the gate."""
        if self._consecutive_failures >= FAILURES_BEFORE_CRITICAL:
            status = "critical"
        elif self._scan_status == "error":
            status = "degraded"
        elif self._scan_status == "starting":
            status = "starting"  # the first scan has not finished: nothing known yet, nothing wrong either
        else:
            status = "healthy"
        report = self._report
        return {
            "status": status,
            "scan_status": self._scan_status,
            "reason": self._reason,
            "root": str(self.root),
            "parameters": len(self.parameters),
            "scans": self._scans,
            "deferrals": self._deferrals,
            "consecutive_failures": self._consecutive_failures,
            "last_attempt_at": self._last_attempt,
            "last_scan_at": report.scanned_at if report else None,
            "last_duration_ms": round(report.duration_ms, 1) if report else None,
            "files_scanned": report.files_scanned if report else 0,
            "violations": len(report.violations) if report else 0,
            "errors": len(report.errors) if report else 0,
        }

    def tools(self) -> list[Callable[..., Any]]:
        """The MCP tools: plain typed coroutines."""
        return [self.search_code, self.find_risk_parameter_usages, self.risk_parameter_report]

    # --- scanning ------------------------------------------------------------------------------------
    async def refresh(self) -> dict[str, str]:
        """Rescan now if the gate allows: {"status": "ok"|"deferred"|"error", "reason": …}."""
        self._last_attempt = self._clock()
        allowed, reason = await self._ask_gate("scan")
        if not allowed:
            self._deferrals += 1
            self._scan_status, self._reason = "deferred", reason
            logger.info("codebase scan deferred: %s", reason)
            return {"status": "deferred", "reason": reason}
        async with self._lock:
            try:
                report = await run_heavy(self._scan_blocking, self.parameters, self._cache)
            except Exception as e:  # contained: the server keeps serving the last report
                self._consecutive_failures += 1
                self._scan_status, self._reason = "error", f"{type(e).__name__}: {e}"
                logger.exception("codebase scan of %s failed", self.root)
                return {"status": "error", "reason": self._reason}
        self._report = report
        self._scans += 1
        self._consecutive_failures = 0
        self._scan_status, self._reason = "ok", ""
        return {"status": "ok", "reason": ""}

    def _scan_blocking(self, parameters: Sequence[str], cache: ScanCache | None) -> ScanReport:
        with self._thread_lock:
            return scan_tree(self.root, parameters, cache, options=self.options)

    async def _ask_gate(self, kind: str) -> tuple[bool, str]:
        if self._gate is None:
            return True, ""
        try:
            decision = await self._gate(kind)
        except Exception as e:  # a broken gate must not let heavy work through during trading
            logger.warning("gate(%r) failed, deferring: %s", kind, e)
            return False, f"gate failed: {type(e).__name__}: {e}"
        if isinstance(decision, tuple):
            return bool(decision[0]), str(decision[1]) if len(decision) > 1 else ""
        return bool(decision.allowed), str(getattr(decision, "reason", ""))

    # --- tools ---------------------------------------------------------------------------------------
    async def risk_parameter_report(self) -> RiskParameterReportResult | NoScanYet | SearchFailure:
        """Every risk parameter's usages (definition/read/write/literal/text), violations and scan errors."""
        outcome = await self.refresh()
        if self._report is None:
            return {
                "status": outcome["status"],
                "reason": outcome["reason"],
                "root": str(self.root),
                "scanned_at": None,
                "files_scanned": 0,
                "files_skipped": {},
                "duration_ms": 0.0,
                "parameters": {},
                "violations": [],
                "errors": [],
            }
        payload = self._report.to_dict()
        payload["status"], payload["reason"] = outcome["status"], outcome["reason"]
        payload["stale"] = outcome["status"] != "ok"  # the figures are from the last scan that ran
        return payload

    async def find_risk_parameter_usages(self, name: str) -> ParameterUsagesResult | UsagesUnavailable | SearchFailure:
        """Where one parameter (or any identifier) is used: usage_count, locations, files, by_kind, violations."""
        if not isinstance(name, str):
            return {"status": "error", "error": f"expected a parameter name string, received {type(name).__name__}"}
        try:
            (parameter,) = validate_names([name])
        except ValueError as e:
            return {"status": "error", "error": str(e)}
        if parameter in self.parameters:
            outcome = await self.refresh()
            report = self._report
        else:
            # not a configured parameter: a one-off scan for just this name, no cache
            allowed, reason = await self._ask_gate("scan")
            if not allowed:
                return {"status": "deferred", "reason": reason, "parameter": parameter}
            try:
                report = await run_heavy(self._scan_blocking, [parameter], None)
            except Exception as e:  # reported as the tool's result, the server goes on
                logger.exception("one-off scan for %s failed", parameter)
                return {"status": "error", "error": f"{type(e).__name__}: {e}", "parameter": parameter}
            outcome = {"status": "ok", "reason": ""}
        if report is None:
            return {"status": outcome["status"], "reason": outcome["reason"], "parameter": parameter}
        return {
            "status": outcome["status"],
            "reason": outcome["reason"],
            "parameter": parameter,
            "configured": parameter in self.parameters,
            **report.parameter_summary(parameter),
            "violations": [v.to_dict() for v in report.violations if v.parameter == parameter],
        }

    async def search_code(
        self, pattern: str, regex: bool = False, glob: str | None = None, max_results: int = 100
    ) -> SearchCodeResult | SearchFailure:
        """Search the tree's files for a literal (default) or a regex; glob filters paths (relative to the root)."""
        try:
            return await run_heavy(self._search_blocking, pattern, bool(regex), glob, max_results)
        except SearchError as e:
            return {"status": "error", "error": str(e), "pattern": clip(pattern)}
        except OSError as e:
            return {
                "status": "error",
                "error": f"cannot search {self.root}: {e.strerror or e}",
                "pattern": clip(pattern),
            }

    def searchable_files(self) -> list[str]:
        """The files a search reads now: a stat walk (no file is opened), so a file added since the last scan is
        searched too and a deleted one is not. .gitignore and the size limit apply here; binaries are skipped when
        read."""
        walk = walk_tree(
            self.root, respect_gitignore=self.options.respect_gitignore, extra_ignores=self.options.extra_ignores
        )
        limit = self.options.max_file_bytes
        files = []
        for entry in walk.files:
            try:
                if entry.entry.stat(follow_symlinks=False).st_size > limit:
                    continue
            except OSError:
                continue  # gone since the listing: nothing to search
            files.append(entry.rel)
        return files

    def _search_blocking(self, pattern: str, is_regex: bool, glob: str | None, max_results: int) -> dict[str, Any]:
        files = self.searchable_files()
        return search_files(
            str(self.root.resolve()),
            files,
            pattern,
            is_regex=is_regex,
            glob=glob,
            max_results=max_results,
            time_budget=self.search_time_budget,
            max_file_bytes=self.options.max_file_bytes,
        )


def scan_command(
    root: Path,
    params: list[str] | None,
    as_json: bool,
    stream: IO[str],
    *,
    options: ScanOptions | None = None,
    err: IO[str] | None = None,
) -> int:
    """One scan of `root`, printed to `stream`: exit 0 clean, 1 violations found, 2 bad arguments.

    Example: `scan_command(Path("."), ["max_daily_loss"], as_json=True, stream=sys.stdout)`.
    Progress goes to stderr, only when stderr is a terminal.
    """
    err = err if err is not None else sys.stderr
    try:
        parameters = validate_names(params) if params else default_parameters()
    except ValueError as e:
        print(f"error: {e}", file=err)
        return 2
    if not Path(root).is_dir():
        print(f"error: expected --root to be a directory, received {str(root)!r}", file=err)
        return 2
    progress = _terminal_progress(err) if err.isatty() else None
    try:
        report = scan_tree(Path(root), parameters, None, options=options, progress=progress)
    except OSError as e:
        print(f"error: cannot scan {root}: {e.strerror or e}", file=err)
        return 2
    if as_json:
        json.dump(report.to_dict(), stream, indent=2)
        stream.write("\n")
    else:
        stream.write(format_text(report))
    return 1 if report.violations else 0


def _terminal_progress(err: IO[str]) -> Callable[[int, int], None]:
    def show(done: int, total: int) -> None:
        end = "\n" if done == total else ""
        err.write(f"\rscanning: {done}/{total} files{end}")
        err.flush()

    return show
