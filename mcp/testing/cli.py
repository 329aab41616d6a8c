"""`python -m mcp.main_mcp test …`: one coverage run on any tree, printed for a human or as JSON.

Exit codes: 0 when the tests passed and coverage reaches the threshold, 1 otherwise, 2 for bad
arguments (missing project or interpreter, a path leaving the project, a threshold outside 0..1).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any, TextIO

from config.settings import Settings
from mcp.testing.plan import BadArgumentError, make_plan, resolve_root
from mcp.testing.results import RunStatus
from mcp.testing_server import TestingServer

EXIT_OK, EXIT_FAILED, EXIT_BAD_ARGUMENTS = 0, 1, 2
DEFAULT_TIMEOUT_SECONDS = float(Settings.model_fields["mcp_testing_timeout_seconds"].default)
_BAD_ARGUMENT_STATUSES = frozenset({RunStatus.MISSING_PROJECT.value, RunStatus.MISSING_INTERPRETER.value})


def _percent(value: float | None) -> str:
    return "n/a" if value is None else f"{value * 100:.1f}%"


def format_report(result: dict[str, Any]) -> str:
    """The human-readable report of one run."""
    lines = [
        f"status: {result['status']} ({result['message']})",
        f"tests: {result['passed']} passed, {result['failed']} failed, "
        f"{result['skipped']} skipped, {result['errors']} errors",
        f"coverage: {_percent(result['coverage'])} (threshold {_percent(result['threshold'])}): "
        + ("meets threshold" if result["meets_threshold"] else "BELOW THRESHOLD"),
    ]
    risk = result.get("risk_files") or {}
    if risk:
        lines.append(f"risk files: {_percent(result.get('risk_coverage'))} overall")
        lines += [f"  {path}: {_percent(fraction)}" for path, fraction in sorted(risk.items())]
    lines.append(f"duration: {result['duration_seconds']:.1f}s")
    if result.get("output_tail") and result["status"] != RunStatus.PASSED:
        lines += ["--- output (tail) ---", result["output_tail"]]
    return "\n".join(lines)


def _exit_code(result: dict[str, Any]) -> int:
    if result["status"] in _BAD_ARGUMENT_STATUSES:
        return EXIT_BAD_ARGUMENTS
    ok = result["status"] == RunStatus.PASSED and result["meets_threshold"]
    return EXIT_OK if ok else EXIT_FAILED


def test_command(
    root: Path,
    python: Path | None,
    sources: list[str],
    paths: list[str],
    as_json: bool,
    stream: TextIO,
    threshold: float,
    *,
    timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
) -> int:
    """Run one coverage run of the project at `root`, print the report to `stream`, return the exit code."""

    def fail(message: str) -> int:
        if as_json:
            stream.write(json.dumps({"status": "error", "message": message}) + "\n")
        else:
            stream.write(f"error: {message}\n")
        return EXIT_BAD_ARGUMENTS

    if not 0.0 <= threshold <= 1.0:
        return fail(f"threshold: expected a coverage fraction in 0..1, received {threshold}")
    resolved = resolve_root(root)
    if resolved is None:
        return fail(f"project root {root} is not an existing directory")
    try:
        make_plan(resolved, Path(python or "python"), paths, sources)
    except BadArgumentError as e:
        return fail(str(e))
    server = TestingServer(
        project_root=resolved,
        python=python,
        test_paths=paths,
        source_packages=sources,
        timeout_seconds=timeout_seconds,
        threshold=threshold,
        record_history=False,
    )
    progress = None
    if not as_json and stream.isatty():

        async def progress(done: float, total: float | None, message: str) -> None:
            stream.write(f"\r\x1b[K{message}")
            stream.flush()

    result = asyncio.run(server.run_tests(force=True, progress=progress))
    if progress is not None:
        stream.write("\r\x1b[K")
    stream.write((json.dumps(result, indent=2, sort_keys=True) if as_json else format_report(result)) + "\n")
    stream.flush()
    return _exit_code(result)


test_command.__test__ = False  # type: ignore[attr-defined]  # a CLI entry, not a pytest test
