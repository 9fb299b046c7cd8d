"""The layout shows the architecture, as README "Map of the code" draws it: one package per domain, dependencies
pointing one way (the map's order), no import circle, no file over 400 lines, and a map true to the tree."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "attendance_daemon"
MAX_LINES = 400
TOP_LEVEL = {"__init__.py", "__main__.py", "config.py"}
# Rows of the map from `common/` to `privacy/`, `store/` aside: the domain cores.
DRIVERS = ("paho", "sqlite3", "psycopg")


def _map_rows() -> list[str]:
    """The first cell of each row of README's map table: `name/` or `config.py`, lowest first."""
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Map of the code", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+/|[a-z_]+\.py)` \|", section, re.M)
    assert rows, "README has no map table"
    return [r.removesuffix("/").removesuffix(".py") for r in rows]


def _modules() -> dict[str, Path]:
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(module: str, path: Path, known: set[str]) -> set[str]:
    """The project's modules that `module` imports (a name imported from a package counts as its module when it
    is one), TYPE_CHECKING imports included: they are dependencies of the text too."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name in known}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                if f"{target}.{alias.name}" in known:
                    out.add(f"{target}.{alias.name}")
                elif target in known:
                    out.add(target)
    return out - {module}


def _room(module: str) -> str:
    """The map row a module belongs to: its package under attendance_daemon, or `config`; `` for the root."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {m: _imports(m, p, known) for m, p in modules.items()}


def test_top_level_holds_only_the_entry_points_and_the_config() -> None:
    top = {p.name for p in PACKAGE.glob("*.py")}
    assert top <= TOP_LEVEL, f"modules outside a domain package: {sorted(top - TOP_LEVEL)}"


def test_no_file_is_over_400_lines() -> None:
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, f"files over {MAX_LINES} lines: {long}"


def test_every_package_says_at_its_door_what_it_owns() -> None:
    for init in sorted(PACKAGE.glob("*/__init__.py")):
        doc = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8")))
        assert doc and len(doc) > 60, f"{init.relative_to(ROOT)}: say what the package owns and may import"


def test_the_map_lists_every_package_once() -> None:
    rows = _map_rows()
    assert len(rows) == len(set(rows)), rows
    packages = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    assert set(rows) == packages | {"config"}, set(rows) ^ (packages | {"config"})


def test_dependencies_point_up_the_map_only() -> None:
    order = {row: i for i, row in enumerate(_map_rows())}
    wrong = []
    for module, imported in _graph().items():
        room = _room(module)
        for target in imported:
            there = _room(target)
            if room not in order or there not in order or there == room:
                continue  # `__main__` (the entry point), and the root package's __version__
            if order[there] >= order[room]:
                wrong.append(f"{module} -> {target}")
    assert not wrong, "imports against the map's order (README 'Map of the code'):\n" + "\n".join(sorted(wrong))


def test_there_is_no_import_circle() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert not circles, f"import circles: {circles}"


def test_domain_cores_import_no_mqtt_and_no_database_driver() -> None:
    rows = _map_rows()
    cores = set(rows[: rows.index("privacy") + 1]) - {"store", "config"}
    for module, path in _modules().items():
        if _room(module) not in cores:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and not n.level}
        bad = {n for n in names if n.split(".")[0] in DRIVERS}
        assert not bad, f"{module} imports {sorted(bad)}"
