"""Telegram HTML for an alert: every dynamic part escaped, the whole within Telegram's 4,096 characters.

The limit is checked on the HTML we send (never shorter than what Telegram counts after parsing) and
in UTF-16 code units (how Telegram counts; an emoji is two), so a rendered message is never rejected
for its length. Cutting happens on the plain text before escaping, so no entity (`&amp;`) or tag is
ever cut in half; the tags we add are closed before any cut point.
"""

from __future__ import annotations

import html

TELEGRAM_TEXT_LIMIT = 4096
STAGING_MARK = "[STAGING]"
RESOLVED_MARK = "✅ RESOLVED"
TRUNCATED_MARK = "…\n<i>(truncated)</i>"
EMPTY_TEXT = "(empty alert)"


def utf16_len(text: str) -> int:
    """Length as Telegram counts it: UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def escape(text: str) -> str:
    """Escape text for Telegram's HTML parse mode (`<`, `>`, `&`)."""
    return html.escape(text, quote=False)


def fit_escaped(plain: str, budget: int) -> tuple[str, bool]:
    """The escaped longest prefix of `plain` that fits `budget` UTF-16 units, and whether it was cut."""
    escaped = escape(plain)
    if utf16_len(escaped) <= budget:
        return escaped, False
    used = 0
    end = 0
    for index, char in enumerate(plain):
        cost = utf16_len(escape(char))
        if used + cost > budget:
            break
        used += cost
        end = index + 1
    return escape(plain[:end]), True


def render_telegram(
    text: str, *, staging: bool = False, resolved: bool = False, limit: int = TELEGRAM_TEXT_LIMIT
) -> str:
    """The message to send: marks, the first line in bold, the rest as plain escaped text, at most `limit`."""
    stripped = text.strip() or EMPTY_TEXT
    heading, _, body = stripped.partition("\n")
    marks = ""
    if staging:
        marks += f"<b>{escape(STAGING_MARK)}</b> "
    if resolved:
        marks += f"<b>{escape(RESOLVED_MARK)}</b> "
    head_open, head_close = "<b>", "</b>"
    fixed = utf16_len(marks) + utf16_len(head_open) + utf16_len(head_close)
    whole_heading = escape(heading)
    whole_body = escape(body)
    separator = "\n" if body else ""
    if fixed + utf16_len(whole_heading) + utf16_len(separator) + utf16_len(whole_body) <= limit:
        return f"{marks}{head_open}{whole_heading}{head_close}{separator}{whole_body}"
    # too long: keep the whole heading if it fits with the truncation mark, then as much body as fits
    budget = limit - fixed - utf16_len(TRUNCATED_MARK)
    if utf16_len(whole_heading) + utf16_len(separator) <= budget:
        cut_body, _ = fit_escaped(body, budget - utf16_len(whole_heading) - utf16_len(separator))
        return f"{marks}{head_open}{whole_heading}{head_close}{separator}{cut_body}{TRUNCATED_MARK}"
    cut_heading, _ = fit_escaped(heading, max(budget, 0))
    return f"{marks}{head_open}{cut_heading}{head_close}{TRUNCATED_MARK}"
