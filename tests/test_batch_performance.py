"""Benchmark (a script, not a pytest module): trading latency with the sidecar fully busy vs without (SPEC §10,
the user's test plan, Phase 3).

    python tests/test_batch_performance.py --duration 300 --with-mcp   # the bot vs the bot beside a busy sidecar
    python tests/test_batch_performance.py --duration 60               # the bot alone (its noise floor)

The bot: tests/benchmarks/copy_latency_driver.py, a process of its own at normal priority with the
executor on the paper client (zero simulated latency), copying `--rate` trades a second and publishing its
risk snapshot to the STATE_DIR the sidecar reads. Measured: the executor's decision -> ack latency.

The busy sidecar (--with-mcp), every part a real process at nice 10 in the bot's session, as main.py spawns
it (core.sidecar_process's `nice -n 10` command line; the sidecar also lowers itself and asks for idle I/O).
The default mirrors the product's default: the sidecar itself runs its heavy work under SCHED_IDLE (test
runs through their wrapper, scans and searches on SCHED_IDLE threads, the one-shot scan as a whole) and,
without systemd but with writable cgroups, inside a cgroup of its own with the unit's CPUQuota=15% and
MemoryMax=1G. --sidecar-session own puts each part in a session of its own; --sidecar-policy idle puts the
whole sidecar under SCHED_IDLE (chrt --idle 0), light work included:
  - `python -m mcp.main_mcp all`: health checks every 1 s (MONITOR_INTERVAL_SECONDS=1), its dashboard and
    metrics on free ports, its codebase search over the Python standard library (cold cache at start);
  - codebase scans: `python -m mcp.main_mcp scan --root <stdlib>` one after the other (each a cold full scan);
  - test runs: `python -m mcp.main_mcp stdio testing`, the testing server asked over MCP to run_tests
    (force) on tests/fixtures/projects/bench_project, one run after the other;
  - /metrics scraped --scrape-hz times a second and the dashboard's /health and /api/history polled
    --dashboard-hz times a second, from this process (never from the bot's).
Heavy work is allowed at any hour and the MCP circuit breaker's automatic trips are off, so nothing is
deferred: this is the worst case, which production's gate would normally prevent.

Interleaving: `--duration` seconds are cut into rounds (2 to 50, about 12 s each) of two arms, in alternating
order (without/with, then with/without …). "Without" = every sidecar process frozen (SIGSTOP: no CPU, no
I/O) and the pollers paused, so one warm sidecar serves every round and the arms alternate every few
seconds; each arm starts after --settle unmeasured seconds. Without --with-mcp both arms are the bot alone:
their ratio is the measurement's noise floor on this machine.

Prints a table per arm (p50/p99 of the latency and of the CPU time inside the window, trade arrival -> ack
p50/p99, whole-call p99, event-loop lag p99, the bot's CPU % and RSS, run-queue wait, involuntary switches),
the with/without ratios against the targets (decision -> ack and arrival -> ack: p50 <= 1.05 and p99 <= 1.10,
each with this run's noise floor beside it; copies completed within 1 %; PASS/FAIL), the per-round spread,
what the sidecar did meanwhile, where a cost comes from, and the command. Exit 0 once measured
(1 with --strict on FAIL), 2 when the set-up fails. Takes about --duration seconds plus start-up.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psutil

from tests.benchmarks.batch_figures import (
    arm_order,
    diagnosis,
    noise_floor,
    per_round_ratios,
    plan_rounds,
    pool,
    ratio,
    round_ratio_spread,
    table,
    target_checks,
    verdict,
)
from tests.benchmarks.batch_processes import Bot, BusySidecar, SetupError

__test__ = False  # the name is the user's; it is a script, pytest must collect nothing from it

WITHOUT, WITH = "without_mcp", "with_mcp"
ALONE_A, ALONE_B = "alone_a", "alone_b"
NAMES = {WITHOUT: "without MCP", WITH: "with MCP", ALONE_A: "bot alone (A)", ALONE_B: "bot alone (B)"}
EXIT_OK, EXIT_FAIL, EXIT_SETUP = 0, 1, 2


async def measure(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Run the interleaved rounds; the runs and what the sidecar did."""
    rounds, arm_seconds = plan_rounds(args.duration, args.settle)
    first, second = (WITHOUT, WITH) if args.with_mcp else (ALONE_A, ALONE_B)
    bot = await Bot.start(workdir)
    sidecar = None
    if args.with_mcp:
        sidecar = BusySidecar(
            workdir,
            args.scrape_hz,
            args.dashboard_hz,
            own_sessions=args.sidecar_session == "own",
            idle_policy=args.sidecar_policy == "idle",
        )
    runs: list[dict[str, Any]] = []
    side: dict[str, Any] = {"with_cpu_seconds": 0.0, "with_seconds": 0.0, "rss_mb": [], "host_cpu": {}}
    try:
        if sidecar is not None:
            await sidecar.start()
            await asyncio.sleep(args.settle)
        print(f"measuring: {rounds} rounds x 2 arms x {arm_seconds:.1f} s at {args.rate:g} copies/s", flush=True)
        for index in range(rounds):
            for label in arm_order(index, first, second):
                if sidecar is not None:
                    await (sidecar.thaw() if label == WITH else sidecar.freeze())
                await asyncio.sleep(args.settle)
                psutil.cpu_percent()  # host CPU over the run: from here to the next call
                before = sidecar.usage() if sidecar is not None and label == WITH else None
                started = time.monotonic()
                runs.append(await bot.run(label, arm_seconds, args.rate))
                side["host_cpu"].setdefault(label, []).append(psutil.cpu_percent())
                if before is not None and sidecar is not None:
                    cpu, rss = sidecar.usage()
                    side["with_cpu_seconds"] += cpu - before[0]
                    side["with_seconds"] += time.monotonic() - started
                    side["rss_mb"].append(rss)
        if sidecar is not None:
            side.update(
                scans=sidecar.scans_done,
                test_runs=sidecar.test_runs_done,
                test_statuses=sidecar.test_statuses,
                pollers={
                    p.url: {
                        "answered": p.answered,
                        "statuses": p.statuses,
                        "errors": p.errors,
                        "last_error": p.last_error,
                    }
                    for p in sidecar.pollers
                },
                notes=sidecar.notes,
            )
    finally:
        if sidecar is not None:
            await sidecar.stop()
        await bot.stop()
    return {"rounds": rounds, "arm_seconds": arm_seconds, "runs": runs, "sidecar": side}


def report(args: argparse.Namespace, measured: dict[str, Any], command: str) -> tuple[bool, dict[str, Any]]:
    """Print the figures; (passed, JSON summary)."""
    labels = (WITHOUT, WITH) if args.with_mcp else (ALONE_A, ALONE_B)
    arms = pool(measured["runs"], labels)
    base, loaded = arms[labels[0]], arms[labels[1]]
    r50, r99, _ = verdict(base, loaded)
    side = measured["sidecar"]
    title = "sidecar fully busy vs without" if args.with_mcp else "the bot alone, two interleaved arms (noise floor)"
    print(f"\nTrading latency (executor decision -> ack, paper client, zero simulated latency): {title}")
    print(
        f"  {measured['rounds']} interleaved rounds, arms of {measured['arm_seconds']:.1f} s, order alternating; "
        f"{args.rate:g} copies/s; {os.cpu_count()} CPUs; autogroup scheduling {autogroup_enabled()}; "
        f"figures in ms unless stated"
    )
    for line in table([base, loaded], NAMES):
        print(line)
    print(
        "  (p50/p99: decision -> ack; cpu: CPU time inside that window; arr: trade arrival -> ack, with the "
        "bot's wake-up; call: whole execute_copy incl. the breaker's fsync'd write after the ack; lag: event "
        "loop lag; runq: ms per second the bot was runnable but not running; invol: involuntary switches "
        "per 1000 copies)"
    )
    planned = args.rate * measured["arm_seconds"] * measured["rounds"]
    print("  copies done / planned: " + ", ".join(f"{NAMES[a.label]} {a.copies}/{planned:.0f}" for a in (base, loaded)))
    host = {label: sum(v) / len(v) for label, v in side["host_cpu"].items() if v}
    print(
        "  host CPU % (all processes, both cores): "
        + ", ".join(f"{NAMES[label]} {value:.1f}" for label, value in host.items())
    )
    checks = target_checks(measured["runs"], base, loaded)
    passed = all(check.passed for check in checks)
    print(f"\n  ratio {NAMES[labels[1]]} / {NAMES[labels[0]]}, with this run's noise floor beside each:")
    for check in checks:
        noise = f"noise floor x{check.noise:.3f}" if check.noise is not None else ""
        state = ("PASS" if check.passed else "FAIL") if args.with_mcp else ""
        print(f"    {check.name:<18} x{check.value:.3f}  {check.limit:<12} {noise:<22} {state}".rstrip())
    targets = "targets: p50 <= 1.05, p99 <= 1.10 for both latencies, copies within 1 %"
    mark = f"-> {'PASS' if passed else 'FAIL'} ({targets})" if args.with_mcp else "(noise floor)"
    print(f"  decision -> ack p50 x{r50:.3f}   p99 x{r99:.3f}   {mark}")
    a50 = ratio(loaded.pct("due_to_ack", 0.5), base.pct("due_to_ack", 0.5))
    a99 = ratio(loaded.pct("due_to_ack", 0.99), base.pct("due_to_ack", 0.99))
    print(f"  per round (p50/p99): {' '.join(per_round_ratios(base, loaded))}")
    spread = round_ratio_spread(base, loaded)
    print(
        f"  per-round ratios: p50 median x{spread['p50_median']:.3f} "
        f"(x{spread['p50_min']:.3f}..x{spread['p50_max']:.3f}), p99 median x{spread['p99_median']:.3f} "
        f"(x{spread['p99_min']:.3f}..x{spread['p99_max']:.3f})"
    )
    n50, n99 = noise_floor(measured["runs"], labels[0])
    print(
        f"  noise floor of this run ({NAMES[labels[0]]}, odd vs even arms, same conditions): p50 x{n50:.3f}, "
        f"p99 x{n99:.3f} - a ratio within about that distance of 1.0 is not a measurable difference"
    )
    print(
        f"  bot CPU: {base.cpu_percent:.2f} % -> {loaded.cpu_percent:.2f} % "
        f"({loaded.cpu_percent - base.cpu_percent:+.2f} points); bot RSS max: {base.rss_max_mb:.1f} MB -> "
        f"{loaded.rss_max_mb:.1f} MB ({loaded.rss_max_mb - base.rss_max_mb:+.1f} MB)"
    )
    if args.with_mcp:
        sidecar_cpu = 100.0 * side["with_cpu_seconds"] / side["with_seconds"] if side["with_seconds"] else 0.0
        where = "each part in a session of its own" if args.sidecar_session == "own" else "in the bot's session"
        where += (
            ", whole sidecar SCHED_IDLE"
            if args.sidecar_policy == "idle"
            else ", nice 10, heavy work SCHED_IDLE as the product runs it"
        )
        print(
            f"  the sidecar meanwhile ({where}): {sidecar_cpu:.1f} % of one core, RSS up to "
            f"{max(side['rss_mb'], default=0.0):.1f} MB; {side.get('scans', 0)} cold stdlib scans and "
            f"{side.get('test_runs', 0)} test runs completed {side.get('test_statuses', {})}"
        )
        for url, figures in side.get("pollers", {}).items():
            print(f"    GET {url}: {figures['answered']} answers {figures['statuses']}, {figures['errors']} errors")
        for note in side.get("notes", []):
            print(f"    note: {note}")
        print("\n  where the cost comes from:")
        for line in diagnosis(base, loaded):
            print(f"    {line}")
    print(f"\n  command: {command}")
    summary = {
        "command": command,
        "with_mcp": args.with_mcp,
        "rounds": measured["rounds"],
        "arm_seconds": measured["arm_seconds"],
        "rate": args.rate,
        "arms": {label: arm.summary() for label, arm in arms.items()},
        "ratio": {"p50": r50, "p99": r99, "passed": passed},
        "arrival_to_ack_ratio": {"p50": a50, "p99": a99},
        "targets": [
            {"name": c.name, "value": c.value, "limit": c.limit, "noise_floor": c.noise, "passed": c.passed}
            for c in checks
        ],
        "copies": {"without": base.copies, "with": loaded.copies},
        "per_round_ratio_spread": spread,
        "noise_floor_ratio": {"p50": n50, "p99": n99},
        "sidecar_session": args.sidecar_session,
        "sidecar_policy": args.sidecar_policy,
        "autogroup": autogroup_enabled(),
        "sidecar": {key: value for key, value in side.items() if key != "rss_mb"},
    }
    return passed, summary


def autogroup_enabled() -> bool | None:
    """kernel.sched_autogroup_enabled (None when the kernel has no autogroup)."""
    try:
        return Path("/proc/sys/kernel/sched_autogroup_enabled").read_text().strip() == "1"
    except OSError:
        return None


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="tests/test_batch_performance.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--duration", type=float, default=60.0, help="measured seconds, all rounds (default 60)")
    parser.add_argument("--with-mcp", action="store_true", help="measure against a fully busy sidecar")
    parser.add_argument("--rate", type=float, default=200.0, help="copied trades per second (default 200)")
    parser.add_argument("--settle", type=float, default=0.5, help="unmeasured seconds before each arm")
    parser.add_argument("--scrape-hz", type=float, default=10.0, help="GET /metrics per second (default 10)")
    parser.add_argument("--dashboard-hz", type=float, default=2.0, help="GET /health and /api/history per second")
    parser.add_argument(
        "--sidecar-session",
        choices=("bot", "own"),
        default="bot",
        help="bot (default): the sidecar's processes share the bot's session, as main.py spawns it; own: each in "
        "a session of its own (with autogroup scheduling each session is a scheduling group and nice 10 no "
        "longer ranks the sidecar below the bot)",
    )
    parser.add_argument(
        "--sidecar-policy",
        choices=("product", "idle"),
        default="product",
        help="product (default): as the product runs it (nice 10; heavy work under SCHED_IDLE and, without "
        "systemd, in a cgroup with the unit's limits); idle: the whole sidecar under SCHED_IDLE (chrt --idle 0)",
    )
    parser.add_argument("--json-out", type=Path, help="also write the figures as JSON to this file")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs, state) and print it")
    parser.add_argument("--strict", action="store_true", help="exit 1 when the ratio misses the target")
    args = parser.parse_args(argv)
    for name in ("duration", "rate", "scrape_hz", "dashboard_hz"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')}: expected a number > 0, received {getattr(args, name)!r}")
    if args.settle < 0:
        parser.error(f"--settle: expected seconds >= 0, received {args.settle!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    """Measure, print, and return the exit code."""
    args = parse_args(argv)
    command = shlex.join(["python", "tests/test_batch_performance.py", *(sys.argv[1:] if argv is None else argv)])
    workdir = Path(tempfile.mkdtemp(prefix="batch-performance-"))
    try:
        measured = asyncio.run(measure(args, workdir))
    except SetupError as e:
        print(f"set-up failed: {e}", file=sys.stderr)
        args.keep = True
        return EXIT_SETUP
    finally:
        if args.keep:
            print(f"work folder kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    passed, summary = report(args, measured, command)
    if args.json_out is not None:
        args.json_out.write_text(json.dumps(summary, indent=2))
    return EXIT_FAIL if args.strict and not passed else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
