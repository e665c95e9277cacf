"""The package's structure: errors free of DRUM, mapped at the hook boundary, layers that import one way, no
file that refers outside the project."""

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest

from helpers import REPO, VENV_BIN

PACKAGE = REPO / "nim_drum"


def module_name(path):
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_errors_do_not_import_drum():
    code = "import sys, nim_drum.errors; print(sorted(m for m in sys.modules if m.startswith('datarobot_drum')))"
    found = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert found.stdout.strip() == "[]"


def test_our_request_errors_reach_drum_as_its_http_errors():
    from datarobot_drum.drum.exceptions import CustomHTTPError

    from nim_drum import hooks

    with pytest.raises(CustomHTTPError) as error:
        hooks.read_input_data(b"")
    assert error.value.status_code == 400 and "The input is empty" in str(error.value)


def test_the_layer_contracts_hold():
    # pyproject.toml [tool.importlinter]: imports inside functions count too (grimp reads every import).
    result = subprocess.run([str(VENV_BIN / "lint-imports")], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0 and "0 broken" in result.stdout, result.stdout[-2000:]


def test_every_module_imports_first_in_a_fresh_interpreter():
    def failure(module):
        found = subprocess.run([sys.executable, "-c", f"import {module}"], cwd=REPO, capture_output=True, text=True)
        return f"{module}: {found.stderr.strip().splitlines()[-1]}" if found.returncode else None

    modules = sorted(module_name(p) for p in PACKAGE.rglob("*.py"))
    with ThreadPoolExecutor(max_workers=4) as pool:  # one interpreter each, several at once
        failures = [f for f in pool.map(failure, modules) if f]
    assert len(modules) > 40 and failures == []


def test_no_file_refers_outside_the_project():
    outside = ("DESIGN" + ".md", "../" + "shared")
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    offenders = [
        f"{name}: {word}" for name in tracked if (REPO / name).is_file()
        for word in outside if word in (REPO / name).read_text(errors="replace")
    ]
    assert offenders == []
