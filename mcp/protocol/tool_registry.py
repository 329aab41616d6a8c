"""The explicit registry of MCP tools: plain typed functions in, tool definitions and checked calls out.

    registry = ToolRegistry()
    registry.register(server.search_code, server="codebase_search", root=search_root, read_only=True)

`register` returns the function unchanged, so each tool stays directly callable and testable. The input
schema comes from the type hints (additionalProperties: false), the description from the docstring, the
output schema from the return hint (a TypedDict or a union of them: the result's real keys and types; a bare
dict: any object) or an explicit one. A parameter named `progress` is not
part of the schema: the dispatcher supplies it when the client asked for progress. Parameters named
path / paths / root / glob are confined to the tool's root: `..`, absolute paths outside it, symlinks
leading out of it and option-like values ("-x") are refused before the tool runs. A duplicate name raises.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, get_type_hints

from mcp.protocol.clip import clip, clip_names, clip_repr
from mcp.protocol.schema import SchemaError, ValidationFailure, schema_for, validate

INJECTED_PARAMETERS = frozenset({"progress"})
PATH_PARAMETERS = frozenset({"path", "paths", "root", "glob"})
TOOL_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
OBJECT_OUTPUT_SCHEMA: dict[str, Any] = {"type": "object"}
MAX_PATH_CHARS = 4096


class ToolDefinitionError(TypeError):
    """A tool that cannot be registered (bad name, missing docstring, untyped parameter, duplicate)."""


class DuplicateToolError(ToolDefinitionError):
    """Two tools with one name: tool names are unique across every server of the process."""


class InvalidArguments(ValueError):
    """Arguments that do not fit the tool's input schema; answered as a tool result with isError."""

    error_type = "invalid_arguments"


class PathOutsideRoot(InvalidArguments):
    """A path argument that would leave the tool's root; answered as a tool result with isError."""

    error_type = "path_outside_root"


@dataclass(frozen=True, slots=True)
class ToolParameter:
    """One argument of a tool: its JSON Schema, whether it is required, its default."""

    name: str
    schema: dict[str, Any]
    required: bool
    default: Any = None


def _title(name: str) -> str:
    return name.replace("_", " ").replace(".", " ").strip().capitalize()


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A registered tool and everything the dispatcher needs to list it and call it safely."""

    name: str
    server: str
    func: Callable[..., Any]
    description: str
    parameters: tuple[ToolParameter, ...]
    output_schema: dict[str, Any] | None
    read_only: bool
    gate_kind: str | None = None
    cache_ttl: float | None = None
    root: Path | None = None
    path_parameters: frozenset[str] = frozenset()
    accepts_progress: bool = False
    invalidates: tuple[str, ...] = ()
    title: str = ""
    _is_coroutine: bool = field(default=False, repr=False)

    @property
    def input_schema(self) -> dict[str, Any]:
        """JSON Schema 2020-12 of the arguments: an object with exactly these properties."""
        properties: dict[str, Any] = {}
        for parameter in self.parameters:
            schema = dict(parameter.schema)
            if not parameter.required and _json_literal(parameter.default):
                schema["default"] = parameter.default
            properties[parameter.name] = schema
        schema_doc: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
        required = [parameter.name for parameter in self.parameters if parameter.required]
        if required:
            schema_doc["required"] = required
        return schema_doc

    def annotations(self) -> dict[str, Any]:
        """MCP tool annotations (hints for clients; never trusted for security)."""
        return {
            "title": self.title,
            "readOnlyHint": self.read_only,
            "destructiveHint": False,
            "idempotentHint": self.read_only,
            "openWorldHint": False,
        }

    def bind(self, arguments: Mapping[str, Any]) -> dict[str, Any]:
        """Validate and coerce the client's arguments (defaults filled in); raises InvalidArguments / PathOutsideRoot.

        Resolves paths on the filesystem (symlinks): call it off the event loop when path arguments are given.
        """
        known = {parameter.name: parameter for parameter in self.parameters}
        problems: list[str] = []
        unknown = sorted(set(arguments) - set(known))
        if unknown:
            expected = ", ".join(known) or "no arguments"
            problems.append(f"unknown argument(s) {clip_names(unknown)} (expected only {expected})")
        bound: dict[str, Any] = {}
        for name, parameter in known.items():
            if name not in arguments:
                if parameter.required:
                    problems.append(f"missing required argument {name!r}")
                bound[name] = parameter.default
                continue
            try:
                bound[name] = validate(arguments[name], parameter.schema, f"argument {name!r}")
            except ValidationFailure as e:
                problems.append(str(e))
        if problems:
            raise InvalidArguments(f"{self.name}: invalid arguments: " + "; ".join(problems))
        if self.root is not None:
            for name in self.path_parameters:
                try:
                    confine_argument(self.root, name, bound.get(name))
                except PathOutsideRoot as e:
                    raise PathOutsideRoot(f"{self.name}: {e}") from e
        return bound

    async def invoke(self, arguments: Mapping[str, Any], progress: Any = None) -> Any:
        """Call the tool with bound arguments (a sync tool runs in a worker thread)."""
        kwargs = dict(arguments)
        if self.accepts_progress:
            kwargs["progress"] = progress
        if self._is_coroutine:
            return await self.func(**kwargs)
        result = await asyncio.to_thread(self.func, **kwargs)
        return await result if inspect.isawaitable(result) else result


def _json_literal(value: Any) -> bool:
    if value is None or isinstance(value, str | int | float | bool):
        return True
    if isinstance(value, list | tuple):
        return all(_json_literal(item) for item in value)
    return False


def confine_argument(root: Path, name: str, value: Any) -> None:
    """Refuse a path-like argument (str or list of str) that could name anything outside `root`."""
    if value is None:
        return
    values = value if isinstance(value, list) else [value]
    for item in values:
        if not isinstance(item, str):
            continue  # the schema already refused it, or the tool accepts a non-path value here
        if name == "glob":
            confine_glob(item, name)
        else:
            confine_path(root, item, name)


def _basic_path_checks(value: str, name: str) -> None:
    if "\0" in value:
        raise PathOutsideRoot(f"argument {name!r}: a path cannot contain a NUL character")
    if len(value) > MAX_PATH_CHARS:
        raise PathOutsideRoot(f"argument {name!r}: expected a path of at most {MAX_PATH_CHARS} characters")
    if value.startswith("-"):
        raise PathOutsideRoot(
            f"argument {name!r}: expected a path, received the option-like {value[:40]!r} (paths cannot start with '-')"
        )
    parts = PurePosixPath(value.replace("\\", "/")).parts
    if ".." in parts or ".." in value.replace("\\", "/").split("/"):
        raise PathOutsideRoot(
            f"argument {name!r}: expected a path inside the root without '..', received {clip_repr(value)}"
        )


def confine_glob(pattern: str, name: str = "glob") -> None:
    """A glob is matched against root-relative paths: refuse absolute ones and any '..' component."""
    _basic_path_checks(pattern, name)
    normalized = pattern.replace("\\", "/")
    if normalized.startswith("/") or re.match(r"^[A-Za-z]:", normalized) or normalized.startswith("~"):
        raise PathOutsideRoot(f"argument {name!r}: expected a glob relative to the root, received {clip_repr(pattern)}")


def confine_path(root: Path, value: str, name: str = "path") -> Path:
    """The resolved path of `value` under `root`; raises PathOutsideRoot if it (or a symlink on the way) leaves it.

    A pytest node id (`tests/test_x.py::test_y`) is checked on its file part.
    """
    _basic_path_checks(value, name)
    file_part = value.split("::", 1)[0]
    if file_part.startswith("~"):
        raise PathOutsideRoot(f"argument {name!r}: expected a path inside the root, received {clip_repr(value)}")
    real_root = Path(os.path.realpath(root))
    candidate = Path(file_part)
    if not candidate.is_absolute():
        candidate = real_root / candidate
    # realpath follows every symlink on the way, so a link inside the root pointing out of it is caught
    resolved = Path(os.path.realpath(candidate))
    if resolved != real_root and real_root not in resolved.parents:
        raise PathOutsideRoot(
            f"argument {name!r}: {clip_repr(value)} resolves to {clip(resolved)}, outside the configured root "
            f"{real_root}; expected a path inside the root"
        )
    return resolved


def _parameters(func: Callable[..., Any], name: str) -> tuple[tuple[ToolParameter, ...], bool, Any]:
    try:
        hints = get_type_hints(func, include_extras=True)
    except Exception as e:  # a forward reference that does not resolve: say which tool
        raise ToolDefinitionError(f"tool {name!r}: cannot resolve its type hints ({type(e).__name__}: {e})") from e
    parameters: list[ToolParameter] = []
    accepts_progress = False
    for parameter in inspect.signature(func).parameters.values():
        if parameter.kind in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD):
            raise ToolDefinitionError(f"tool {name!r}: *args / **kwargs cannot be described as a schema")
        if parameter.name in INJECTED_PARAMETERS:
            accepts_progress = True
            continue
        if parameter.name not in hints:
            raise ToolDefinitionError(f"tool {name!r}: parameter {parameter.name!r} has no type hint")
        try:
            schema = schema_for(hints[parameter.name], f"tool {name!r} parameter {parameter.name!r}")
        except SchemaError as e:
            raise ToolDefinitionError(str(e)) from e
        required = parameter.default is inspect.Parameter.empty
        parameters.append(ToolParameter(parameter.name, schema, required, None if required else parameter.default))
    return tuple(parameters), accepts_progress, hints.get("return")


def is_typed_result(hint: Any) -> bool:
    """A TypedDict, or a union of TypedDicts (a tool with several result shapes, e.g. its answer or an error)."""
    if hint is None:
        return False
    if typing.is_typeddict(hint):
        return True
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return all(typing.is_typeddict(member) for member in typing.get_args(hint))
    return False


def returns_typed_result(func: Callable[..., Any]) -> bool:
    """True when `func`'s return hint is a typed result: its schema is the tool's outputSchema."""
    try:
        hint = get_type_hints(func).get("return")
    except Exception:
        return False
    return is_typed_result(hint)


def _output_schema(return_hint: Any, explicit: dict[str, Any] | None, name: str) -> dict[str, Any] | None:
    if explicit is not None:
        return explicit
    if is_typed_result(return_hint):
        try:
            schema = schema_for(return_hint, f"tool {name!r} return", result=True)
        except SchemaError as e:
            raise ToolDefinitionError(str(e)) from e
        # MCP wants an object schema: a union of shapes is an object that matches one of them
        return schema if "type" in schema else {"type": "object", **schema}
    origin = getattr(return_hint, "__origin__", return_hint)
    if origin in (dict, Mapping) or return_hint is dict:
        return dict(OBJECT_OUTPUT_SCHEMA)
    return None


class ToolRegistry:
    """Tools by name, in registration order (the order tools/list pages through)."""

    def __init__(self) -> None:
        self._tools: dict[str, ToolSpec] = {}

    def register(
        self,
        func: Callable[..., Any],
        *,
        server: str,
        name: str | None = None,
        read_only: bool = False,
        gate_kind: str | None = None,
        cache_ttl: float | None = None,
        root: Path | None = None,
        path_parameters: Iterable[str] = (),
        output_schema: dict[str, Any] | None = None,
        invalidates: Sequence[str] = (),
        description: str | None = None,
    ) -> Callable[..., Any]:
        """Register `func` as a tool and return it unchanged; raises ToolDefinitionError / DuplicateToolError."""
        tool_name = name if name is not None else getattr(func, "__name__", "")
        if not TOOL_NAME.match(tool_name):
            raise ToolDefinitionError(f"tool name {tool_name!r}: expected 1-128 characters among A-Z a-z 0-9 _ - .")
        if tool_name in self._tools:
            previous = self._tools[tool_name].server
            raise DuplicateToolError(f"tool {tool_name!r} is already registered (by server {previous!r})")
        doc = description or inspect.getdoc(func)
        if not doc:
            raise ToolDefinitionError(f"tool {tool_name!r}: a docstring is required (it is the tool's description)")
        if cache_ttl is not None and (cache_ttl <= 0 or not read_only):
            raise ToolDefinitionError(f"tool {tool_name!r}: only read-only tools are cached, with a TTL > 0")
        parameters, accepts_progress, return_hint = _parameters(func, tool_name)
        names = {parameter.name for parameter in parameters}
        confined = frozenset((names & PATH_PARAMETERS) | set(path_parameters))
        if confined - names:
            raise ToolDefinitionError(f"tool {tool_name!r}: path parameter(s) {sorted(confined - names)} do not exist")
        if confined and root is None:
            raise ToolDefinitionError(
                f"tool {tool_name!r}: path parameter(s) {sorted(confined)} need a root to be confined to"
            )
        self._tools[tool_name] = ToolSpec(
            name=tool_name,
            server=server,
            func=func,
            description=doc,
            parameters=parameters,
            output_schema=_output_schema(return_hint, output_schema, tool_name),
            read_only=read_only,
            gate_kind=gate_kind,
            cache_ttl=cache_ttl,
            root=Path(root) if root is not None else None,
            path_parameters=confined,
            accepts_progress=accepts_progress,
            invalidates=tuple(invalidates),
            title=_title(tool_name),
            _is_coroutine=inspect.iscoroutinefunction(func),
        )
        return func

    def get(self, name: str) -> ToolSpec | None:
        """The tool called `name`, or None."""
        return self._tools.get(name)

    def tools(self) -> list[ToolSpec]:
        """Every tool in registration order."""
        return list(self._tools.values())

    def names(self) -> list[str]:
        """Every tool name in registration order."""
        return list(self._tools)

    def __len__(self) -> int:
        return len(self._tools)
