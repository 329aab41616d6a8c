"""Codebase search server (SPEC §6): scans, violations, bad files, the incremental cache, tools, run()."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from config.settings import Settings
from mcp.codebase_search import CodebaseSearchServer, default_parameters, scan_command
from mcp.search import Kind, Rule, ScanCache, ScanOptions, SkipReason, scan_tree
from mcp.search.matcher import NameMatcher
from mcp.search.rules import env_example_variables
from mcp.search.scanner import analyze_file
from mcp.server import Server
from tests.waiting import eventually

PARAMS = ["max_daily_loss", "stop_loss", "log_level"]
OLD_NS = 1_600_000_000 * 10**9  # 2020: far outside the "modified just now" window


def write(root: Path, rel: str, content: str | bytes) -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(textwrap.dedent(content))
    return path


def age(root: Path, ns: int = OLD_NS) -> None:
    """Give every file an old mtime, as a checked-out tree has (fresh files are never cached)."""
    for path in root.rglob("*"):
        if path.is_file() and not path.is_symlink():
            os.utime(path, ns=(ns, ns))


def make_project(root: Path) -> Path:
    """A small project with one of everything the scanner must classify."""
    write(
        root,
        "config/settings.py",
        """
        from pydantic_settings import BaseSettings, SettingsConfigDict

        class Settings(BaseSettings):
            model_config = SettingsConfigDict(env_file=".env")
            max_daily_loss: float = 100.0
            stop_loss: float = 0.25
            log_level: str = "INFO"
        """,
    )
    write(root, ".env.example", "MAX_DAILY_LOSS=100\nSTOP_LOSS=0.25\n# UNKNOWN_KNOB=1\n")
    write(
        root,
        "core/circuit_breaker.py",
        """
        class CircuitBreaker:
            def __init__(self, max_daily_loss):
                self.max_daily_loss = max_daily_loss

            def tighten(self, factor):
                self.max_daily_loss = self.max_daily_loss * factor
        """,
    )
    write(
        root,
        "core/strategy.py",
        """
        MAX_DAILY_LOSS = 250.0  # hard-coded: shadows the setting

        def adjust(settings, loss):
            settings.max_daily_loss = loss * 2
            if settings.stop_loss > 0.5:
                return None
            return settings.max_daily_loss
        """,
    )
    write(root, "tests/test_strategy.py", "s = Settings(max_daily_loss=5.0)\ns.max_daily_loss = 1\n")
    write(root, "scripts/deploy.sh", "#!/bin/sh\nexport MAX_DAILY_LOSS=100\n")
    write(root, "README.md", "Set MAX_DAILY_LOSS in .env\n")  # documentation is not scanned
    write(root, ".gitignore", "generated/\n")
    write(root, "generated/override.py", "settings.max_daily_loss = 1e9\n")
    age(root)
    return root


def by_kind(report: dict, name: str) -> dict[str, int]:
    return {kind: count for kind, count in report["parameters"][name]["by_kind"].items() if count}


# --- a scan of a project ---------------------------------------------------------------------------
def test_scan_classifies_every_use_and_flags_the_violations(tmp_path: Path) -> None:
    report = scan_tree(make_project(tmp_path), PARAMS).to_dict()
    assert report["status"] == "ok"
    assert by_kind(report, "max_daily_loss") == {"definition": 3, "read": 3, "write": 2, "literal": 3, "text": 2}
    assert report["parameters"]["max_daily_loss"]["files"] == [
        ".env.example",
        "config/settings.py",
        "core/circuit_breaker.py",
        "core/strategy.py",
        "scripts/deploy.sh",
        "tests/test_strategy.py",
    ]
    assert {"file": "core/strategy.py", "line": 5, "kind": "write", "detail": "attribute assignment"} in report[
        "parameters"
    ]["max_daily_loss"]["locations"]
    violations = {(v["rule"], v["file"], v["line"], v["parameter"]) for v in report["violations"]}
    assert violations == {
        (Rule.HARDCODED_LITERAL, "core/strategy.py", 2, "max_daily_loss"),
        (Rule.WRITE_OUTSIDE_ALLOWED, "core/strategy.py", 5, "max_daily_loss"),
        (Rule.HARDCODED_LITERAL, "core/strategy.py", 6, "stop_loss"),
        (Rule.ENV_NOT_IN_SETTINGS, ".env.example", 3, "unknown_knob"),
        (Rule.SETTING_NOT_IN_ENV, "config/settings.py", 8, "log_level"),
    }
    assert report["files_skipped"] == {"gitignored": 1}
    assert report["errors"] == []


def test_violation_messages_say_what_was_expected(tmp_path: Path) -> None:
    report = scan_tree(make_project(tmp_path), PARAMS)
    messages = {v.rule: v.message for v in report.violations}
    assert "expected writes only in config/" in messages[Rule.WRITE_OUTSIDE_ALLOWED]
    assert "read it from Settings" in messages[Rule.HARDCODED_LITERAL]
    assert "expected a line LOG_LEVEL=<default>" in messages[Rule.SETTING_NOT_IN_ENV]


def test_allow_lists_are_configurable(tmp_path: Path) -> None:
    options = ScanOptions(allowed_write_modules=("core/",), literal_modules=("config/", "core/strategy.py"))
    report = scan_tree(make_project(tmp_path), PARAMS, options=options)
    assert {v.rule for v in report.violations} == {Rule.ENV_NOT_IN_SETTINGS, Rule.SETTING_NOT_IN_ENV}


def test_drift_is_checked_only_when_both_files_exist(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    (root / ".env.example").unlink()
    rules = {v.rule for v in scan_tree(root, PARAMS).violations}
    assert Rule.ENV_NOT_IN_SETTINGS not in rules and Rule.SETTING_NOT_IN_ENV not in rules


def test_drift_check_reports_a_settings_module_that_does_not_parse(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    write(root, "config/settings.py", "class Settings(:\n")
    write(root, "config/other.py", "class Config:\n    x = 1\n")
    assert scan_tree(root, PARAMS).errors == [
        {
            "file": "config/settings.py",
            "reason": "drift check skipped: the settings module does not parse: invalid syntax (line 1)",
        }
    ]
    write(root, "config/settings.py", "class Config:\n    x = 1\n")
    assert scan_tree(root, PARAMS).errors == [
        {
            "file": "config/settings.py",
            "reason": "drift check skipped: expected a class 'Settings' in the settings module, found none",
        }
    ]


def test_our_own_tree_settings_and_env_example_are_in_step(project_root: Path) -> None:
    """The real config/settings.py is read as definitions and the real .env.example documents every field."""
    report = scan_tree(project_root, default_parameters())
    for name in ("max_daily_loss", "stop_loss", "max_order_size"):
        assert ("config/settings.py", Kind.DEFINITION) in {(rel, u.kind) for rel, u in report.locations(name)}
    if (project_root / ".env.example").is_file():
        drift = [v for v in report.violations if v.rule in (Rule.ENV_NOT_IN_SETTINGS, Rule.SETTING_NOT_IN_ENV)]
        assert drift == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("MAX_DAILY_LOSS=100\n", {"MAX_DAILY_LOSS": 1}),
        ("export STOP_LOSS = 0.2\n", {"STOP_LOSS": 1}),
        ("# secret, keep empty\n# TELEGRAM_BOT_TOKEN=\n", {"TELEGRAM_BOT_TOKEN": 2}),
        ("# 137 = Polygon mainnet\n# note = prose, not a variable\n", {}),
        ("log_level=debug\n", {"LOG_LEVEL": 1}),
    ],
)
def test_env_example_variables(text: str, expected: dict[str, int]) -> None:
    assert env_example_variables(text) == expected


# --- bad files -------------------------------------------------------------------------------------
def make_bad_tree(root: Path, outside: Path) -> Path:
    write(root, "good.py", "limit = settings.max_daily_loss\n")
    write(root, "binary.py", b"\x00\x01\x02max_daily_loss\x00")
    write(root, "huge.py", "x = settings.max_daily_loss\n" + "# padding\n" * 500)
    write(root, "broken.py", "def f(:\n    return max_daily_loss\n")
    write(root, "latin1.py", b"name = '\xe9t\xe9'\nlimit = max_daily_loss\n")
    write(root, "ignored/secret.py", "settings.max_daily_loss = 1e9\n")
    write(root, ".gitignore", "ignored/\n")
    write(outside, "outside.py", "max_daily_loss = 1\n")
    (root / "loop").symlink_to("loop")
    (root / "up").symlink_to(".")
    (root / "escape.py").symlink_to(outside / "outside.py")
    (root / "dangling.py").symlink_to(root / "gone.py")
    os.mkfifo(root / "fifo.py")
    age(root)
    return root


def test_bad_files_are_reported_and_never_fatal(tmp_path: Path) -> None:
    root = make_bad_tree(tmp_path / "root", tmp_path / "outside")
    report = scan_tree(root, PARAMS, options=ScanOptions(max_file_bytes=1000)).to_dict()
    assert report["files_skipped"] == {
        "binary": 1,
        "gitignored": 1,
        "special_file": 1,
        "symlink_dangling": 1,
        "symlink_loop": 2,
        "symlink_outside_root": 1,
        "too_large": 1,
    }
    skipped = {(s["file"], s["reason"]) for s in report["skipped"]}
    assert {("binary.py", "binary"), ("huge.py", "too_large"), ("fifo.py", "special_file")} <= skipped
    errors = {e["file"]: e["reason"] for e in report["errors"]}
    assert errors["broken.py"].startswith("does not parse: invalid syntax")
    assert errors["latin1.py"].startswith("does not parse:") and "utf-8" in errors["latin1.py"]
    assert errors["loop"].startswith("symlink_loop") and errors["up"].startswith("symlink_loop")
    assert errors["escape.py"].startswith("symlink_outside_root")
    assert errors["dangling.py"].startswith("symlink_dangling")
    # a file that does not parse still shows its mentions, as text, so an error cannot hide a use
    locations = {(loc["file"], loc["kind"]) for loc in report["parameters"]["max_daily_loss"]["locations"]}
    assert locations == {("good.py", "read"), ("broken.py", "text"), ("latin1.py", "text")}


def test_a_file_that_vanishes_after_the_walk_is_reported_unreadable(tmp_path: Path) -> None:
    result = analyze_file(str(tmp_path / "gone.py"), "gone.py", "python", 10, 1, NameMatcher(PARAMS), 1000)
    assert result.skip == SkipReason.UNREADABLE
    assert result.error is not None and "No such file" in result.error


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_a_file_without_read_permission_is_reported_unreadable(tmp_path: Path) -> None:
    write(tmp_path, "private.py", "x = max_daily_loss\n").chmod(0)
    report = scan_tree(tmp_path, PARAMS)
    assert report.files_skipped == {"unreadable": 1}
    assert report.errors[0]["file"] == "private.py"


SETPRIV = shutil.which("setpriv")


@pytest.mark.integration
@pytest.mark.skipif(os.geteuid() != 0 or SETPRIV is None, reason="needs root and setpriv to drop the DAC override")
def test_unreadable_files_and_directories_are_reported_by_a_scan_without_dac_override(
    tmp_path: Path, project_root: Path
) -> None:
    """As root, reading is refused only once CAP_DAC_OVERRIDE is gone: the scan runs in such a child process."""
    root = tmp_path / "tree"
    write(root, "good.py", "x = settings.max_daily_loss\n")
    write(root, "private.py", "x = settings.max_daily_loss\n").chmod(0)
    write(root, "locked/inner.py", "x = 1\n")
    (root / "locked").chmod(0)
    code = (
        "import sys; from pathlib import Path; from mcp.codebase_search import scan_command; "
        "sys.exit(scan_command(Path(sys.argv[1]), ['max_daily_loss'], True, sys.stdout))"
    )
    done = subprocess.run(
        [SETPRIV, "--bounding-set=-dac_override,-dac_read_search", "--inh-caps=-all", sys.executable, "-c", code, root],
        cwd=project_root,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    (root / "locked").chmod(0o755)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["files_skipped"] == {"unreadable": 1, "unreadable_directory": 1}
    errors = {e["file"]: e["reason"] for e in report["errors"]}
    assert errors == {
        "locked": "unreadable_directory: Permission denied",
        "private.py": "unreadable: Permission denied",
    }
    assert report["parameters"]["max_daily_loss"]["files"] == ["good.py"]


def test_a_missing_root_raises_with_what_was_expected(tmp_path: Path) -> None:
    with pytest.raises(OSError, match="expected the scan root to be a directory"):
        scan_tree(tmp_path / "nope", PARAMS)


# --- incremental cache -----------------------------------------------------------------------------
def test_rescan_reads_only_the_changed_file(tmp_path: Path) -> None:
    root = make_project(tmp_path / "project")
    cache = ScanCache(tmp_path / "cache.json")
    first = scan_tree(root, PARAMS, cache)
    assert (first.files_analyzed, first.files_cached) == (6, 0)

    unchanged = scan_tree(root, PARAMS, cache)
    assert (unchanged.files_analyzed, unchanged.files_cached, unchanged.files_parsed) == (0, 6, 0)
    assert unchanged.usages == first.usages

    changed = write(root, "core/strategy.py", "def f(s):\n    return s.stop_loss\n")
    os.utime(changed, ns=(OLD_NS + 10**9, OLD_NS + 10**9))
    third = scan_tree(root, PARAMS, cache)
    assert (third.files_analyzed, third.files_cached, third.files_parsed) == (1, 5, 1)
    assert third.usages["core/strategy.py"][0].kind is Kind.READ

    (root / "scripts" / "deploy.sh").unlink()
    fourth = scan_tree(root, PARAMS, cache)
    assert "scripts/deploy.sh" not in fourth.usages and "scripts/deploy.sh" not in cache.entries


def test_the_cache_survives_a_restart(tmp_path: Path) -> None:
    root = make_project(tmp_path / "project")
    scan_tree(root, PARAMS, ScanCache(tmp_path / "cache.json"))
    restarted = ScanCache(tmp_path / "cache.json")
    report = scan_tree(root, PARAMS, restarted)
    assert (report.files_analyzed, report.cache_status) == (0, "loaded")


def test_files_modified_just_now_are_not_trusted_to_the_cache(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    write(root, "core/fresh.py", "x = max_daily_loss\n")  # mtime: now
    cache = ScanCache()
    scan_tree(root, PARAMS, cache)
    again = scan_tree(root, PARAMS, cache)
    assert again.files_analyzed == 1  # only the fresh file: same-tick edits would go unseen otherwise


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[1, 2]", b'{"schema_version": 99}', b'{"schema_version": 1, "fingerprint": "x", "entries": 5}',
     b'{"schema_version": 1, "fingerprint": "x", "entries": {"a.py": [1, 2]}}'],
)  # fmt: skip
def test_a_corrupt_cache_is_rebuilt_with_a_warning(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    root = make_project(tmp_path / "project")
    expected = scan_tree(root, PARAMS).usages
    (tmp_path / "cache.json").write_bytes(content)
    with caplog.at_level(logging.WARNING):
        report = scan_tree(root, PARAMS, ScanCache(tmp_path / "cache.json"))
    assert report.cache_status == "rebuilt" and report.usages == expected
    assert "cache rebuilt" in caplog.text
    assert json.loads((tmp_path / "cache.json").read_text())["schema_version"] == 1


def test_changing_the_parameters_resets_the_cache(tmp_path: Path) -> None:
    root = make_project(tmp_path / "project")
    cache = ScanCache(tmp_path / "cache.json")
    scan_tree(root, PARAMS, cache)
    report = scan_tree(root, ["max_daily_loss"], cache)
    assert (report.cache_status, report.files_analyzed) == ("reset", 6)


def test_an_unwritable_cache_does_not_fail_the_scan(tmp_path: Path) -> None:
    root = make_project(tmp_path / "project")
    (tmp_path / "cache.json").mkdir()  # a directory where the file should be
    report = scan_tree(root, PARAMS, ScanCache(tmp_path / "cache.json"))
    assert report.cache_status == "unsaved" and report.files_scanned == 6


# --- the server's tools ----------------------------------------------------------------------------
def make_server(root: Path, tmp_path: Path, **kwargs: object) -> CodebaseSearchServer:
    return CodebaseSearchServer(
        Settings(_env_file=None),  # type: ignore[call-arg]
        root=root,
        parameters=PARAMS,
        cache_path=tmp_path / "state" / "cache.json",
        **kwargs,  # type: ignore[arg-type]
    )


async def test_risk_parameter_report_tool(tmp_path: Path) -> None:
    server = make_server(make_project(tmp_path / "p"), tmp_path)
    report = await server.risk_parameter_report()
    assert report["status"] == "ok" and report["stale"] is False
    assert set(report) >= {
        "root",
        "files_scanned",
        "files_skipped",
        "duration_ms",
        "parameters",
        "violations",
        "errors",
    }
    assert report["parameters"]["stop_loss"]["usage_count"] == 3
    json.dumps(report)  # JSON-safe, as it goes on the wire


async def test_find_risk_parameter_usages_tool(tmp_path: Path) -> None:
    server = make_server(make_project(tmp_path / "p"), tmp_path)
    found = await server.find_risk_parameter_usages("MAX_DAILY_LOSS")
    assert (found["status"], found["parameter"], found["configured"]) == ("ok", "max_daily_loss", True)
    assert found["usage_count"] == 13 and len(found["violations"]) == 2

    other = await server.find_risk_parameter_usages("factor")  # not configured: a one-off scan
    assert (other["status"], other["configured"], other["usage_count"]) == ("ok", False, 2)

    bad = await server.find_risk_parameter_usages("max daily loss")
    assert bad["status"] == "error" and "identifiers" in bad["error"]


async def test_search_code_literal_regex_glob_and_limits(tmp_path: Path) -> None:
    server = make_server(make_project(tmp_path / "p"), tmp_path)
    literal = await server.search_code("max_daily_loss")
    assert literal["status"] == "ok" and literal["match_count"] >= 6
    assert {"file": "core/strategy.py", "line": 5, "text": "    settings.max_daily_loss = loss * 2"} in literal[
        "matches"
    ]
    regex = await server.search_code(r"MAX_\w+ = \d", regex=True)
    assert [(m["file"], m["line"]) for m in regex["matches"]] == [("core/strategy.py", 2)]
    only_core = await server.search_code("max_daily_loss", glob="core/*.py")
    assert {m["file"] for m in only_core["matches"]} == {"core/circuit_breaker.py", "core/strategy.py"}
    by_name = await server.search_code("MAX_DAILY_LOSS", glob="*.sh")  # literal search is case-sensitive
    assert {m["file"] for m in by_name["matches"]} == {"scripts/deploy.sh"}
    limited = await server.search_code("max_daily_loss", max_results=2)
    assert limited["match_count"] == 2 and limited["truncated"] is True
    ignored = await server.search_code("1e9")
    assert ignored["matches"] == []  # gitignored files are not searched


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"pattern": ""}, "non-empty pattern"),
        ({"pattern": "x" * 1001}, "at most 1000 characters"),
        ({"pattern": "(unclosed", "regex": True}, "invalid regular expression"),
        ({"pattern": "(a+)+$", "regex": True}, "pattern too slow (rejected before running)"),
        ({"pattern": "x", "glob": "../outside/*"}, "without '..'"),
        ({"pattern": "x", "glob": "/etc/*"}, "relative to the search root"),
        ({"pattern": "x", "max_results": 0}, "max_results between 1 and 1000"),
        ({"pattern": "x", "max_results": 5000}, "max_results between 1 and 1000"),
    ],
)
async def test_search_code_rejects_bad_arguments(tmp_path: Path, kwargs: dict, message: str) -> None:
    server = make_server(make_project(tmp_path / "p"), tmp_path)
    result = await server.search_code(**kwargs)
    assert result["status"] == "error" and message in result["error"]


async def test_a_pathological_regex_is_stopped_by_the_time_budget(tmp_path: Path) -> None:
    root = tmp_path / "p"
    write(root, "long.txt", "a" * 5000 + "b\n")
    server = make_server(root, tmp_path, search_time_budget=0.2)
    # (a|aa)+ escapes the nested-quantifier check; the budget inside the matcher still stops it
    result = await server.search_code("(a|aa)+$", regex=True)
    assert result["status"] == "error"
    assert "pattern too slow" in result["error"] and "0.2 s budget" in result["error"]


async def test_search_code_sees_files_added_changed_and_deleted_since_the_last_scan(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p")
    write(root, ".gitignore", "ignored/\n")
    server = make_server(root, tmp_path, options=ScanOptions(max_file_bytes=1000))
    assert (await server.refresh())["status"] == "ok"  # the scan's file list is now in memory

    async def files_with(word: str) -> set[str]:
        result = await server.search_code(word)
        assert result["status"] == "ok", result
        return {match["file"] for match in result["matches"]}

    write(root, "core/new_module.py", "NEEDLE = 1\n")
    assert await files_with("NEEDLE") == {"core/new_module.py"}  # added after the scan, found
    write(root, "core/new_module.py", "HAYSTACK = 2\n")
    assert await files_with("NEEDLE") == set() and await files_with("HAYSTACK") == {"core/new_module.py"}
    (root / "core" / "new_module.py").unlink()
    assert await files_with("HAYSTACK") == set()  # deleted, gone
    # the limits still hold for a new file: .gitignore, the size limit, binaries
    write(root, "ignored/secret.py", "NEEDLE = 3\n")
    write(root, "core/huge.py", "NEEDLE = 4\n" + "#" * 2000)
    write(root, "core/blob.bin", b"NEEDLE\0\x01\x02")
    assert await files_with("NEEDLE") == set()
    assert "core/new_module.py" not in server.searchable_files() and "core/huge.py" not in server.searchable_files()


# --- the server: Server protocol, run(), gate ------------------------------------------------------
@dataclass
class FakeGate:
    """The integrator's gate as the server sees it: an async callable returning (allowed, reason)."""

    allowed: bool
    reason: str = "market hours (09:00-16:00 UTC)"
    calls: int = 0

    async def __call__(self, kind: str) -> tuple[bool, str]:
        assert kind == "scan"
        self.calls += 1
        return self.allowed, self.reason


async def run_until_ready(server: CodebaseSearchServer) -> asyncio.Task[None]:
    ready = asyncio.Event()
    task = asyncio.create_task(server.run(ready))
    await asyncio.wait_for(ready.wait(), timeout=30)
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_server_speaks_the_server_protocol(tmp_path: Path) -> None:
    server = make_server(make_project(tmp_path / "p"), tmp_path)
    assert isinstance(server, Server) and server.name == "codebase_search"
    assert [tool.__name__ for tool in server.tools()] == [
        "search_code",
        "find_risk_parameter_usages",
        "risk_parameter_report",
    ]
    assert server.health()["status"] == "starting"  # not scanned yet: nothing known, nothing wrong


async def test_run_scans_then_signals_ready(tmp_path: Path) -> None:
    server = make_server(make_project(tmp_path / "p"), tmp_path)
    task = await run_until_ready(server)
    health = server.health()
    assert (health["status"], health["scan_status"], health["scans"], health["files_scanned"]) == (
        "healthy",
        "ok",
        1,
        6,
    )
    assert health["violations"] == 5
    assert (tmp_path / "state" / "cache.json").is_file()
    await stop(task)


async def test_run_defers_heavy_work_when_the_gate_refuses(tmp_path: Path) -> None:
    gate = FakeGate(allowed=False)
    server = make_server(make_project(tmp_path / "p"), tmp_path, gate=gate, rescan_interval=0.01)
    task = await run_until_ready(server)
    assert server.health()["scan_status"] == "deferred" and server.health()["status"] == "healthy"
    report = await server.risk_parameter_report()
    assert report["status"] == "deferred" and report["reason"] == gate.reason and report["parameters"] == {}
    assert not (tmp_path / "state" / "cache.json").exists()  # nothing was scanned

    gate.allowed = True  # market closes: the next periodic rescan runs
    await eventually(lambda: server.health()["scans"], "the deferred scan running once allowed")
    assert server.health()["scan_status"] == "ok"
    await stop(task)


async def test_a_refused_rescan_serves_the_last_report_marked_stale(tmp_path: Path) -> None:
    gate = FakeGate(allowed=True)
    server = make_server(make_project(tmp_path / "p"), tmp_path, gate=gate)
    assert (await server.risk_parameter_report())["status"] == "ok"
    gate.allowed = False
    report = await server.risk_parameter_report()
    assert (report["status"], report["stale"], report["parameters"]["stop_loss"]["usage_count"]) == (
        "deferred",
        True,
        3,
    )


async def test_a_gate_that_fails_defers_rather_than_scanning(tmp_path: Path) -> None:
    async def broken_gate(kind: str) -> tuple[bool, str]:
        raise RuntimeError("integrator state unavailable")

    server = make_server(make_project(tmp_path / "p"), tmp_path, gate=broken_gate)
    outcome = await server.refresh()
    assert outcome == {"status": "deferred", "reason": "gate failed: RuntimeError: integrator state unavailable"}


async def test_a_gate_decision_object_is_accepted(tmp_path: Path) -> None:
    @dataclass
    class GateDecision:
        allowed: bool
        reason: str

    async def gate(kind: str) -> GateDecision:
        return GateDecision(False, "mcp breaker open")

    server = make_server(make_project(tmp_path / "p"), tmp_path, gate=gate)
    assert (await server.refresh())["reason"] == "mcp breaker open"


async def test_a_failing_scan_is_contained_and_reported(tmp_path: Path) -> None:
    server = make_server(tmp_path / "does-not-exist", tmp_path)
    for _ in range(3):
        outcome = await server.refresh()
        assert outcome["status"] == "error" and "expected the scan root to be a directory" in outcome["reason"]
    assert server.health()["status"] == "critical"


async def test_periodic_rescans_pick_up_changes(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p")
    server = make_server(root, tmp_path, rescan_interval=0.01)
    task = await run_until_ready(server)
    write(root, "core/new_module.py", "settings.stop_loss = 0.9\n")

    async def new_module_found() -> bool:
        found = await server.find_risk_parameter_usages("stop_loss")
        return "core/new_module.py" in found["files"]

    await eventually(new_module_found, "a rescan finding the new module")
    await stop(task)


def test_constructor_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="rescan_interval > 0"):
        make_server(tmp_path, tmp_path, rescan_interval=0)
    with pytest.raises(ValueError, match="search_time_budget > 0"):
        make_server(tmp_path, tmp_path, search_time_budget=-1.0)
    with pytest.raises(ValueError, match="identifiers"):
        CodebaseSearchServer(Settings(_env_file=None), root=tmp_path, parameters=["not a name"])  # type: ignore[call-arg]


def test_default_parameters_cover_the_risk_list_and_every_setting() -> None:
    names = default_parameters()
    assert {"max_daily_loss", "stop_loss", "cooldown_seconds", "circuit_breaker_cooldown_seconds"} <= set(names)
    assert set(Settings.model_fields) <= set(names)


# --- the one-shot CLI function ---------------------------------------------------------------------
class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(
    ("setup", "params", "code"),
    [
        (make_project, PARAMS, 1),  # violations
        (lambda root: write(root, "clean.py", "x = settings.stop_loss\n").parent, ["stop_loss"], 0),
    ],
)
def test_scan_command_exit_codes(tmp_path: Path, setup: Callable[[Path], Path], params: list[str], code: int) -> None:
    root = setup(tmp_path)
    out, err = io.StringIO(), io.StringIO()
    assert scan_command(root, params, True, out, err=err) == code
    assert json.loads(out.getvalue())["status"] == "ok"
    assert err.getvalue() == ""  # no progress when stderr is not a terminal


@pytest.mark.parametrize(
    ("root", "params", "message"),
    [("missing", None, "expected --root to be a directory"), (".", ["bad name"], "identifiers")],
)
def test_scan_command_bad_arguments_exit_2(tmp_path: Path, root: str, params: list[str] | None, message: str) -> None:
    err = io.StringIO()
    assert scan_command(tmp_path / root, params, False, io.StringIO(), err=err) == 2
    assert message in err.getvalue()


def test_scan_command_text_output_and_terminal_progress(tmp_path: Path) -> None:
    out, err = io.StringIO(), Terminal()
    assert scan_command(make_project(tmp_path), PARAMS, False, out, err=err) == 1
    text = out.getvalue()
    assert "max_daily_loss: 13 uses" in text and "violations: 5" in text and "[hardcoded_literal]" in text
    assert "scanning: 6/6 files" in err.getvalue()
