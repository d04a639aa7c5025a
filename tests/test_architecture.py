"""The package's structure (parsed with ast, nothing imported): no private name used across
modules, no module globals assigned from outside, no import cycle."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*(ROOT / "gdpp_bench").rglob("*.py"), *(ROOT / "benchmarks").rglob("*.py")])


def _module(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    base = base[: len(base) - node.level + (1 if is_package else 0)]
    return ".".join([*base, *([node.module] if node.module else [])])


def _imports(path: Path) -> tuple[list[tuple[int, str, str]], dict[str, str], list[str]]:
    """(private names imported from project modules, local name -> project module, imported
    project modules) of one file."""
    module = _module(path)
    tree = ast.parse(path.read_text())
    private, aliases, targets = [], {}, []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            source = _resolve(node, module, path.name == "__init__.py")
            if not source.startswith("gdpp_bench"):
                continue
            targets.append(source)
            for alias in node.names:
                if _private(alias.name):
                    private.append((node.lineno, source, alias.name))
                aliases[alias.asname or alias.name] = f"{source}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("gdpp_bench"):
                    targets.append(alias.name)
                    aliases[alias.asname or alias.name.split(".")[0]] = alias.name
    return private, aliases, targets


def test_no_private_name_is_used_across_modules_and_no_global_is_assigned_from_outside():
    problems = []
    for path in SOURCES:
        private, aliases, _ = _imports(path)
        where = path.relative_to(ROOT)
        problems += [f"{where}:{line}: imports {name} from {source}" for line, source, name in private]
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in aliases
            ):
                if _private(node.attr):
                    problems.append(f"{where}:{node.lineno}: reaches {node.value.id}.{node.attr}")
                if isinstance(node.ctx, ast.Store):
                    problems.append(f"{where}:{node.lineno}: assigns {node.value.id}.{node.attr}")
    assert not problems, "\n".join(problems)


def test_no_import_cycle_between_modules():
    modules = {_module(path): path for path in SOURCES if _module(path).startswith("gdpp_bench")}
    edges = {}
    for name, path in modules.items():
        _, _, targets = _imports(path)
        edges[name] = {target if target in modules else target.rsplit(".", 1)[0] for target in targets}
        edges[name] = {t for t in edges[name] if t in modules and t != name}

    def cycle_from(start: str) -> list[str] | None:
        stack, seen = [(start, [start])], set()
        while stack:
            node, trail = stack.pop()
            for nxt in edges[node]:
                if nxt == start:
                    return [*trail, start]
                if nxt not in seen:
                    seen.add(nxt)
                    stack.append((nxt, [*trail, nxt]))
        return None

    cycles = [cycle for name in modules if (cycle := cycle_from(name))]
    assert not cycles, "\n".join(" -> ".join(c) for c in cycles)
