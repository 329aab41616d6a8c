"""Pure shaping of the integrator's answers: scan reports, coverage results, latency figures.

Every answer carries its `status` ("completed", "deferred" with a `reason`, "error" with a `message`) and
the keys the user's test plan reads unconditionally (`total_scans`, `threshold`), whatever happened.
"""

from __future__ import annotations

from datetime import UTC, datetime
from numbers import Real
from typing import Any

from core.integrations.gate_rules import GateDecision
from core.integrations.rules import CoverageVerdict


def _number(value: Any) -> float | None:
    return None if isinstance(value, bool) or not isinstance(value, Real) else float(value)


def empty_scan(status: str, **details: Any) -> dict[str, Any]:
    """A scan answer with nothing scanned (deferred or failed)."""
    return {"status": status, "total_scans": 0, "scanned_params": {}, "violations": [], **details}


def deferred_scan(decision: GateDecision) -> dict[str, Any]:
    """The scan was not started; `reason` says why and what lifts it."""
    return empty_scan("deferred", reason=decision.reason, gate=decision.as_dict())


def scan_result(report: Any, now: datetime) -> dict[str, Any]:
    """The integrator's answer from CodebaseSearchServer.risk_parameter_report()."""
    if not isinstance(report, dict):
        return empty_scan("error", message=f"expected the search server's report (a dict), received {report!r:.80}")
    parameters = report.get("parameters")
    if report.get("status") == "deferred":
        reason = report.get("reason") or "no reason given"
        return empty_scan("deferred", reason=f"scan deferred by the search server: {reason}")
    if report.get("status") == "error":
        reason = report.get("reason") or report.get("message") or "no reason given"
        return empty_scan("error", message=f"codebase scan failed: {reason}")
    if report.get("status") != "ok" or not isinstance(parameters, dict):
        return empty_scan(
            "error",
            message=(
                f"expected a report with status 'ok' and a 'parameters' object, received status="
                f"{report.get('status')!r}: {report.get('message') or report.get('reason') or 'no message'}"
            ),
        )
    violations = report.get("violations")
    violations = violations if isinstance(violations, list) else []
    return {
        "status": "completed",
        # the number of parameters in this scan (the user prints "Scanned: N params")
        "total_scans": len(parameters),
        "scanned_params": parameters,
        "violations": violations,
        "violation_count": len(violations),
        "files_scanned": report.get("files_scanned"),
        "files_skipped": report.get("files_skipped", {}),
        "errors": report.get("errors", []),
        "duration_ms": report.get("duration_ms"),
        "root": report.get("root"),
        "scanned_at": now.isoformat(),
    }


def coverage_of(run: Any) -> float | None:
    """The coverage fraction (0..1) of a testing-server result, None when it has no usable figure."""
    if not isinstance(run, dict):
        return None
    coverage = _number(run.get("coverage"))
    return coverage if coverage is not None and 0.0 <= coverage <= 1.0 else None


def run_time(run: dict[str, Any]) -> datetime | None:
    """When a run started (its `started_at`, ISO-8601 or epoch seconds), None when unknown."""
    started = run.get("started_at")
    epoch = _number(started)
    if epoch is not None:
        return datetime.fromtimestamp(epoch, UTC)
    if isinstance(started, str):
        try:
            parsed = datetime.fromisoformat(started)
        except ValueError:
            return None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    return None


def age_seconds(run: dict[str, Any], now: datetime) -> float | None:
    """Seconds since the run started, None when unknown."""
    started = run_time(run)
    return None if started is None else max(0.0, (now - started).total_seconds())


def is_fresh(run: Any, now: datetime, max_age_seconds: float) -> bool:
    """A stored result recent enough to stand in for a run: it has a coverage figure and a start time
    no older than `max_age_seconds`."""
    if coverage_of(run) is None:
        return False
    age = age_seconds(run, now)
    return age is not None and age <= max_age_seconds


def deferred_coverage(decision: GateDecision, threshold: float, last_known: dict[str, Any] | None) -> dict[str, Any]:
    """No run now and no fresh result; `reason` says why, `last_known` shows the stale figure if any."""
    answer: dict[str, Any] = {
        "status": "deferred",
        "reason": decision.reason,
        "threshold": threshold,
        "gate": decision.as_dict(),
    }
    if last_known is not None and coverage_of(last_known) is not None:
        answer["last_known"] = {
            "coverage": coverage_of(last_known),
            "started_at": last_known.get("started_at"),
            "run_id": last_known.get("run_id"),
        }
    return answer


# testing-server statuses that mean "not now" rather than "broken"
SERVER_DEFERRALS = frozenset({"busy", "deferred"})


def deferred_by_server(run: dict[str, Any], threshold: float) -> dict[str, Any]:
    """The testing server declined to run now; its message is the reason."""
    reason = run.get("reason") or run.get("message") or f"the testing server answered {run.get('status')!r}"
    reason = f"test run deferred by the testing server: {reason}"
    return {"status": "deferred", "reason": reason, "threshold": threshold}


def coverage_error(message: str, threshold: float, run: Any = None) -> dict[str, Any]:
    """The coverage could not be measured; `message` says what happened."""
    answer: dict[str, Any] = {"status": "error", "message": message, "threshold": threshold}
    if isinstance(run, dict):
        answer["run_status"] = run.get("status")
    return answer


def coverage_completed(
    run: dict[str, Any],
    coverage: float,
    threshold: float,
    verdict: CoverageVerdict,
    *,
    action: str,
    source: str,
    now: datetime,
) -> dict[str, Any]:
    """A measured coverage: the figure, the threshold, the verdict and what the integrator did about it."""
    return {
        "status": "completed",
        "coverage": coverage,
        "threshold": threshold,
        "meets_threshold": verdict is CoverageVerdict.OK,
        "verdict": str(verdict),
        "action": action,  # none / alerted / tripped
        "source": source,  # run / history
        "run_status": run.get("status"),
        "run_id": run.get("run_id"),
        "started_at": run.get("started_at"),
        "age_seconds": age_seconds(run, now),
        "tests": {name: run.get(name) for name in ("passed", "failed", "skipped", "errors")},
        "risk_files": run.get("risk_files", {}),
    }


def run_key(run: dict[str, Any]) -> str:
    """Identifies one run, so one run alerts or trips at most once."""
    run_id = run.get("run_id")
    return str(run_id) if run_id is not None else f"{run.get('started_at')}:{run.get('coverage')}"


def latency_figures(performance: dict[str, Any], key: str = "latency_ms") -> tuple[float | None, int, str | None]:
    """(p99 in ms, sample count, why it cannot be judged) from get_performance_metrics() / the snapshot;
    `key`: latency_ms (decision -> ack) or arrival_latency_ms (trade arrival -> ack)."""
    view = performance.get("view")
    if isinstance(view, dict) and view.get("status") != "ok":
        return None, 0, f"snapshot not usable ({view.get('status')}): {view.get('reason')}"
    latency = performance.get(key)
    if not isinstance(latency, dict) or (key != "latency_ms" and not latency):
        what = "latency" if key == "latency_ms" else f"arrival -> ack latency ({key})"
        return None, 0, f"no {what} figures from the trade executor"
    p99 = _number(latency.get("p99"))
    count = _number(latency.get("count"))
    samples = int(count) if count is not None else 0
    if p99 is None:
        return None, samples, "no p99 in the trade executor's latency figures"
    if samples <= 0:
        return p99, 0, "no trades measured yet"
    return p99, samples, None
