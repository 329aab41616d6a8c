"""The server side of the Model Context Protocol, written here because our package `mcp` shadows the SDK (SPEC §2).

jsonrpc     pure parsing and validation of JSON-RPC 2.0 messages, error codes, encoding
registry    tools as plain typed functions: JSON Schema from the type hints, argument validation, path confinement
cache       a TTL cache for read-only tools, keyed by the tool and its arguments
session     one client connection: version negotiation, lifecycle, in-flight requests and cancellation
dispatcher  the method table (initialize, ping, tools/list, tools/call) and the tool-call pipeline
stdio       newline-delimited JSON-RPC over the process's standard input and output
http        Streamable HTTP at /mcp on the dashboard's aiohttp application
clip        long client input cut short before it is echoed back or logged
"""
