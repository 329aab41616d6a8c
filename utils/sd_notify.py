"""systemd's notify protocol in pure Python: datagrams like ``READY=1`` sent to ``$NOTIFY_SOCKET``.

With ``Type=notify`` systemd waits for READY=1 before it counts the unit as started, shows the last
STATUS= line in ``systemctl status``, restarts the unit when WATCHDOG=1 pings stop arriving within
``WatchdogSec``, and knows a stop is under way after STOPPING=1. Outside systemd (no NOTIFY_SOCKET) every
call is a no-op. A failing socket never raises into the caller: the first failure is logged as a warning,
later ones at debug level, so a flapping socket cannot flood the log.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

logger = logging.getLogger(__name__)


def socket_address(path: str) -> str | bytes:
    """The address to send to: '@name' is Linux's abstract namespace (a leading NUL byte)."""
    if path.startswith("@"):
        return b"\0" + path[1:].encode("utf-8")
    return path


def watchdog_interval(environ: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Seconds between the pings systemd expects (WATCHDOG_USEC), None when no watchdog is asked of us.

    WATCHDOG_PID, when set, names the process the watchdog is meant for; another process gets None.
    """
    env = os.environ if environ is None else environ
    raw_usec = env.get("WATCHDOG_USEC", "").strip()
    if not raw_usec:
        return None
    raw_pid = env.get("WATCHDOG_PID", "").strip()
    if raw_pid:
        try:
            target_pid = int(raw_pid)
        except ValueError:
            logger.warning("WATCHDOG_PID=%r is not a process id; ignoring the watchdog", raw_pid)
            return None
        if target_pid != (os.getpid() if pid is None else pid):
            return None
    try:
        usec = int(raw_usec)
    except ValueError:
        logger.warning("WATCHDOG_USEC=%r is not a whole number of microseconds; ignoring the watchdog", raw_usec)
        return None
    if usec <= 0:
        return None
    return usec / 1_000_000


class SystemdNotifier:
    """Sends notify messages to systemd; a no-op when there is no socket to send to.

    `socket_path` None means "read NOTIFY_SOCKET from the environment"; an empty string disables it.
    """

    def __init__(self, socket_path: str | None = None) -> None:
        path = os.environ.get("NOTIFY_SOCKET", "") if socket_path is None else socket_path
        self.socket_path = path.strip()
        self._sock: socket.socket | None = None
        self._warned = False
        self.sent: int = 0

    @property
    def enabled(self) -> bool:
        """True when a notify socket is configured."""
        return bool(self.socket_path)

    def notify(self, message: str) -> bool:
        """Send one raw message (lines of KEY=VALUE); True when it was handed to the socket."""
        if not self.enabled:
            return False
        try:
            if self._sock is None:
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
                # never wait on a full receive queue: a lost STATUS line is better than a stalled loop
                sock.setblocking(False)
                self._sock = sock
            self._sock.sendto(message.encode("utf-8"), socket_address(self.socket_path))
        except OSError as e:
            self._report_failure(message, e)
            return False
        self.sent += 1
        return True

    def _report_failure(self, message: str, error: OSError) -> None:
        first_line = message.splitlines()[0] if message else ""
        if not self._warned:
            self._warned = True
            logger.warning(
                "cannot notify systemd at NOTIFY_SOCKET=%s (%s: %s); message %r dropped, further failures at debug",
                self.socket_path,
                type(error).__name__,
                error,
                first_line,
            )
        else:
            logger.debug("systemd notify %r dropped: %s", first_line, error)

    def ready(self, status: str | None = None) -> bool:
        """READY=1: start-up finished (optionally with a STATUS line)."""
        return self.notify("READY=1" if status is None else f"READY=1\nSTATUS={_one_line(status)}")

    def status(self, text: str) -> bool:
        """STATUS=<text>: the one line systemctl status shows."""
        return self.notify(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        """WATCHDOG=1: the service is alive."""
        return self.notify("WATCHDOG=1")

    def stopping(self) -> bool:
        """STOPPING=1: a clean stop has begun."""
        return self.notify("STOPPING=1")

    def close(self) -> None:
        """Release the socket (the notifier may be used again afterwards)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _one_line(text: str) -> str:
    # a newline would start a new KEY=VALUE assignment in the datagram
    return " ".join(str(text).split())
