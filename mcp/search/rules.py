"""Violations: decisions over the usages found, plus the `.env.example` ↔ Settings drift check.

Pure functions of the usages and of the two files' text; the scanner does the reading.
Module lists use root-relative '/' paths: an entry ending in '/' covers a directory, an entry with
`*`, `?` or `[` is a glob (gitignore syntax), anything else is one file.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from mcp.search.classify import Kind, Usage
from mcp.search.gitignore import translate_glob

DEFAULT_ALLOWED_WRITE_MODULES: tuple[str, ...] = (
    "config/",
    "core/circuit_breaker.py",
    "core/trade_executor.py",
    "core/pre_trade_checks.py",
)
# where a parameter's value may be written down as a number: the settings themselves
DEFAULT_LITERAL_MODULES: tuple[str, ...] = ("config/",)
# tests pass literal limits and monkeypatch settings on purpose: their usages count, their violations do not
DEFAULT_EXEMPT_MODULES: tuple[str, ...] = ("tests/", "test/", "**/test_*.py", "**/*_test.py", "**/conftest.py")


class Rule(StrEnum):
    WRITE_OUTSIDE_ALLOWED = "write_outside_allowed_modules"
    HARDCODED_LITERAL = "hardcoded_literal"
    ENV_NOT_IN_SETTINGS = "env_example_variable_not_in_settings"
    SETTING_NOT_IN_ENV = "setting_missing_from_env_example"


@dataclass(frozen=True, slots=True)
class Violation:
    rule: Rule
    file: str
    line: int
    parameter: str
    message: str

    def to_dict(self) -> dict[str, object]:
        return {
            "rule": self.rule.value,
            "file": self.file,
            "line": self.line,
            "parameter": self.parameter,
            "message": self.message,
        }


class ModuleSet:
    """A list of root-relative paths, directories (trailing '/') and globs, asked 'does it cover this file?'."""

    def __init__(self, entries: Iterable[str]) -> None:
        self.entries = tuple(entries)
        self._dirs = tuple(e.strip("/") + "/" for e in self.entries if e.endswith("/"))
        self._files = frozenset(e.lstrip("/") for e in self.entries if not e.endswith("/") and not _is_glob(e))
        # like .gitignore: a glob without '/' matches a file name at any depth
        self._globs = tuple(
            (re.compile(translate_glob(e.lstrip("/")), re.S), "/" in e) for e in self.entries if _is_glob(e)
        )

    def covers(self, rel: str) -> bool:
        """Whether `rel` is one of the files, inside one of the directories, or matches one of the globs."""
        if rel in self._files or rel.startswith(self._dirs):
            return True
        name = rel.rpartition("/")[2]
        return any(glob.match(rel if anchored else name) for glob, anchored in self._globs)


def _is_glob(entry: str) -> bool:
    return any(char in entry for char in "*?[")


def usage_violations(
    usages_by_file: Mapping[str, Sequence[Usage]],
    *,
    allowed_write: ModuleSet,
    literal_allowed: ModuleSet,
    exempt: ModuleSet,
) -> list[Violation]:
    """Writes outside the allowed modules and hard-coded literals outside the settings, file by file."""
    found = []
    for rel in sorted(usages_by_file):
        if exempt.covers(rel):
            continue
        for usage in usages_by_file[rel]:
            if usage.kind is Kind.WRITE and not allowed_write.covers(rel):
                found.append(
                    Violation(
                        Rule.WRITE_OUTSIDE_ALLOWED,
                        rel,
                        usage.line,
                        usage.parameter,
                        f"{usage.parameter} is written here ({usage.detail}); expected writes only in "
                        f"{', '.join(allowed_write.entries) or 'no module'}",
                    )
                )
            elif usage.kind is Kind.LITERAL and not literal_allowed.covers(rel):
                found.append(
                    Violation(
                        Rule.HARDCODED_LITERAL,
                        rel,
                        usage.line,
                        usage.parameter,
                        f"hard-coded number for {usage.parameter} ({usage.detail}) shadows the setting; "
                        f"read it from Settings instead",
                    )
                )
    return found


# an active line `NAME=…` / `export NAME=…`, or a commented-out one `# NAME=…` (upper case, no space before
# '=', so that prose comments such as "# note = …" are not taken for variables)
_ENV_LINE = re.compile(
    r"^[ \t]*(?:(?:export[ \t]+)?([A-Za-z_][A-Za-z0-9_]*)[ \t]*=|#[ \t]*(?:export[ \t]+)?([A-Z][A-Z0-9_]*)=)", re.M
)


def env_example_variables(text: str) -> dict[str, int]:
    """Variables documented in a .env.example (`NAME=…`, `export NAME=…`, or commented out `# NAME=…`) → line."""
    found: dict[str, int] = {}
    for m in _ENV_LINE.finditer(text):
        found.setdefault((m.group(1) or m.group(2)).upper(), text.count("\n", 0, m.start()) + 1)
    return found


def settings_fields(source: bytes, class_name: str = "Settings") -> tuple[dict[str, int], str]:
    """Field name → line of the pydantic-settings class `class_name` in `source`, and its env_prefix.

    Read with `ast`, never imported: the scanned tree is not trusted code. Raises SyntaxError/ValueError
    when the file does not parse and LookupError when it has no such class.
    """
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name == class_name:
            fields: dict[str, int] = {}
            prefix = ""
            for statement in node.body:
                if isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
                    name = statement.target.id
                    if not name.startswith("_") and "ClassVar" not in ast.unparse(statement.annotation):
                        fields[name] = statement.lineno
                if isinstance(statement, ast.AnnAssign | ast.Assign):
                    prefix = _env_prefix(statement) or prefix
            fields.pop("model_config", None)
            return fields, prefix
    raise LookupError(f"expected a class {class_name!r} in the settings module, found none")


def _env_prefix(statement: ast.AnnAssign | ast.Assign) -> str | None:
    targets = [statement.target] if isinstance(statement, ast.AnnAssign) else statement.targets
    if not any(isinstance(t, ast.Name) and t.id == "model_config" for t in targets):
        return None
    value = statement.value
    if isinstance(value, ast.Call):
        for keyword in value.keywords:
            if keyword.arg == "env_prefix" and isinstance(keyword.value, ast.Constant):
                return str(keyword.value.value)
    if isinstance(value, ast.Dict):
        for key, item in zip(value.keys, value.values, strict=True):
            if isinstance(key, ast.Constant) and key.value == "env_prefix" and isinstance(item, ast.Constant):
                return str(item.value)
    return None


def env_drift(
    env_file: str, env_text: str, settings_file: str, fields: Mapping[str, int], env_prefix: str = ""
) -> list[Violation]:
    """Variables of .env.example that no Settings field reads, and Settings fields .env.example omits."""
    documented = env_example_variables(env_text)
    expected = {(env_prefix + name).upper(): name for name in fields}
    found = []
    for variable, line in sorted(documented.items(), key=lambda item: item[1]):
        if variable not in expected:
            found.append(
                Violation(
                    Rule.ENV_NOT_IN_SETTINGS,
                    env_file,
                    line,
                    variable.lower(),
                    f"{variable} is documented in {env_file} but no field of Settings reads it (expected a "
                    f"field named {variable.removeprefix(env_prefix.upper()).lower()!r} in {settings_file})",
                )
            )
    for variable, name in expected.items():
        if variable not in documented:
            found.append(
                Violation(
                    Rule.SETTING_NOT_IN_ENV,
                    settings_file,
                    fields[name],
                    name,
                    f"Settings.{name} is not documented in {env_file} (expected a line {variable}=<default>)",
                )
            )
    return found
