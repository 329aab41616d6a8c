"""Benchmark: the testing server's coverage run against a plain `coverage run -m pytest` (SPEC §10).

    .venv/bin/python tests/benchmarks/bench_testing_server.py [--runs 7] [--project DIR] [--python PATH]

Two identical copies of the fixture project (tests/fixtures/projects/bench_project, ~650 tests) are
made in a temporary folder, one per contender, so neither profits from the other's caches. Each round
runs both, in alternating order (ABBA), after one warm-up run each:
  baseline: `python -m coverage run -m pytest -q` then `python -m coverage json`, as a user would type it;
  server:   `await TestingServer.run_tests(force=True)`: fingerprint, gate-free run with JUnit XML,
            `coverage json`, parsing, history write (SQLite), all included.
Both run at the same CPU and I/O priority (this script lowers its own to niceness 10 / idle I/O, which
the children inherit and which is the server's own target), so the figure is the cost of the server's
machinery, not of its deliberately low priority. Prints medians, the overhead and both coverage figures;
PASS when the overhead is <= 5 % and the figures agree to 0.1 point.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from mcp.testing_server import TestingServer  # noqa: E402  (needs the repo on sys.path first)

FIXTURE = REPO / "tests" / "fixtures" / "projects" / "bench_project"
MAX_OVERHEAD = 0.05
MAX_FIGURE_GAP_POINTS = 0.1


def lower_own_priority(niceness: int = 10) -> None:
    """Put this process (and so both contenders) at the server's target priority."""
    current = os.getpriority(os.PRIO_PROCESS, 0)
    if current < niceness:
        os.nice(niceness - current)
    try:
        import psutil

        psutil.Process().ionice(psutil.IOPRIO_CLASS_IDLE)
    except (ImportError, AttributeError, OSError) as e:
        print(f"note: idle I/O class not set ({e}); both contenders share the same class anyway")


class Stopwatch:
    """Wall time and CPU time (this process plus every child it reaped) of one run."""

    def __enter__(self) -> Stopwatch:
        self._wall = time.perf_counter()
        self._cpu = self._cpu_now()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._wall
        self.cpu = self._cpu_now() - self._cpu

    @staticmethod
    def _cpu_now() -> float:
        own = resource.getrusage(resource.RUSAGE_SELF)
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def baseline_run(project: Path, python: Path) -> tuple[Stopwatch, float]:
    """Plain coverage run + json; returns (times, coverage percent)."""
    report = project / "baseline-coverage.json"
    with Stopwatch() as watch:
        _baseline_commands(project, python, report)
    percent = json.loads(report.read_text())["totals"]["percent_covered"]
    return watch, float(percent)


def _baseline_commands(project: Path, python: Path, report: Path) -> None:
    subprocess.run(
        [str(python), "-m", "coverage", "run", "-m", "pytest", "-q"],
        cwd=project,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=False,
    )
    subprocess.run(
        [str(python), "-m", "coverage", "json", "-o", str(report)],
        cwd=project,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        check=True,
    )


def server_run(server: TestingServer) -> tuple[Stopwatch, float, str]:
    """One forced run through the server; returns (times, coverage percent, status)."""
    with Stopwatch() as watch:
        result = asyncio.run(server.run_tests(force=True))
    coverage = result["coverage"]
    if coverage is None:
        raise SystemExit(f"server run produced no coverage: {result['status']}: {result['message']}")
    return watch, coverage * 100.0, result["status"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="measured rounds (each: one baseline, one server run)")
    parser.add_argument("--project", type=Path, default=FIXTURE, help="project to copy and test")
    parser.add_argument("--python", type=Path, default=Path(sys.executable), help="interpreter with coverage+pytest")
    args = parser.parse_args()
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    lower_own_priority()
    with tempfile.TemporaryDirectory(prefix="bench-testing-") as tmp:
        base_dir, server_dir = Path(tmp) / "baseline", Path(tmp) / "server"
        ignore = shutil.ignore_patterns("__pycache__", ".coverage*", ".pytest_cache")
        shutil.copytree(args.project, base_dir, ignore=ignore)
        shutil.copytree(args.project, server_dir, ignore=ignore)
        server = TestingServer(
            project_root=server_dir,
            python=args.python,
            history_path=Path(tmp) / "history.sqlite3",
            timeout_seconds=600,
            threshold=0.0,
        )
        print(f"project: {args.project} (copied twice), python: {args.python}, rounds: {args.runs}")
        baseline_run(base_dir, args.python)
        server_run(server)
        base: list[Stopwatch] = []
        ours: list[Stopwatch] = []
        base_figure = server_figure = 0.0
        status = ""
        for round_no in range(args.runs):
            order = ("base", "server") if round_no % 2 == 0 else ("server", "base")
            for who in order:
                if who == "base":
                    watch, base_figure = baseline_run(base_dir, args.python)
                    base.append(watch)
                else:
                    watch, server_figure, status = server_run(server)
                    ours.append(watch)
            print(
                f"round {round_no + 1}: baseline {base[-1].wall:.3f}s wall {base[-1].cpu:.3f}s cpu   "
                f"server {ours[-1].wall:.3f}s wall {ours[-1].cpu:.3f}s cpu"
            )
    gap = abs(base_figure - server_figure)
    cpu_overhead = _report("cpu", [w.cpu for w in base], [w.cpu for w in ours])
    wall_overhead = _report("wall", [w.wall for w in base], [w.wall for w in ours])
    print(f"server status: {status}")
    print(f"coverage: baseline {base_figure:.2f}%  server {server_figure:.2f}%  gap {gap:.3f} points")
    # CPU time is the cost; wall time on a shared machine also measures the neighbours, so it is shown
    # (and should agree within noise) but the verdict uses CPU time
    ok = cpu_overhead <= MAX_OVERHEAD and gap <= MAX_FIGURE_GAP_POINTS
    print(f"overhead verdict on cpu time: {cpu_overhead * 100:+.2f}% (wall {wall_overhead * 100:+.2f}%)")
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


def _report(kind: str, base: list[float], ours: list[float]) -> float:
    base_median, ours_median = statistics.median(base), statistics.median(ours)
    overhead = ours_median / base_median - 1.0
    # the same round's two runs saw the same neighbours: their ratio cancels slow drifts of the machine
    paired = statistics.median(o / b for o, b in zip(ours, base, strict=True)) - 1.0
    print(
        f"{kind:>4}: baseline median {base_median:.3f}s (min {min(base):.3f}s)  "
        f"server median {ours_median:.3f}s (min {min(ours):.3f}s)  overhead {overhead * 100:+.2f}% "
        f"(paired per round {paired * 100:+.2f}%; target <= {MAX_OVERHEAD * 100:.0f}%)"
    )
    return overhead


if __name__ == "__main__":
    raise SystemExit(main())
