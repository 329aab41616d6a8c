"""Claim the process's stdin/stdout for the MCP stdio transport, before anything else can touch them.

Imported first by `python -m mcp.main_mcp stdio` (standard library only, so importing it prints nothing).
After `claim_stdio()`:
  - the protocol reads a private duplicate of fd 0 and writes a private duplicate of fd 1 (both are
    non-inheritable, so no child process gets them);
  - fd 1 itself points at stderr, so anything printed later, by Python code, C code or a child process,
    lands in the log instead of corrupting the protocol stream;
  - fd 0 points at /dev/null, so every child process starts with an empty, closed stdin.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StdioFds:
    """The private file descriptors of the protocol stream."""

    input_fd: int
    output_fd: int


def claim_stdio() -> StdioFds:
    """Move the protocol onto private fds; point fd 1 at stderr and fd 0 at /dev/null (see the module doc)."""
    sys.stdout.flush()
    output_fd = os.dup(1)
    input_fd = os.dup(0)
    os.dup2(2, 1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    try:
        os.dup2(devnull, 0)
    finally:
        os.close(devnull)
    sys.stdout = sys.stderr
    return StdioFds(input_fd, output_fd)
