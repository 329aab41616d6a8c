"""Read an HTTP response body with a size cap: an endless or absurd body is a broken server, not data."""

from __future__ import annotations

import aiohttp

CHUNK_BYTES = 64 * 1024


class BodyTooLargeError(ValueError):
    """The body passed its cap; the caller reports the answer as unusable and stops reading."""


async def read_capped(response: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The whole body, read in chunks; BodyTooLargeError as soon as it passes `max_bytes`."""
    chunks: list[bytes] = []
    total = 0
    async for chunk in response.content.iter_chunked(CHUNK_BYTES):
        total += len(chunk)
        if total > max_bytes:
            raise BodyTooLargeError(f"body larger than {max_bytes} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
