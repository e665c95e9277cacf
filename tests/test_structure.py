"""The package's structure: errors free of DRUM, mapped at the hook boundary, no import cycle, no file
that refers outside the project."""

import ast
import subprocess
import sys

import pytest

from conftest import REPO

PACKAGE = REPO / "nim_drum"


def module_name(path):
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path, modules):
    """Every nim_drum module that path imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        found |= {name for name in names if name in modules}
    return found


def test_errors_do_not_import_drum():
    code = "import sys, nim_drum.errors; print(sorted(m for m in sys.modules if m.startswith('datarobot_drum')))"
    found = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"


def test_our_request_errors_reach_drum_as_its_http_errors():
    from datarobot_drum.drum.exceptions import CustomHTTPError

    from nim_drum.serving import hooks

    with pytest.raises(CustomHTTPError) as error:
        hooks.read_input_data(b"")
    assert error.value.status_code == 400 and "The input is empty" in str(error.value)


def test_no_import_cycle_even_through_imports_inside_functions():
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {name: imported_modules(path, paths) - {name} for name, path in paths.items()}
    # A module imports its package's __init__ too; those hold no imports here, so they add no edge back.
    visiting, done, cycles = [], set(), []

    def visit(name):
        if name in visiting:
            cycles.append(visiting[visiting.index(name):] + [name])
            return
        if name in done:
            return
        visiting.append(name)
        for imported in sorted(graph[name]):
            visit(imported)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
    assert cycles == []


@pytest.mark.parametrize("module", sorted(module_name(p) for p in PACKAGE.rglob("*.py")))
def test_every_module_imports_first_in_a_fresh_interpreter(module):
    subprocess.run([sys.executable, "-c", f"import {module}"], cwd=REPO, check=True, capture_output=True)


def test_no_file_refers_outside_the_project():
    outside = ("DESIGN" + ".md", "../" + "shared")
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    offenders = [
        f"{name}: {word}" for name in tracked if (REPO / name).is_file()
        for word in outside if word in (REPO / name).read_text(errors="replace")
    ]
    assert offenders == []
