"""The boundaries of docs/architecture.md hold in the import graph of the code.

Every ``import`` and ``from … import`` of every module under the four roots is read with
``ast`` (including imports inside functions and ``TYPE_CHECKING`` blocks: a dependency is a
dependency), resolved to a unit (a folder of the architecture), and checked against
:data:`ALLOWED`, the table the document describes.
"""

import ast
import functools
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROOTS = {"engram_sdk": "engram_sdk", "engram_sdk.model": "model"}
ROOTS |= {"engram_sdk.stores": "stores", "engram_sdk.evals": "evals"}
SUBPACKAGES = {"model", "stores", "evals"}  # their own roots
CORE_MODULES = {"tokenizer", "canonical", "errors", "paths", "workers", "_version"}

# unit → the units it may import (besides itself). "core" is engram_sdk's top-level modules.
ALLOWED: dict[str, set[str]] = {
    "core": set(),
    "stores": {"core"},
    "hashing": {"core"},
    "engram": {"core", "hashing"},
    "model": {"core", "engram", "hashing"},
    "memory": {"core", "hashing", "stores"},
    "sessions": {"core", "hashing", "stores", "memory"},
    # Engram rows from stores, applied to a model from outside (as distributed wrapping is)
    "table_runtime": {"core", "hashing", "engram", "model", "stores"},
    # the evals' adapters answer through the one generation path (llm backends)
    "evals": {"core", "hashing", "model", "memory", "sessions", "stores", "llm"},
    "llm": {"core", "hashing", "model", "memory", "sessions", "stores"},
    # files and folders → token ids for training (walks folders like memory's ingest)
    "corpus": {"core", "memory"},
    # data/expert parallelism wraps a model from outside, as the table runtime does
    "distributed": {"core", "hashing", "engram", "model", "corpus"},
}
# the top: they may import everything below them, and nothing below imports them
LIBRARY = set(ALLOWED)
ALLOWED |= {"server": LIBRARY, "mcp": LIBRARY, "bench": LIBRARY}
ALLOWED["cli"] = LIBRARY | {"server", "mcp", "bench"}

# Edges that break a rule today, each being fixed by its owner: (from, to) → why allowed now.
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {}


def module_name(path: Path) -> str:
    for package, folder in sorted(ROOTS.items(), key=lambda kv: -len(kv[0])):
        base = ROOT / folder
        if base in path.parents:
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            return ".".join([package, *parts])
    raise AssertionError(path)


def unit_of(module: str) -> str:
    parts = module.split(".")
    if parts[0] != "engram_sdk" or len(parts) == 1 or parts[1] in CORE_MODULES:
        return "core"
    return parts[1]


def imported_modules(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names if target == "engram_sdk"}
    return {m for m in found if m.split(".")[0] == "engram_sdk"}


@functools.cache
def unit_edges() -> dict[tuple[str, str], list[str]]:
    """(importing unit, imported unit) → the modules that import across that edge."""
    edges: dict[tuple[str, str], list[str]] = defaultdict(list)
    for folder in ROOTS.values():
        for path in sorted((ROOT / folder).rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            module = module_name(path)
            for target in imported_modules(path, module):
                a, b = unit_of(module), unit_of(target)
                if a != b:
                    edges[a, b].append(module)
    return edges


def violations() -> dict[tuple[str, str], list[str]]:
    return {
        (a, b): who for (a, b), who in unit_edges().items() if a in ALLOWED and b not in ALLOWED[a]
    }


def test_the_graph_is_read_from_real_code() -> None:
    edges = unit_edges()
    assert ("memory", "stores") in edges and ("model", "engram") in edges
    assert ("cli", "memory") in edges


def test_no_new_boundary_violations() -> None:
    new = {edge: who for edge, who in violations().items() if edge not in KNOWN_VIOLATIONS}
    assert new == {}, "see docs/architecture.md, Boundaries"


def test_model_imports_nothing_from_stores_memory_or_evals() -> None:
    model_deps = {b for a, b in unit_edges() if a == "model"}
    assert model_deps & {"stores", "evals", "sessions", "table_runtime", "cli", "bench"} == set()


def test_model_imports_nothing_from_memory() -> None:
    assert ("model", "memory") not in unit_edges()


@pytest.mark.parametrize("unit", ["model", "engram"])
def test_the_model_and_the_engram_module_import_no_runtime_and_no_stores(unit: str) -> None:
    deps = {b for a, b in unit_edges() if a == unit}
    assert deps & {"table_runtime", "stores", "distributed"} == set()


def test_the_table_runtime_is_found_by_the_graph() -> None:
    edges = unit_edges()
    assert ("table_runtime", "stores") in edges and ("table_runtime", "model") in edges


def test_memory_never_imports_sessions() -> None:
    assert ("memory", "sessions") not in unit_edges()


def cycles(edges: set[tuple[str, str]]) -> list[list[str]]:
    """Every elementary cycle's smallest representative, by depth-first search."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    found = set()

    def visit(start: str, node: str, path: list[str]) -> None:
        for nxt in graph[node]:
            if nxt == start:
                i = path.index(min(path))
                found.add(tuple(path[i:] + path[:i]))
            elif nxt not in path and nxt > start:
                visit(start, nxt, [*path, nxt])

    for start in list(graph):
        visit(start, start, [start])
    return sorted(list(c) for c in found)


def test_cycle_finder_against_a_known_graph() -> None:
    edges = {("a", "b"), ("b", "c"), ("c", "a"), ("c", "d"), ("d", "c"), ("e", "a")}
    assert cycles(edges) == [["a", "b", "c"], ["c", "d"]]


def test_no_import_cycles_between_folders_except_known_ones() -> None:
    known = {tuple(sorted(edge)) for edge in KNOWN_VIOLATIONS}
    unexplained = [c for c in cycles(set(unit_edges())) if not (len(c) == 2 and tuple(c) in known)]
    assert unexplained == []


def test_no_import_cycles_between_folders() -> None:
    assert cycles(set(unit_edges())) == []
