"""The monitoring step of a deployment: sample the sidecar for a set time and fail fast when it gets worse.

Each sample scrapes /metrics (error rate, see deploy_rules) and reads the sidecar's status file (its pid).
The step fails on: the error rate rising more than `max_rise` over the baseline, the sidecar process dying
or being replaced (a restart during the window is a crash), or /metrics failing `allowed_misses` samples in
a row. With a baseline (the old sidecar's rate, measured before the deploy) the counters of the new process
(all of them date from its start) are compared with it; without one, the first sample is the baseline and
each later sample is compared over the window since it. A rise counts once the window holds
DEFAULT_MIN_EVENTS events (about four check rounds), and at the last sample whatever it holds.

Beyond loopback /metrics needs `Authorization: Bearer <DASHBOARD_TOKEN>` (mcp.dashboard.auth,
mcp.monitoring.metrics_auth): the scrape sends it whenever the install has a token, and a 401 fails the step
at once (TokenRefused): a refused or missing token does not fix itself by waiting.
"""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from deploy_rules import Counts, MetricsFormatError, judge_rise, parse_counts

FETCH_TIMEOUT_SECONDS = 5.0
MAX_METRICS_BYTES = 8 * 1024 * 1024
# about four check rounds of the monitoring server (eight components each) before a rise counts
DEFAULT_MIN_EVENTS = 30


@dataclass(frozen=True, slots=True)
class Sample:
    """One look at the sidecar: its counters (or why they could not be read) and its process.

    `refused` is True when /metrics answered 401: the token was refused or missing.
    """

    counts: Counts | None
    problem: str | None
    pid: int | None
    alive: bool
    refused: bool = False


class TokenRefused(OSError):
    """/metrics answered 401: DASHBOARD_TOKEN was refused, or none was sent where the sidecar needs one."""


def token_refused_text(url: str, token_sent: bool) -> str:
    """What a 401 from `url` means, naming DASHBOARD_TOKEN and what to do."""
    if token_sent:
        return (
            f"{url} answered HTTP 401: the sidecar refused the DASHBOARD_TOKEN of the install's settings "
            "(was DASHBOARD_TOKEN changed without restarting the sidecar?)"
        )
    return (
        f"{url} answered HTTP 401: the sidecar needs a DASHBOARD_TOKEN (it listens beyond loopback) and the "
        "install's settings have none: set DASHBOARD_TOKEN in its .env"
    )


def fetch_text(url: str, timeout: float = FETCH_TIMEOUT_SECONDS, token: str | None = None) -> str:
    """GET `url` and return its body as text; OSError (URLError included) when it cannot be read.

    With `token` the request carries `Authorization: Bearer <token>` (in a header, never in the URL or a
    command line); a 401 raises TokenRefused, whose message never contains the token.
    """
    if token is not None and not token_is_sendable(token):
        raise ValueError("DASHBOARD_TOKEN must be one line of printable characters without spaces at its ends")
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    request = urllib.request.Request(url, headers=headers, method="GET")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.read(MAX_METRICS_BYTES).decode("utf-8", errors="replace")
    except urllib.error.HTTPError as e:
        if e.code == 401:
            e.close()  # its body is not needed; closing frees the connection
            raise TokenRefused(token_refused_text(url, token is not None)) from None
        raise


def token_is_sendable(token: str) -> bool:
    """Whether `token` fits in one header line as the server reads it back (stripped, printable)."""
    return bool(token) and token == token.strip() and token.isprintable()


def status_pid(status_file: Path) -> int | None:
    """The pid in the sidecar's status file, None when there is no usable file or the sidecar said it stopped."""
    try:
        payload = json.loads(status_file.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(payload, dict) or payload.get("sidecar_state") == "stopped":
        return None
    pid = payload.get("pid")
    return pid if isinstance(pid, int) and not isinstance(pid, bool) and pid > 0 else None


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (another user's process counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def probe(url: str, status_file: Path, token: str | None = None) -> Sample:
    """Scrape `url` (sending `token` as a bearer when given) and read `status_file` once."""
    pid = status_pid(status_file)
    alive = pid is not None and pid_alive(pid)
    try:
        return Sample(parse_counts(fetch_text(url, token=token)), None, pid, alive)
    except TokenRefused as e:
        return Sample(None, str(e), pid, alive, refused=True)
    except (OSError, MetricsFormatError) as e:
        return Sample(None, f"{url}: {e}", pid, alive)


def monitor(
    *,
    seconds: float,
    interval: float,
    probe: Callable[[], Sample],
    emit: Callable[[str], None],
    baseline: float | None = None,
    max_rise: float = 0.10,
    allowed_misses: int = 2,
    min_events: float = DEFAULT_MIN_EVENTS,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Sample every `interval` s for `seconds` s; True when the sidecar stayed up and its error rate did not rise.

    The rate is judged once the window holds `min_events` events (a few check rounds, so that one odd round
    cannot decide), and at the last sample whatever it holds.
    """
    if seconds < 0 or interval <= 0 or min_events < 0:
        raise ValueError(
            f"expected seconds >= 0, interval > 0 and min_events >= 0, received seconds={seconds!r} "
            f"interval={interval!r} min_events={min_events!r}"
        )
    started = clock()
    first = probe()
    if first.pid is None or not first.alive:
        emit(f"[FAIL] sidecar: not running at the start of monitoring (status pid {first.pid})")
        return False
    emit(
        f"[INFO] monitoring sidecar pid {first.pid} for {seconds:g} s (sample every {interval:g} s); baseline "
        + ("the first sample" if baseline is None else f"{baseline:.1%} (before the deploy)")
    )
    base_rate = baseline
    reference: Counts | None = None
    previous: Counts | None = None
    misses = 0
    sample = first
    while True:
        elapsed = clock() - started
        last = elapsed >= seconds
        if sample.pid != first.pid or not sample.alive:
            emit(f"[FAIL] sidecar: pid {first.pid} is gone (now {sample.pid}, alive={sample.alive}): it crashed")
            return False
        if sample.refused:
            emit(f"[FAIL] metrics: token refused or missing (DASHBOARD_TOKEN): {sample.problem}")
            return False
        if sample.counts is None:
            misses += 1
            emit(f"[INFO] metrics unreadable ({misses}/{allowed_misses}): {sample.problem}")
            if misses >= allowed_misses:
                emit(f"[FAIL] metrics: unreadable {misses} times in a row")
                return False
        else:
            misses = 0
            if previous is not None and sample.counts.since(previous) is None:
                emit("[FAIL] metrics: counters went down, so the sidecar restarted during monitoring")
                return False
            previous = sample.counts
            if baseline is None and reference is None:
                # window mode: the first readable scrape is the reference, its rate the baseline
                reference, base_rate = sample.counts, sample.counts.rate
            else:
                window = sample.counts if reference is None else sample.counts.since(reference)
                if window is None:
                    emit("[FAIL] metrics: counters went down, so the sidecar restarted during monitoring")
                    return False
                if window.events < min_events and not last:
                    emit(f"[INFO] {elapsed:.0f}s: {window.events:g} event(s) so far; judging from {min_events:g}")
                else:
                    verdict = judge_rise(base_rate, window.rate, max_rise)
                    emit(f"[{'INFO' if verdict.ok else 'FAIL'}] {elapsed:.0f}s: {verdict.reason}")
                    if not verdict.ok:
                        return False
        if last:
            break
        sleep(min(interval, seconds - elapsed))
        sample = probe()
    if misses:
        emit(f"[FAIL] metrics: the last scrape failed ({misses} in a row)")
        return False
    emit(f"[PASS] sidecar pid {first.pid} stable for {seconds:g} s")
    return True
