"""Drive our MCP server with the official Python SDK client (1.x or 2.x) and print a JSON report.

NOT part of the project's package: it runs in a separate interpreter whose PYTHONPATH is only the SDK's
install directory, from a working directory outside the project, so `import mcp` is the SDK, not ours.

    python sdk_client.py stdio --command /path/.venv/bin/python --cwd /path/project [--env K=V ...]
    python sdk_client.py http --url http://127.0.0.1:PORT/mcp --token TOKEN

What it does, in one session: initialize; list every tool, page by page; call each read tool; call
run_tests with a progress callback; call a tool with bad arguments (expects isError); call an unknown
tool (expects a JSON-RPC error). The report (stdout, one JSON object) says what each step saw.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import traceback
from contextlib import AsyncExitStack
from importlib import metadata
from typing import Any

import mcp
from mcp import StdioServerParameters

READ_CALLS: dict[str, dict[str, Any]] = {
    "search_code": {"pattern": "limit"},
    "find_risk_parameter_usages": {"name": "max_daily_loss"},
    "risk_parameter_report": {},
    "get_coverage": {},
    "coverage_history": {"n": 3},
    "get_health": {},
    "get_risk_state": {},
    "get_metrics_summary": {"prefix": "mcp_tool"},
    "get_gate_state": {},
    "get_performance_report": {},
    "get_positions": {},
    "get_recent_trades": {"limit": 5},
    "get_pnl": {},
}
BAD_ARGUMENTS = ("coverage_history", {"n": "three", "surprise": 1})
SDK_MAJOR = int(metadata.version("mcp").split(".")[0])


def dump(model: Any) -> dict[str, Any]:
    """A result model as a camelCase dict, whichever SDK made it."""
    return model.model_dump(by_alias=True, exclude_none=True, mode="json")


def error_code(error: BaseException) -> int | None:
    """The JSON-RPC error code carried by an SDK exception (McpError in 1.x, MCPError in 2.x)."""
    data = getattr(error, "error", None)
    return getattr(data, "code", None)


async def open_session(stack: AsyncExitStack, args: argparse.Namespace) -> tuple[Any, Any]:
    """(an initialized session exposing list_tools / call_tool, the InitializeResult), for either SDK."""
    if args.transport == "stdio":
        env = dict(item.split("=", 1) for item in args.env)
        params = StdioServerParameters(
            command=args.command, args=["-m", "mcp.main_mcp", "stdio"], env=env, cwd=args.cwd
        )
        if SDK_MAJOR >= 2:
            client = await stack.enter_async_context(mcp.Client(params))
            return client, client.session.initialize_result
        from mcp.client.stdio import stdio_client

        read, write = await stack.enter_async_context(stdio_client(params))
    else:
        headers = {"Authorization": f"Bearer {args.token}"}
        from mcp.shared._httpx_utils import create_mcp_http_client

        http = await stack.enter_async_context(create_mcp_http_client(headers=headers))
        from mcp.client.streamable_http import streamable_http_client

        if SDK_MAJOR >= 2:
            client = await stack.enter_async_context(mcp.Client(streamable_http_client(args.url, http_client=http)))
            return client, client.session.initialize_result
        read, write, _ = await stack.enter_async_context(streamable_http_client(args.url, http_client=http))
    session = await stack.enter_async_context(mcp.ClientSession(read, write))
    return session, await session.initialize()


def negotiated(result: Any) -> dict[str, Any]:
    """Protocol version and server name the session settled on."""
    if result is None:
        return {}
    data = dump(result)
    return {"protocol_version": data.get("protocolVersion"), "server_name": data.get("serverInfo", {}).get("name")}


async def list_all_tools(session: Any) -> tuple[list[dict[str, Any]], int]:
    """Every tool, following nextCursor; returns (tools, pages)."""
    tools: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await session.list_tools(cursor=cursor)
        data = dump(page)
        pages += 1
        tools.extend(data["tools"])
        cursor = data.get("nextCursor")
        if not cursor or pages > 20:
            return tools, pages


def summarize(result: Any) -> dict[str, Any]:
    """isError, the structured status (if any) and the start of the text."""
    data = dump(result)
    structured = data.get("structuredContent") or {}
    text = "".join(block.get("text", "") for block in data.get("content", []) if block.get("type") == "text")
    return {
        "is_error": bool(data.get("isError")),
        "status": structured.get("status"),
        "structured": bool(structured),
        "text": text[:300],
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {"sdk_version": metadata.version("mcp"), "transport": args.transport, "steps": []}
    async with AsyncExitStack() as stack:
        session, initialized = await open_session(stack, args)
        report.update(negotiated(initialized))
        report["steps"].append("initialize")
        tools, pages = await list_all_tools(session)
        report["tools"] = [tool["name"] for tool in tools]
        report["pages"] = pages
        report["schemas_closed"] = all(tool["inputSchema"].get("additionalProperties") is False for tool in tools)
        report["steps"].append("tools/list")
        report["read_calls"] = {}
        for name, arguments in READ_CALLS.items():
            if name in report["tools"]:
                report["read_calls"][name] = summarize(await session.call_tool(name, arguments))
        report["steps"].append("read tools")
        progress: list[dict[str, Any]] = []

        async def on_progress(value: float, total: float | None, message: str | None = None) -> None:
            progress.append({"progress": value, "total": total, "message": message})

        if "run_tests" in report["tools"]:
            result = await session.call_tool("run_tests", {"force": True}, progress_callback=on_progress)
            structured = dump(result).get("structuredContent") or {}
            report["run_tests"] = {**summarize(result), "coverage": structured.get("coverage")}
            report["progress"] = progress
            report["steps"].append("run_tests")
        name, arguments = BAD_ARGUMENTS
        report["bad_arguments"] = summarize(await session.call_tool(name, arguments))
        report["steps"].append("bad arguments")
        try:
            await session.call_tool("no_such_tool", {})
            report["unknown_tool"] = {"error_code": None}
        except Exception as e:  # the SDK raises its McpError / MCPError for a JSON-RPC error
            report["unknown_tool"] = {"error_code": error_code(e), "message": str(e)[:200]}
        report["steps"].append("unknown tool")
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="transport", required=True)
    stdio = sub.add_parser("stdio")
    stdio.add_argument("--command", required=True)
    stdio.add_argument("--cwd", required=True)
    stdio.add_argument("--env", action="append", default=[], metavar="KEY=VALUE")
    http = sub.add_parser("http")
    http.add_argument("--url", required=True)
    http.add_argument("--token", required=True)
    args = parser.parse_args()
    try:
        report = asyncio.run(run(args))
    except Exception as e:  # a client script: report any failure as JSON, then fail
        print(json.dumps({"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-4000:]}))
        return 1
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
