"""The README's parameter table is the one model-metadata.yaml generates."""

import re

from conftest import REPO
from nim_drum.devtools.docs import parameter_table, readme_table


def test_readme_parameter_table_matches_the_metadata():
    table = readme_table((REPO / "README.md").read_text())
    assert table == parameter_table(), "README table is stale: run `python -m nim_drum.devtools.docs --write`"


def test_the_quick_start_is_the_two_make_commands():
    readme = (REPO / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("##", 1)[0]
    assert re.search(r"```bash\nmake score\nmake test\n```", quick_start)
    assert "make test" in (REPO / ".ci" / "run").read_text()
