"""Package layout: importing the networks loads no data code and no simulator, and the subpackages of macflow
import each other in one direction only (function-local imports included)."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "macflow"
FORBIDDEN_FOR_MODULES = ("macflow.datamodules", "macflow.datagen", "mpe2", "mujoco", "gymnasium",
                         "gymnasium_robotics", "pettingzoo")


def test_importing_the_networks_loads_no_data_code_and_no_simulator():
    code = "import json, sys; import macflow.modules; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd=PACKAGE.parent).stdout
    loaded = json.loads(out.splitlines()[-1])
    bad = [m for m in loaded if any(m == f or m.startswith(f + ".") for f in FORBIDDEN_FOR_MODULES)]
    assert not bad, f"import macflow.modules loads {bad}"


def node(module: str) -> str:
    """The part of macflow a module belongs to: its top-level subpackage or module (``macflow.envs.mpe`` ->
    ``envs``). Entry points (``__main__``) are nodes of their own: nothing imports them, they wire the rest."""
    parts = module.split(".")[1:]
    if parts and parts[-1] == "__main__":
        return ".".join(parts)
    return parts[0] if parts else "macflow"


def import_graph() -> dict[str, set[str]]:
    """``{part: parts it imports}`` from every import statement in macflow/, at any depth in the file."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        module = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        source = node(module)
        targets = graph.setdefault(source, set())
        for stmt in ast.walk(ast.parse(path.read_text())):
            if isinstance(stmt, ast.Import):
                names = [a.name for a in stmt.names]
            elif isinstance(stmt, ast.ImportFrom) and stmt.level == 0 and stmt.module:
                names = [stmt.module]
                if stmt.module == "macflow":  # from macflow import evaluation
                    names = [f"macflow.{a.name}" for a in stmt.names]
            else:
                assert not isinstance(stmt, ast.ImportFrom), f"{path}: use absolute imports"
                continue
            targets.update(node(n) for n in names if n.startswith("macflow.") and node(n) != source)
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = "open"
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == "open":
                return stack[stack.index(m):] + [m]
            if m not in state and (cycle := visit(m)):
                return cycle
        state[n] = "done"
        stack.pop()
        return None

    for n in sorted(graph):
        if n not in state and (cycle := visit(n)):
            return cycle
    return None


def test_find_cycle_reports_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_subpackages_depend_on_each_other_in_one_direction():
    graph = import_graph()
    assert find_cycle(graph) is None, f"import cycle between parts of macflow: {find_cycle(graph)}"
    assert graph["errors"] == set()  # the input-error type every part may raise
    assert graph["files"] == {"errors"}  # atomic writes and checksums
    assert graph["transitions"] <= {"errors", "files"}
    assert graph["envs"] == set()  # simulators depend on nothing else in macflow
    assert graph["evaluation"] == {"envs"}
    assert not graph["modules"] & {"datamodules", "datagen"}
    assert "datamodules" not in graph["datagen"]


@pytest.mark.parametrize("script", ["coordination", "mpe_table", "mamujoco_table", "frontier"])
def test_old_table_scripts_exit_naming_the_runner(script):
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / f"{script}.py")], capture_output=True, text=True)
    assert done.returncode != 0 and "python -m macflow.experiments run configs/experiments/" in done.stderr


def test_names_moved_out_of_datamodules_say_where_they_went():
    with pytest.raises(ImportError, match="macflow.envs"):
        from macflow.datamodules import rollout  # noqa: F401
