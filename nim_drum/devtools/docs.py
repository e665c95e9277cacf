"""The README's runtime-parameter table, generated from model-metadata.yaml so the two cannot drift.

    python -m nim_drum.devtools.docs            print the table
    python -m nim_drum.devtools.docs --write    put it into README.md (tests/test_docs.py checks it is there)
"""

import argparse
import re
import sys
from pathlib import Path

from nim_drum.config.layout import METADATA_FILE
from nim_drum.config.runtime_params import read_definitions

CODE_DIR = Path(__file__).resolve().parents[2]
TABLE_BLOCK = re.compile(r"(<!-- parameters:start -->\n).*?(\n<!-- parameters:end -->)", re.S)
HEADER = "| Parameter | Type | Default | Allowed | Description |\n| --- | --- | --- | --- | --- |"


def parameter_table(code_dir: Path = CODE_DIR) -> str:
    rows = [HEADER]
    for name, definition in read_definitions(code_dir / METADATA_FILE).items():
        cells = [f"`{name}`", definition["type"], _text(definition.get("defaultValue")),
                 _allowed(definition), _text(definition.get("description"))]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _allowed(definition: dict) -> str:
    if "minValue" in definition or "maxValue" in definition:
        return f"{_text(definition.get('minValue'))} to {_text(definition.get('maxValue'))}"
    return ""


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    return " ".join(str(value).split()).replace("|", "\\|")


def readme_table(readme: str) -> str:
    block = TABLE_BLOCK.search(readme)
    if block is None:
        raise ValueError("README.md has no runtime parameter table between its markers; restore them.")
    return block.group(0).split("\n", 1)[1].rsplit("\n", 1)[0]


def write_readme(code_dir: Path = CODE_DIR) -> None:
    path = code_dir / "README.md"
    table = parameter_table(code_dir)
    path.write_text(TABLE_BLOCK.sub(lambda m: m.group(1) + table + m.group(2), path.read_text()))


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m nim_drum.devtools.docs", description=__doc__.split("\n\n")[0],
        epilog="Reads model-metadata.yaml. Writes the table to stdout, or with --write into README.md, between "
               "its parameters:start and parameters:end markers.")
    parser.add_argument("--write", action="store_true", help="put the table into README.md instead of printing it")
    write_readme() if parser.parse_args(argv).write else print(parameter_table())


if __name__ == "__main__":
    main(sys.argv[1:])
