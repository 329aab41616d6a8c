"""Classify every use of a parameter name in Python source: definition, read, write or hard-coded literal.

Pure: source in, usages out. The rules (docs/codebase_search.md has the table with examples):

- A name matches a parameter when it equals it ignoring case and leading underscores
  (`MAX_DAILY_LOSS`, `self._max_daily_loss` and `max_daily_loss` are one parameter).
- literal: a numeric literal (`100`, `-5.0`, `60 * 60`) bound to the name by an assignment, an attribute
  or item assignment, a keyword argument (`f(max_daily_loss=100.0)`), a mapping entry
  (`{"max_daily_loss": 100.0}`), or compared with it (`if max_daily_loss > 100`). Defaults in a
  signature and annotated class fields are part of a definition instead.
- definition: a function parameter, a function or class named after it, an annotated class field
  (`max_daily_loss: float = Field(...)`), the first binding of a module or class name, any plain name
  bound inside a function (a local variable changes nothing outside it), `self.x = …` inside `__init__`.
- write: re-binding a module or class name, binding a name declared `global`/`nonlocal`, an attribute
  store outside `__init__`, an item store under the name as a string key (`os.environ["MAX_DAILY_LOSS"] = …`),
  `del` of any of those, `setattr(obj, "max_daily_loss", …)` and similar calls (setenv, putenv, setdefault).
- read: every other mention in code: a name or attribute load, an import, a keyword argument passing a
  non-literal value, and a string whose whole text is the name (`getenv("MAX_DAILY_LOSS")`).
  Comments and prose strings (a docstring that mentions the name) are not uses.
"""

from __future__ import annotations

import ast
import bisect
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from mcp.search.matcher import canonical_name
from mcp.search.scopes import Scope, all_args


class Kind(StrEnum):
    DEFINITION = "definition"
    READ = "read"
    WRITE = "write"
    LITERAL = "literal"
    TEXT = "text"  # a word match in a non-Python file, or in a Python file that does not parse


@dataclass(frozen=True, slots=True)
class Usage:
    """One occurrence of a parameter: where, what kind, and which rule said so."""

    parameter: str
    line: int
    kind: Kind
    detail: str


# calls whose string argument names the attribute / variable they set or delete
_WRITE_CALLS = frozenset({"setattr", "delattr", "__setattr__", "__delattr__", "putenv", "unsetenv", "setenv", "delenv"})
_SETDEFAULT = "setdefault"
# methods where `self.x = …` initialises the object rather than changing it
_INIT_METHODS = frozenset({"__init__", "__post_init__", "__new__", "setUp"})


def is_numeric_literal(node: ast.expr | None) -> bool:
    """A number written in the source: 100, -5.0, 1e3, 60 * 60 (arithmetic on numbers only)."""
    if isinstance(node, ast.Constant):
        return isinstance(node.value, int | float | complex) and not isinstance(node.value, bool)
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
        return is_numeric_literal(node.operand)
    if isinstance(node, ast.BinOp):
        return is_numeric_literal(node.left) and is_numeric_literal(node.right)
    return False


def classify_source(
    source: bytes | str, parameters: frozenset[str], filename: str = "<source>", lines: Sequence[int] | None = None
) -> list[Usage]:
    """Every usage of `parameters` (canonical names) in `source`, in source order.

    `lines`, when given, are the lines where a parameter name occurs (from the byte search): statements
    spanning none of them cannot hold a usage and are not visited. Raises SyntaxError or ValueError when
    the source does not parse (bad syntax, bad encoding, NUL bytes) and RecursionError when it nests
    deeper than the interpreter can walk.
    """
    tree = ast.parse(source, filename=filename)
    visitor = _Classifier(parameters, sorted(set(lines)) if lines is not None else None)
    visitor.visit(tree)
    visitor.usages.sort(key=lambda usage: usage.line)
    return visitor.usages


class _Classifier(ast.NodeVisitor):
    def __init__(self, parameters: frozenset[str], lines: list[int] | None) -> None:
        self.parameters = parameters
        self.lines = lines
        self.usages: list[Usage] = []
        self.scopes: list[Scope] = [Scope("module")]
        self.done: set[int] = set()  # ids of nodes already classified by their context

    def visit(self, node: ast.AST) -> None:
        """Dispatch as usual, except statements that span no line holding a parameter name."""
        if self.lines is not None and isinstance(node, ast.stmt) and not self._spans_hit(node):
            return
        super().visit(node)

    def _spans_hit(self, node: ast.stmt) -> bool:
        first = node.lineno
        decorators = getattr(node, "decorator_list", None)
        if decorators:
            first = min(first, decorators[0].lineno)
        index = bisect.bisect_left(self.lines, first)  # type: ignore[arg-type]
        return index < len(self.lines) and self.lines[index] <= (node.end_lineno or first)  # type: ignore[arg-type]

    # --- helpers -------------------------------------------------------------------------------------
    def _match(self, identifier: str | None) -> str | None:
        if identifier is None:
            return None
        name = canonical_name(identifier)
        return name if name in self.parameters else None

    def _string_match(self, node: ast.AST | None) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            return self._match(node.value.strip())
        return None

    def _add(self, parameter: str, node: ast.AST, kind: Kind, detail: str) -> None:
        # the line where the name itself is written: an attribute's name ends its (possibly multi-line) node
        line = node.end_lineno if isinstance(node, ast.Attribute) else getattr(node, "lineno", 0)
        self.usages.append(Usage(parameter, line or 0, kind, detail))

    @property
    def scope(self) -> Scope:
        return self.scopes[-1]

    # --- scopes --------------------------------------------------------------------------------------
    def visit_Module(self, node: ast.Module) -> None:
        self.generic_visit(node)

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef) -> None:
        for decorator in node.decorator_list:
            self.visit(decorator)
        if (param := self._match(node.name)) is not None:
            self._add(param, node, Kind.DEFINITION, "function")
        self.scope.bound.add(node.name)
        self._visit_arguments_outside(node.args)
        if node.returns is not None:
            self.visit(node.returns)
        positional = node.args.posonlyargs + node.args.args
        first = positional[0].arg if positional and self.scope.kind == "class" else None
        self.scopes.append(Scope("function", node.name, first, body=node.body))
        self._define_arguments(node.args)
        for statement in node.body:
            self.visit(statement)
        self.scopes.pop()

    visit_FunctionDef = _visit_function
    visit_AsyncFunctionDef = _visit_function

    def visit_Lambda(self, node: ast.Lambda) -> None:
        self._visit_arguments_outside(node.args)
        self.scopes.append(Scope("function", "<lambda>"))
        self._define_arguments(node.args)
        self.visit(node.body)
        self.scopes.pop()

    def _visit_arguments_outside(self, args: ast.arguments) -> None:
        # defaults and annotations are evaluated in the enclosing scope; a default is part of the definition
        for default in [*args.defaults, *(d for d in args.kw_defaults if d is not None)]:
            self.visit(default)
        for arg in all_args(args):
            if arg.annotation is not None:
                self.visit(arg.annotation)

    def _define_arguments(self, args: ast.arguments) -> None:
        for arg in all_args(args):
            self.scope.bound.add(arg.arg)
            self.scope.parameters.add(arg.arg)
            if (param := self._match(arg.arg)) is not None:
                self._add(param, arg, Kind.DEFINITION, "parameter")

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        for expr in [*node.decorator_list, *node.bases, *node.keywords]:
            self.visit(expr)
        if (param := self._match(node.name)) is not None:
            self._add(param, node, Kind.DEFINITION, "class")
        self.scope.bound.add(node.name)
        self.scopes.append(Scope("class", node.name))
        for statement in node.body:
            self.visit(statement)
        self.scopes.pop()

    def _visit_comprehension_scope(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp) -> None:
        self.scopes.append(Scope("function", "<comprehension>"))
        for generator in node.generators:
            self.visit(generator.iter)
            self._bind(generator.target, None)
            for condition in generator.ifs:
                self.visit(condition)
        if isinstance(node, ast.DictComp):
            self.visit(node.key)
            self.visit(node.value)
        else:
            self.visit(node.elt)
        self.scopes.pop()

    visit_ListComp = _visit_comprehension_scope
    visit_SetComp = _visit_comprehension_scope
    visit_GeneratorExp = _visit_comprehension_scope
    visit_DictComp = _visit_comprehension_scope

    # --- statements that bind ------------------------------------------------------------------------
    def visit_Assign(self, node: ast.Assign) -> None:
        self.visit(node.value)
        for target in node.targets:
            self._bind(target, node.value)

    def visit_AnnAssign(self, node: ast.AnnAssign) -> None:
        self.visit(node.annotation)
        if node.value is not None:
            self.visit(node.value)
        if isinstance(node.target, ast.Name) and (self.scope.kind == "class" or node.value is None):
            # a declared field (dataclass, pydantic, Settings) or a bare annotation: its default is the definition's
            self.scope.bound.add(node.target.id)
            if (param := self._match(node.target.id)) is not None:
                self._add(param, node.target, Kind.DEFINITION, "field" if self.scope.kind == "class" else "annotation")
            return
        self._bind(node.target, node.value)

    def visit_AugAssign(self, node: ast.AugAssign) -> None:
        self.visit(node.value)
        self._bind(node.target, None, augmented=True)

    def visit_NamedExpr(self, node: ast.NamedExpr) -> None:
        self.visit(node.value)
        self._bind(node.target, node.value)

    def visit_For(self, node: ast.For | ast.AsyncFor) -> None:
        self.visit(node.iter)
        self._bind(node.target, None)
        for statement in [*node.body, *node.orelse]:
            self.visit(statement)

    visit_AsyncFor = visit_For

    def visit_withitem(self, node: ast.withitem) -> None:
        self.visit(node.context_expr)
        if node.optional_vars is not None:
            self._bind(node.optional_vars, None)

    def visit_ExceptHandler(self, node: ast.ExceptHandler) -> None:
        if node.type is not None:
            self.visit(node.type)
        if node.name is not None:
            self._bind_name(node.name, node, None, augmented=False)
        for statement in node.body:
            self.visit(statement)

    def visit_Delete(self, node: ast.Delete) -> None:
        for target in node.targets:
            self._bind(target, None, deleting=True)

    def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
        for alias in node.names:
            bound = alias.asname or alias.name.partition(".")[0]
            self.scope.bound.add(bound)
            param = self._match(alias.name.rpartition(".")[2]) or self._match(alias.asname)
            if param is not None:
                self._add(param, alias, Kind.READ, "import")

    visit_ImportFrom = visit_Import

    def _bind(
        self, target: ast.expr, value: ast.expr | None, *, augmented: bool = False, deleting: bool = False
    ) -> None:
        if isinstance(target, ast.Name):
            self._bind_name(target.id, target, value, augmented=augmented, deleting=deleting)
        elif isinstance(target, ast.Attribute):
            self._bind_attribute(target, value, augmented=augmented, deleting=deleting)
        elif isinstance(target, ast.Subscript):
            self._bind_item(target, value, deleting=deleting)
        elif isinstance(target, ast.Starred):
            self._bind(target.value, None, augmented=augmented, deleting=deleting)
        elif isinstance(target, ast.Tuple | ast.List):
            values: list[ast.expr | None] = [None] * len(target.elts)
            if isinstance(value, ast.Tuple | ast.List) and len(value.elts) == len(target.elts):
                values = list(value.elts)
            for element, element_value in zip(target.elts, values, strict=True):
                self._bind(element, element_value, augmented=augmented, deleting=deleting)
        else:
            self.visit(target)

    def _bind_name(
        self, identifier: str, node: ast.AST, value: ast.expr | None, *, augmented: bool, deleting: bool = False
    ) -> None:
        scope = self.scope
        param = self._match(identifier)
        first_binding = identifier not in scope.bound
        scope.bound.add(identifier)
        if param is None:
            return
        if is_numeric_literal(value) and not augmented:
            self._add(param, node, Kind.LITERAL, "assignment")
        elif identifier in scope.declared_outer:
            self._add(param, node, Kind.WRITE, "global rebinding")
        elif scope.kind == "function":
            self._add(param, node, Kind.DEFINITION, "local binding")
        elif deleting:
            self._add(param, node, Kind.WRITE, "delete")
        elif augmented:
            self._add(param, node, Kind.WRITE, "augmented assignment")
        elif first_binding:
            self._add(param, node, Kind.DEFINITION, "assignment")
        else:
            self._add(param, node, Kind.WRITE, "rebinding")

    def _bind_attribute(
        self, target: ast.Attribute, value: ast.expr | None, *, augmented: bool, deleting: bool
    ) -> None:
        self.done.add(id(target))
        self.visit(target.value)
        param = self._match(target.attr)
        if param is None:
            return
        scope = self.scope
        in_init = (
            scope.kind == "function"
            and scope.name in _INIT_METHODS
            and isinstance(target.value, ast.Name)
            and target.value.id == scope.first_arg
        )
        if is_numeric_literal(value) and not augmented:
            self._add(param, target, Kind.LITERAL, "attribute assignment")
        elif deleting:
            self._add(param, target, Kind.WRITE, "attribute delete")
        elif in_init and not augmented:
            self._add(param, target, Kind.DEFINITION, f"attribute set in {scope.name}")
        else:
            self._add(param, target, Kind.WRITE, "attribute assignment")

    def _bind_item(self, target: ast.Subscript, value: ast.expr | None, *, deleting: bool) -> None:
        self.visit(target.value)
        param = self._string_match(target.slice)
        if param is None:
            self.visit(target.slice)
            return
        self.done.add(id(target.slice))
        container = target.value
        environ = isinstance(container, ast.Name | ast.Attribute) and (
            getattr(container, "id", None) == "environ" or getattr(container, "attr", None) == "environ"
        )
        if is_numeric_literal(value):
            self._add(param, target.slice, Kind.LITERAL, "item assignment")
        elif not environ and isinstance(container, ast.Name) and self.scope.holds_local_object(container.id):
            # filling a mapping this function built (a report, a payload) changes nothing shared
            self._add(param, target.slice, Kind.DEFINITION, "local mapping entry")
        else:
            self._add(param, target.slice, Kind.WRITE, "item delete" if deleting else "item assignment")

    # --- expressions ---------------------------------------------------------------------------------
    def visit_Name(self, node: ast.Name) -> None:
        if id(node) in self.done:
            return
        if isinstance(node.ctx, ast.Store | ast.Del):
            self._bind(node, None, deleting=isinstance(node.ctx, ast.Del))
        elif (param := self._match(node.id)) is not None:
            self._add(param, node, Kind.READ, "name")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if id(node) in self.done:
            self.visit(node.value)
            return
        if isinstance(node.ctx, ast.Store | ast.Del):
            self._bind(node, None, deleting=isinstance(node.ctx, ast.Del))
            return
        if (param := self._match(node.attr)) is not None:
            self._add(param, node, Kind.READ, "attribute")
        self.visit(node.value)

    def visit_Constant(self, node: ast.Constant) -> None:
        if id(node) not in self.done and (param := self._string_match(node)) is not None:
            self._add(param, node, Kind.READ, "string")

    def visit_Call(self, node: ast.Call) -> None:
        self.visit(node.func)
        func = node.func
        called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
        if called in _WRITE_CALLS or called == _SETDEFAULT:
            for arg in node.args[:2]:
                if (param := self._string_match(arg)) is not None:
                    self.done.add(id(arg))
                    self._add(param, arg, Kind.WRITE, f"{called}()")
                    break
        for arg in node.args:
            self.visit(arg)
        for keyword in node.keywords:
            if (param := self._match(keyword.arg)) is not None:
                if is_numeric_literal(keyword.value):
                    self._add(param, keyword, Kind.LITERAL, "keyword argument")
                else:
                    self._add(param, keyword, Kind.READ, "keyword argument")
            self.visit(keyword.value)

    def visit_Compare(self, node: ast.Compare) -> None:
        operands = [node.left, *node.comparators]
        for left, right in itertools.pairwise(operands):
            for ref, other in ((left, right), (right, left)):
                if is_numeric_literal(other) and id(ref) not in self.done:
                    param = self._reference(ref)
                    if param is not None:
                        self.done.add(id(ref))
                        self._add(param, ref, Kind.LITERAL, "comparison")
        for operand in operands:
            self.visit(operand)

    def _reference(self, node: ast.expr) -> str | None:
        if isinstance(node, ast.Name):
            return self._match(node.id)
        if isinstance(node, ast.Attribute):
            return self._match(node.attr)
        return None

    def visit_Dict(self, node: ast.Dict) -> None:
        for key, value in zip(node.keys, node.values, strict=True):
            param = self._string_match(key)
            if param is not None and is_numeric_literal(value):
                self.done.add(id(key))
                self._add(param, key, Kind.LITERAL, "mapping entry")
        self.generic_visit(node)
