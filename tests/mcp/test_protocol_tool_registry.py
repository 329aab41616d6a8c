"""The tool registry: schemas from type hints, registration rules, argument binding, path confinement."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcp.protocol.schema import SchemaError, schema_for
from mcp.protocol.tool_registry import (
    DuplicateToolError,
    InvalidArguments,
    PathOutsideRoot,
    ToolDefinitionError,
    ToolRegistry,
    confine_glob,
    confine_path,
)


async def full(
    name: str,
    count: int,
    ratio: float = 0.5,
    enabled: bool = True,
    label: str | None = None,
    tags: list[str] | None = None,
    mode: Literal["a", "b"] = "a",
    weights: dict[str, float] | None = None,
    note: Annotated[str, "free text shown to the user"] = "",
) -> dict[str, Any]:
    """Do everything.

    Longer explanation on a second paragraph."""
    return {"status": "ok"}


def test_input_schema_from_type_hints() -> None:
    registry = ToolRegistry()
    assert registry.register(full, server="s") is full  # returned unchanged, still directly callable
    schema = registry.tools()[0].input_schema
    assert schema == {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "count"],
        "properties": {
            "name": {"type": "string"},
            "count": {"type": "integer"},
            "ratio": {"type": "number", "default": 0.5},
            "enabled": {"type": "boolean", "default": True},
            "label": {"type": ["string", "null"], "default": None},
            "tags": {"type": ["array", "null"], "items": {"type": "string"}, "default": None},
            "mode": {"type": "string", "enum": ["a", "b"], "default": "a"},
            "weights": {"type": ["object", "null"], "additionalProperties": {"type": "number"}, "default": None},
            "note": {"type": "string", "description": "free text shown to the user", "default": ""},
        },
    }


def test_description_is_the_docstring_and_output_schema_an_object() -> None:
    registry = ToolRegistry()
    registry.register(full, server="s")
    spec = registry.get("full")
    assert spec is not None
    assert spec.description == "Do everything.\n\nLonger explanation on a second paragraph."
    assert spec.output_schema == {"type": "object"}
    assert spec.title == "Full"


def test_a_tool_without_parameters_accepts_only_an_empty_object() -> None:
    async def nothing() -> dict[str, Any]:
        """No arguments."""
        return {}

    registry = ToolRegistry()
    registry.register(nothing, server="s")
    spec = registry.tools()[0]
    assert spec.input_schema == {"type": "object", "properties": {}, "additionalProperties": False}
    with pytest.raises(InvalidArguments, match="unknown argument"):
        spec.bind({"x": 1})


def test_non_dict_results_have_no_output_schema() -> None:
    def text() -> str:
        """Returns text."""
        return "x"

    registry = ToolRegistry()
    registry.register(text, server="s")
    assert registry.tools()[0].output_schema is None


def test_duplicate_names_raise() -> None:
    registry = ToolRegistry()
    registry.register(full, server="one")
    with pytest.raises(DuplicateToolError, match=r"already registered .* 'one'"):
        registry.register(full, server="two")
    registry.register(full, server="two", name="full_again")
    assert registry.names() == ["full", "full_again"]


def _no_doc(x: int) -> dict[str, Any]:
    return {}


def _untyped(x) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    """Untyped."""
    return {}


def _any(x: Any) -> dict[str, Any]:
    """Any is not a schema."""
    return {}


def _set(x: set[str]) -> dict[str, Any]:
    """Sets are not JSON."""
    return {}


def _varargs(*values: int) -> dict[str, Any]:
    """Varargs."""
    return {}


@pytest.mark.parametrize(
    ("func", "words"),
    [
        (_no_doc, "docstring is required"),
        (_untyped, "has no type hint"),
        (_any, "unsupported type hint"),
        (_set, "unsupported type hint"),
        (_varargs, "cannot be described"),
    ],
)
def test_tools_that_cannot_be_described_are_refused_at_registration(func: Any, words: str) -> None:
    with pytest.raises(ToolDefinitionError, match=words):
        ToolRegistry().register(func, server="s")


@pytest.mark.parametrize("name", ["", "has space", "a" * 129, "semi;colon"])
def test_bad_tool_names_are_refused(name: str) -> None:
    with pytest.raises(ToolDefinitionError, match="tool name"):
        ToolRegistry().register(full, server="s", name=name)


def test_caching_a_writing_tool_is_refused() -> None:
    with pytest.raises(ToolDefinitionError, match="only read-only tools are cached"):
        ToolRegistry().register(full, server="s", cache_ttl=1.0)


def test_path_parameters_need_a_root() -> None:
    async def read(path: str) -> dict[str, Any]:
        """Read."""
        return {}

    with pytest.raises(ToolDefinitionError, match="need a root"):
        ToolRegistry().register(read, server="s")


def test_injected_progress_parameter_is_not_in_the_schema() -> None:
    async def run(paths: list[str] | None = None, progress: Any = None) -> dict[str, Any]:
        """Run."""
        return {}

    registry = ToolRegistry()
    registry.register(run, server="s", root=Path("/"))
    spec = registry.tools()[0]
    assert spec.accepts_progress
    assert list(spec.input_schema["properties"]) == ["paths"]
    assert spec.path_parameters == frozenset({"paths"})


# --- binding -------------------------------------------------------------------------------------------


@pytest.fixture
def spec() -> Any:
    registry = ToolRegistry()
    registry.register(full, server="s")
    return registry.tools()[0]


def test_bind_fills_defaults_and_coerces_json_numbers(spec: Any) -> None:
    bound = spec.bind({"name": "x", "count": 3.0, "ratio": 1})
    assert bound == {
        "name": "x",
        "count": 3,
        "ratio": 1.0,
        "enabled": True,
        "label": None,
        "tags": None,
        "mode": "a",
        "weights": None,
        "note": "",
    }
    assert type(bound["count"]) is int and type(bound["ratio"]) is float


@pytest.mark.parametrize(
    ("arguments", "words"),
    [
        ({"count": 1}, "missing required argument 'name'"),
        ({"name": "x", "count": "1"}, "argument 'count': expected integer, received string '1'"),
        ({"name": "x", "count": True}, "argument 'count': expected integer, received boolean true"),
        ({"name": "x", "count": 1.5}, "expected integer, received number 1.5"),
        ({"name": "x", "count": 1, "enabled": 1}, "argument 'enabled': expected boolean"),
        ({"name": "x", "count": 1, "tags": ["a", 2]}, "argument 'tags'[1]: expected string"),
        ({"name": "x", "count": 1, "tags": "a"}, "expected array or null"),
        ({"name": "x", "count": 1, "mode": "c"}, "expected one of 'a', 'b'"),
        ({"name": "x", "count": 1, "weights": {"a": "heavy"}}, "argument 'weights'.a: expected number"),
        ({"name": "x", "count": 1, "extra": 1, "more": 2}, "unknown argument(s) 'extra', 'more'"),
    ],
)
def test_bind_refuses_arguments_outside_the_schema(spec: Any, arguments: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidArguments) as caught:
        spec.bind(arguments)
    assert words in str(caught.value)
    assert str(caught.value).startswith("full: invalid arguments:")


def test_bind_reports_every_problem_at_once(spec: Any) -> None:
    with pytest.raises(InvalidArguments) as caught:
        spec.bind({"count": "x", "surprise": 1})
    message = str(caught.value)
    assert "unknown argument(s) 'surprise'" in message
    assert "missing required argument 'name'" in message
    assert "argument 'count'" in message


def test_schema_for_rejects_wide_unions() -> None:
    with pytest.raises(SchemaError, match=r"only `X \| None` unions"):
        schema_for(int | str, "x")


def test_nullable_literal_accepts_none() -> None:
    assert schema_for(Literal["a"] | None, "x") == {"enum": ["a", None], "type": ["string", "null"]}
    assert schema_for(Sequence[int], "x") == {"type": "array", "items": {"type": "integer"}}


# --- path confinement ------------------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "mod.py").write_text("x = 1\n")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("secret\n")
    os.symlink(outside, root / "escape")
    os.symlink(outside / "secret.txt", root / "pkg" / "link.txt")
    os.symlink(root / "pkg" / "mod.py", root / "inner_link.py")
    return root


@pytest.mark.parametrize(
    "value",
    [
        "../outside/secret.txt",
        "pkg/../../outside",
        "..",
        "pkg\\..\\..\\outside",
        "escape/secret.txt",
        "escape",
        "pkg/link.txt",
        "/etc/passwd",
        "~/secret",
        "-p evil_plugin",
        "--cov-report=html:/tmp/x",
        "pkg/\0mod.py",
        "x" * 5000,
    ],
)
def test_paths_that_leave_the_root_are_refused(tree: Path, value: str) -> None:
    with pytest.raises(PathOutsideRoot):
        confine_path(tree, value)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("pkg/mod.py", "pkg/mod.py"),
        ("pkg", "pkg"),
        (".", ""),
        ("pkg/missing_yet.py", "pkg/missing_yet.py"),
        ("pkg/mod.py::test_one[a-b]", "pkg/mod.py"),
        ("inner_link.py", "pkg/mod.py"),
    ],
)
def test_paths_inside_the_root_are_accepted(tree: Path, value: str, expected: str) -> None:
    assert confine_path(tree, value) == (tree.resolve() / expected if expected else tree.resolve())


def test_absolute_paths_inside_the_root_are_accepted(tree: Path) -> None:
    assert confine_path(tree, str(tree / "pkg" / "mod.py")) == tree.resolve() / "pkg" / "mod.py"


@pytest.mark.parametrize("glob", ["../*", "/etc/*", "src/../../*", "C:/x", "~/x", "-x"])
def test_globs_that_could_leave_the_root_are_refused(glob: str) -> None:
    with pytest.raises(PathOutsideRoot):
        confine_glob(glob)


@pytest.mark.parametrize("glob", ["*.py", "pkg/**/*.py", "./pkg/*", "**"])
def test_relative_globs_are_accepted(glob: str) -> None:
    confine_glob(glob)


def test_bind_confines_path_parameters_of_lists(tree: Path) -> None:
    async def run(paths: list[str] | None = None) -> dict[str, Any]:
        """Run."""
        return {}

    registry = ToolRegistry()
    registry.register(run, server="s", root=tree)
    spec = registry.tools()[0]
    assert spec.bind({"paths": ["pkg/mod.py"]}) == {"paths": ["pkg/mod.py"]}
    with pytest.raises(PathOutsideRoot, match="run: argument 'paths'"):
        spec.bind({"paths": ["pkg/mod.py", "escape/secret.txt"]})


SEGMENTS = st.sampled_from(["..", ".", "pkg", "escape", "mod.py", "", "~", "/", "\\", "x", "inner_link.py", "::t"])


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(SEGMENTS, min_size=1, max_size=6), absolute=st.booleans())
def test_whatever_is_accepted_resolves_inside_the_root(tmp_path_factory: Any, parts: list[str], absolute: bool) -> None:
    root = tmp_path_factory.getbasetemp() / "prop_root"
    if not root.exists():
        (root / "pkg").mkdir(parents=True)
        (root / "pkg" / "mod.py").write_text("")
        outside = tmp_path_factory.getbasetemp() / "prop_outside"
        outside.mkdir(exist_ok=True)
        os.symlink(outside, root / "escape")
        os.symlink(root / "pkg" / "mod.py", root / "inner_link.py")
    value = "/".join(parts)
    if absolute:
        value = str(root) + "/" + value
    try:
        resolved = confine_path(root, value)
    except PathOutsideRoot:
        return
    real_root = root.resolve()
    assert resolved == real_root or real_root in resolved.parents
