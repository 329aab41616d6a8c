"""The testing server's parts: run plan, subprocess runner, result parsing, progress, history, one-shot CLI.

`mcp/testing_server.py` assembles them into the `TestingServer` of the sidecar.
"""
