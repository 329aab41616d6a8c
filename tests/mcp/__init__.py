"""Tests of the sidecar (mcp/)."""
