"""The import architecture of docs/architecture.md, read from the source with `ast`.

(a) no import cycle among the modules of `milannotations/` at module level (imports inside
functions are lazy loads of heavy libraries, not a way around a cycle); (b) the rooms' direction:
milannotations <- baselines <- eval <- applications <- leaderboard, where an arrow means "may import", checked on
every import, module-level or inside a function.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROOMS = ("milannotations", "baselines", "eval", "applications", "leaderboard")  # each may import only those before it


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for room in ROOMS for p in sorted((ROOT / room).rglob("*.py"))}


def _imports(name: str, path: Path) -> list[tuple[str, int, bool]]:
    """(imported module, line, at module level) for every import in `path`, relative ones resolved.

    `from pkg import x` counts as importing `pkg.x` where that is a module, else `pkg`. Imports under
    `if TYPE_CHECKING:` are annotations only and are left out.
    """
    modules = _modules()
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                visit(ast.Module(body=child.orelse, type_ignores=[]), top)
                continue
            if isinstance(child, ast.Import):
                out.extend((a.name, child.lineno, top) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")
                    anchor = anchor[: len(anchor) - (child.level - 1)]
                    base = ".".join([*anchor, base] if base else anchor)
                for a in child.names:
                    sub = f"{base}.{a.name}"
                    out.append((sub if sub in modules else base, child.lineno, top))
            inner = top and not isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda))
            visit(child, inner)

    visit(tree, True)
    return out


def _edges(*, module_level_only: bool) -> list[tuple[str, str, int]]:
    modules = _modules()
    edges = []
    for name, path in modules.items():
        for target, line, top in _imports(name, path):
            if module_level_only and not top:
                continue
            edges.append((name, target, line))
    return edges


def _find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := dfs(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := dfs(node)):
            return found
    return None


def _with_packages(name: str, target: str, modules: dict[str, Path]) -> set[str]:
    """`target` and the packages whose `__init__` importing it runs first: every package above it
    that is not already a package above `name` (those are being imported when `name` runs)."""
    above_name = {".".join(name.split(".")[:i]) for i in range(1, name.count(".") + 1)}
    parts = target.split(".")
    chain = {".".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return {m for m in (chain - above_name) | {target} if m in modules and m != name}


def _graph(*, module_level_only: bool) -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, target, _ in _edges(module_level_only=module_level_only):
        if name.split(".")[0] == "milannotations":
            graph.setdefault(name, set()).update(_with_packages(name, target, modules))
    return graph


def test_no_import_cycle_in_milannotations():
    cycle = _find_cycle(_graph(module_level_only=True))
    assert cycle is None, "module-level import cycle in milannotations/: " + " -> ".join(cycle)


def test_no_import_inside_a_function_hides_a_cycle():
    """Imports inside functions are for heavy libraries (or a CLI's start-up), never a way around a cycle:
    counted as if at module level, the package's imports still form none."""
    cycle = _find_cycle(_graph(module_level_only=False))
    assert cycle is None, "import cycle in milannotations/ once imports inside functions count: " + \
        " -> ".join(cycle)


def test_rooms_import_only_to_their_left():
    bad = []
    for name, target, line in _edges(module_level_only=False):
        room, other = name.split(".")[0], target.split(".")[0]
        if other in ROOMS and ROOMS.index(other) > ROOMS.index(room):
            bad.append(f"{_modules()[name].relative_to(ROOT)}:{line}: {name} imports {target}")
    assert not bad, "imports against the direction milannotations <- baselines <- eval <- applications <- leaderboard:\n" + \
        "\n".join(bad)


def test_the_checker_sees_imports():
    """The graph is not empty by accident: known edges are found, relative imports resolved."""
    edges = {(a, b) for a, b, _ in _edges(module_level_only=True)}
    assert ("milannotations", "milannotations.load") in edges
    assert ("milannotations.load", "milannotations.errors") in edges
    assert _find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _find_cycle({"a": {"b"}, "b": set()}) is None
