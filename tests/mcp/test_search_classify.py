"""The classification rules of the codebase search, as tables of small code strings."""

from __future__ import annotations

import textwrap

import pytest

from mcp.search.classify import Kind, classify_source

PARAMS = frozenset({"max_daily_loss", "stop_loss", "timeout"})


def kinds(source: str) -> list[tuple[int, str, str]]:
    """(line, kind, detail) of every usage, for compact expectations."""
    usages = classify_source(textwrap.dedent(source), PARAMS)
    return [(u.line, u.kind.value, u.detail) for u in usages]


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        # --- definitions -------------------------------------------------------------------------
        ("def f(max_daily_loss): pass", [(1, "definition", "parameter")]),
        ("def f(*, max_daily_loss: float = 100.0): pass", [(1, "definition", "parameter")]),
        ("lambda stop_loss: 0", [(1, "definition", "parameter")]),
        ("class S:\n    max_daily_loss: float = Field(default=100.0)", [(2, "definition", "field")]),
        ("class S:\n    max_daily_loss: float = 100.0", [(2, "definition", "field")]),
        ("class C:\n    @property\n    def max_daily_loss(self): return 1", [(3, "definition", "function")]),
        ("MAX_DAILY_LOSS = settings.max_daily_loss", [(1, "read", "attribute"), (1, "definition", "assignment")]),
        (
            "def f():\n    max_daily_loss = g()\n    max_daily_loss = h()",
            [(2, "definition", "local binding"), (3, "definition", "local binding")],
        ),
        (
            "class B:\n    def __init__(self, x):\n        self._max_daily_loss = x",
            [(3, "definition", "attribute set in __init__")],
        ),
        ("for timeout in values: pass", [(1, "definition", "assignment")]),
        ("with f() as timeout: pass", [(1, "definition", "assignment")]),
        ("try:\n    pass\nexcept E as timeout:\n    pass", [(3, "definition", "assignment")]),
        ("[timeout for timeout in xs]", [(1, "definition", "local binding"), (1, "read", "name")]),
        ("def f():\n    values = {}\n    values['max_daily_loss'] = limit", [(3, "definition", "local mapping entry")]),
        # --- reads -------------------------------------------------------------------------------
        ("print(max_daily_loss)", [(1, "read", "name")]),
        ("x = settings.max_daily_loss", [(1, "read", "attribute")]),
        ("x = self._max_daily_loss", [(1, "read", "attribute")]),
        ("os.getenv('MAX_DAILY_LOSS')", [(1, "read", "string")]),
        ("getattr(s, 'stop_loss')", [(1, "read", "string")]),
        ("f(max_daily_loss=limit)", [(1, "read", "keyword argument")]),
        ("from config.limits import MAX_DAILY_LOSS", [(1, "read", "import")]),
        ("x = {'max_daily_loss': value}", [(1, "read", "string")]),
        ("y = f'{s.max_daily_loss} left'", [(1, "read", "attribute")]),
        # --- writes ------------------------------------------------------------------------------
        ("settings.max_daily_loss = new", [(1, "write", "attribute assignment")]),
        ("class B:\n    def bump(self):\n        self.max_daily_loss = x", [(3, "write", "attribute assignment")]),
        ("s.max_daily_loss += 1", [(1, "write", "attribute assignment")]),
        ("setattr(settings, 'max_daily_loss', 500)", [(1, "write", "setattr()")]),
        ("object.__setattr__(s, 'stop_loss', v)", [(1, "write", "__setattr__()")]),
        ("os.environ['MAX_DAILY_LOSS'] = '500'", [(1, "write", "item assignment")]),
        ("os.environ.setdefault('MAX_DAILY_LOSS', '5')", [(1, "write", "setdefault()")]),
        ("monkeypatch.setenv('MAX_DAILY_LOSS', '1')", [(1, "write", "setenv()")]),
        ("def f(cfg):\n    cfg['stop_loss'] = v", [(2, "write", "item assignment")]),
        ("del settings.stop_loss", [(1, "write", "attribute delete")]),
        ("TIMEOUT = a\nTIMEOUT = b", [(1, "definition", "assignment"), (2, "write", "rebinding")]),
        ("TIMEOUT = a\nTIMEOUT += 1", [(1, "definition", "assignment"), (2, "write", "augmented assignment")]),
        (
            "TIMEOUT = a\ndef f():\n    global TIMEOUT\n    TIMEOUT = b",
            [(1, "definition", "assignment"), (4, "write", "global rebinding")],
        ),
        # --- hard-coded literals -----------------------------------------------------------------
        ("MAX_DAILY_LOSS = 100.0", [(1, "literal", "assignment")]),
        ("stop_loss = -0.25", [(1, "literal", "assignment")]),
        ("timeout = 60 * 60", [(1, "literal", "assignment")]),
        ("f(max_daily_loss=100.0)", [(1, "literal", "keyword argument")]),
        ("self.max_daily_loss = 100", [(1, "literal", "attribute assignment")]),
        ("if loss >= max_daily_loss: pass", [(1, "read", "name")]),
        ("if settings.max_daily_loss > 100: pass", [(1, "literal", "comparison")]),
        ("if 0.5 < stop_loss: pass", [(1, "literal", "comparison")]),
        ("limits = {'max_daily_loss': 100.0}", [(1, "literal", "mapping entry")]),
        ("cfg['stop_loss'] = 0.1", [(1, "literal", "item assignment")]),
        # --- not uses ----------------------------------------------------------------------------
        ("# max_daily_loss = 100", []),
        ('"""The max_daily_loss is the limit."""', []),
        ("x = 'the max_daily_loss is reached'", []),
        ("max_daily_loss_pct = 1", []),
        ("x = my_max_daily_loss", []),
        ("flag = True\nstop_loss = True", [(2, "definition", "assignment")]),  # a bool is not a number
    ],
)
def test_classification_table(source: str, expected: list[tuple[int, str, str]]) -> None:
    assert kinds(source) == expected


def test_the_line_is_where_the_name_is_written() -> None:
    source = "x = (client\n    .max_daily_loss)\nsetattr(\n    s,\n    'stop_loss',\n    v,\n)\n"
    assert [(u.line, u.kind) for u in classify_source(source, PARAMS)] == [(2, Kind.READ), (5, Kind.WRITE)]


def test_usages_come_back_in_source_order_with_canonical_names() -> None:
    source = "a = MAX_DAILY_LOSS\nb = s._Stop_Loss\nc = TIMEOUT"
    usages = classify_source(source, PARAMS)
    assert [(u.parameter, u.line, u.kind) for u in usages] == [
        ("max_daily_loss", 1, Kind.READ),
        ("stop_loss", 2, Kind.READ),
        ("timeout", 3, Kind.READ),
    ]


def test_line_pruning_gives_the_same_usages_as_a_full_visit() -> None:
    source = textwrap.dedent(
        """
        import os

        def helper(values):
            total = sum(values)
            return total

        class Risk:
            def __init__(self, settings):
                self.max_daily_loss = settings.max_daily_loss

            def loosen(self):
                self.max_daily_loss = 10_000
        """
    )
    lines = [i for i, text in enumerate(source.splitlines(), 1) if "max_daily_loss" in text]
    assert classify_source(source, PARAMS, lines=lines) == classify_source(source, PARAMS)


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("def f(:\n", SyntaxError),
        (b"x = '\xe9t\xe9'\n", SyntaxError),  # latin-1 bytes without an encoding declaration
        (b"x = 1\x00\n", (SyntaxError, ValueError)),  # NUL bytes in source
    ],
)
def test_sources_that_do_not_parse_raise(source: str | bytes, error: type[Exception]) -> None:
    with pytest.raises(error):
        classify_source(source, PARAMS)
