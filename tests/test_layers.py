"""The package's imports run one way: down the layers written in its docstring, never up and
never in a circle, function-level imports included (they may defer a slow import, never hide a
circle)."""

import ast
import re
from pathlib import Path

import speechforensics

PACKAGE = Path(speechforensics.__file__).parent
NAME = "speechforensics"


def _layers() -> dict[str, int]:
    """module -> layer, from the docstring's `N  a, b (c, d), e` lines: b (c, d) names b.c, b.d."""
    layers = {}
    for number, names in re.findall(r"^\s+(\d)\s+(.+)$", speechforensics.__doc__, re.MULTILINE):
        for name, subs in re.findall(r"([\w.]+)(?:\s*\(([^)]*)\))?", names):
            layers[f"{NAME}.{name}"] = int(number)
            for sub in filter(None, (s.strip() for s in subs.split(","))):
                layers[f"{NAME}.{name}.{sub}"] = int(number)
    return layers


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_module(name: str) -> bool:
    relative = Path(*name.split(".")).relative_to(NAME)
    base = PACKAGE / relative
    return base.with_suffix(".py").exists() or (base / "__init__.py").exists()


def _imports(path: Path) -> set[str]:
    """Every speechforensics module `path` imports anywhere in it (functions included)."""
    module, found = _module(path), set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.split(".")[0] == NAME}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module or ""
            if base.split(".")[0] != NAME:
                continue
            for alias in node.names:  # `from . import media` imports a module, not the package
                sub = f"{base}.{alias.name}"
                found.add(sub if _is_module(sub) else base)
    return found - {module}


def _graph() -> dict[str, set[str]]:
    return {_module(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_module_has_a_layer():
    layers = _layers()
    top = {NAME, f"{NAME}.avhubert"}  # the packages: the API and a folder
    missing = sorted(m for m in _graph() if m not in layers and m not in top)
    assert not missing, f"add these to the layers in speechforensics/__init__.py: {missing}"


def test_no_import_points_up_a_layer():
    layers = _layers()
    up = [
        f"{module} (layer {layers[module]}) imports {target} (layer {layers.get(target, 'top')})"
        for module, targets in _graph().items()
        if module in layers
        for target in sorted(targets)
        if layers.get(target, 99) > layers[module]
    ]
    assert not up, "\n".join(up)


def test_no_import_circle():
    graph = _graph()
    done, path, circles = set(), [], []

    def visit(module: str) -> None:
        if module in path:
            circles.append(" -> ".join([*path[path.index(module) :], module]))
            return
        if module in done:
            return
        path.append(module)
        for target in sorted(graph.get(module, ())):
            visit(target)
        path.pop()
        done.add(module)

    for module in graph:
        visit(module)
    assert not circles, "\n".join(circles)


def test_the_check_sees_function_level_and_relative_imports(tmp_path):
    """The walker finds an import hidden in a function, resolved from a relative name."""
    found = _imports(PACKAGE / "cli.py")
    assert f"{NAME}.pipeline" in found and f"{NAME}.avhubert.checkpoint" in found
