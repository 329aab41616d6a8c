"""JSON Schema (2020-12 subset) from Python type hints, and validation of decoded JSON against it.

Supported hints: str, int, float, bool, None, an Enum (its values), `X | None` / Optional[X], list[X] /
Sequence[X], tuple[X, ...], dict[str, X], Literal[...], Annotated[X, "description"], and a TypedDict (an
object with exactly its keys, NotRequired[...] for a key that may be absent; tools return one, or a union of
them, to publish a typed outputSchema). A result may also hold Any (any JSON value) and unions of several
types (`A | B`, anyOf); an argument may not.
Anything else raises `SchemaError` when the tool is registered, so a tool whose arguments or result cannot be
described is refused at start-up, not at call time. The validator covers exactly the keywords the generator
emits (type, enum, items, properties, required, additionalProperties, anyOf, description, default) and
coerces where JSON cannot tell types apart (1.0 for an integer, 1 for a float).
"""

from __future__ import annotations

import collections.abc
import enum
import types
import typing
from typing import Any, Literal, get_args, get_origin

JSON_TYPES: dict[type, str] = {str: "string", bool: "boolean", int: "integer", float: "number", type(None): "null"}


class SchemaError(TypeError):
    """A type hint that cannot become a JSON Schema: the message names the hint and what is supported."""


class ValidationFailure(ValueError):
    """A value that does not match its schema: the message says where, what was expected, what was received."""


def _literal_schema(values: tuple[Any, ...], where: str) -> dict[str, Any]:
    kinds = set()
    for value in values:
        kind = JSON_TYPES.get(type(value))
        if kind is None:
            raise SchemaError(f"{where}: Literal values must be str, int, float, bool or None, received {value!r}")
        kinds.add(kind)
    schema: dict[str, Any] = {"enum": list(values)}
    if len(kinds) == 1:
        schema["type"] = kinds.pop()
    return schema


def typed_dict_schema(hint: Any, where: str, *, result: bool = False) -> dict[str, Any]:
    """A TypedDict as an object schema: each key's schema, the required keys, no other keys."""
    raw = typing.get_type_hints(hint, include_extras=True)
    # Required[...] / NotRequired[...] say whether the key must be present; read here because
    # __required_keys__ misses them when the class was defined under `from __future__ import annotations`
    required = [
        key
        for key, value in raw.items()
        if get_origin(value) is typing.Required
        or (key in hint.__required_keys__ and get_origin(value) is not typing.NotRequired)
    ]
    hints = {
        key: get_args(value)[0] if get_origin(value) in (typing.Required, typing.NotRequired) else value
        for key, value in raw.items()
    }
    properties = {key: schema_for(value, f"{where}.{key}", result=result) for key, value in hints.items()}
    schema: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = required
    doc = (hint.__doc__ or "").strip()
    if doc:
        schema["description"] = doc.splitlines()[0]
    return schema


def _union_schema(hint: Any, args: tuple[Any, ...], where: str, result: bool) -> dict[str, Any]:
    """`X | None` as a nullable X; any other union as anyOf of its members (None as a null member)."""
    members = [arg for arg in args if arg is not type(None)]
    nullable = len(members) != len(args)
    if len(members) > 1:
        if not result:
            raise SchemaError(f"{where}: only `X | None` unions are supported for arguments, received {hint!r}")
        options = [schema_for(member, where, result=True) for member in members]
        return {"anyOf": [*options, {"type": "null"}] if nullable else options}
    inner = schema_for(members[0], where, result=result)
    if not inner:
        return inner  # Any | None is still any JSON value
    if "enum" in inner:
        with_null = {**inner, "enum": [*inner["enum"], None]}
        if "type" in inner:
            with_null["type"] = [inner["type"], "null"]
        return with_null
    if "anyOf" in inner:
        return {**inner, "anyOf": [*inner["anyOf"], {"type": "null"}]}
    kind = inner.get("type")
    if not isinstance(kind, str):
        raise SchemaError(f"{where}: cannot make {hint!r} nullable")
    return {**inner, "type": [kind, "null"]}


def schema_for(hint: Any, where: str, *, result: bool = False) -> dict[str, Any]:
    """The JSON Schema of one type hint; raises SchemaError for hints outside the supported set.

    `result=True` describes a tool's result, which may also be Any (an open part, such as a check's figures)
    or a union of several shapes; an argument may not: the tool would receive values nobody validated.
    """
    if hint is Any:
        if not result:
            raise SchemaError(f"{where}: unsupported type hint Any for an argument; expected a concrete type")
        return {}
    if hint in JSON_TYPES:
        return {"type": JSON_TYPES[hint]}
    if typing.is_typeddict(hint):
        return typed_dict_schema(hint, where, result=result)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _literal_schema(tuple(member.value for member in hint), where)
    origin = get_origin(hint)
    args = get_args(hint)
    if origin is typing.Annotated:
        schema = schema_for(args[0], where, result=result)
        notes = [note for note in args[1:] if isinstance(note, str)]
        if notes:
            schema["description"] = " ".join(notes)
        return schema
    if origin is Literal:
        return _literal_schema(args, where)
    if origin in (typing.Union, types.UnionType):
        return _union_schema(hint, args, where, result)
    if origin in (list, collections.abc.Sequence, collections.abc.Iterable) and len(args) == 1:
        return {"type": "array", "items": schema_for(args[0], f"{where}[]", result=result)}
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return {"type": "array", "items": schema_for(args[0], f"{where}[]", result=result)}
    if origin in (dict, collections.abc.Mapping) and len(args) == 2 and args[0] is str:
        return {"type": "object", "additionalProperties": schema_for(args[1], f"{where}{{}}", result=result)}
    raise SchemaError(
        f"{where}: unsupported type hint {hint!r}; expected str, int, float, bool, None, an Enum, X | None, "
        "list[X], dict[str, X], Literal[...], Annotated[X, 'description'] or a TypedDict"
    )


def _types_of(schema: dict[str, Any]) -> list[str]:
    kind = schema.get("type")
    if kind is None:
        return []
    return [kind] if isinstance(kind, str) else list(kind)


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"number {value!r}"
    if isinstance(value, str):
        return f"string {value[:60]!r}" + ("…" if len(value) > 60 else "")
    if isinstance(value, list):
        return f"array of {len(value)} item(s)"
    return "object"


def _matches_type(value: Any, kind: str) -> tuple[bool, Any]:
    """(does `value` match JSON type `kind`, the value coerced to the Python type)."""
    if kind == "null":
        return value is None, None
    if kind == "boolean":
        return isinstance(value, bool), value
    if kind == "string":
        return isinstance(value, str), value
    if kind == "integer":
        if isinstance(value, bool):
            return False, value
        if isinstance(value, int):
            return True, value
        if isinstance(value, float) and value.is_integer():
            return True, int(value)
        return False, value
    if kind == "number":
        if isinstance(value, bool) or not isinstance(value, int | float):
            return False, value
        return True, float(value)
    if kind == "array":
        return isinstance(value, list), value
    if kind == "object":
        return isinstance(value, dict), value
    return False, value


def _validate_any_of(value: Any, options: list[dict[str, Any]], where: str) -> Any:
    """The value coerced by the first option it matches; else every option's complaint, so the caller sees why."""
    complaints = []
    for option in options:
        try:
            return validate(value, option, where)
        except ValidationFailure as e:
            complaints.append(str(e))
    raise ValidationFailure(f"{where}: matches none of {len(options)} allowed shapes: " + " | ".join(complaints))


def validate(value: Any, schema: dict[str, Any], where: str) -> Any:
    """Check `value` against a schema made by `schema_for`; return it coerced, or raise ValidationFailure."""
    if "enum" in schema:
        if not any(value == option and type(value) is type(option) for option in schema["enum"]):
            options = ", ".join(repr(option) for option in schema["enum"])
            raise ValidationFailure(f"{where}: expected one of {options}, received {_describe(value)}")
        return value
    kinds = _types_of(schema)
    if kinds:
        for kind in kinds:
            ok, coerced = _matches_type(value, kind)
            if ok:
                value = coerced
                break
        else:
            raise ValidationFailure(f"{where}: expected {' or '.join(kinds)}, received {_describe(value)}")
    if "anyOf" in schema:
        # a tool's outputSchema says "type": "object" beside anyOf (MCP wants an object schema): checked above
        return _validate_any_of(value, schema["anyOf"], where)
    if isinstance(value, list) and "items" in schema:
        return [validate(item, schema["items"], f"{where}[{index}]") for index, item in enumerate(value)]
    if isinstance(value, dict) and "properties" in schema:
        properties = schema["properties"]
        missing = [key for key in schema.get("required", ()) if key not in value]
        unknown = sorted(set(value) - set(properties))
        if missing or unknown:
            raise ValidationFailure(
                f"{where}: expected keys {sorted(properties)}; missing {missing}, unknown {unknown}"
            )
        return {key: validate(item, properties[key], f"{where}.{key}") for key, item in value.items()}
    if isinstance(value, dict) and isinstance(schema.get("additionalProperties"), dict):
        item_schema = schema["additionalProperties"]
        return {key: validate(item, item_schema, f"{where}.{key}") for key, item in value.items()}
    return value
