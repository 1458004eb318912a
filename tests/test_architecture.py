"""The house's rules, checked: no import cycles (lazy imports and module-path strings count), no module over
500 lines, the import-linter contracts of pyproject.toml kept."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "attnlab"
MAX_LINES = 500
# "attnlab.models.gpt:GPT" or ("attnlab.recipes.lm", "GPT_RECIPE"): a module named in a string is imported
MODULE_STRING = re.compile(r"""["'](attnlab(?:\.[a-z_0-9]+)+)(?::[A-Za-z_]+)?["']""")


def module_graph() -> dict[str, set[str]]:
    """Every attnlab module -> the attnlab modules it imports, at any depth of the code, plus those it
    names in a string (a registry imports them with importlib)."""
    graph = grimp.build_graph("attnlab", include_external_packages=False)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}
    for module in graph.modules:
        path = PACKAGE.parent / (module.replace(".", "/") + ".py")
        if not path.is_file():
            path = PACKAGE.parent / module.replace(".", "/") / "__init__.py"
        for name in MODULE_STRING.findall(path.read_text(encoding="utf-8")):
            if name in edges and not module.startswith(name):  # a package's own name: its data files
                edges[module].add(name)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one node (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]
    sys.setrecursionlimit(10_000)

    def visit(node: str) -> None:
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def top_level(module: str) -> str:
    return ".".join(module.split(".")[:2])


def test_no_import_cycle_between_modules():
    assert cycles(module_graph()) == []


def test_no_import_cycle_between_packages():
    edges: dict[str, set[str]] = {}
    for module, targets in module_graph().items():
        source = top_level(module)
        edges.setdefault(source, set()).update(top_level(t) for t in targets if top_level(t) != source)
    edges.pop("attnlab", None)  # the root package only re-exports, lazily
    for targets in edges.values():
        targets.discard("attnlab")
    assert cycles(edges) == []


def test_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_over_500_lines():
    long = {str(p.relative_to(ROOT)): n for p in PACKAGE.rglob("*.py")
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert long == {}


def test_import_contracts_are_kept():
    local = Path(sys.executable).parent / "lint-imports"
    exe = str(local) if local.exists() else shutil.which("lint-imports")
    assert exe, "import-linter is not installed (pip install -r requirements-test.txt)"
    done = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout[-3000:]
