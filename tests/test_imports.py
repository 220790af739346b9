"""No import cycles inside `keras_kd` (DESIGN.md: data flows one way; pipeline and cli sit on top).

Every `import` statement counts, including those inside functions (a lazy import is still a
dependency). `from keras_kd.a import b` is an edge to `keras_kd.a.b` when that is a module, else to
`keras_kd.a`; importing a module's parent package implicitly is not counted.
"""

import ast
import pathlib

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "keras_kd"


def _modules():
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    return modules


def _resolve(module, level, current, is_package):
    if level == 0:
        return module
    base = current.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def import_graph():
    """`{module: {imported keras_kd modules}}` for every module of the package."""
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        edges = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(node.module, node.level, name, path.name == "__init__.py")
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in node.names]
            else:
                continue
            for target in targets:
                while target and target not in modules:  # `import keras_kd.a.b` -> keras_kd.a.b
                    target = target.rpartition(".")[0]
                if target and target.startswith("keras_kd") and target != name:
                    edges.add(target)
        graph[name] = edges
    return graph


def find_cycles(graph):
    """Strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, stack, on_stack, cycles, counter = {}, {}, [], set(), [], [0]

    def visit(node):
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_find_cycles_detects_a_cycle():
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_graph_sees_lazy_and_relative_imports():
    graph = import_graph()
    assert "keras_kd.pipeline.steps" in graph["keras_kd.cli.distill"] or "keras_kd.pipeline" in graph[
        "keras_kd.cli.distill"]
    assert "keras_kd.models.registry" in graph["keras_kd.models.text"]


def test_no_import_cycles_in_keras_kd():
    cycles = find_cycles(import_graph())
    assert not cycles, "import cycles inside keras_kd: " + "; ".join(" <-> ".join(c) for c in cycles)
