"""The package's import graph: no cycle (function-level imports included) and no private name used
outside the module that defines it, so a newcomer can read and change one module at a time."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "msabench"


def _modules() -> dict[str, Path]:
    out = {}
    for f in PACKAGE.rglob("*.py"):
        if "__pycache__" in f.parts:
            continue
        parts = f.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


MODULES = _modules()


def _source_of(module: str, node: ast.ImportFrom) -> str | None:
    if not node.level:
        return node.module
    package = module.split(".") if MODULES[module].name == "__init__.py" else module.split(".")[:-1]
    base = package[: len(package) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _graph():
    """({module: modules it imports}, [(module, owner, private name)])."""
    edges, private = {m: set() for m in MODULES}, []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for a in node.names:
                    if a.name.split(".")[0] == "msabench":
                        edges[module].add(a.name)
                        aliases[a.asname or a.name] = a.name
            elif isinstance(node, ast.ImportFrom):
                src = _source_of(module, node)
                if not src or src.split(".")[0] != "msabench":
                    continue
                for a in node.names:
                    if f"{src}.{a.name}" in MODULES:
                        edges[module].add(f"{src}.{a.name}")
                        aliases[a.asname or a.name] = f"{src}.{a.name}"
                    else:
                        edges[module].add(src)
                        if a.name.startswith("_") and not a.name.startswith("__"):
                            private.append((module, src, a.name))
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                    and node.attr.startswith("_") and not node.attr.startswith("__")
                    and aliases[node.value.id] != module):
                private.append((module, aliases[node.value.id], node.attr))
    return {m: {e for e in es if e in MODULES and e != m} for m, es in edges.items()}, private


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_checker_sees_cycles_and_private_names():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    edges, _ = _graph()
    assert "msabench.variance" in edges["msabench.stats"]  # it reads the real imports
    assert len(MODULES) > 30


def test_no_import_cycle():
    assert _cycles(_graph()[0]) == []


def test_no_private_name_crosses_a_module():
    assert _graph()[1] == []
