"""A long argument is cut before it is echoed back or logged: a 100 KB string sent to any tool comes back as at
most a couple of hundred characters and its size, through the real dispatcher and the real tools."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest

from mcp.protocol.clip import MAX_ECHO_CHARS, MAX_ERROR_CHARS, clip, clip_names, clip_repr
from mcp.protocol.dispatcher import Dispatcher
from mcp.protocol.tool_registry import ToolRegistry
from mcp.search.matcher import validate_names
from tests.mcp.mcp_protocol_support import Client
from tests.mcp.test_protocol_tools import build

BIG = "x" * 100_000
SMALL_ANSWER = 4000  # bytes: generous for an error message, far below the 100 KB argument


def test_clip_keeps_short_text_and_cuts_long_text_with_its_size() -> None:
    assert clip("short") == "short"
    cut = clip(BIG)
    assert cut == "x" * MAX_ECHO_CHARS + "… (100000 bytes)"
    assert clip("é" * 300, 10) == "é" * 10 + "… (600 bytes)"  # the size is in bytes, not characters
    assert clip_repr("ab") == "'ab'"
    assert clip_repr(BIG).startswith("'xxx") and clip_repr(BIG).endswith("'… (100000 bytes)")
    assert clip([BIG]).endswith("… (100004 bytes)")  # not a string: its repr, cut
    assert clip_names([f"n{i}" for i in range(8)]) == "'n0', 'n1', 'n2', 'n3', 'n4' and 3 more"


def test_a_parameter_name_longer_than_the_limit_is_refused_and_not_echoed() -> None:
    with pytest.raises(ValueError, match=r"at most 200 characters, received 'x+'… \(100000 bytes\)") as caught:
        validate_names([BIG])
    assert len(str(caught.value)) < SMALL_ANSWER


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("search_code", {"pattern": BIG}),
        ("search_code", {"pattern": BIG, "regex": True}),
        ("search_code", {"pattern": "a", "glob": BIG}),
        ("find_risk_parameter_usages", {"name": BIG}),
        ("get_health", {"component": BIG}),
        ("get_metrics_summary", {"prefix": BIG}),
        ("get_health", {BIG: 1}),  # an unknown argument whose name is the long part
        ("search_code", {"pattern": "a", "max_results": BIG}),
        ("run_tests", {"paths": ["../" + BIG]}),
    ],
    ids=lambda value: value if isinstance(value, str) else ",".join(key[:12] for key in value),
)
async def test_a_100_kb_argument_is_not_echoed_back(
    tmp_path: Path, tool: str, arguments: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = build(tmp_path)
    await client.initialize()
    result = await client.call(tool, arguments)
    answer = json.dumps(result)
    assert result["isError"] is True, answer[:300]
    assert len(answer) < SMALL_ANSWER, answer[:300]
    assert all(len(record.getMessage()) < SMALL_ANSWER for record in caplog.records)


async def test_a_tools_own_error_text_is_capped_whatever_it_quotes() -> None:
    async def shout(text: str) -> dict[str, Any]:
        """Fails, quoting its argument in full."""
        raise RuntimeError(f"cannot shout {text}")

    registry = ToolRegistry()
    registry.register(shout, server="toys")
    client = Client(Dispatcher(registry))
    await client.initialize()
    result = await client.call("shout", {"text": BIG})
    text = result["content"][0]["text"]
    assert result["isError"] is True
    assert text.startswith("shout failed: RuntimeError: cannot shout xxx")
    assert len(text) < MAX_ERROR_CHARS + 50 and text.endswith("bytes)")
