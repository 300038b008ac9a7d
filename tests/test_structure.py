"""The package's shape: no import cycles, small modules, no private names shared.

Read from the source files (imports inside functions count too; those under
``if TYPE_CHECKING:``, for annotations only, do not), so these hold without
importing anything.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "fastnn"
MOST_LINES = 400
#: bench.py is being split into measurement, environment and report on another branch.
LONG_ALLOWED = {"bench.py"}


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list:
    """(module imported, names imported from it) for every import in ``path``, absolute."""
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):  # drop annotation-only imports
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            node.body = []
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package
            for _ in range(node.level - 1):
                base = base.rpartition(".")[0]
            module = (f"{base}.{node.module}" if node.module else base) if node.level else node.module
            names = [alias.name for alias in node.names]
            found.append((module, names))
            # ``from . import x`` imports the module ``x``
            found += [(f"{module}.{name}", []) for name in names]
    return found


def graph() -> dict:
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    return {name: {target for target, _ in imports(path) if target in modules and target != name}
            for name, path in modules.items()}


def test_no_module_imports_itself_back_through_others():
    edges = graph()
    # ``fastnn`` itself re-exports the API; a submodule importing a sibling first
    # runs ``fastnn/__init__``, which is not a cycle between the submodules.
    edges = {name: targets - {"fastnn"} for name, targets in edges.items()}
    cycles = []

    def visit(name, path):
        for target in sorted(edges[name]):
            if target in path:
                cycles.append(path[path.index(target):] + [target])
            elif target not in done:
                visit(target, path + [target])
        done.add(name)

    done = set()
    for name in sorted(edges):
        if name not in done:
            visit(name, [name])
    assert cycles == []


def test_no_module_is_longer_than_about_400_lines():
    long = {str(path.relative_to(PACKAGE)): len(path.read_text().splitlines())
            for path in PACKAGE.rglob("*.py") if path.name not in LONG_ALLOWED}
    assert {name: n for name, n in long.items() if n > MOST_LINES} == {}


def is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_private_name_or_module_is_imported_from_another_module():
    """Of fastnn's own modules. (A peer may reach into its library's internals,
    behind a fallback, as ``peers/jax_mlp.py`` does; that is its own business.)"""
    private = [(str(path.relative_to(PACKAGE)), module, name)
               for path in PACKAGE.rglob("*.py") for module, names in imports(path)
               if module.split(".")[0] in ("fastnn", "kernels")
               for name in [module.rpartition(".")[2], *names] if is_private(name)]
    assert private == []


def test_only_the_command_line_knows_argparse():
    users = [str(path.relative_to(PACKAGE)) for path in PACKAGE.rglob("*.py")
             if any(module == "argparse" for module, _ in imports(path))]
    assert all(name.startswith("cli/") for name in users), users
