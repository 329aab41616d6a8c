"""The .gitignore pattern language, implemented here so non-git trees are filtered like git would.

Semantics (gitignore(5)): blank lines and `#` comments are skipped; `\\#`, `\\!` and `\\ ` escape;
`!pattern` re-includes; a trailing `/` matches directories only; a pattern with a `/` at the start or in
the middle is anchored to the directory of its .gitignore, otherwise it matches a name at any depth;
`*` and `?` never match `/`; `**/` (leading), `/**` (trailing) and `/**/` (middle) span directories.
A deeper .gitignore wins over a shallower one; within one file the last matching line wins. As in git,
a file inside an excluded directory cannot be re-included (the walker never enters that directory).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class IgnoreRule:
    """One compiled line of a .gitignore file."""

    pattern: str
    regex: re.Pattern[str]
    negated: bool
    dir_only: bool
    anchored: bool  # matched against the path relative to the .gitignore's directory, else against the name


def parse_gitignore(lines: Iterable[str]) -> list[IgnoreRule]:
    """Compile the lines of one .gitignore file; lines that are not patterns are skipped."""
    rules = []
    for raw in lines:
        rule = compile_rule(raw)
        if rule is not None:
            rules.append(rule)
    return rules


def compile_rule(raw: str) -> IgnoreRule | None:
    """Compile one .gitignore line, None for a blank line or a comment."""
    line = raw.rstrip("\n").rstrip("\r")
    line = _strip_trailing_spaces(line)
    if not line or line.startswith("#"):
        return None
    negated = line.startswith("!")
    if negated or line.startswith(("\\!", "\\#")):
        line = line[1:]  # the "!" marker, or the backslash escaping a leading "!" / "#"
    dir_only = line.endswith("/") and not line.endswith("\\/")
    if dir_only:
        line = line.rstrip("/")
    if not line:
        return None
    anchored = "/" in line
    line = line.removeprefix("/")
    return IgnoreRule(raw.strip(), re.compile(translate_glob(line), re.S), negated, dir_only, anchored)


def _strip_trailing_spaces(line: str) -> str:
    stripped = line.rstrip(" ")
    if stripped.endswith("\\") and len(stripped) < len(line):
        return stripped + " "  # "\ " keeps one escaped space
    return stripped


def translate_glob(glob: str) -> str:
    """A regex (anchored at both ends) for a gitignore-style glob matched against a '/'-separated path."""
    out: list[str] = []
    i, n = 0, len(glob)
    while i < n:
        char = glob[i]
        if char == "*":
            stars = 1
            while i + stars < n and glob[i + stars] == "*":
                stars += 1
            at_start = i == 0 or glob[i - 1] == "/"
            at_end = i + stars == n or glob[i + stars] == "/"
            if stars >= 2 and at_start and at_end:
                if i + stars == n:
                    out.append(".*")  # "a/**": everything inside a
                else:
                    out.append("(?:.*/)?")  # "**/a" or "a/**/b": zero or more directories
                    stars += 1  # the "/" after ** is part of the group
            else:
                out.append("[^/]*")
            i += stars
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[":
            end, cls = _char_class(glob, i)
            out.append(cls)
            i = end
        elif char == "\\" and i + 1 < n:
            out.append(re.escape(glob[i + 1]))
            i += 2
        else:
            out.append(re.escape(char))
            i += 1
    return r"\A" + "".join(out) + r"\Z"


def _char_class(glob: str, start: int) -> tuple[int, str]:
    """Translate the bracket expression at glob[start]; an unclosed '[' is a literal '['."""
    i = start + 1
    negate = i < len(glob) and glob[i] in "!^"
    if negate:
        i += 1
    body: list[str] = []
    first = True
    while i < len(glob) and (glob[i] != "]" or first):
        char = glob[i]
        if char == "\\" and i + 1 < len(glob):
            body.append(re.escape(glob[i + 1]))
            i += 2
        else:
            body.append("-" if char == "-" else re.escape(char))
            i += 1
        first = False
    if i >= len(glob):
        return start + 1, re.escape("[")
    # a bracket expression never matches "/" (fnmatch with FNM_PATHNAME)
    return i + 1, "(?!/)[" + ("^" if negate else "") + "".join(body) + "]"


class IgnoreStack:
    """The .gitignore rules in force in one directory: its own file's rules above its parents'."""

    __slots__ = ("_any_anchored", "_any_name", "base", "parent", "rules")

    def __init__(self, rules: list[IgnoreRule], base: str, parent: IgnoreStack | None) -> None:
        self.rules = rules
        self.base = base  # the directory of these rules, relative to the root ("" for the root)
        self.parent = parent
        # one regex per kind that matches whenever any rule could: most paths match none, so one call settles them
        self._any_anchored = _union([rule.regex for rule in rules if rule.anchored])
        self._any_name = _union([rule.regex for rule in rules if not rule.anchored])

    def ignored(self, rel: str, name: str, is_dir: bool) -> bool:
        """Whether `rel` (root-relative, '/'-separated) is excluded by the rules in force."""
        level: IgnoreStack | None = self
        while level is not None:
            verdict = level._verdict(rel, name, is_dir)
            if verdict is not None:
                return verdict
            level = level.parent
        return False

    def _verdict(self, rel: str, name: str, is_dir: bool) -> bool | None:
        local = rel[len(self.base) + 1 :] if self.base else rel
        if not (self._any_name and self._any_name.match(name)) and not (
            self._any_anchored and self._any_anchored.match(local)
        ):
            return None
        for rule in reversed(self.rules):
            if rule.dir_only and not is_dir:
                continue
            if rule.regex.match(local if rule.anchored else name):
                return not rule.negated
        return None


def _union(patterns: list[re.Pattern[str]]) -> re.Pattern[str] | None:
    if not patterns:
        return None
    return re.compile("|".join(f"(?:{p.pattern})" for p in patterns), re.S)
