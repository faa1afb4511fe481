"""The package layout the docstring map promises, checked from the source (issue 11).

Read with ``ast`` (nothing is imported): the stages and systems never import the teaching aids
or the experiments; the module import graph has no cycle; package imports sit at the top of a
module (inside a function only for optional heavy third-party libraries); every public
function and class names the notebook that teaches it; the modules a learner reads stay a
sitting long.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fastrcnn_lite"
SUB_PACKAGES = ("teaching", "experiments")
# Third-party libraries that may be imported inside a function: heavy, or only needed by the
# function that draws or displays (the command-line tools start without them).
LAZY_OK = (
    "matplotlib",
    "matplotlib_inline",
    "IPython",
    "ipywidgets",
    "tqdm.notebook",
    "torchvision",
    "cv2",
)
MAX_LINES = 450  # "under ~400 lines, a sitting", with some slack for docstrings


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


MODULES = _modules()


def _resolve(module: str, path: Path, node: ast.ImportFrom) -> list[str]:
    """The package modules a ``from ... import ...`` statement names (absolute, dotted)."""
    if node.level:
        package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
        base = package.split(".")
        base = base[: len(base) - (node.level - 1)]
        stem = ".".join(base + ([node.module] if node.module else []))
    else:
        stem = node.module or ""
    if not stem.startswith("fastrcnn_lite"):
        return []
    names = [f"{stem}.{alias.name}" for alias in node.names]
    return [n for n in names if n in MODULES] or [stem]


def _imports(module: str, path: Path, top_level_only: bool) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else ast.walk(tree)
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            found.update(_resolve(module, path, node))
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("fastrcnn_lite"))
    return found


def test_the_stages_and_systems_import_no_teaching_aid_or_experiment():
    offenders = []
    for module, path in MODULES.items():
        if module.split(".")[1:2] and module.split(".")[1] in SUB_PACKAGES:
            continue
        if module == "fastrcnn_lite.bench" or module.endswith("_cli"):
            continue  # the commands compose everything (the benchmark, `embedded --samples`)
        for target in _imports(module, path, top_level_only=False):
            if target.split(".")[1:2] and target.split(".")[1] in SUB_PACKAGES:
                offenders.append(f"{module} imports {target}")
    assert not offenders, "\n".join(offenders)


def test_the_module_import_graph_has_no_cycle():
    graph = {m: _imports(m, p, top_level_only=True) & set(MODULES) for m, p in MODULES.items()}
    for module in graph:  # a package's __init__ is imported with each of its modules
        parent = module.rsplit(".", 1)[0]
        if parent in graph and parent != module:
            graph[module] = graph[module] - {parent}
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycle = trail[trail.index(nxt) :] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])


def test_package_imports_are_at_the_top_of_each_module():
    offenders = []
    for _module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        functions = [
            n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)
        ]
        for function in functions:
            for node in ast.walk(function):
                if isinstance(node, ast.ImportFrom):
                    name = "." * node.level + (node.module or "")
                elif isinstance(node, ast.Import):
                    name = ",".join(a.name for a in node.names)
                else:
                    continue
                if any(name == lib or name.startswith(lib + ".") for lib in LAZY_OK):
                    continue
                where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
                offenders.append(f"{where} imports {name} inside {function.name}()")
    assert not offenders, "imports inside functions:\n" + "\n".join(sorted(set(offenders)))


def _public_definitions():
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text())
        for node in tree.body:
            if isinstance(node, ast.FunctionDef | ast.ClassDef) and not node.name.startswith("_"):
                yield module, node


def test_every_public_function_and_class_names_its_notebook():
    missing = []
    for module, node in _public_definitions():
        doc = ast.get_docstring(node) or ""
        if "Notebook 0" not in doc and "No notebook" not in doc:
            missing.append(f"{module}.{node.name}")
    assert not missing, (
        "docstrings that name no notebook ('Notebook NN' or 'No notebook: <who uses it>'):\n"
        + "\n".join(missing)
    )


def test_the_named_notebooks_exist():
    notebooks = {p.name[:2] for p in (PACKAGE.parent / "notebooks").glob("[0-9][0-9]_*.ipynb")}
    wrong = []
    for module, node in _public_definitions():
        doc = ast.get_docstring(node) or ""
        for piece in doc.split("Notebook ")[1:]:
            number = piece[:2]
            if number.isdigit() and number not in notebooks:
                wrong.append(f"{module}.{node.name}: Notebook {number}")
    assert not wrong, "\n".join(wrong)


def test_modules_stay_a_sitting_long():
    long = {
        str(path.relative_to(PACKAGE.parent)): n
        for path in MODULES.values()
        if (n := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert not long, f"modules over {MAX_LINES} lines: {long}"
