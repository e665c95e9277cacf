"""The README's parameter table is the one model-metadata.yaml generates."""

import re

from nim_drum.devtools.docs import parameter_table, readme_table

from helpers import REPO


def test_readme_parameter_table_matches_the_metadata():
    table = readme_table((REPO / "README.md").read_text())
    assert table == parameter_table(), "README table is stale: run `python -m nim_drum.devtools.docs --write`"


def test_the_quick_start_is_the_two_make_commands():
    readme = (REPO / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("##", 1)[0]
    assert re.search(r"```bash\nmake score\nmake test\n```", quick_start)
    assert "make test" in (REPO / ".ci" / "run").read_text()


def description(name: str) -> str:
    import yaml

    definitions = yaml.safe_load((REPO / "model-metadata.yaml").read_text())["runtimeParameterDefinitions"]
    return " ".join(next(d["description"] for d in definitions if d["fieldName"] == name).split())


def test_max_concurrency_states_the_embedded_engines_slot_cap():
    from nim_drum.engines.embedded import MAX_SLOTS

    assert f"at most {MAX_SLOTS} slots" in description("max_concurrency")


def test_gpu_memory_utilization_says_what_it_does_on_cpu():
    # On vLLM-CPU the value is the share of the machine's memory (vllm_engine._engine_env), not ignored.
    text = description("gpu_memory_utilization")
    assert "ignores" not in text and "On CPU" in text and "VLLM_CPU_KVCACHE_SPACE" in text
