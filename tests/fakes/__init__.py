"""Fakes that speak the real protocols (aiohttp apps on 127.0.0.1, port 0) for integration tests."""
