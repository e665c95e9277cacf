"""The model's file list (dropin.model_files, which the deploy tool uploads) makes a model that runs on its own.

The files are copied into an empty folder and scored there with the real `drum score` and the real
embedded engine, by a Python that cannot import this checkout's nim_drum: the venv installs it
editable (a .pth finder), so DRUM runs from a second venv that sees the first one's packages but
not that finder. The only nim_drum it can import is the copy, as on DataRobot, where DRUM puts the
model's folder first on sys.path.
"""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from nim_drum.devtools.dropin import model_files
from nim_drum.engines.embedded import stop_embedded

from helpers import REPO, runtime_env

DRUM_MAIN = "import sys; from datarobot_drum.drum.entry_point import run_drum_server; sys.exit(run_drum_server())"
# The README's earlier list: the top-level modules only, not the subpackages.
TOP_LEVEL_ONLY = ["custom.py", "model-metadata.yaml", *(p.relative_to(REPO).as_posix()
                                                      for p in (REPO / "nim_drum").glob("*.py"))]


@pytest.fixture(scope="module")
def python_without_checkout(tmp_path_factory) -> Path:
    sandbox = tmp_path_factory.mktemp("sandbox")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(sandbox / "venv")], check=True)
    python = sandbox / "venv" / "bin" / "python"
    own_site = subprocess.run([python, "-c", "import site; print(site.getsitepackages()[0])"],
                              capture_output=True, text=True, check=True).stdout.strip()
    # A path line in a .pth adds that folder; the .pth files inside it (the editable finder) are not run.
    Path(own_site, "venv-packages.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    return python


def copy_model(files: list[str], destination: Path) -> Path:
    for name in files:
        (destination / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(REPO / name, destination / name)
    return destination


def imported_nim_drum(python: Path, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([python, "-c", "import nim_drum; print(nim_drum.__file__)"], cwd=cwd,
                          capture_output=True, text=True, env=runtime_env())


def drum_score(python: Path, code_dir: Path, workdir: Path) -> subprocess.CompletedProcess:
    prompts = workdir / "prompts.csv"
    pd.DataFrame({"promptText": ["What is the capital of France?", "Say hi."]}).to_csv(prompts, index=False)
    command = [python, "-c", DRUM_MAIN, "score", "--code-dir", str(code_dir), "--target-type", "textgeneration",
               "--input", str(prompts), "--output", str(workdir / "out.csv")]
    env = runtime_env({"engine": "embedded", "max_tokens": 8})
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # the bytecode it writes shows which files ran
    try:
        return subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=300, env=env)
    finally:
        stop_embedded(code_dir)


def test_the_sandbox_python_cannot_import_the_checkout(python_without_checkout, tmp_path):
    found = imported_nim_drum(python_without_checkout, tmp_path)
    assert found.returncode != 0 and "No module named 'nim_drum'" in found.stderr, found.stdout


def test_exactly_the_model_files_make_a_model_that_drum_scores(python_without_checkout, tmp_path):
    code_dir = copy_model(model_files(REPO), tmp_path / "model")
    assert sorted(p.relative_to(code_dir).as_posix() for p in code_dir.rglob("*") if p.is_file()) == model_files(REPO)
    found = imported_nim_drum(python_without_checkout, code_dir)
    assert found.stdout.strip() == str(code_dir / "nim_drum" / "__init__.py"), found.stderr
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = drum_score(python_without_checkout, code_dir, workdir)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    scored = pd.read_csv(workdir / "out.csv", keep_default_na=False)
    assert len(scored) == 2 and (scored["error"] == "").all() and (scored["Predictions"] != "").all()
    # The copy's subpackages are what ran: their bytecode was written into the copy.
    assert list((code_dir / "nim_drum" / "serving" / "__pycache__").glob("scoring.*.pyc"))


def test_the_top_level_modules_alone_do_not_make_a_model(python_without_checkout, tmp_path):
    # What the README's snippet uploaded before: DRUM cannot even load the hooks.
    code_dir = copy_model(TOP_LEVEL_ONLY, tmp_path / "model")
    workdir = tmp_path / "work"
    workdir.mkdir()
    result = drum_score(python_without_checkout, code_dir, workdir)
    assert result.returncode != 0
    assert "No module named 'nim_drum." in result.stdout + result.stderr
