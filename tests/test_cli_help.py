"""Every command-line tool takes --help: it exits 0, says what it reads and writes, and does nothing else."""

from __future__ import annotations

import subprocess
import sys

import pytest

from nim_drum.devtools import deploy
from nim_drum.devtools.dropin import CONTEXT_TARBALL, DEFAULT_OUTPUT, IMAGE_TARBALL

from helpers import REPO

TOOLS = [
    ["-m", "nim_drum.devtools.batch"],
    ["-m", "nim_drum.devtools.dropin"],
    ["-m", "nim_drum.devtools.docs"],
    ["-m", "nim_drum.devtools.wheelhouse"],
    ["-m", "nim_drum.devtools.local_drum"],
    ["-m", "nim_drum.devtools.deploy"],
    ["-m", "nim_drum.devtools.deploy", "environment"],
    ["-m", "nim_drum.devtools.deploy", "model"],
    ["-m", "nim_drum.devtools.deploy", "deploy"],
    ["-m", "nim_drum.devtools.deploy", "batch"],
    [str(REPO / "bench" / "bench.py")],
]


@pytest.mark.parametrize("tool", TOOLS, ids=lambda t: " ".join(t).replace(str(REPO) + "/", ""))
def test_help_exits_0_says_what_it_reads_and_writes_and_writes_nothing(tool, tmp_path):
    result = subprocess.run([sys.executable, *tool, "--help"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("usage:")
    text = " ".join(result.stdout.split()).lower()
    assert "reads" in text and "writes" in text, result.stdout
    assert list(tmp_path.iterdir()) == []  # `dropin --help` used to write a folder named --help


def test_deploy_step_help_shows_the_defaults(tmp_path):
    result = subprocess.run([sys.executable, "-m", "nim_drum.devtools.deploy", "environment", "--help"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120)
    text = " ".join(result.stdout.split())
    assert "(default: https://app.datarobot.com/api/v2)" in text and "nim-drum-image.tar.gz)" in text
    assert "(default: 3600)" in text


def test_deploy_help_keeps_each_default_path_on_one_line_at_any_terminal_width(monkeypatch, capsys):
    # argparse broke ".../nim-drum-image.tar.gz" at its hyphens, where the checkout's path length put it
    paths = [str(DEFAULT_OUTPUT / CONTEXT_TARBALL), str(DEFAULT_OUTPUT / IMAGE_TARBALL)]
    for columns in range(40, 121):
        monkeypatch.setenv("COLUMNS", str(columns))
        with pytest.raises(SystemExit):
            deploy.parser().parse_args(["environment", "--help"])
        lines = capsys.readouterr().out.splitlines()
        assert all(any(path in line for line in lines) for path in paths), f"COLUMNS={columns}"
