"""Benchmark writing the bot's state through its pydantic model against the previous plain-JSON writer.

    .venv/bin/python tests/benchmarks/bench_state_write.py [--rounds 2000] [--positions 0,200] [--dir /tmp]

The payload is a real risk snapshot written by the previous release (tests/fixtures/state_v1/), optionally
with more open positions. For each size, in the same run and interleaved (so a busy machine slows both):

- serialise: the old `json.dumps(indent=2, sort_keys=True, default=str)` of the masked payload against the
  new `encode_state(RiskSnapshot, ...)` (validate through the model, then its JSON serialiser);
- write: the whole `RiskSnapshotWriter.flush` (mask, serialise, temp file, fsync, rename) with the old
  writer (`atomic_write_json`) against the new default (`write_snapshot`), on `--dir` and on /dev/shm;
- read: the old reader (`read_json_object` plus the old per-key type checks, re-stated here as the
  baseline) against the new `read_snapshot_state`.

It prints p50 per operation and the ratio new/old (below 1.0: the new path is cheaper).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from numbers import Real
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from core.risk_snapshot import RiskSnapshotWriter, mask_payload, write_snapshot
from core.state_models import RiskSnapshot
from core.state_reader import encode_state, read_snapshot_state
from utils.atomic import atomic_write_json, read_json_object

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "state_v1" / "risk_state.json"
# the previous release's reader checked these keys' types when present (core/risk_snapshot.py before issue 12)
OLD_SHAPE: dict[str, Any] = {
    "pid": int,
    "updated_at": str,
    "updated_at_epoch": Real,
    "trading_mode": str,
    "trading_state": str,
    "wallet": str,
    "breaker": dict,
    "risk_parameters": dict,
    "exposure": dict,
    "positions": list,
    "latency_ms": dict,
    "errors": dict,
    "trades": dict,
    "rss_mb": Real,
    "reconcile": dict,
}


def old_read(path: Path) -> dict[str, Any]:
    """The previous reader's work: parse, check the version, check each present key's type."""
    payload = read_json_object(path)
    assert payload is not None and payload.get("schema_version") == 1
    for key, expected in OLD_SHAPE.items():
        if key in payload:
            assert not isinstance(payload[key], bool) and isinstance(payload[key], expected)
    assert all(isinstance(position, dict) for position in payload.get("positions", []))
    return payload


def payload_with(positions: int) -> dict[str, Any]:
    payload = json.loads(FIXTURE.read_text(encoding="utf-8"))
    template = payload["positions"][0] if payload["positions"] else {"token_id": "1", "size": 1.0}
    payload["positions"] = [*payload["positions"], *({**template, "token_id": str(i)} for i in range(positions))]
    return payload


def p50_us(samples_ns: list[int]) -> float:
    return sorted(samples_ns)[len(samples_ns) // 2] / 1e3


def duel(rounds: int, old: Callable[[], object], new: Callable[[], object]) -> tuple[float, float]:
    """p50 µs of `old` and `new`, measured alternately in the same loop."""
    old_ns: list[int] = []
    new_ns: list[int] = []
    for _ in range(rounds):
        for fn, samples in ((old, old_ns), (new, new_ns)):
            start = time.perf_counter_ns()
            fn()
            samples.append(time.perf_counter_ns() - start)
    return p50_us(old_ns), p50_us(new_ns)


def report(label: str, old: float, new: float) -> None:
    print(f"  {label:<28} old p50 {old:9.1f} µs   new p50 {new:9.1f} µs   new/old {new / old:5.2f}")


def old_serialise(masked: dict[str, Any]) -> bytes:
    """What `atomic_write_json` did before issue 12."""
    return json.dumps(masked, indent=2, sort_keys=True, default=str).encode("utf-8") + b"\n"


def bench_size(payload: dict[str, Any], rounds: int, folders: list[Path]) -> None:
    masked = mask_payload(payload)
    size = len(encode_state(RiskSnapshot, masked))
    print(f"snapshot with {len(payload['positions'])} positions ({size} bytes):")
    report("serialise", *duel(rounds, partial(old_serialise, masked), partial(encode_state, RiskSnapshot, masked)))
    for folder in folders:
        with tempfile.TemporaryDirectory(dir=folder) as work:
            old_writer = RiskSnapshotWriter(Path(work) / "old.json", write=atomic_write_json)
            new_writer = RiskSnapshotWriter(Path(work) / "new.json", write=write_snapshot)
            writes = max(50, rounds // 10)  # each write fsyncs
            report(
                f"write (flush) on {folder}",
                *duel(writes, partial(old_writer.flush, payload), partial(new_writer.flush, payload)),
            )
            assert new_writer.write_errors == 0 and old_writer.write_errors == 0
            written = Path(work) / "new.json"
            report(
                f"read from {folder}", *duel(rounds, partial(old_read, written), partial(read_snapshot_state, written))
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=2000)
    parser.add_argument("--positions", default="0,200", help="extra open positions, comma-separated sizes")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()))
    args = parser.parse_args()
    folders = [args.dir] + ([Path("/dev/shm")] if Path("/dev/shm").is_dir() else [])
    for extra in (int(size) for size in args.positions.split(",")):
        bench_size(payload_with(extra), args.rounds, folders)
    print("(shared machine: figures are noisy; the ratio compares runs interleaved in the same loop)")


if __name__ == "__main__":
    main()
