"""Issue 12's "done when", checked on the real tree; first, proof on synthetic trees that each rule can fail.

The rules and why they exist: tests/architecture_rules.py and docs/architecture.md.
"""

from __future__ import annotations

import pytest

from tests.architecture_rules import (
    FACADE,
    FACADE_FILES,
    FACADE_MODULE,
    LOCAL_IMPORT_BUDGET,
    ROOT,
    Scope,
    core_imports_of_mcp,
    defines_at_module_level,
    describe_cycle,
    facade_mentions,
    import_cycles,
    import_edges,
    local_imports,
    plumbing_imports_of_core_or_mcp,
    product_tree,
    retired_modules_present,
)

# === unit tests on synthetic trees: each rule can fail ===============================================


def test_a_core_import_of_mcp_is_found_in_every_scope() -> None:
    tree = {
        "core/__init__.py": "",
        "core/a.py": "import mcp.x\n",
        "core/b.py": "def f():\n    from mcp import x\n",
        "core/c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from mcp.x import T\n",
        "core/d.py": "import importlib\ndef f():\n    return importlib.import_module('mcp.x')\n",
        "core/ok.py": "from core import a\nimport json\n",
        "mcp/__init__.py": "",
        "mcp/x.py": "from core import a\n",
    }
    found = core_imports_of_mcp(tree)
    assert [(edge.path, edge.line, edge.scope) for edge in found] == [
        ("core/a.py", 1, Scope.MODULE),
        ("core/b.py", 2, Scope.FUNCTION),
        ("core/c.py", 3, Scope.TYPE_CHECKING),
        ("core/d.py", 3, Scope.FUNCTION),
    ]
    assert all(edge.target == "mcp.x" for edge in found)


def test_relative_imports_are_resolved_and_their_cycles_found() -> None:
    tree = {
        "mcp/__init__.py": "",
        "mcp/server.py": "def f():\n    from .tools import a\n",
        "mcp/tools/__init__.py": "from .a import g\n",
        "mcp/tools/a.py": "from ..server import Server\nfrom . import b\n",
        "mcp/tools/b.py": "",
    }
    assert sorted((edge.source, edge.target) for edge in import_edges(tree)) == [
        ("mcp.server", "mcp.tools.a"),
        ("mcp.tools", "mcp.tools.a"),
        ("mcp.tools.a", "mcp.server"),
        ("mcp.tools.a", "mcp.tools.b"),
    ]
    assert [describe_cycle(cycle).splitlines()[0] for cycle in import_cycles(tree)] == [
        "mcp.server -> mcp.tools.a -> mcp.server"
    ]


def test_utils_or_config_importing_core_or_mcp_is_found() -> None:
    tree = {
        "utils/a.py": "from core.b import c\n",
        "config/s.py": "def f():\n    import mcp.server\n",
        "config/ok.py": "from utils.a import x\n",
        "core/b.py": "",
        "mcp/server.py": "",
    }
    found = plumbing_imports_of_core_or_mcp(tree)
    assert [(edge.source, edge.target) for edge in found] == [("config.s", "mcp.server"), ("utils.a", "core.b")]


def test_a_cycle_is_found_and_printed_with_where_each_import_stands() -> None:
    tree = {
        "mcp/a.py": "from mcp.b import x\n",
        "mcp/b.py": "import json\n\ndef f():\n    from mcp.c import y\n",
        "mcp/c.py": "import mcp.a\n",
        "mcp/d.py": "from mcp.a import z\n",  # points into the cycle, is not part of it
    }
    cycles = import_cycles(tree)
    assert len(cycles) == 1
    assert describe_cycle(cycles[0]) == (
        "mcp.a -> mcp.b -> mcp.c -> mcp.a"
        "\n    mcp/a.py:1 from mcp.b import x"
        "\n    mcp/b.py:4 from mcp.c import y"
        "\n    mcp/c.py:1 import mcp.a"
    )


def test_a_type_checking_import_makes_no_cycle_but_its_else_branch_does() -> None:
    only_types = {
        "core/a.py": "from core.b import x\n",
        "core/b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from core.a import T\n",
    }
    assert import_cycles(only_types) == []
    runs = {
        "core/a.py": "from core.b import x\n",
        "core/b.py": "import typing\nif typing.TYPE_CHECKING:\n    pass\nelse:\n    from core.a import T\n",
    }
    assert [describe_cycle(cycle).splitlines()[0] for cycle in import_cycles(runs)] == ["core.a -> core.b -> core.a"]


def test_a_package_init_reexporting_its_modules_is_not_a_cycle() -> None:
    tree = {"mcp/s/__init__.py": "from mcp.s.x import X\n", "mcp/s/x.py": "from mcp.s.y import Y\n", "mcp/s/y.py": ""}
    assert import_cycles(tree) == []


def test_a_commented_local_import_passes_and_an_uncommented_one_fails() -> None:
    tree = {
        "mcp/a.py": (
            "import json\n"
            "\n"
            "def commented():\n"
            "    # local: mcp.b pulls in a heavy library only this command needs\n"
            "    from mcp.b import x\n"
            "    from mcp.c import y\n"  # the run of imports under one comment
            "    return x, y\n"
            "\n"
            "def bare():\n"
            "    from mcp.b import x\n"
            "    return x\n"
            "\n"
            "def directive_only():\n"
            "    # noqa: F401\n"
            "    import mcp.c\n"
            "\n"
            "def not_ours():\n"
            "    import json\n"
            "\n"
            "def dynamic():\n"
            "    return importlib.import_module('mcp.c')\n"
        ),
        "mcp/b.py": "",
        "mcp/c.py": "",
    }
    found = local_imports(tree)
    assert [(item.line, item.reason) for item in found] == [
        (5, "local: mcp.b pulls in a heavy library only this command needs"),
        (6, "local: mcp.b pulls in a heavy library only this command needs"),
        (10, None),
        (15, None),
        (21, None),
    ]


def test_a_local_import_after_a_docstring_or_code_has_no_reason() -> None:
    tree = {
        "main.py": (
            "def f():\n"
            '    """Run."""\n'
            "    from core.a import b\n"
            "    x = 1\n"
            "    from core.a import c\n"
            "    return b, c, x\n"
        ),
        "core/a.py": "",
    }
    assert [(item.path, item.line, item.reason) for item in local_imports(tree)] == [
        ("main.py", 3, None),
        ("main.py", 5, None),
    ]


def test_the_facade_named_outside_its_files_is_found_but_not_in_prose() -> None:
    tree = {
        FACADE_MODULE: f"def {FACADE}():\n    ...\n",
        "mcp/main_mcp.py": f"from core.integrations.mcp_risk_integration import {FACADE}\n",
        "mcp/a.py": f'"""Uses {FACADE}() in prose only."""\n# {FACADE} in a comment\nx = "call {FACADE}() first"\n',
        "mcp/b.py": f"from core.integrations import mcp_risk_integration as m\ny = m.{FACADE}()\n",
        "mcp/c.py": f"import importlib\nz = getattr(importlib.import_module('core.x'), '{FACADE}')\n",
        "scripts/d.py": f"def f():\n    from core.integrations.mcp_risk_integration import {FACADE}\n",
    }
    assert facade_mentions(tree) == ["mcp/b.py:2", "mcp/c.py:2", "scripts/d.py:2"]
    assert defines_at_module_level(tree[FACADE_MODULE], FACADE)
    assert not defines_at_module_level("class K:\n    def get_mcp_risk_integrator(self): ...\n", FACADE)


def test_a_retired_module_name_is_found_as_a_module_or_a_package() -> None:
    tree = {"mcp/registry.py": "", "mcp/monitoring/gate/__init__.py": "", "mcp/server_registry.py": ""}
    assert retired_modules_present(tree) == ["mcp/monitoring/gate/__init__.py", "mcp/registry.py"]


# === the real tree ===================================================================================


@pytest.fixture(scope="module")
def tree() -> dict[str, str]:
    found = product_tree(ROOT)
    assert FACADE_MODULE in found and "main.py" in found, f"the product tree was not found under {ROOT}"
    return found


def test_core_imports_nothing_from_mcp(tree: dict[str, str]) -> None:
    found = core_imports_of_mcp(tree)
    assert not found, f"core must not import mcp (the sidecar may crash, trading goes on); measured {len(found)}:\n" + (
        "\n".join(f"  {edge.where()} [{edge.scope}]" for edge in found)
    )


def test_utils_and_config_import_nothing_from_core_or_mcp(tree: dict[str, str]) -> None:
    found = plumbing_imports_of_core_or_mcp(tree)
    assert not found, f"utils/ and config/ sit below core and mcp; measured {len(found)} import(s) upward:\n" + (
        "\n".join(f"  {edge.where()} [{edge.scope}]" for edge in found)
    )


def test_there_are_no_import_cycles(tree: dict[str, str]) -> None:
    cycles = import_cycles(tree)
    assert not cycles, f"measured {len(cycles)} import cycle(s):\n" + "\n".join(map(describe_cycle, cycles))


def test_few_function_local_imports_of_project_modules(tree: dict[str, str]) -> None:
    found = local_imports(tree)
    assert len(found) <= LOCAL_IMPORT_BUDGET, (
        f"measured {len(found)} function-local imports of project modules, at most {LOCAL_IMPORT_BUDGET} allowed "
        "(pass dependencies in from the entry point instead):\n" + "\n".join(f"  {item.where()}" for item in found)
    )


def test_each_function_local_import_says_why(tree: dict[str, str]) -> None:
    bare = [item for item in local_imports(tree) if item.reason is None]
    assert not bare, (
        f"measured {len(bare)} function-local import(s) of project modules without a comment on the line above "
        "saying why they are local:\n" + "\n".join(f"  {item.where()}" for item in bare)
    )


def test_the_facade_is_named_only_by_its_module_and_the_entry_point(tree: dict[str, str]) -> None:
    found = facade_mentions(tree)
    files = sorted({place.rpartition(":")[0] for place in found})
    assert not found, (
        f"{FACADE} is the user's test-plan facade, never a service locator inside the product; measured "
        f"{len(found)} mention(s) in {len(files)} other file(s) (allowed: {sorted(FACADE_FILES)}):\n  "
        + "\n  ".join(found)
    )


def test_the_facade_still_exists_for_the_users_test_plan(tree: dict[str, str]) -> None:
    assert defines_at_module_level(tree[FACADE_MODULE], FACADE), f"{FACADE_MODULE} must define {FACADE}()"


def test_no_retired_confusable_module_name_is_back(tree: dict[str, str]) -> None:
    found = retired_modules_present(tree)
    assert not found, f"these names were retired in issue 12 as easy to confuse with their pair: {found}"
