"""The MCP stdio transport: one JSON-RPC message per line in, one per line out, until the input ends.

Input is read by a daemon thread (it works for pipes, ttys and regular files alike, and a blocked read never
holds up the event loop); a line longer than the limit is discarded as it streams in and answered with an
error, so a huge message cannot exhaust memory. Requests other than tools/call are answered in order;
tools/call runs as its own task so that ping, tools/list and notifications/cancelled are served meanwhile.
At end of input, in-flight calls get a short grace period, then are cancelled, and `serve` returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import stat
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from mcp.protocol.dispatcher import Dispatcher
from mcp.protocol.jsonrpc import INVALID_REQUEST, ProtocolError, Request, encode, error_response, parse_message
from mcp.protocol.session import Session

logger = logging.getLogger(__name__)

DEFAULT_MAX_LINE_BYTES = 4 * 1024 * 1024
DEFAULT_EOF_GRACE_SECONDS = 2.0
READ_CHUNK_BYTES = 64 * 1024
MAX_PENDING_LINES = 64
CONCURRENT_METHODS = frozenset({"tools/call"})

_LINE, _OVERSIZE, _EOF, _ERROR = "line", "oversize", "eof", "error"


class LineReader:
    """Reads newline-delimited messages from a file descriptor in a daemon thread, bounded in size and backlog."""

    def __init__(self, fd: int, loop: asyncio.AbstractEventLoop, max_line_bytes: int) -> None:
        self._fd = fd
        self._loop = loop
        self._max = max_line_bytes
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        # the thread waits for the consumer beyond this backlog: a flooding client cannot fill memory
        self._slots = threading.BoundedSemaphore(MAX_PENDING_LINES)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mcp-stdio-reader", daemon=True)

    def start(self) -> None:
        """Start reading."""
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to stop after its current read (it is a daemon: process exit never waits for it)."""
        self._stop.set()
        with contextlib.suppress(ValueError):
            self._slots.release()

    async def next(self) -> tuple[str, Any]:
        """The next event: ("line", bytes), ("oversize", size), ("eof", None) or ("error", message)."""
        event = await self._queue.get()
        if event[0] in (_LINE, _OVERSIZE):
            with contextlib.suppress(ValueError):
                self._slots.release()
        return event

    def _emit(self, kind: str, payload: Any) -> bool:
        if kind in (_LINE, _OVERSIZE):
            self._slots.acquire()
        if self._stop.is_set():
            return False
        try:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, (kind, payload))
        except RuntimeError:  # the loop is closed: nobody is listening any more
            return False
        return True

    def _run(self) -> None:
        buffer = bytearray()
        discarding = 0  # bytes of an over-long line dropped so far (0: not discarding)
        try:
            while not self._stop.is_set():
                chunk = os.read(self._fd, READ_CHUNK_BYTES)
                if not chunk:
                    break
                start = 0
                while True:
                    newline = chunk.find(b"\n", start)
                    piece = chunk[start:] if newline < 0 else chunk[start:newline]
                    if discarding:
                        discarding += len(piece)
                    else:
                        buffer += piece
                        if len(buffer) > self._max:
                            discarding = len(buffer)
                            buffer.clear()
                    if newline < 0:
                        break
                    if discarding:
                        if not self._emit(_OVERSIZE, discarding):
                            return
                        discarding = 0
                    else:
                        if not self._emit(_LINE, bytes(buffer)):
                            return
                        buffer.clear()
                    start = newline + 1
            if discarding:
                self._emit(_OVERSIZE, discarding)
            elif buffer.strip():
                self._emit(_LINE, bytes(buffer))  # a last message without its newline still counts
        except OSError as e:
            self._emit(_ERROR, f"cannot read the protocol input: {e}")
            return
        self._emit(_EOF, None)


class _Output:
    """Writes whole lines to the protocol output: asynchronously on pipes and sockets, in a thread otherwise."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._writer: asyncio.StreamWriter | None = None
        self._lock = asyncio.Lock()
        self.broken = False

    async def open(self) -> None:
        mode = os.fstat(self._fd).st_mode
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode) or stat.S_ISCHR(mode):
            loop = asyncio.get_running_loop()
            pipe = os.fdopen(self._fd, "wb", buffering=0, closefd=False)
            transport, protocol = await loop.connect_write_pipe(asyncio.streams.FlowControlMixin, pipe)
            self._writer = asyncio.StreamWriter(transport, protocol, None, loop)

    async def write_line(self, data: bytes) -> None:
        if self.broken:
            return
        async with self._lock:
            try:
                if self._writer is not None:
                    self._writer.write(data + b"\n")
                    await self._writer.drain()
                else:
                    await asyncio.to_thread(self._write_all, data + b"\n")
            except (BrokenPipeError, ConnectionError, OSError) as e:
                # the client closed our output: nothing more can be said; stdin's end will stop us
                self.broken = True
                logger.warning("protocol output closed by the client: %s", e)

    def _write_all(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class StdioTransport:
    """Serves one MCP session over a pair of file descriptors."""

    def __init__(
        self,
        dispatcher: Dispatcher,
        *,
        input_fd: int,
        output_fd: int,
        session: Session | None = None,
        max_line_bytes: int = DEFAULT_MAX_LINE_BYTES,
        eof_grace_seconds: float = DEFAULT_EOF_GRACE_SECONDS,
    ) -> None:
        self.dispatcher = dispatcher
        self.session = session or Session()
        self._input_fd = input_fd
        self._output = _Output(output_fd)
        self._max_line = max_line_bytes
        self._grace = eof_grace_seconds
        self._tasks: set[asyncio.Task[None]] = set()

    async def send(self, message: dict[str, Any]) -> None:
        """Write one message as one line."""
        await self._output.write_line(encode(message))

    async def serve(self, stop: asyncio.Event | None = None) -> None:
        """Answer messages until the input ends (or `stop` is set); in-flight calls then get the grace period."""
        await self._output.open()
        reader = LineReader(self._input_fd, asyncio.get_running_loop(), self._max_line)
        reader.start()
        try:
            await self._loop(reader, stop)
        finally:
            reader.stop()
            await self._finish()
            self._output.close()

    async def _loop(self, reader: LineReader, stop: asyncio.Event | None) -> None:
        stopper = asyncio.ensure_future(stop.wait()) if stop is not None else None
        try:
            while True:
                getter = asyncio.ensure_future(reader.next())
                waiting: set[asyncio.Future[Any]] = {getter} if stopper is None else {getter, stopper}
                await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if not getter.done():
                    getter.cancel()
                    logger.info("stdio transport stopping on request")
                    return
                kind, payload = getter.result()
                if kind == _EOF:
                    logger.info("end of the protocol input: the client closed stdin")
                    return
                if kind == _ERROR:
                    logger.error("%s", payload)
                    return
                if kind == _OVERSIZE:
                    await self.send(
                        error_response(
                            None,
                            INVALID_REQUEST,
                            f"invalid request: a message of {payload} bytes exceeds the {self._max_line} byte limit",
                        )
                    )
                    continue
                await self._receive(payload)
        finally:
            if stopper is not None:
                stopper.cancel()

    async def _receive(self, line: bytes) -> None:
        if not line.strip():
            return  # blank lines between messages are harmless
        try:
            message = parse_message(line)
        except ProtocolError as e:
            await self.send(e.to_response())
            return
        if isinstance(message, Request) and message.method in CONCURRENT_METHODS:
            task = asyncio.ensure_future(self._answer(message))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        await self._answer(message)

    async def _answer(self, message: Any) -> None:
        response = await self.dispatcher.handle(self.session, message, self.send)
        if response is not None:
            await self.send(response)

    async def _finish(self) -> None:
        pending = [task for task in self._tasks if not task.done()]
        if pending:
            logger.info("waiting up to %.1f s for %d call(s) in progress", self._grace, len(pending))
            _, still = await asyncio.wait(pending, timeout=self._grace)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still, timeout=self._grace)
        self.session.close()


async def serve_stdio(
    dispatcher: Dispatcher,
    input_fd: int,
    output_fd: int,
    *,
    stop: asyncio.Event | None = None,
    on_start: Callable[[], Awaitable[None]] | None = None,
) -> Session:
    """Serve one session on the given fds until the input ends; returns the session (for its counters)."""
    transport = StdioTransport(dispatcher, input_fd=input_fd, output_fd=output_fd)
    if on_start is not None:
        await on_start()
    await transport.serve(stop)
    return transport.session
