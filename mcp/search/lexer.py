"""Just enough Python lexing to avoid parsing: is a hit in code, and which top-level statements hold it?

Parsing costs ~150 ns a byte; this lexer finds comments and string literals at ~10 ns a byte with one
regex. Both questions are answered conservatively: when in doubt the answer is "parse" or "no region",
so the scanner falls back to parsing the whole file and the result is the same, only slower.
"""

from __future__ import annotations

import bisect
import re

from mcp.search.matcher import WORD_BYTES, canonical_name

# A comment or a string literal. The alternatives start with a literal so `re` skips quickly to the next
# '#', '"' or "'".
_COMMENT_OR_STRING = (
    rb"#[^\n]*+"
    rb'|"(?:""(?:[^"\\]++|\\.|"(?!""))*+"""|(?:[^"\\\n]++|\\.)*+")'
    rb"|'(?:''(?:[^'\\]++|\\.|'(?!''))*+'''|(?:[^'\\\n]++|\\.)*+')"
)
# the same, plus a lone quote (an unterminated string) as a one-byte token
_TOKEN = re.compile(_COMMENT_OR_STRING + rb"|[\"']", re.S)
_HASH = 0x23
_PREFIX_LETTERS = frozenset(b"rbuf")
# a line that starts a top-level definition or its decorator
_DEFINITION_START = re.compile(rb"\n(?=(?:async[ \t]+def|def|class)[ \t]|@)")
_CODING = re.compile(rb"\A(?:[^\n]*\n)?[ \t\f]*#[^\n]*?coding[:=]")


def comment_and_string_spans(low: bytes) -> list[tuple[int, int]]:
    """(start, end) of every comment and string literal, in order (a lone quote comes back as one byte)."""
    return [m.span() for m in _TOKEN.finditer(low)]


def needs_parse(low: bytes, hits: list[tuple[int, str]]) -> bool:
    """Whether any hit may be Python code, so the file must be parsed to classify it.

    A hit inside a comment, or inside a plain string that is prose (more than the bare name), cannot be a
    use under the classification rules, so a file whose hits are all of that kind needs no parse. A hit in
    an f-string, in a string holding just the name (a key: getattr, environ, dict), outside any comment or
    string, or after an unterminated quote (the lexer lost track) needs one.
    """
    if not hits:
        return False
    remaining = iter(hits)
    offset, name = next(remaining)
    for token in _TOKEN.finditer(low):
        t_start, t_end = token.span()
        if offset < t_start:
            return True  # the hit lies between comments and strings: it is code
        is_comment = low[t_start] == _HASH
        if t_end - t_start == 1 and not is_comment:
            return True  # a lone quote: an unterminated string, the lexer cannot be trusted after it
        while offset < t_end:
            if not is_comment and _string_hit_counts(low, t_start, t_end, name):
                return True
            following = next(remaining, None)
            if following is None:
                return False  # every hit was in a comment or in prose
            offset, name = following
    return True  # a hit after the last comment or string is code


def _string_hit_counts(low: bytes, t_start: int, t_end: int, name: str) -> bool:
    """For a hit inside the string token low[t_start:t_end]: is it an f-string, or a string that is just the name?"""
    i = t_start - 1
    prefix = b""
    while i >= 0 and low[i] in _PREFIX_LETTERS and len(prefix) < 2:
        prefix = low[i : i + 1] + prefix
        i -= 1
    if b"f" in prefix and (i < 0 or low[i] not in WORD_BYTES):
        return True
    quote = 3 if t_end - t_start >= 6 and low.startswith(low[t_start : t_start + 1] * 3, t_start) else 1
    body = low[t_start + quote : t_end - quote].strip()
    return canonical_name(body.decode("latin-1")) == name


def lines_are_simple(data: bytes) -> bool:
    """True when counting b'\\n' gives Python's line numbers (no lone '\\r' line ends)."""
    return b"\r" not in data or data.count(b"\r") == data.count(b"\r\n")


def hit_lines(data: bytes, hits: list[tuple[int, str]]) -> list[int]:
    """The 1-based line of each hit (hits in file order)."""
    lines = []
    line, last = 1, 0
    for offset, _ in hits:
        line += data.count(b"\n", last, offset)
        last = offset
        lines.append(line)
    return lines


def region_source(data: bytes, low: bytes, hits: list[tuple[int, str]]) -> bytes | None:
    """The top-level statements that contain the hits, padded with newlines so line numbers stay right.

    None when that would not save much or is not safe: a non-default encoding declaration, lone '\\r'
    line ends, or an unterminated string. The caller parses the whole file instead, and also when the
    regions do not parse (a boundary guessed wrong cannot change a result, only cost a second parse).
    """
    if not hits or _CODING.match(data) or not lines_are_simple(data):
        return None
    starts = _statement_starts(low)
    if starts is None:
        return None
    regions: list[tuple[int, int]] = []
    for offset, _ in hits:
        index = bisect.bisect_right(starts, offset) - 1
        start = starts[index] if index >= 0 else 0
        end = starts[index + 1] if index + 1 < len(starts) else len(data)
        if regions and start <= regions[-1][1]:
            regions[-1] = (regions[-1][0], max(end, regions[-1][1]))
        else:
            regions.append((start, end))
    if sum(end - start for start, end in regions) > len(data) // 2:
        return None
    parts = []
    line = 1
    for start, end in regions:
        start_line = data.count(b"\n", 0, start) + 1
        parts.append(b"\n" * (start_line - line))
        chunk = data[start:end]
        parts.append(chunk)
        line = start_line + chunk.count(b"\n")
        if not chunk.endswith(b"\n"):
            parts.append(b"\n")
            line += 1
    return b"".join(parts)


def _statement_starts(low: bytes) -> list[int] | None:
    """Offsets of the top-level `def`/`class` statements (decorators included), outside strings.

    Only these lines serve as boundaries: at column 0 a `def` or `class` cannot be inside brackets, so
    the one thing to rule out is a string spanning them (a docstring quoting code). Module-level
    statements between two definitions stay in the region of the definition above them.
    """
    candidates = [m.end() for m in _DEFINITION_START.finditer(low)]
    if _DEFINITION_START.match(b"\n" + low[:16]):
        candidates.insert(0, 0)
    starts: list[int] = []
    tokens = _TOKEN.finditer(low)
    pending = next(tokens, None)
    last_end = -1
    previous_decorator = False
    for candidate in candidates:
        while pending is not None and pending.start() < candidate:
            if pending.end() - pending.start() == 1 and low[pending.start()] != _HASH:
                return None  # a lone quote: strings cannot be told apart from code after it
            last_end = pending.end()
            pending = next(tokens, None)
        if last_end > candidate:
            continue  # inside a string
        if not previous_decorator:
            starts.append(candidate)
        previous_decorator = low[candidate] == 0x40  # '@': the definition below belongs with it
    return starts
