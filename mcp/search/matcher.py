"""Find whole-identifier occurrences of many names in raw bytes, fast, and tell whether any is in code.

This is the pre-filter that keeps a cold scan close to `rg`: most files contain no parameter name at all
and stop here. Python's `re` is slow on
an alternation of ~100 names (it tries every branch at most positions), so names are searched by the one
character almost all of them share: their first inner underscore. The pattern starts with a literal
`_`, which `re` finds with a fast scan, then walks a trie of what follows; a lookbehind at each leaf checks
the whole name. Names without an inner underscore get one literal search each.

Matching is on lowered bytes, so `MAX_DAILY_LOSS` and `max_daily_loss` are the same name. An occurrence
must be a whole identifier, optionally with leading underscores (`self._max_daily_loss` is a use).
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from mcp.protocol.clip import clip_names

_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]*\Z")
# a longer "name" is no parameter; it would only be echoed back in every location of the report
MAX_NAME_CHARS = 200
# bytes that continue an identifier once the data is lowered; non-ASCII counts (Unicode identifiers)
WORD_BYTES = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789_" + bytes(range(0x80, 0x100)))
_UNDERSCORE = 0x5F


def canonical_name(name: str) -> str:
    """The form names are compared in: leading underscores dropped, lower case."""
    return name.lstrip("_").lower()


def validate_names(names: Iterable[str]) -> list[str]:
    """The canonical, de-duplicated names; raises ValueError naming every name that is not an identifier."""
    canon: dict[str, None] = {}
    bad = []
    for name in names:
        form = canonical_name(name.strip())
        if len(form) <= MAX_NAME_CHARS and _IDENTIFIER.match(form):
            canon[form] = None
        else:
            bad.append(name)
    if bad:
        raise ValueError(
            f"expected parameter names that are Python identifiers (letters, digits, _) of at most {MAX_NAME_CHARS} "
            f"characters, received {clip_names(bad)}"
        )
    if not canon:
        raise ValueError("expected at least one parameter name, received none")
    return list(canon)


class NameMatcher:
    """Finds where any of a fixed set of names occurs as a whole identifier in lowered bytes."""

    def __init__(self, names: Iterable[str]) -> None:
        self.names: tuple[str, ...] = tuple(sorted(validate_names(names)))
        inner = [name for name in self.names if "_" in name]
        self._by_tail: dict[bytes, list[bytes]] = {}
        for name in inner:
            tail = name.partition("_")[2].encode()
            self._by_tail.setdefault(tail, []).append(name.encode())
        self._anchored = re.compile(b"_" + _trie(list(self._by_tail.items()), 0)) if inner else None
        # bytes.find is about twice as fast as `re` for one literal
        self._plain = [name.encode() for name in self.names if "_" not in name]

    def find(self, low: bytes) -> list[tuple[int, str]]:
        """(offset, name) of every whole-identifier occurrence in `low` (already lowered), in file order."""
        hits: list[tuple[int, str]] = []
        if self._anchored is not None:
            for m in self._anchored.finditer(low):
                end = m.end()
                for full in self._by_tail[m.group()[1:]]:
                    start = end - len(full)
                    if start >= 0 and low.startswith(full, start) and _bounded(low, start, end):
                        hits.append((start, full.decode()))
                        break
        for full in self._plain:
            start = low.find(full)
            while start != -1:
                if _bounded(low, start, start + len(full)):
                    hits.append((start, full.decode()))
                start = low.find(full, start + 1)
        if len(self._plain) + (self._anchored is not None) > 1:
            hits.sort()  # several searches contributed: put them back in file order
        return hits


def _trie(items: list[tuple[bytes, list[bytes]]], depth: int) -> bytes:
    """A regex for the tails in `items` from position `depth`; longer tails are tried before a leaf."""
    branches: dict[int, list[tuple[bytes, list[bytes]]]] = {}
    leaf: list[bytes] = []
    for tail, fulls in items:
        if len(tail) == depth:
            leaf.extend(fulls)
        else:
            branches.setdefault(tail[depth], []).append((tail, fulls))
    alternatives = [re.escape(bytes([char])) + _trie(sub, depth + 1) for char, sub in sorted(branches.items())]
    if leaf:
        # the whole name must precede; longer alternatives come first so `stop_loss_x` is not cut at `stop_loss`
        alternatives.append(b"(?:" + b"|".join(b"(?<=" + re.escape(full) + b")" for full in leaf) + b")")
    if len(alternatives) == 1:
        return alternatives[0]
    return b"(?:" + b"|".join(alternatives) + b")"


def _bounded(low: bytes, start: int, end: int) -> bool:
    """True when low[start:end] is a whole identifier, allowing leading underscores before it."""
    if end < len(low) and low[end] in WORD_BYTES:
        return False
    i = start - 1
    while i >= 0 and low[i] == _UNDERSCORE:
        i -= 1
    return i < 0 or low[i] not in WORD_BYTES
