"""The package's layout keeps its roles apart: no import cycles (lazy imports included),
the engine (fastnn._core) imports no face, and the library imports no application."""
import ast
from pathlib import Path

import fastnn

PACKAGE = Path(fastnn.__file__).resolve().parent


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path, modules):
    """The fastnn modules ``path`` imports, at any depth of its code (lazy imports too)."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            for alias in node.names:
                target = f"{base}.{alias.name}"
                found.add(target if target in modules else base)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in modules and m != name and not m.startswith("fastnn.kernels")}


def graph():
    paths = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: imports(path, paths) for name, path in paths.items()}


def test_no_import_cycles():
    g = graph()
    cycles = []

    def visit(node, stack):
        for dep in sorted(g[node]):
            if dep in stack:
                cycles.append(" -> ".join(stack[stack.index(dep):] + [dep]))
            elif len(stack) < len(g):
                visit(dep, stack + [dep])

    for start in g:
        visit(start, [start])
    assert not cycles, "import cycles:\n" + "\n".join(sorted(set(cycles))[:10])


def test_roles():
    g = graph()
    faces = {"fastnn", "fastnn.network", "fastnn.trainer", "fastnn.sklearn", "fastnn._sk_base", "fastnn.io",
             "fastnn.reference", "fastnn.callbacks"}
    for name, deps in g.items():
        if name.startswith("fastnn._core"):
            assert not deps & faces, f"the engine module {name} imports a face: {sorted(deps & faces)}"
        if not name.startswith("fastnn._app") and name != "fastnn.__main__":
            assert not any(d.startswith("fastnn._app") for d in deps), f"{name} imports an application"


def test_every_package_is_installed():
    # pyproject.toml lists the packages explicitly (kernels/ maps to fastnn.kernels): a
    # subpackage missing there is missing from a regular install, not from an editable one.
    import tomllib

    config = tomllib.loads((PACKAGE.parent / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {module_name(init) for init in PACKAGE.rglob("__init__.py")} | {"fastnn.kernels"}
    assert listed == found, f"pyproject.toml packages {sorted(listed)}; on disk {sorted(found)}"


def test_modules_and_functions_stay_readable():
    # The sizes the layout promises (docs/architecture.md): no module over 450 lines, no
    # function over 100 lines of code. A public method's numpydoc docstring is the user's
    # documentation, not a step to follow, so it is not counted.
    sources = list(PACKAGE.rglob("*.py")) + list((PACKAGE.parent / "kernels").rglob("*.py"))
    too_long = []
    for path in sources:
        text = path.read_text()
        if text.count("\n") > 450:
            too_long.append(f"{path.name}: {text.count(chr(10))} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                first = node.body[0]
                if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                    lines -= first.end_lineno - first.lineno + 1
                if lines > 100:
                    too_long.append(f"{path.name}:{node.name}: {lines} lines of code")
    assert len(sources) > 40 and not too_long, too_long
