"""Validate every setting at once and say, for each bad one, what was received and what was expected."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from config.settings import PROBLEM_SEPARATOR, Settings, load_settings

EXIT_BAD_CONFIG = 2


class ConfigurationError(ValueError):
    """The settings are invalid: fix the listed variables (in the environment or .env) and start again."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        lines = "\n".join(f"  - {problem}" for problem in problems)
        super().__init__(f"invalid configuration ({len(problems)} problem(s)):\n{lines}")


def _describe(error: dict[str, Any]) -> list[str]:
    location = ".".join(str(part) for part in error.get("loc", ()))
    message = str(error.get("msg", "invalid value")).removeprefix("Value error, ")
    if not location:
        # a rule across fields: its message already names the variables and their values
        return message.split(PROBLEM_SEPARATOR)
    received = error.get("input")
    if _is_secret(location):
        # a secret that fails validation is still a secret: say how long it was, never what it was
        size = len(received) if isinstance(received, str) else 0
        return [f"{location.upper()}: {message} (received a value of {size} characters, not shown)"]
    return [f"{location.upper()}: {message} (received {received!r})"]


def _is_secret(field_name: str) -> bool:
    field = Settings.model_fields.get(field_name)
    return field is not None and "SecretStr" in str(field.annotation)


def validate_monitoring_config(root: Path | None = None, **overrides: Any) -> Settings:
    """Load and validate the settings; raise ConfigurationError listing every bad field."""
    try:
        return load_settings(root, **overrides)
    except ValidationError as e:
        problems = [line for err in e.errors(include_url=False) for line in _describe(err)]
        bad_fields = {str(err["loc"][0]) for err in e.errors() if err.get("loc")}
        problems.extend(_cross_field_problems_without(bad_fields, root, overrides))
        raise ConfigurationError(problems) from e


def _cross_field_problems_without(bad_fields: set[str], root: Path | None, overrides: dict[str, Any]) -> list[str]:
    """Rules across fields only run once every field parses: run them again with the bad fields at their
    defaults, so that one report lists everything that is wrong."""
    if not bad_fields:
        return []
    defaults = {
        name: Settings.model_fields[name].get_default(call_default_factory=True)
        for name in bad_fields
        if name in Settings.model_fields
    }
    try:
        load_settings(root, **{**overrides, **defaults})
    except ValidationError as e:
        return [line for err in e.errors(include_url=False) if not err.get("loc") for line in _describe(err)]
    return []


def load_or_exit(root: Path | None = None) -> Settings:
    """For the CLIs: valid settings, or the problem list on stderr and exit code 2."""
    try:
        return validate_monitoring_config(root)
    except ConfigurationError as e:
        print(str(e), file=sys.stderr)
        raise SystemExit(EXIT_BAD_CONFIG) from e
