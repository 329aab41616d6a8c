"""search_code's engine: a literal or regex search over the files of the last walk, bounded in every way.

A user-supplied regex must not be able to hang the server, so it goes through three bounds: a length
limit; a rejection of nested variable quantifiers such as `(a+)+` (the classic catastrophic-backtracking
shape) before anything runs; and a time budget enforced inside the matcher by the `regex` module's
`timeout=`, which also releases the GIL while matching (`concurrent=True`) so the event loop keeps running.
Paths are only those found by the walk under the root; a glob cannot name anything outside it.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from typing import Any

import regex

from mcp.protocol.clip import clip_repr
from mcp.search.gitignore import translate_glob
from mcp.search.walker import read_regular_file

MAX_PATTERN_LENGTH = 1000
MAX_GLOB_LENGTH = 300
MAX_RESULTS_LIMIT = 1000
MAX_LINE_CHARS = 300
DEFAULT_TIME_BUDGET_SECONDS = 5.0
_BINARY_SNIFF_BYTES = 8192

try:  # the stdlib's own regex parser, used only to inspect a pattern's structure
    from re import _constants as _sre_constants  # type: ignore[attr-defined]
    from re import _parser as _sre_parser  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - a future Python without them: the time budget still bounds the match
    _sre_parser = None
    _sre_constants = None


class SearchError(ValueError):
    """The search cannot run or could not finish: the message says what to change."""


def compile_pattern(pattern: str, *, is_regex: bool) -> regex.Pattern[str]:
    """Compile a search pattern; raises SearchError for empty, over-long, dangerous or invalid ones."""
    if not isinstance(pattern, str) or not pattern:
        raise SearchError(f"expected a non-empty pattern string, received {clip_repr(pattern)}")
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise SearchError(f"expected a pattern of at most {MAX_PATTERN_LENGTH} characters, received {len(pattern)}")
    if not is_regex:
        return regex.compile(regex.escape(pattern))
    problem = nested_quantifier(pattern)
    if problem is not None:
        raise SearchError(
            f"pattern too slow (rejected before running): {problem}, which backtracks catastrophically; "
            "expected a pattern without a repeated group that itself ends in a repeat (e.g. a+ instead of (a+)+)"
        )
    try:
        return regex.compile(pattern, regex.MULTILINE)
    except regex.error as e:
        raise SearchError(f"invalid regular expression {clip_repr(pattern)}: {e}") from e


def nested_quantifier(pattern: str) -> str | None:
    """Describe a repeat whose body ends in an unbounded repeat (`(a+)+`, `(\\w+\\s?)*`), None if there is none.

    That shape lets the engine split the same text between the inner and the outer repeat in
    exponentially many ways when the match fails. `(\\w+/)*` is fine: each round must end with '/'.
    """
    if _sre_parser is None or _sre_constants is None:
        return None
    try:
        parsed = _sre_parser.parse(pattern)
    except (re.error, OverflowError, RecursionError):
        return None  # syntax `re` does not know (the `regex` module's extensions): the time budget bounds it
    return _find_nested(list(parsed))


def _find_nested(items: list[Any]) -> str | None:
    c = _sre_constants
    for op, av in items:
        children: list[list[Any]] = []
        if op in (c.MAX_REPEAT, c.MIN_REPEAT):
            low, high, sub = av
            if high == c.MAXREPEAT or high > 10:
                inner = _tail_repeat(list(sub))
                if inner is not None:
                    outer = f"{{{low},{'' if high == c.MAXREPEAT else high}}}"
                    return f"a group repeated {outer} that ends in the unbounded repeat {inner}"
            children = [list(sub)]
        elif op is c.SUBPATTERN:
            children = [list(av[-1])]
        elif op is c.BRANCH:
            children = [list(branch) for branch in av[1]]
        elif op in (c.ASSERT, c.ASSERT_NOT):
            children = [list(av[-1])]
        for child in children:
            found = _find_nested(child)
            if found is not None:
                return found
    return None


def _tail_repeat(items: list[Any]) -> str | None:
    """The unbounded, backtracking repeat a sequence can end with (skipping optional parts), if any."""
    c = _sre_constants
    for op, av in reversed(items):
        if op in (c.MAX_REPEAT, c.MIN_REPEAT):
            low, high, sub = av
            if high == c.MAXREPEAT:
                return f"{{{low},}}"
            if low == 0:
                continue  # optional: the part before it can end the round too
            return _tail_repeat(list(sub))
        if op is c.SUBPATTERN:
            return _tail_repeat(list(av[-1]))
        if op is c.BRANCH:
            for branch in av[1]:
                found = _tail_repeat(list(branch))
                if found is not None:
                    return found
            return None
        if op is c.AT:
            continue  # an anchor is zero-width
        return None  # a mandatory character, a possessive repeat or an atomic group ends the round
    return None


def compile_glob(glob: str | None) -> Callable[[str], bool] | None:
    """A filter on root-relative paths; raises SearchError for globs that try to leave the root."""
    if glob is None or glob == "":
        return None
    if not isinstance(glob, str) or len(glob) > MAX_GLOB_LENGTH or "\0" in glob:
        raise SearchError(f"expected a glob of at most {MAX_GLOB_LENGTH} characters, received {glob!r:.80}")
    normalized = glob.replace("\\", "/")
    if normalized.startswith("/") or re.match(r"[A-Za-z]:", normalized) or ".." in normalized.split("/"):
        raise SearchError(f"expected a glob relative to the search root without '..', received {clip_repr(glob)}")
    compiled = re.compile(translate_glob(normalized.removeprefix("./")), re.S)
    if "/" in normalized.removeprefix("./"):
        return lambda rel: compiled.match(rel) is not None
    return lambda rel: compiled.match(rel.rpartition("/")[2]) is not None


def search_files(
    root: str,
    files: Sequence[str],
    pattern: str,
    *,
    is_regex: bool = False,
    glob: str | None = None,
    max_results: int = 100,
    time_budget: float = DEFAULT_TIME_BUDGET_SECONDS,
    max_file_bytes: int = 1_000_000,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Search `files` (root-relative) for `pattern`: one result per matching line, at most `max_results`.

    Raises SearchError for bad arguments and for a pattern that overruns the time budget.
    """
    if isinstance(max_results, bool) or not isinstance(max_results, int) or not 1 <= max_results <= MAX_RESULTS_LIMIT:
        raise SearchError(f"expected max_results between 1 and {MAX_RESULTS_LIMIT}, received {clip_repr(max_results)}")
    compiled = compile_pattern(pattern, is_regex=is_regex)
    path_filter = compile_glob(glob)
    started = clock()
    deadline = started + time_budget
    matches: list[dict[str, Any]] = []
    searched = skipped = 0
    truncated = budget_exhausted = False
    for rel in files:
        if path_filter is not None and not path_filter(rel):
            continue
        remaining = deadline - clock()
        if remaining <= 0:
            budget_exhausted = truncated = True
            break
        text = _read_text(f"{root}/{rel}", max_file_bytes)
        if text is None:
            skipped += 1
            continue
        searched += 1
        try:
            truncated = _search_text(compiled, text, rel, matches, max_results, remaining)
        except TimeoutError as e:
            raise SearchError(
                f"pattern too slow: matching {clip_repr(pattern)} in {rel} overran the {time_budget:g} s budget; "
                "expected a simpler pattern (no nested or overlapping repeats)"
            ) from e
        if truncated:
            break
    return {
        "status": "ok",
        "pattern": pattern,
        "regex": is_regex,
        "glob": glob,
        "matches": matches,
        "match_count": len(matches),
        "truncated": truncated,
        "time_budget_exhausted": budget_exhausted,
        "files_searched": searched,
        "files_skipped": skipped,
        "duration_ms": round((clock() - started) * 1000, 1),
    }


def _read_text(path: str, limit: int) -> str | None:
    """The file as text, None when it is unreadable, too large or binary (searched files are skipped, not fatal)."""
    try:
        data = read_regular_file(path, limit)
    except OSError:
        return None
    if len(data) > limit or b"\0" in data[:_BINARY_SNIFF_BYTES]:
        return None
    return data.decode("utf-8", errors="replace")


def _search_text(
    compiled: regex.Pattern[str], text: str, rel: str, matches: list[dict[str, Any]], limit: int, timeout: float
) -> bool:
    """Append one result per matching line; True once `limit` results are collected."""
    line, last, last_line = 1, 0, 0
    for m in compiled.finditer(text, timeout=timeout, concurrent=True):
        start = m.start()
        line += text.count("\n", last, start)
        last = start
        if line == last_line:
            continue
        last_line = line
        line_start = text.rfind("\n", 0, start) + 1
        line_end = text.find("\n", start)
        snippet = text[line_start : line_end if line_end != -1 else len(text)]
        matches.append({"file": rel, "line": line, "text": snippet[:MAX_LINE_CHARS]})
        if len(matches) >= limit:
            return True
    return False
