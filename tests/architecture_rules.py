"""The architecture rules of issue 12, read from the source text with `ast`: nothing of the product is imported.

Rules (docs/architecture.md says why each one exists):

(a) no module under core/ imports anything from mcp/, not even for type hints; utils/ and config/ import nothing
    from core/ or mcp/;
(b) no import cycle among the project's modules (module- and function-level imports; `if TYPE_CHECKING:` ones
    do not run, so they are left out);
(c) at most LOCAL_IMPORT_BUDGET function-local imports of the project's own modules, each with a comment on the
    line directly above saying why it is local (one comment may stand above a run of consecutive imports);
(d) the facade `get_mcp_risk_integrator` is named only by its own module and the sidecar's entry point;
(e) none of the retired confusable module names comes back.

Each rule is a pure function over a tree `{posix path: source}`: tests/test_architecture.py proves on tiny synthetic
trees that each rule can fail, then applies them to the real tree and prints what it measured.
"""

from __future__ import annotations

import ast
import re
from collections import defaultdict, deque
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from itertools import pairwise
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("core", "mcp", "utils", "config")
PROJECT_TOPS = frozenset({*PACKAGES, "main"})
# scripts/ are product files for rule (d) (an operator runs them), but not importable modules of the graph
SCRIPT_FOLDERS = ("scripts",)
LOCAL_IMPORT_BUDGET = 15
FACADE = "get_mcp_risk_integrator"
FACADE_MODULE = "core/integrations/mcp_risk_integration.py"
# the facade's own module, and the entry point that registers the instance it builds
FACADE_FILES = frozenset({FACADE_MODULE, "mcp/main_mcp.py"})
# the confusable pairs renamed in issue 12 (commit 4769be0): the old names must not come back
RETIRED_MODULES = (
    "core.breaker_mcp",
    "mcp.supervision",
    "mcp.registry",
    "mcp.protocol.registry",
    "core.integrations.gate",
    "mcp.monitoring.gate",
)
# tool directives are not a reason
_DIRECTIVE = re.compile(r"^(noqa|type:|pragma|fmt:|ruff:|pyright:|mypy:)", re.IGNORECASE)
_FACADE_STRING = re.compile(rf"^([\w.]+[.:])?{FACADE}$")

Tree = Mapping[str, str]


class Scope(StrEnum):
    """When an import statement runs."""

    MODULE = "module"  # at import time (module body, class bodies, module-level if/try)
    FUNCTION = "function"  # when the enclosing function is called
    TYPE_CHECKING = "type_checking"  # never: only a type checker reads it


@dataclass(frozen=True, slots=True)
class ImportEdge:
    """One import of a project module by another: `source` imports `target` at `path:line`."""

    source: str
    target: str
    path: str
    line: int
    scope: Scope
    text: str

    def where(self) -> str:
        return f"{self.path}:{self.line} {self.text}"


@dataclass(frozen=True, slots=True)
class LocalImport:
    """A function-local import statement of project modules, and the comment above it (None: there is none)."""

    path: str
    line: int
    text: str
    reason: str | None

    def where(self) -> str:
        return f"{self.path}:{self.line} {self.text}"


# --- reading the tree --------------------------------------------------------------------------------


def product_tree(root: Path) -> dict[str, str]:
    """The product's Python files under `root`: core/, mcp/, utils/, config/, main.py and scripts/."""
    tree: dict[str, str] = {}
    for folder in (*PACKAGES, *SCRIPT_FOLDERS):
        for path in sorted((root / folder).rglob("*.py")):
            if "__pycache__" not in path.parts:
                tree[path.relative_to(root).as_posix()] = path.read_text(encoding="utf-8")
    main = root / "main.py"
    if main.is_file():
        tree["main.py"] = main.read_text(encoding="utf-8")
    return tree


def module_name(path: str) -> str | None:
    """The dotted module a product path defines (`core/a/__init__.py` -> `core.a`); None outside the graph."""
    if path == "main.py":
        return "main"
    parts = path.removesuffix(".py").split("/")
    if not path.endswith(".py") or parts[0] not in PACKAGES:
        return None
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _modules(tree: Tree) -> dict[str, str]:
    """{module name: path} of the tree's importable modules."""
    return {name: path for path in tree if (name := module_name(path)) is not None}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _walk_scoped(node: ast.AST, scope: Scope = Scope.MODULE) -> Iterator[tuple[ast.AST, Scope]]:
    """Every node below `node` with the scope it runs in (TYPE_CHECKING wins over FUNCTION)."""
    for child in ast.iter_child_nodes(node):
        inner = scope
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) and scope is Scope.MODULE:
            inner = Scope.FUNCTION
        if isinstance(child, ast.If) and _is_type_checking(child.test):
            # only the body is for the type checker; an `else:` branch runs
            yield child, scope
            for statement in child.body:
                yield statement, Scope.TYPE_CHECKING
                yield from _walk_scoped(statement, Scope.TYPE_CHECKING)
            for statement in child.orelse:
                yield statement, scope
                yield from _walk_scoped(statement, scope)
            continue
        yield child, inner
        yield from _walk_scoped(child, inner)


def _imported_names(node: ast.AST, module: str, is_package: bool) -> list[str]:
    """The absolute dotted names an import statement (or `importlib.import_module("…")` call) asks for."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        base = node.module or ""
        if node.level:
            package = module.split(".") if is_package else module.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join([*package, base] if base else package)
        return [f"{base}.{alias.name}" if base else alias.name for alias in node.names] + [base]
    if isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
        # a dynamic import with a fixed name is an import all the same (it would dodge the rules otherwise)
        func = node.func
        called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
        if called in {"import_module", "__import__"} and isinstance(node.args[0].value, str):
            return [node.args[0].value]
    return []


def _resolve(name: str, modules: Mapping[str, str]) -> str:
    """The longest prefix of `name` that is a module of the tree (a name not in the tree stays as it is)."""
    candidate = name
    while candidate and candidate not in modules:
        candidate = candidate.rpartition(".")[0]
    return candidate or name


def _targets(node: ast.AST, module: str, is_package: bool, modules: Mapping[str, str]) -> list[str]:
    names = _imported_names(node, module, is_package)
    if isinstance(node, ast.ImportFrom) and names:
        base = names[-1]
        # `from pkg import name`: the submodule pkg.name when it is one, else pkg itself
        names = [name if name in modules else base for name in names[:-1]]
    targets = [_resolve(name, modules) for name in names if name.split(".")[0] in PROJECT_TOPS]
    return list(dict.fromkeys(targets))


def import_edges(tree: Tree) -> list[ImportEdge]:
    """Every import of a project module by a project module, with where it stands and when it runs."""
    modules = _modules(tree)
    edges: list[ImportEdge] = []
    for module, path in sorted(modules.items()):
        for node, scope in _walk_scoped(ast.parse(tree[path], filename=path)):
            if not isinstance(node, ast.Import | ast.ImportFrom | ast.Call):
                continue
            for target in _targets(node, module, path.endswith("__init__.py"), modules):
                if target != module:
                    edges.append(ImportEdge(module, target, path, node.lineno, scope, ast.unparse(node)))
    return edges


def _top(module: str) -> str:
    return module.split(".")[0]


# --- (a) layering ------------------------------------------------------------------------------------


def core_imports_of_mcp(tree: Tree) -> list[ImportEdge]:
    """Rule (a): imports of mcp by core, in any scope (a TYPE_CHECKING import still makes core know mcp's types)."""
    return [edge for edge in import_edges(tree) if _top(edge.source) == "core" and _top(edge.target) == "mcp"]


def plumbing_imports_of_core_or_mcp(tree: Tree) -> list[ImportEdge]:
    """Rule (a): imports of core or mcp by utils or config, in any scope (shared plumbing sits below both)."""
    return [
        edge
        for edge in import_edges(tree)
        if _top(edge.source) in {"utils", "config"} and _top(edge.target) in {"core", "mcp"}
    ]


# --- (b) cycles --------------------------------------------------------------------------------------


def _strongly_connected(graph: Mapping[str, Sequence[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components of `graph` with more than one node, each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in graph.get(node, ()):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(components)


def import_cycles(tree: Tree) -> list[list[ImportEdge]]:
    """Rule (b): one shortest cycle of import edges per strongly connected component (TYPE_CHECKING left out)."""
    edges = [edge for edge in import_edges(tree) if edge.scope is not Scope.TYPE_CHECKING]
    first: dict[tuple[str, str], ImportEdge] = {}
    for edge in edges:
        first.setdefault((edge.source, edge.target), edge)
    graph: dict[str, list[str]] = defaultdict(list)
    for source, target in first:
        graph[source].append(target)
    cycles: list[list[ImportEdge]] = []
    for component in _strongly_connected(graph):
        members = set(component)
        start = component[0]
        # breadth-first from `start` back to itself inside the component: the shortest cycle through it
        came_from: dict[str, str] = {}
        queue = deque([start])
        while queue:
            node = queue.popleft()
            successors = [s for s in graph[node] if s in members]
            if start in successors:
                chain = [node]
                while chain[-1] != start:
                    chain.append(came_from[chain[-1]])
                chain = [*reversed(chain), start]
                cycles.append([first[pair] for pair in pairwise(chain)])
                break
            for successor in successors:
                if successor not in came_from:
                    came_from[successor] = node
                    queue.append(successor)
    return cycles


def describe_cycle(cycle: Sequence[ImportEdge]) -> str:
    """`a -> b -> a` and where each import stands."""
    chain = " -> ".join([cycle[0].source, *(edge.target for edge in cycle)])
    return chain + "".join(f"\n    {edge.where()}" for edge in cycle)


# --- (c) function-local imports ----------------------------------------------------------------------


def _statement_lists(node: ast.AST) -> Iterator[list[ast.stmt]]:
    for field in ("body", "orelse", "finalbody", "handlers"):
        value = getattr(node, field, None)
        if isinstance(value, list) and value and isinstance(value[0], ast.stmt):
            yield value
    if isinstance(node, ast.Match):
        for case in node.cases:
            yield case.body


def _reason_above(statements: list[ast.stmt], position: int, lines: Sequence[str]) -> str | None:
    """The comment on the line directly above the statement, or above the run of imports it ends."""
    start = position
    while (
        start > 0
        and isinstance(statements[start - 1], ast.Import | ast.ImportFrom)
        and statements[start - 1].end_lineno == statements[start].lineno - 1
    ):
        start -= 1
    above = statements[start].lineno - 2
    return _comment_reason(lines[above]) if above >= 0 else None


def _comment_reason(text: str) -> str | None:
    """The reason a comment line gives; None for code, a blank comment or a tool directive."""
    text = text.strip()
    if not text.startswith("#"):
        return None
    reason = text.lstrip("#").strip()
    return reason if reason and not _DIRECTIVE.match(reason) else None


def local_imports(tree: Tree) -> list[LocalImport]:
    """Rule (c): the function-local imports of project modules, each with its comment (or None).

    Import statements, and `importlib.import_module("…")` calls with a fixed name (the same import, spelled
    so that it would dodge the count otherwise).
    """
    edges = [edge for edge in import_edges(tree) if edge.scope is Scope.FUNCTION]
    function_level = {(edge.path, edge.line) for edge in edges}
    found: list[LocalImport] = []
    for edge in edges:
        if not edge.text.startswith(("import ", "from ")):
            above = tree[edge.path].splitlines()[edge.line - 2] if edge.line > 1 else ""
            found.append(LocalImport(edge.path, edge.line, edge.text, _comment_reason(above)))
    for path in sorted(_modules(tree).values()):
        source = tree[path]
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source, filename=path)):
            for statements in _statement_lists(node):
                for position, statement in enumerate(statements):
                    if (
                        isinstance(statement, ast.Import | ast.ImportFrom)
                        and (path, statement.lineno) in function_level
                    ):
                        reason = _reason_above(statements, position, lines)
                        found.append(LocalImport(path, statement.lineno, ast.unparse(statement), reason))
    return sorted(found, key=lambda item: (item.path, item.line))


# --- (d) the facade ----------------------------------------------------------------------------------


def _docstring_nodes(syntax: ast.AST) -> set[int]:
    ids: set[int] = set()
    for node in ast.walk(syntax):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                ids.add(id(first.value))
    return ids


def _names_in(node: ast.AST) -> list[str]:
    """The identifiers a node spells (and a string that is one, like "module:attr"); docstrings aside."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [node.attr]
    if isinstance(node, ast.alias):
        return [node.name.rpartition(".")[2], *([node.asname] if node.asname else [])]
    if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
        return [node.name]
    if isinstance(node, ast.arg):
        return [node.arg]
    if isinstance(node, ast.keyword) and node.arg:
        return [node.arg]
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and _FACADE_STRING.match(node.value.strip()):
        return [FACADE]
    return []


def facade_mentions(tree: Tree, name: str = FACADE, allowed: frozenset[str] = FACADE_FILES) -> list[str]:
    """Rule (d): `path:line` of each place outside `allowed` that names `name` as an identifier."""
    found: list[str] = []
    for path, source in sorted(tree.items()):
        if path in allowed:
            continue
        syntax = ast.parse(source, filename=path)
        docstrings = _docstring_nodes(syntax)
        for node in ast.walk(syntax):
            if id(node) not in docstrings and name in _names_in(node):
                found.append(f"{path}:{getattr(node, 'lineno', '?')}")
    return found


def defines_at_module_level(source: str, name: str) -> bool:
    """Whether `source` defines function `name` at module level (the facade is the user's contract)."""
    return any(
        isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == name
        for node in ast.parse(source).body
    )


# --- (e) retired names -------------------------------------------------------------------------------


def retired_modules_present(tree: Tree, retired: Sequence[str] = RETIRED_MODULES) -> list[str]:
    """Rule (e): the paths that define a retired module name again (as a module or a package)."""
    return sorted(path for path in tree if module_name(path) in retired)
