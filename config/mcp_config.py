"""Validate every setting at once and say, for each bad one, what was received and what was expected."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from config.folders import folder_problems, writable_folders
from config.settings import PROBLEM_SEPARATOR, Settings, cross_field_problems, env_files_for, load_settings

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


def validate_monitoring_config(root: Path | None = None, *, check_folders: bool = False, **overrides: Any) -> Settings:
    """Load and validate the settings; raise ConfigurationError listing every bad field.

    `check_folders=True` (the bot's start) also checks that STATE_DIR and LOG_DIR can be written, with a
    real write; the folders are created only when every other setting is valid.
    """
    try:
        settings = load_settings(root, **overrides)
    except ValidationError as e:
        problems = [line for err in e.errors(include_url=False) for line in _describe(err)]
        bad_fields = {str(err["loc"][0]) for err in e.errors() if err.get("loc")}
        partial = _fields_only(bad_fields, root, overrides)
        if bad_fields and partial is not None:
            # rules across fields only run once every field parses: run them on the partial settings too
            problems.extend(cross_field_problems(partial))
        if check_folders and partial is not None:
            folders = {
                variable: path
                for variable, path in writable_folders(partial).items()
                if variable.lower() not in bad_fields
            }
            problems.extend(folder_problems(folders, create=False))
        raise ConfigurationError(problems) from e
    if check_folders:
        problems = folder_problems(writable_folders(settings), create=True)
        if problems:
            raise ConfigurationError(problems)
    return settings


class _FieldsOnly(Settings):
    """Settings without the rules across fields, so that it loads whenever each field parses."""

    def _consistent(self) -> _FieldsOnly:
        return self


def _fields_only(bad_fields: set[str], root: Path | None, overrides: dict[str, Any]) -> Settings | None:
    """The settings with every bad field at its default, so one report can list everything that is wrong
    (None if even that does not load: the field errors are then the whole report)."""
    defaults = {
        name: Settings.model_fields[name].get_default(call_default_factory=True)
        for name in bad_fields
        if name in Settings.model_fields
    }
    env_files = env_files_for(os.environ.get("ENVIRONMENT"), root)
    try:
        return _FieldsOnly(_env_file=env_files, **{**overrides, **defaults})  # type: ignore[call-arg]
    except ValidationError:
        return None


def load_or_exit(root: Path | None = None, *, check_folders: bool = False) -> Settings:
    """For the CLIs: valid settings, or the problem list on stderr and exit code 2."""
    try:
        return validate_monitoring_config(root, check_folders=check_folders)
    except ConfigurationError as e:
        print(str(e), file=sys.stderr)
        raise SystemExit(EXIT_BAD_CONFIG) from e
