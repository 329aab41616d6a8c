"""The one reader of the bot's state files, with one error model, and the bytes the bot writes.

Every reader — the breaker restoring itself, the sidecar's read-only views, the monitoring checks, the MCP
risk tool, the report — reads through `read_state` (per file: `read_breaker_state`, `read_snapshot_state`),
and the bot serialises through `encode_state`, both against the models of `core.state_models`.

A read never raises for a bad file: it returns a `StateRead` holding the document or a `StateFileProblem`
(missing / unreadable / corrupt / wrong_schema / newer_schema) whose message names the file, the field,
what was expected, what was found and what to do. `StateRead.require()` raises that problem instead.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Generic, TypeVar

from pydantic import ValidationError

from core.state_models import MISSING_FIELD, BreakerStateFile, RiskSnapshot, StateDocument
from utils.atomic import MAX_STATE_FILE_BYTES, StateFileError, read_regular_file

DocT = TypeVar("DocT", bound=StateDocument)


# --- the one error model ------------------------------------------------------------------------------


class StateProblem(StrEnum):
    """Why a state file cannot be used."""

    MISSING = "missing"  # no file yet
    UNREADABLE = "unreadable"  # not a regular file, too large, no permission
    CORRUPT = "corrupt"  # not JSON, not a JSON object, NaN or Infinity
    WRONG_SCHEMA = "wrong_schema"  # an unknown schema_version, or a field of the wrong type
    NEWER_SCHEMA = "newer_schema"  # written by a newer release than this reader


class StateFileProblem(StateFileError):
    """A state file that cannot be used: `kind` says which way, the message what was found and what to do."""

    def __init__(self, kind: StateProblem, path: Path | None, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.path = path


class StateFileMissing(StateFileProblem):
    """No file yet (kind MISSING)."""


class StateSchemaMismatch(StateFileProblem):
    """The file is JSON but not of the schema version or shape this reader knows (WRONG_SCHEMA, NEWER_SCHEMA)."""


def state_problem(kind: StateProblem, path: Path | None, message: str) -> StateFileProblem:
    """The problem as the exception class its callers catch (all are StateFileProblem / StateFileError)."""
    if kind is StateProblem.MISSING:
        return StateFileMissing(kind, path, message)
    if kind in (StateProblem.WRONG_SCHEMA, StateProblem.NEWER_SCHEMA):
        return StateSchemaMismatch(kind, path, message)
    return StateFileProblem(kind, path, message)


@dataclass(frozen=True, slots=True)
class StateRead(Generic[DocT]):
    """One read of a state file: the document and its JSON object, or the problem (never both)."""

    path: Path
    document: DocT | None
    payload: dict[str, Any] | None
    problem: StateFileProblem | None

    def require(self) -> DocT:
        """The document, or raise the problem."""
        if self.problem is not None:
            raise self.problem
        assert self.document is not None  # a read without a problem always has its document
        return self.document


def _where(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def shape_message(error: ValidationError) -> str:
    """The first problem of a validation error as "field 'x.y[0]' should be …, found …"."""
    first = error.errors(include_url=False)[0]
    loc = tuple(first["loc"])
    ctx = first.get("ctx") or {}
    if first["type"] == MISSING_FIELD:
        return f"field '{_where((*loc, ctx['field']))}' is missing"
    if first["type"] == "missing":
        return f"field '{_where(loc)}' is missing"
    if not loc:
        return first["msg"]
    if "index" in ctx:  # an item of a list checked as a whole (ObjectArray)
        loc = (*loc, ctx["index"])
    return f"field '{_where(loc)}' {first['msg']}"


def _first_non_finite(value: Any, loc: tuple[int | str, ...] = ()) -> tuple[tuple[int | str, ...], float] | None:
    if isinstance(value, float) and not math.isfinite(value):
        return loc, value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        found = _first_non_finite(item, (*loc, key))
        if found is not None:
            return found
    return None


def _schema_problem(path: Path, model: type[StateDocument], payload: dict[str, Any]) -> StateFileProblem | None:
    expected = model.SCHEMA_VERSION
    if "schema_version" not in payload:
        return state_problem(
            StateProblem.WRONG_SCHEMA,
            path,
            f"{path}: field 'schema_version' is missing: expected schema_version {expected}, received None "
            f"(not written by this bot? move it aside and let the bot write a new one)",
        )
    version = payload["schema_version"]
    if version == expected and not isinstance(version, bool) and isinstance(version, int):
        return None
    if isinstance(version, int) and not isinstance(version, bool) and version > expected:
        return state_problem(
            StateProblem.NEWER_SCHEMA,
            path,
            f"{path}: expected schema_version {expected}, received {version!r}: {model.WHAT} was written by a "
            f"newer release; run the bot and the sidecar from the same release",
        )
    return state_problem(
        StateProblem.WRONG_SCHEMA,
        path,
        f"{path}: expected schema_version {expected}, received {version!r} (bot and sidecar from different "
        f"releases? restart both from the same version)",
    )


def read_state(
    path: Path | str, model: type[DocT], *, complete: bool = False, max_bytes: int = MAX_STATE_FILE_BYTES
) -> StateRead[DocT]:
    """Read one state file as `model` (opened read-only, never blocking, at most `max_bytes`); never raises
    for a bad file: the problem comes back in the result. Blocking: call it from a thread on the event loop."""
    target = Path(path)

    def failed(kind: StateProblem, message: str) -> StateRead[DocT]:
        return StateRead(target, None, None, state_problem(kind, target, message))

    try:
        raw = read_regular_file(target, max_bytes, what=model.WHAT)
    except StateFileError as e:
        return failed(StateProblem.UNREADABLE, str(e))
    if raw is None:
        return failed(
            StateProblem.MISSING, f"{target} does not exist: the bot has not written it yet{model.MISSING_ADVICE}"
        )
    non_finite: list[str] = []

    def constant(name: str) -> float:
        non_finite.append(name)
        return float(name)

    try:
        payload = json.loads(raw.decode("utf-8"), parse_constant=constant)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        return failed(StateProblem.CORRUPT, f"{target} is not valid JSON: {e}")
    if not isinstance(payload, dict):
        return failed(StateProblem.CORRUPT, f"{target} should hold a JSON object, found {type(payload).__name__}")
    schema = _schema_problem(target, model, payload)
    if schema is not None:
        return StateRead(target, None, None, schema)
    if non_finite:
        found = _first_non_finite(payload)
        where = _where(found[0]) if found else "?"
        return failed(
            StateProblem.CORRUPT,
            f"{target}: field '{where}' should be a number, found {non_finite[0]} (NaN and Infinity are not JSON)",
        )
    try:
        document = model.model_validate(payload, context={"complete": complete})
    except ValidationError as e:
        return failed(StateProblem.WRONG_SCHEMA, f"{target}: {shape_message(e)}")
    return StateRead(target, document, payload, None)


def read_breaker_state(
    path: Path | str, *, complete: bool = False, max_bytes: int = MAX_STATE_FILE_BYTES
) -> StateRead[BreakerStateFile]:
    """The circuit breaker's state file (`complete=True`: everything a restart needs must be there)."""
    return read_state(path, BreakerStateFile, complete=complete, max_bytes=max_bytes)


def read_snapshot_state(path: Path | str, *, max_bytes: int = MAX_STATE_FILE_BYTES) -> StateRead[RiskSnapshot]:
    """The bot's risk snapshot."""
    return read_state(path, RiskSnapshot, max_bytes=max_bytes)


def encode_state(model: type[StateDocument], payload: dict[str, Any]) -> bytes:
    """The bytes the bot writes: `payload` checked as `model` (complete) and serialised by it.

    Raises StateFileProblem (WRONG_SCHEMA) instead of writing a file its own reader would refuse."""
    try:
        document = model.model_validate(payload, context={"complete": True})
    except ValidationError as e:
        raise state_problem(
            StateProblem.WRONG_SCHEMA, None, f"refused to write {model.WHAT}: {shape_message(e)}"
        ) from e
    return document.model_dump_json(indent=2, exclude_unset=True, fallback=str).encode("utf-8") + b"\n"
