"""Long client input cut short before it is echoed back or logged: a 100 KB argument costs 100 KB once (on
the way in), not again in every error message, result and log line that quotes it.

    clip("x" * 100_000)       -> "xxx…xxx… (100000 bytes)"   (the first 200 characters, then the size)
    clip_repr("x" * 100_000)  -> "'xxx…xxx'… (100000 bytes)"
"""

from __future__ import annotations

MAX_ECHO_CHARS = 200
# a tool's error text (which may quote arguments the tool's own message did not cut): the last safety net
MAX_ERROR_CHARS = 2000


def _size(text: str) -> int:
    return len(text.encode("utf-8", "surrogatepass"))


def clip(value: object, limit: int = MAX_ECHO_CHARS) -> str:
    """`value` as text (str as is, anything else as repr), cut to `limit` characters plus "… (N bytes)"."""
    text = value if isinstance(value, str) else repr(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({_size(text)} bytes)"


def clip_repr(value: object, limit: int = MAX_ECHO_CHARS) -> str:
    """repr() of `value` for a message, its text cut to `limit` characters plus "… (N bytes)"."""
    if not isinstance(value, str):
        return clip(value, limit)
    if len(value) <= limit:
        return repr(value)
    return f"{value[:limit]!r}… ({_size(value)} bytes)"


def clip_names(names: list[str], limit: int = 5) -> str:
    """At most `limit` names, each clipped, and how many more there were."""
    shown = ", ".join(clip_repr(name, 60) for name in names[:limit])
    return shown if len(names) <= limit else f"{shown} and {len(names) - limit} more"
