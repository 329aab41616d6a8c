"""The sidecar at rest, beside its peers, in one run: RSS and CPU, then /health and /metrics under wrk.

Run: .venv/bin/python tests/benchmarks/bench_sidecar_rest.py [--rest-seconds 60] [--wrk-seconds 10] [--json FILE]

What runs, all at once, each in its own temporary folder, on loopback ports found free:
  * a bot on paper (`main.py`, MCP_INTEGRATION_ENABLED=false): gives the sidecar a real bot to watch; not measured
  * our sidecar, `python -m mcp.main_mcp all` with default intervals (it lowers itself to nice 10)
  * Debian's node_exporter (/usr/bin/prometheus-node-exporter), default collectors
  * Glances in its REST-server mode (`glances -w --disable-webui`): like our sidecar, a daemon that samples the
    host on its default refresh and serves the result over HTTP. Glances as a pure Prometheus exporter
    (`glances --quiet --export prometheus`) is measured too, for reference (no target against it).
Glances comes from a separate venv (.cache/bench/glances, never the project's .venv); a missing peer is skipped
with the command that installs it. The peers run under `nice -n 10` like the sidecar, so that the machine's
other load treats them all alike.

1. Warm-up (the sidecar's first scan of the project), then a rest window with nothing polling anyone: RSS
   (mean and max, whole process tree) and CPU % (CPU seconds over wall seconds, whole tree, 100 = one core).
2. `wrk -t2 -c10 -d<wrk-seconds>s --latency` against our /health, our /metrics (METRICS_PORT) and node_exporter's
   /metrics, one after the other: p50, p99, requests/s.
Targets (SPEC §10): less RSS and less CPU than Glances; our /metrics p99 no worse than node_exporter's;
/health p99 under 5 ms. The script prints PASS/FAIL for each and exits 0 either way (figures, not a test).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil

PROJECT_ROOT = Path(__file__).resolve().parents[2]
VENV_PYTHON = PROJECT_ROOT / ".venv" / "bin" / "python"
GLANCES = PROJECT_ROOT / ".cache" / "bench" / "glances" / "bin" / "glances"
NODE_EXPORTER = Path("/usr/bin/prometheus-node-exporter")
NICE = 10
HEALTH_P99_TARGET_MS = 5.0
FOREIGN_PREFIXES = ("MCP_", "TELEGRAM_", "DASHBOARD_", "MONITOR", "ALERT", "METRICS_", "DAILY_LOSS_", "CLOB_")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Peer:
    """A measured (or helper) process."""

    name: str
    command: list[str]
    ready_url: str | None
    env: dict[str, str] = field(default_factory=dict)
    measured: bool = True
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None

    def start(self, workdir: Path) -> None:
        self.log = workdir / f"{self.name}.out"
        with self.log.open("wb") as sink:
            self.process = subprocess.Popen(
                self.command,
                cwd=PROJECT_ROOT,
                env=self.env or None,
                stdin=subprocess.DEVNULL,
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def stop(self) -> None:
        """SIGTERM, then SIGKILL of its process group after 12 s (only what this script started)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=12)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log and self.log.exists() else ""


@dataclass
class RestFigures:
    name: str
    rss_mb_mean: float
    rss_mb_max: float
    uss_mb: float | None
    cpu_percent: float
    processes: int


@dataclass
class WrkFigures:
    target: str
    url: str
    p50_ms: float | None
    p99_ms: float | None
    requests_per_second: float | None
    non_2xx: int
    socket_errors: str | None


def clean_env(**values: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(FOREIGN_PREFIXES)}
    env.update(values)
    return env


def wait_ready(peer: Peer, within: float = 90.0) -> None:
    """Poll the peer's URL until it answers (any HTTP status: /health says 503 while something is critical)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if peer.process is not None and peer.process.poll() is not None:
            raise RuntimeError(f"{peer.name} exited with code {peer.process.returncode}:\n{peer.tail()}")
        if peer.ready_url is None:
            return
        try:
            with urllib.request.urlopen(peer.ready_url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answered
        except (urllib.error.URLError, OSError):
            time.sleep(0.3)
    raise RuntimeError(f"{peer.name} did not answer {peer.ready_url} within {within:g} s:\n{peer.tail()}")


def tree(pid: int) -> list[psutil.Process]:
    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def cpu_seconds(pid: int) -> float:
    """CPU seconds of the process, its reaped children and its live descendants."""
    total = 0.0
    for index, process in enumerate(tree(pid)):
        with contextlib.suppress(psutil.Error):
            times = process.cpu_times()
            total += times.user + times.system
            if index == 0:
                total += times.children_user + times.children_system
    return total


def rss_mb(pid: int) -> tuple[float, int]:
    total, count = 0, 0
    for process in tree(pid):
        with contextlib.suppress(psutil.Error):
            total += process.memory_info().rss
            count += 1
    return total / (1024 * 1024), count


def uss_mb(pid: int) -> float | None:
    """Memory unique to the tree (not shared with other processes), from /proc/<pid>/smaps; None if unreadable."""
    total = 0
    try:
        for process in tree(pid):
            total += process.memory_full_info().uss
    except psutil.Error:
        return None
    return round(total / (1024 * 1024), 1)


def measure_rest(peers: Sequence[Peer], seconds: float) -> list[RestFigures]:
    """Sample every peer's tree each second for `seconds`; nothing polls them meanwhile."""
    pids = {peer.name: peer.process.pid for peer in peers if peer.process is not None}
    cpu_start = {name: cpu_seconds(pid) for name, pid in pids.items()}
    samples: dict[str, list[float]] = {name: [] for name in pids}
    counts: dict[str, int] = dict.fromkeys(pids, 0)
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        for name, pid in pids.items():
            value, count = rss_mb(pid)
            samples[name].append(value)
            counts[name] = max(counts[name], count)
        time.sleep(1.0)
    wall = time.monotonic() - started
    cpu = {name: round(100 * (cpu_seconds(pid) - cpu_start[name]) / wall, 3) for name, pid in pids.items()}
    # USS once, after the window: reading smaps is too heavy to repeat every second
    return [
        RestFigures(
            name,
            round(sum(samples[name]) / len(samples[name]), 1),
            round(max(samples[name]), 1),
            uss_mb(pid),
            cpu[name],
            counts[name],
        )
        for name, pid in pids.items()
    ]


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float | None:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip())
    return float(match.group(1)) * _UNITS[match.group(2)] if match else None


def parse_wrk(output: str, target: str, url: str) -> WrkFigures:
    """p50/p99 from --latency's distribution, Requests/sec, non-2xx count, socket errors."""
    percentile = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", output, re.MULTILINE))
    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    errors = re.search(r"Socket errors:\s*(.+)", output)
    return WrkFigures(
        target,
        url,
        _ms(percentile["50"]) if "50" in percentile else None,
        _ms(percentile["99"]) if "99" in percentile else None,
        float(rps.group(1)) if rps else None,
        int(non2xx.group(1)) if non2xx else 0,
        errors.group(1).strip() if errors else None,
    )


def run_wrk(wrk: Sequence[str], target: str, url: str, seconds: int) -> WrkFigures:
    command = [*wrk, "-t2", "-c10", f"-d{seconds}s", "--latency", url]
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30, check=False)
    if done.returncode != 0:
        print(f"  wrk failed against {url}: {done.stderr.strip() or done.stdout.strip()}")
    return parse_wrk(done.stdout, target, url)


def verdict(ok: bool | None) -> str:
    return "n/a (peer missing)" if ok is None else ("PASS" if ok else "FAIL")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rest-seconds", type=float, default=60.0, help="length of the rest window (default 60)")
    parser.add_argument("--warmup-seconds", type=float, default=20.0, help="wait before the rest window (default 20)")
    parser.add_argument("--wrk-seconds", type=int, default=10, help="duration of each wrk run (default 10)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, state)")
    args = parser.parse_args(argv)

    python = str(VENV_PYTHON if VENV_PYTHON.exists() else Path(sys.executable))
    nice = shutil.which("nice")
    niced = [nice, "-n", str(NICE)] if nice else []
    wrk = shutil.which("wrk")
    workdir = Path(tempfile.mkdtemp(prefix="bench-sidecar-rest-"))
    ports = {name: free_port() for name in ("dashboard", "metrics", "node", "glances_web", "glances_prom")}
    common = {"STATE_DIR": str(workdir / "state"), "LOG_DIR": str(workdir / "logs"), "PYTHONDONTWRITEBYTECODE": "1"}

    peers: list[Peer] = [
        Peer("bot", [python, "main.py"], None, clean_env(**common, MCP_INTEGRATION_ENABLED="false"), measured=False),
        Peer(
            "sidecar",
            [python, "-m", "mcp.main_mcp", "all"],
            f"http://127.0.0.1:{ports['dashboard']}/health",
            clean_env(**common, DASHBOARD_PORT=str(ports["dashboard"]), METRICS_PORT=str(ports["metrics"])),
        ),
    ]
    skipped: dict[str, str] = {}
    if NODE_EXPORTER.exists():
        peers.append(
            Peer(
                "node_exporter",
                [*niced, str(NODE_EXPORTER), f"--web.listen-address=127.0.0.1:{ports['node']}"],
                f"http://127.0.0.1:{ports['node']}/metrics",
            )
        )
    else:
        skipped["node_exporter"] = f"{NODE_EXPORTER} missing: apt-get install -y prometheus-node-exporter"
    if GLANCES.exists():
        config = workdir / "glances.conf"
        config.write_text(f"[prometheus]\nhost=127.0.0.1\nport={ports['glances_prom']}\nprefix=glances\n")
        peers.append(
            Peer(
                "glances_web",
                [*niced, str(GLANCES), "-w", "--disable-webui", "--bind", "127.0.0.1", "--port",
                 str(ports["glances_web"]), "-C", str(config)],
                f"http://127.0.0.1:{ports['glances_web']}/api/4/status",
            )
        )  # fmt: skip
        peers.append(
            Peer(
                "glances_prometheus",
                [*niced, str(GLANCES), "--quiet", "--export", "prometheus", "-C", str(config)],
                f"http://127.0.0.1:{ports['glances_prom']}/metrics",
            )
        )
    else:
        skipped["glances"] = (
            f"{GLANCES} missing: python3 -m venv .cache/bench/glances && "
            ".cache/bench/glances/bin/pip install 'glances[web]' prometheus_client"
        )
    if wrk is None:
        skipped["wrk"] = "wrk missing: apt-get install -y wrk"

    print(f"bench_sidecar_rest: workdir {workdir}; cpu count {psutil.cpu_count()}; load {os.getloadavg()}")
    for name, reason in skipped.items():
        print(f"  SKIP {name}: {reason}")
    rest: list[RestFigures] = []
    loads: list[WrkFigures] = []
    try:
        for peer in peers:
            peer.start(workdir)
        for peer in peers:
            wait_ready(peer)
        print(f"  all up; warm-up {args.warmup_seconds:g} s (the sidecar's first scan), then {args.rest_seconds:g} s "
              "at rest with nothing polling")  # fmt: skip
        time.sleep(args.warmup_seconds)
        rest = measure_rest([peer for peer in peers if peer.measured], args.rest_seconds)
        if wrk is not None:
            targets = [
                ("sidecar /health", f"http://127.0.0.1:{ports['dashboard']}/health"),
                ("sidecar /metrics", f"http://127.0.0.1:{ports['metrics']}/metrics"),
            ]
            if "node_exporter" not in skipped:
                targets.append(("node_exporter /metrics", f"http://127.0.0.1:{ports['node']}/metrics"))
            if "glances" not in skipped:
                targets.append(("glances /metrics", f"http://127.0.0.1:{ports['glances_prom']}/metrics"))
            # wrk at the servers' niceness: a nice-0 client on 2 cores would starve the nice-10 server it measures
            for target, url in targets:
                loads.append(run_wrk([*niced, wrk], target, url, args.wrk_seconds))
        for peer in peers:
            if peer.process is not None and peer.process.poll() is not None:
                print(f"  WARNING: {peer.name} exited early (code {peer.process.returncode}):\n{peer.tail()}")
    finally:
        for peer in reversed(peers):
            peer.stop()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)

    tick = 1 / os.sysconf("SC_CLK_TCK")
    print(f"\nAt rest for {args.rest_seconds:g} s (whole process tree; CPU 100 % = one core; resolution "
          f"{100 * tick / args.rest_seconds:.3f} %, one {tick * 1000:g} ms clock tick over the window)")  # fmt: skip
    print(f"  {'process':<20} {'RSS mean MB':>12} {'RSS max MB':>11} {'USS MB':>7} {'CPU %':>8} {'procs':>6}")
    for figures in rest:
        uss = f"{figures.uss_mb:.1f}" if figures.uss_mb is not None else "?"
        print(f"  {figures.name:<20} {figures.rss_mb_mean:>12.1f} {figures.rss_mb_max:>11.1f} {uss:>7} "
              f"{figures.cpu_percent:>8.3f} {figures.processes:>6}")  # fmt: skip
    if loads:
        print(f"\nUnder load: wrk -t2 -c10 -d{args.wrk_seconds}s --latency (loopback, wrk at nice {NICE}); "
              f"load average now {os.getloadavg()[0]:.2f}")  # fmt: skip
        print(f"  {'target':<24} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>10} {'non-2xx':>8}  socket errors")
        for load in loads:
            p50 = f"{load.p50_ms:.3f}" if load.p50_ms is not None else "?"
            p99 = f"{load.p99_ms:.3f}" if load.p99_ms is not None else "?"
            rps = f"{load.requests_per_second:.0f}" if load.requests_per_second is not None else "?"
            print(f"  {load.target:<24} {p50:>8} {p99:>8} {rps:>10} {load.non_2xx:>8}  {load.socket_errors or '-'}")

        if any(load.non_2xx for load in loads if load.target == "sidecar /health"):
            print("  (/health non-2xx: 503 while a component is critical, e.g. the paper bot's breaker HALTED; "
                  "same code path as 200)")  # fmt: skip
    by_name = {figures.name: figures for figures in rest}
    by_target = {load.target: load for load in loads}
    ours, glances = by_name.get("sidecar"), by_name.get("glances_web")
    health = by_target.get("sidecar /health")
    our_metrics, node_metrics = by_target.get("sidecar /metrics"), by_target.get("node_exporter /metrics")
    checks = {
        "RSS below Glances (REST-server mode)": None
        if not (ours and glances)
        else ours.rss_mb_mean < glances.rss_mb_mean,
        "CPU below Glances (REST-server mode)": None
        if not (ours and glances)
        else ours.cpu_percent < glances.cpu_percent,
        "/metrics p99 <= node_exporter's": None
        if not (our_metrics and node_metrics and our_metrics.p99_ms is not None and node_metrics.p99_ms is not None)
        else our_metrics.p99_ms <= node_metrics.p99_ms,
        f"/health p99 < {HEALTH_P99_TARGET_MS:g} ms": None
        if not (health and health.p99_ms is not None)
        else health.p99_ms < HEALTH_P99_TARGET_MS,
    }
    print("\nTargets (SPEC §10)")
    for name, ok in checks.items():
        print(f"  {verdict(ok):<18} {name}")
    if ours and glances:
        cpu_ratio = ours.cpu_percent / glances.cpu_percent if glances.cpu_percent else float("inf")
        print(f"  ratios: RSS {ours.rss_mb_mean / glances.rss_mb_mean:.2f}x Glances, CPU {cpu_ratio:.2f}x Glances")
    if our_metrics and node_metrics and our_metrics.p99_ms and node_metrics.p99_ms:
        print(f"  /metrics p99 ratio: {our_metrics.p99_ms / node_metrics.p99_ms:.2f}x node_exporter")
    if args.json:
        args.json.write_text(
            json.dumps(
                {"rest": [asdict(r) for r in rest], "load": [asdict(w) for w in loads], "checks": checks,
                 "skipped": skipped, "rest_seconds": args.rest_seconds, "wrk_seconds": args.wrk_seconds},
                indent=2,
            )
        )  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
