"""Where heavy work of the sidecar's own process runs: scans and regex searches go to a small thread pool
whose threads are under SCHED_IDLE (nice 19 where that is refused) and, with a cgroup of our own, in its
CPU-limited group. The event loop's default executor stays at normal priority for light work (psutil
reads, SQLite, files), so a busy machine never starves the sidecar's health checks behind a scan.

`get_heavy_executor()` is the documented per-process accessor; the pool is made on first use.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from mcp.containment.policy import HeavyPriority, lower_heavy_priority

logger = logging.getLogger(__name__)

T = TypeVar("T")
MAX_WORKERS = 2
_state: dict[str, Any] = {"executor": None, "hook": None, "logged": False}
_lock = threading.Lock()


def set_thread_hook(hook: Callable[[], None] | None) -> None:
    """A call each new heavy thread makes after lowering its priority (joining the heavy cgroup)."""
    _state["hook"] = hook


def _init_thread() -> None:
    priority = lower_heavy_priority(0)
    hook = _state["hook"]
    if hook is not None:
        try:
            hook()
        except OSError as e:
            logger.warning("a heavy-work thread could not join the heavy cgroup: %s", e)
    with _lock:
        if not _state["logged"]:
            _state["logged"] = True
            logger.info("heavy work (scans, regex searches) runs under %s", priority.value)


def get_heavy_executor() -> ThreadPoolExecutor:
    """This process's pool for heavy work (see the module docstring)."""
    with _lock:
        if _state["executor"] is None:
            _state["executor"] = ThreadPoolExecutor(
                max_workers=MAX_WORKERS, thread_name_prefix="heavy", initializer=_init_thread
            )
        return _state["executor"]


async def run_heavy(func: Callable[..., T], *args: Any) -> T:
    """`asyncio.to_thread` for heavy work: runs `func(*args)` on a SCHED_IDLE thread."""
    return await asyncio.get_running_loop().run_in_executor(get_heavy_executor(), functools.partial(func, *args))


def probe_priority() -> HeavyPriority:
    """The priority a heavy thread gets here, tried on a throwaway thread (never on a pool thread of the loop)."""
    result: list[HeavyPriority] = []
    probe = threading.Thread(target=lambda: result.append(lower_heavy_priority(0)), name="heavy-probe", daemon=True)
    probe.start()
    probe.join()
    return result[0] if result else HeavyPriority.UNCHANGED
