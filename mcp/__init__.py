"""The monitoring sidecar: three servers (codebase search, testing, monitoring) run by one supervisor.

This package shadows the PyPI package `mcp` (the official SDK) on purpose; the project never installs
the SDK into its own environment (SPEC §2).
"""
