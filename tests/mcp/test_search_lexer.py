"""The byte-level pre-filter: name matching, the comment/string lexer, and region parsing."""

from __future__ import annotations

import re
import sysconfig
import textwrap
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp.search.classify import classify_source
from mcp.search.lexer import needs_parse, region_source
from mcp.search.matcher import NameMatcher, validate_names
from mcp.search.scanner import classify_hits

NAMES = ["max_daily_loss", "stop_loss", "stop_loss_percent", "timeout", "cooldown_seconds", "mcp_cooldown_seconds"]
_IDENT = re.compile(rb"[a-z0-9_\x80-\xff]+")


def reference_find(low: bytes, names: list[str]) -> list[tuple[int, str]]:
    """The specification of NameMatcher.find, written the slow obvious way: split into identifiers."""
    wanted = set(names)
    found = []
    for m in _IDENT.finditer(low):
        token = m.group()
        stripped = token.lstrip(b"_")
        if stripped.decode("latin-1") in wanted:
            found.append((m.start() + len(token) - len(stripped), stripped.decode()))
    return found


FRAGMENTS = st.sampled_from(
    [*NAMES, *(n.upper() for n in NAMES), "limit", "RETRIES", "_", "__", "x", "1", " ", ".", "\n", "é", "loss"]
)


PLAIN_NAMES = ["timeout", "limit", "retries"]  # no inner underscore: one literal search each


@settings(max_examples=300, deadline=None)
@given(st.lists(FRAGMENTS, max_size=40), st.sampled_from([NAMES, PLAIN_NAMES, NAMES + PLAIN_NAMES]))
def test_matcher_agrees_with_splitting_into_identifiers(fragments: list[str], names: list[str]) -> None:
    low = "".join(fragments).encode("utf-8").lower()
    assert NameMatcher(names).find(low) == reference_find(low, names)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (b"self._max_daily_loss = 1", [(6, "max_daily_loss")]),
        (b"MAX_DAILY_LOSS=5".lower(), [(0, "max_daily_loss")]),
        (b"stop_loss_percent stop_loss", [(0, "stop_loss_percent"), (18, "stop_loss")]),
        (b"mcp_cooldown_seconds cooldown_seconds", [(0, "mcp_cooldown_seconds"), (21, "cooldown_seconds")]),
        (b"x_max_daily_loss max_daily_loss1 max_daily_lossx", []),
        (b"timeouts timeout", [(9, "timeout")]),
    ],
)
def test_matcher_examples(text: bytes, expected: list[tuple[int, str]]) -> None:
    assert NameMatcher(NAMES).find(text) == expected


@pytest.mark.parametrize("bad", [["max daily loss"], ["1abc"], ["a-b"], [""], []])
def test_names_must_be_identifiers(bad: list[str]) -> None:
    with pytest.raises(ValueError, match="expected"):
        validate_names(bad)


def test_names_are_canonicalised_and_deduplicated() -> None:
    assert validate_names(["MAX_DAILY_LOSS", "max_daily_loss", "_stop_loss"]) == ["max_daily_loss", "stop_loss"]


def parse_needed(source: str) -> bool:
    low = textwrap.dedent(source).encode().lower()
    return needs_parse(low, NameMatcher(NAMES).find(low))


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("x = 1\n", False),  # no hit at all
        ("# max_daily_loss is the limit\n", False),
        ('"""Docstring: the max_daily_loss is the limit."""\n', False),
        ("msg = 'raise max_daily_loss here'\n", False),
        ("limit = max_daily_loss\n", True),
        ("key = 'MAX_DAILY_LOSS'\n", True),  # a bare-name string is a key
        ("text = f'{s.max_daily_loss}'\n", True),  # f-string expressions are code
        ("text = rf'''{s.max_daily_loss}'''\n", True),
        ("# max_daily_loss\nx = 'it''s' + max_daily_loss\n", True),
        ("x = 'unterminated\nmax_daily_loss\n", True),  # a lone quote: let the parser decide
        ('"""max_daily_loss"""\n# max_daily_loss\ns = "timeout is long"\n', True),  # first is a bare-name string
    ],
)
def test_needs_parse(source: str, expected: bool) -> None:
    assert parse_needed(source) is expected


BIG_MODULE = textwrap.dedent(
    '''
    """A module docstring.

    def not_code(timeout):  # inside the docstring: not a boundary
    """
    import os

    TIMEOUT = 5


    @decorator(timeout=3)
    def first(timeout):
        return timeout


    class Holder:
        timeout: float = 1.0

        def bump(self):
            self.timeout = self.timeout + 1


    UNRELATED




    def last():
        global TIMEOUT
        TIMEOUT = 9
    '''
)


def big_module() -> bytes:
    unrelated = "".join(f"def unrelated_{i}(path):\n    return os.getcwd() + path\n\n\n" for i in range(300))
    return BIG_MODULE.replace("UNRELATED", unrelated).encode()


def test_regions_classify_exactly_like_the_whole_file() -> None:
    data = big_module()
    low = data.lower()
    hits = NameMatcher(["timeout"]).find(low)
    regions = region_source(data, low, hits)
    assert regions is not None and b"def unrelated_" not in regions
    params = frozenset({"timeout"})
    assert classify_source(regions, params) == classify_source(data, params)


def test_a_wrong_region_boundary_falls_back_to_the_whole_file() -> None:
    """A column-0 '@' inside brackets (matrix product) looks like a decorator: the regions then do not parse."""
    tricky = "result = (left\n@ right)\n\n\ndef uses(retries):\n    return retries\n"
    data = big_module() + tricky.encode()
    low = data.lower()
    hits = NameMatcher(["retries"]).find(low)
    regions = region_source(data, low, hits)
    assert regions is not None and regions.lstrip(b"\n").startswith(b"@ right)")
    params = frozenset({"retries"})
    with pytest.raises(SyntaxError):
        classify_source(regions, params)
    assert classify_hits(data, low, hits, params, "tricky.py") == classify_source(data, params)
    assert len(classify_source(data, params)) == 2


def test_regions_refuse_files_with_an_encoding_declaration() -> None:
    data = b"# -*- coding: latin-1 -*-\n" + big_module()
    assert region_source(data, data.lower(), NameMatcher(["timeout"]).find(data.lower())) is None


STDLIB = Path(sysconfig.get_paths()["stdlib"])


@pytest.mark.parametrize(
    ("module", "names"),
    [
        ("subprocess.py", ["timeout", "input"]),
        ("argparse.py", ["prog", "max_help_position"]),
        ("typing.py", ["total", "module"]),
        ("asyncio/base_events.py", ["timeout", "limit", "backlog"]),
    ],
)
def test_region_parse_matches_full_parse_on_real_modules(module: str, names: list[str]) -> None:
    """The shortcut must never change a result: checked on real, large standard-library modules."""
    path = STDLIB / module
    if not path.is_file():
        pytest.skip(f"{path} is not installed on this machine")
    data = path.read_bytes()
    low = data.lower()
    matcher = NameMatcher(names)
    hits = matcher.find(low)
    params = frozenset(matcher.names)
    assert hits, "the chosen names occur in the module"
    assert classify_hits(data, low, hits, params, module) == classify_source(data, params)
