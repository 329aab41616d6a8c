"""The result every MCP tool may answer besides its own: a failed call, sent with isError.

The protocol layer answers it for arguments that do not fit the input schema and for a tool that raised
(mcp/protocol/toolcall.py); tools answer it for their own refusals. So each tool's return hint is
`ItsResult | ToolError`, and its published outputSchema covers what a client can really receive.
"""

from __future__ import annotations

from typing import Literal, TypedDict


class ToolError(TypedDict):
    """A failed call: what went wrong and what to do instead."""

    status: Literal["error"]
    error: str
