"""The package's layout, checked: no import cycle, no arrow up a layer, no oversized module.

Every import counts — at module level and inside functions (a function-level import is still a
dependency; it only changes when it is paid). The layers, lowest first; a module may import its
own layer and the ones below, never one above:

====  ===========================================================================================
 0    ground floor: ``errors``, ``units``, ``timefmt``, ``security``, ``jsonout``, ``config``,
      ``sigmask``
 1    host facts: ``hardware``, ``metadata``
 2    ``meters/`` (one module per source, a registry)
 3    ``store/`` (connections, schema, writer, spool, delivery policy, reads: all the SQL)
 4    ``carbon/`` (intensity sources and their registry, accounting, what-if)
 5    ``sampler``, ``distributed``, ``scheduling.plan`` (what the tracker and a child import)
 6    the tracker: ``tracker`` (Run) and the modules it is made of
 7    ``runner``, ``scheduling/``, ``testing/`` (simulated hardware, synthetic stores)
 8    ``report/``, ``integrations/``, ``workloads/``
 9    the public facade ``greentrack`` (``__init__``), ``cli/``, ``__main__``
====  ===========================================================================================

A new module goes in the layer of its package; a new top-level module needs a line here.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "greentrack"
MAX_LINES = 600

#: module-name prefix -> layer; the longest matching prefix wins
LAYERS: dict[str, int] = {
    "greentrack.errors": 0,
    "greentrack.units": 0,
    "greentrack.timefmt": 0,
    "greentrack.security": 0,
    "greentrack.jsonout": 0,
    "greentrack.config": 0,
    "greentrack.sigmask": 0,
    "greentrack.hardware": 1,
    "greentrack.metadata": 1,
    "greentrack.meters": 2,
    "greentrack.store": 3,
    "greentrack.carbon": 4,
    "greentrack.sampler": 5,
    "greentrack.distributed": 5,
    "greentrack.scheduling.plan": 5,
    "greentrack.tracker": 6,
    "greentrack.run": 6,
    "greentrack.lifecycle": 6,
    "greentrack.summary": 6,
    "greentrack.budget": 6,
    "greentrack.runner": 7,
    "greentrack.scheduling": 7,
    "greentrack.testing": 7,
    "greentrack.report": 8,
    "greentrack.integrations": 8,
    "greentrack.workloads": 8,
    "greentrack": 9,
    "greentrack.cli": 9,
    "greentrack.__main__": 9,
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """Every greentrack module ``name`` imports (module level and inside functions)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join([*base, node.module] if node.module else base)
            else:
                mod = node.module or ""
            targets = [
                f"{mod}.{a.name}" if f"{mod}.{a.name}" in modules else mod for a in node.names
            ]
        for t in targets:
            if not t.startswith("greentrack"):
                continue
            while t not in modules and "." in t:
                t = t.rsplit(".", 1)[0]
            if t in modules and t != name:
                found.add(t)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, modules) for name, path in modules.items()}


def layer(module: str) -> int:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len)
    return LAYERS[best]


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, children = work[-1]
            for w in children:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph.get(w, ())))))
                    break
                if w in on_stack:
                    low[v] = min(low[v], index[w])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[v])
                if low[v] == index[v]:
                    comp = []
                    while True:
                        w = stack.pop()
                        on_stack.discard(w)
                        comp.append(w)
                        if w == v:
                            break
                    if len(comp) > 1:
                        out.append(sorted(comp))
    return out


def test_the_package_has_no_import_cycle() -> None:
    assert _cycles(_graph()) == []


def test_no_module_imports_a_layer_above_its_own() -> None:
    graph = _graph()
    upward = sorted(
        f"{m} (layer {layer(m)}) imports {t} (layer {layer(t)})"
        for m, targets in graph.items()
        for t in targets
        if layer(t) > layer(m)
    )
    assert upward == []


def test_every_module_has_a_layer() -> None:
    assert all(layer(m) >= 0 for m in _modules())


def test_no_module_is_over_the_size_limit() -> None:
    big = {
        str(p.relative_to(PACKAGE.parent)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert big == {}, f"modules over {MAX_LINES} lines: split them by job"


def test_the_checker_sees_function_level_imports_and_cycles() -> None:
    """The checker itself: a function-level import is an edge, and a two-module loop is found."""
    tree = {"a": {"b"}, "b": {"a"}, "c": {"a"}}
    assert _cycles(tree) == [["a", "b"]]
    graph = _graph()
    assert "greentrack.carbon.runcarbon" in graph["greentrack.run"]  # imported in a function
