"""The library's module graph: no import circles (lazy and type-only imports included), LangChain only in
its integration module, and the library never imports the example pack or the harness."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[2] / "tokmem_agent"


def _modules() -> dict[str, Path]:
    out = {}
    for f in PKG.rglob("*.py"):
        parts = f.relative_to(PKG.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = f
    return out


def _imports(name: str, f: Path) -> set[str]:
    pkg = name if f.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(f.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")[: len(pkg.split(".")) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.add(target)
            found.update(f"{target}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def test_no_import_circles_between_submodules():
    mods = _modules()
    graph = {m: {t for t in _imports(m, f) if t in mods and t != m and t != "tokmem_agent"}
             for m, f in mods.items() if m != "tokmem_agent"}  # the package __init__ only re-exports
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                raise AssertionError("import circle: " + " -> ".join(stack[stack.index(t):] + [t]))
            if t not in state:
                visit(t)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_langchain_and_the_pack_stay_outside_the_core():
    for name, f in _modules().items():
        imported = _imports(name, f)
        roots = {i.split(".")[0] for i in imported}
        assert not roots & {"tools", "evals", "tokmem_examples", "tokmem_evals"}, name
        if not name.startswith("tokmem_agent.integrations.langchain"):
            assert not any(r.startswith("langchain") for r in roots), name
