"""Scopes for the classifier: module, class or function, and what a function binds or declares."""

from __future__ import annotations

import ast
from dataclasses import dataclass, field


@dataclass(slots=True)
class Scope:
    """What the classifier needs to know about the scope a name is bound in."""

    kind: str  # "module" | "class" | "function"
    name: str = ""
    first_arg: str | None = None
    bound: set[str] = field(default_factory=set)
    body: list[ast.stmt] = field(default_factory=list)
    parameters: set[str] = field(default_factory=set)
    _declared_outer: set[str] | None = None
    _locals: set[str] | None = None

    @property
    def declared_outer(self) -> set[str]:
        """Names the function declares global/nonlocal, computed on first need (most functions never need it)."""
        if self._declared_outer is None:
            self._declared_outer = _declared_outer(self.body)
        return self._declared_outer

    def holds_local_object(self, identifier: str) -> bool:
        """Whether `identifier` names an object this function created (assigned here, not a parameter)."""
        if self.kind != "function" or identifier in self.parameters or identifier in self.declared_outer:
            return False
        if self._locals is None:
            self._locals = _assigned_names(self.body)
        return identifier in self._locals


def all_args(args: ast.arguments) -> list[ast.arg]:
    """Every parameter of a signature: positional-only, regular, keyword-only, *args, **kwargs."""
    extra = [a for a in (args.vararg, args.kwarg) if a is not None]
    return [*args.posonlyargs, *args.args, *args.kwonlyargs, *extra]


def _declared_outer(body: list[ast.stmt]) -> set[str]:
    """Names a function body declares global/nonlocal (not looking into nested functions or classes)."""
    names: set[str] = set()
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Global | ast.Nonlocal):
            names.update(node.names)
        elif not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            stack.extend(ast.iter_child_nodes(node))
    return names


def _assigned_names(body: list[ast.stmt]) -> set[str]:
    """Names a function body binds by assignment (not looking into nested functions or classes)."""
    names: set[str] = set()
    stack: list[ast.AST] = list(body)
    while stack:
        node = stack.pop()
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef | ast.Lambda):
            stack.extend(ast.iter_child_nodes(node))
    return names
