"""Telegram HTML: escaping of every dynamic part, marks, and the 4,096-character limit."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from utils.alerting.render import TELEGRAM_TEXT_LIMIT, escape, fit_escaped, render_telegram, utf16_len

ENTITY_OR_TAG = re.compile(r"&(amp|lt|gt);|</?(b|i)>")


def test_heading_is_bold_and_everything_dynamic_is_escaped() -> None:
    text = render_telegram("🔴 CRITICAL <script> & co\nbody <b>not bold</b> & 'quotes'")
    assert text == "<b>🔴 CRITICAL &lt;script&gt; &amp; co</b>\nbody &lt;b&gt;not bold&lt;/b&gt; &amp; 'quotes'"


def test_staging_and_resolved_marks() -> None:
    assert render_telegram("deploy", staging=True) == "<b>[STAGING]</b> <b>deploy</b>"
    assert render_telegram("cpu ok", resolved=True) == "<b>✅ RESOLVED</b> <b>cpu ok</b>"


def test_empty_text_still_makes_a_message() -> None:
    assert render_telegram("   ") == "<b>(empty alert)</b>"


def test_utf16_length_counts_emoji_as_two() -> None:
    assert utf16_len("a🚀") == 3


def test_fit_never_cuts_an_entity() -> None:
    escaped, cut = fit_escaped("a&b", 5)  # "a&amp;b" is 7: "a" fits, "a&amp;" (6) does not
    assert (escaped, cut) == ("a", True)
    assert fit_escaped("a&b", 7) == ("a&amp;b", False)


@pytest.mark.parametrize("filler", ["x", "&", "<", "🚀", "é"])
def test_long_alerts_are_truncated_to_the_limit_with_a_mark(filler: str) -> None:
    text = render_telegram("HEADING\n" + filler * 10_000, staging=True)
    assert utf16_len(text) <= TELEGRAM_TEXT_LIMIT
    assert text.startswith("<b>[STAGING]</b> <b>HEADING</b>\n")
    assert text.endswith("…\n<i>(truncated)</i>")
    assert utf16_len(text) > TELEGRAM_TEXT_LIMIT - 10  # cut close to the limit, not far below
    _assert_well_formed(text)


def test_a_huge_heading_alone_is_truncated_too() -> None:
    text = render_telegram("&" * 9000)
    assert utf16_len(text) <= TELEGRAM_TEXT_LIMIT
    _assert_well_formed(text)


def _assert_well_formed(text: str) -> None:
    # after removing our tags and the entities we produce, no '&', '<' or '>' may remain
    bare = ENTITY_OR_TAG.sub("", text)
    assert "&" not in bare and "<" not in bare and ">" not in bare


@given(st.text(max_size=6000), st.booleans(), st.booleans())
def test_property_any_text_renders_within_the_limit_and_well_formed(text: str, staging: bool, resolved: bool) -> None:
    rendered = render_telegram(text, staging=staging, resolved=resolved)
    assert 0 < utf16_len(rendered) <= TELEGRAM_TEXT_LIMIT
    _assert_well_formed(rendered)


def test_escape_is_html_minimal() -> None:
    assert escape("<a href='x'>&</a>") == "&lt;a href='x'&gt;&amp;&lt;/a&gt;"
