"""The core's import layers (docs/architecture.md), checked on the source in CI.

Every ``import`` in ``core/waystation`` counts: at module level, inside a function (a lazy
import is still a dependency) and under ``if TYPE_CHECKING:`` (a type-only cycle is still two
modules that cannot be understood one without the other). The rules:

- no import cycle between the core's modules;
- stores and resilience are below the engine: they import neither the engine, nor batch, the
  worker, the test harness or the CLI;
- the engine is below batch and the worker: it imports neither of them, nor the CLI;
- the CLI is on top: no module outside ``waystation.cli`` imports it;
- the core never imports a plugin (``waystation_*``).

And at run time: ``import waystation`` is cheap, and ``waystation --help`` imports no engine code.
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest
import waystation

CORE = Path(waystation.__file__).resolve().parent

#: (importer prefixes, forbidden imported prefixes, why)
FORBIDDEN: list[tuple[tuple[str, ...], tuple[str, ...], str]] = [
    (("waystation.stores", "waystation.resilience"),
     ("waystation.engine", "waystation.batch", "waystation.worker", "waystation.testing", "waystation.cli"),
     "stores and resilience are below the engine"),
    (("waystation.engine",),
     ("waystation.batch", "waystation.worker", "waystation.testing", "waystation.cli"),
     "the engine is below batch and the worker"),
    (("waystation",), ("waystation.cli",), "the CLI is on top: only waystation.cli imports it"),
]
#: allowed exceptions to FORBIDDEN: (importer, imported)
ALLOWED = {("waystation.__main__", "waystation.cli.main")}


def _in(name: str, prefixes: Iterable[str]) -> bool:
    return any(name == p or name.startswith(p + ".") for p in prefixes)


def module_names(root: Path, package: str = "waystation") -> dict[str, Path]:
    """Every module of the package under ``root``, by dotted name (``pkg/__init__.py`` is ``pkg``)."""
    out: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = [package, *path.relative_to(root).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, known: Mapping[str, Path]) -> list[tuple[str, int]]:
    """(imported name, line) for every import in the module, resolved to a module of ``known``
    when it is one (``from waystation import hooks`` is ``waystation.hooks``), else left as written
    (a plugin, a third-party package)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    is_package = path.name == "__init__.py"
    found: list[tuple[str, int]] = []

    def resolve(dotted: str) -> str:
        probe = dotted
        while probe and probe not in known:
            probe = probe.rpartition(".")[0]
        return probe or dotted

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((resolve(a.name), node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                mod = ".".join([*base, *([node.module] if node.module else [])])
            else:
                mod = node.module or ""
            for alias in node.names:
                full = f"{mod}.{alias.name}"
                found.append((full if full in known else resolve(mod), node.lineno))
    return [(m, line) for m, line in found if m != name]


def import_graph(root: Path, package: str = "waystation") -> dict[str, list[tuple[str, int]]]:
    """The package's modules and what each imports (with line numbers)."""
    known = module_names(root, package)
    return {name: imports_of(name, path, known) for name, path in known.items()}


def cycles(graph: Mapping[str, Iterable[tuple[str, int]]]) -> list[list[str]]:
    """Every group of modules that import each other, directly or not (Tarjan's strongly
    connected components of more than one module, or a module importing itself)."""
    edges = {n: sorted({m for m, _ in deps if m in graph}) for n, deps in graph.items()}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(edges):  # iterative: no recursion limit on a long chain
        if start in index:
            continue
        work = [(start, iter(edges[start]))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, it = work[-1]
            nxt = next(it, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(edges[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1 or node in edges[node]:
                    found.append(sorted(group))
    return found


def violations(graph: Mapping[str, Iterable[tuple[str, int]]]) -> list[str]:
    """Every import that breaks a layer rule, or imports a plugin, as one line each."""
    out = []
    for name, deps in sorted(graph.items()):
        for dep, line in deps:
            if dep.startswith("waystation_"):
                out.append(f"{name}:{line} imports the plugin {dep}: the core never imports a plugin")
                continue
            if (name, dep) in ALLOWED:
                continue
            for importers, forbidden, why in FORBIDDEN:
                if _in(name, importers) and _in(dep, forbidden) and not _in(name, forbidden):
                    out.append(f"{name}:{line} imports {dep}: {why}")
    return out


# -- the rules on the core -----------------------------------------------------------------------


def test_the_core_has_no_import_cycle() -> None:
    found = cycles(import_graph(CORE))
    assert found == [], "import cycles in core/waystation:\n" + "\n".join(" <-> ".join(c) for c in found)


def test_the_core_keeps_its_layers() -> None:
    found = violations(import_graph(CORE))
    assert found == [], "forbidden imports:\n" + "\n".join(found)


def test_the_graph_sees_every_kind_of_import() -> None:
    """The real graph has the edges the rules depend on (a walker that saw nothing would pass)."""
    graph = {n: {m for m, _ in deps} for n, deps in import_graph(CORE).items()}
    assert "waystation.engine" in graph["waystation.batch"]  # module level
    assert "waystation.batch" in graph["waystation.cli.run"]  # inside a function
    assert "waystation.engine" in graph["waystation"]  # under TYPE_CHECKING
    assert "waystation.hooks" in graph["waystation.plugins"]  # `from waystation import hooks`
    assert "waystation.stores.base" in graph["waystation.stores.sqlite"]


# -- the checker itself fails on what it must catch ----------------------------------------------


def _fake_package(tmp_path: Path, files: Mapping[str, str]) -> Path:
    root = tmp_path / "waystation"
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def test_a_cycle_is_found_lazy_or_type_only(tmp_path: Path) -> None:
    root = _fake_package(tmp_path, {
        "__init__.py": "",
        "a.py": "from waystation import b\n",
        "b.py": "def f():\n    from waystation.c import x\n",
        "c.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from waystation.a import y\n",
        "d.py": "from . import a\n",
        "stores/__init__.py": "def open_store():\n    from waystation.stores.sqlite import S\n",
        "stores/sqlite.py": "from waystation.stores import dumps\n",
    })
    assert cycles(import_graph(root)) == [["waystation.a", "waystation.b", "waystation.c"],
                                          ["waystation.stores", "waystation.stores.sqlite"]]


def test_a_forbidden_direction_is_found(tmp_path: Path) -> None:
    root = _fake_package(tmp_path, {
        "__init__.py": "",
        "engine.py": "def f():\n    from waystation.batch import run\n",
        "batch.py": "from waystation.engine import Engine\nimport waystation_dnc\n",
        "stores/__init__.py": "from waystation.engine import lead_id_of\n",
        "plan.py": "from waystation.cli.main import console\n",
        "cli/__init__.py": "",
        "cli/main.py": "from waystation.engine import Engine\n",
    })
    found = violations(import_graph(root))
    assert found == [
        "waystation.batch:2 imports the plugin waystation_dnc: the core never imports a plugin",
        "waystation.engine:2 imports waystation.batch: the engine is below batch and the worker",
        "waystation.plan:1 imports waystation.cli.main: the CLI is on top: only waystation.cli imports it",
        "waystation.stores:1 imports waystation.engine: stores and resilience are below the engine",
    ]


# -- what is imported at run time ----------------------------------------------------------------

_PROBE = """
import json, sys
{code}
print(json.dumps(sorted(sys.modules)))
"""


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", _PROBE.format(code=code)], capture_output=True, text=True,
                         check=True, timeout=120)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


#: What neither `import waystation` nor `waystation --help` may load.
ENGINE_CODE = {"waystation.engine", "waystation.batch", "waystation.worker", "waystation.deferral",
               "waystation.http", "waystation.report", "waystation.metrics", "stamina", "httpx",
               "prometheus_client", "redis"}


def test_import_waystation_is_cheap() -> None:
    loaded = _modules_after("import waystation")
    ours = {m for m in loaded if m == "waystation" or m.startswith("waystation.")}
    assert ours == {"waystation", "waystation._version"}
    assert not loaded & {"pydantic", "pluggy", "yaml", *ENGINE_CODE}


def test_help_imports_no_engine_code() -> None:
    loaded = _modules_after(
        "import contextlib, io\n"
        "from waystation.cli.main import run_cli\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    code = run_cli(['--help'])\n"
        "assert code == 0 and 'Usage' in out.getvalue(), out.getvalue()\n")
    assert "waystation.cli.main" in loaded
    assert loaded & ENGINE_CODE == set()


def test_the_public_names_still_resolve() -> None:
    for name in waystation.__all__:
        assert getattr(waystation, name) is not None, name
    assert waystation.__version__ == __import__("importlib.metadata").metadata.version("waystation")
    with pytest.raises(AttributeError):
        _ = waystation.NoSuchName  # type: ignore[attr-defined]
