"""LoRA adapters our engines serve: the adapter folders in NIM_PEFT_SOURCE (or <code_dir>/loras), as NIM does.

Each folder is one adapter, named after the folder (docs/nim.md, "LoRA adapters"). vLLM reads a
Hugging Face PEFT folder (adapter_config.json and its weights); llama-server reads a GGUF adapter
(llama.cpp's convert_lora_to_gguf.py makes one from the same folder), so one folder may hold both.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

from nim_drum.config.values import adapter_name_problem

log = logging.getLogger(__name__)
PEFT_CONFIG = "adapter_config.json"


def adapter_folders(peft_source: Path | None) -> list[Path]:
    """The adapter folders, by name; hidden folders and unusable names are left out, with a warning."""
    if peft_source is None or not peft_source.is_dir():
        return []
    folders = []
    for folder in sorted(path for path in peft_source.iterdir() if path.is_dir()):
        problem = adapter_name_problem(folder.name)
        if problem:
            if not folder.name.startswith("."):
                log.warning("LoRA folder %s is left out: its name cannot be an adapter's (%s)", folder, problem)
            continue
        folders.append(folder)
    return folders


def peft_adapters(peft_source: Path | None) -> list[Path]:
    """Folders vLLM can load (a PEFT adapter_config.json); the others are left out with a warning."""
    found = []
    for folder in adapter_folders(peft_source):
        if (folder / PEFT_CONFIG).is_file():
            found.append(folder)
        else:
            log.warning("LoRA folder %s is left out: vLLM needs a PEFT adapter (%s)", folder, PEFT_CONFIG)
    return found


def gguf_adapters(peft_source: Path | None) -> list[tuple[str, Path]]:
    """(name, GGUF file) for each folder llama-server can load; the others are left out with a warning."""
    found = []
    for folder in adapter_folders(peft_source):
        ggufs = sorted(folder.glob("*.gguf"))
        if ggufs:
            found.append((folder.name, ggufs[0]))
        else:
            log.warning("LoRA folder %s is left out: llama-server needs a GGUF adapter; make one with llama.cpp's "
                        "convert_lora_to_gguf.py", folder)
    return found


def largest_rank(folders: list[Path]) -> int:
    """The highest LoRA rank `r` among the PEFT adapters (0 when none says)."""
    ranks = [0]
    for folder in folders:
        try:
            ranks.append(int(json.loads((folder / PEFT_CONFIG).read_text()).get("r") or 0))
        except (OSError, ValueError, TypeError, AttributeError):
            log.warning("LoRA folder %s: %s cannot be read for its rank", folder, PEFT_CONFIG)
    return max(ranks)
