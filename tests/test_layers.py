"""The package's layers, checked from its imports (function-level imports included): no cycle, and
no import that points up the order below. `symlstm/__init__.py` (the public API, which re-exports
from every layer) and `__main__.py` stand above them all."""
import ast
from pathlib import Path

import pytest

from conftest import ROOT

PACKAGE = ROOT / "symlstm"
# Lowest first. A module may import its own layer and those before it, never one after it.
LAYERS = ["errors", "poetics", "backend", "config", "vocab", "core", "corpus", "run", "workbench", "tools", "app"]


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, root: Path = ROOT) -> set[str]:
    """Every symlstm module a file imports, at any depth of its code (`from x import y` counts as
    x.y when that is a module, else as x)."""
    name, out = module_name(path, root), set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("symlstm")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(up + ([base] if base else []))
            if not base.startswith("symlstm"):
                continue
            for a in node.names:
                out.add(f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base)
    return out - {name}


FILES = {module_name(p): p for p in PACKAGE.rglob("*.py")}
MODULES = set(FILES)
GRAPH = {m: imports_of(p) for m, p in FILES.items()}


def layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_module_has_a_layer():
    assert sorted(m for m in MODULES if layer(m) is None) == ["symlstm", "symlstm.__main__"]


@pytest.mark.parametrize("module", sorted(m for m in MODULES if layer(m) is not None))
def test_imports_point_down(module):
    up = sorted(t for t in GRAPH[module] if layer(t) is None or layer(t) > layer(module))
    assert not up, f"{module} imports {up}: above its layer ({LAYERS[layer(module)]}) in {LAYERS}"


def test_no_import_cycle():
    """Depth-first search over the module graph (the package roots left out: they only re-export)."""
    graph = {m: {t for t in ts if t in GRAPH and layer(t) is not None} for m, ts in GRAPH.items() if layer(m) is not None}
    state, cycles = {}, []

    def visit(m, path):
        state[m] = "open"
        for t in sorted(graph[m]):
            if state.get(t) == "open":
                cycles.append(path[path.index(t):] + [t])
            elif t not in state:
                visit(t, path + [t])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, cycles


def test_the_check_sees_function_level_relative_and_upward_imports(tmp_path):
    """The checker itself: imports inside a function, absolute and relative, are found, and core
    reaching up into the workbench and the training loop is reported."""
    probe = tmp_path / "symlstm" / "core" / "probe.py"
    probe.parent.mkdir(parents=True)
    probe.write_text("def f():\n    from symlstm.workbench.decode import Sampler\n    from ..run import train\n")
    found = imports_of(probe, tmp_path)
    assert found == {"symlstm.workbench.decode", "symlstm.run.train"}
    assert all(layer(t) > layer("symlstm.core.probe") for t in found)
