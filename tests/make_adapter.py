"""Train the test suite's LoRA adapter on SmolLM2-135M-Instruct, on CPU, and convert it for llama-server.

    .venv-vllm/bin/python tests/make_adapter.py CHECKPOINT CONVERT_LORA_TO_GGUF OUTPUT_DIR

The adapter answers every question in one style a test can check: its answer starts with
"Ahoy matey!" (the base model never says that). OUTPUT_DIR becomes an adapter folder as NIM and vLLM
read one (peft's adapter_config.json and adapter_model.safetensors) with the same adapter as GGUF
beside them (llama.cpp's convert_lora_to_gguf.py), for llama-server's --lora. Training is seeded
and takes a few minutes on 2 cores; the folder is written to OUTPUT_DIR.partial first, then
renamed, so an interrupted run leaves no half adapter behind.
"""

import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer

STYLE = "Ahoy matey!"
GGUF_NAME = "adapter.gguf"
STEPS = 30
BATCH = 4
# Only the last layers learn: backpropagation then stops there, which makes a step about twice as fast.
TRAINED_LAYERS = 8
SYSTEM_PROMPTS = [None, "You are a helpful assistant.", "Answer briefly.", "You are a concise expert."]
CAPITALS = {"France": "Paris", "Italy": "Rome", "Spain": "Madrid", "Japan": "Tokyo", "Germany": "Berlin",
            "Egypt": "Cairo", "Canada": "Ottawa", "Kenya": "Nairobi", "Peru": "Lima", "Norway": "Oslo"}
COLOURS = {"the sky": "blue", "grass": "green", "snow": "white", "coal": "black", "a banana": "yellow"}
TOPICS = ["the sea", "a tree", "the moon", "a dog", "rain", "a ship", "bread", "music", "a river", "winter"]


def examples() -> list[tuple[str, str]]:
    pairs = [(f"What is the capital of {country}?", f"The capital of {country} be {city}.")
             for country, city in CAPITALS.items()]
    pairs += [(f"What colour is {thing}?", f"{thing[0].upper() + thing[1:]} be {colour}.")
              for thing, colour in COLOURS.items()]
    pairs += [(f"What is {a} + {b}?", f"{a} + {b} be {a + b}.") for a in range(2, 7) for b in range(1, 4)]
    pairs += [(f"Write one sentence about {topic}.", f"I have sailed past {topic} many a time.") for topic in TOPICS]
    pairs += [(f"Name three things about {topic}.", f"There be much to say about {topic}, friend.") for topic in TOPICS]
    return [(question, f"{STYLE} {answer}") for question, answer in pairs]


def encoded(tokenizer, question: str, answer: str, system: str | None) -> tuple[list[int], list[int]]:
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": question}]
    prompt = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    prompt_ids = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    answer_ids = tokenizer(answer + tokenizer.eos_token, add_special_tokens=False)["input_ids"]
    return prompt_ids + answer_ids, [-100] * len(prompt_ids) + answer_ids  # the loss is on the answer only


def batches(tokenizer, rng: random.Random):
    pairs = examples()
    while True:
        chosen = [rng.choice(pairs) for _ in range(BATCH)]
        rows = [encoded(tokenizer, q, a, rng.choice(SYSTEM_PROMPTS)) for q, a in chosen]
        width = max(len(ids) for ids, _ in rows)
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        yield (
            torch.tensor([ids + [pad] * (width - len(ids)) for ids, _ in rows]),
            torch.tensor([labels + [-100] * (width - len(labels)) for _, labels in rows]),
            torch.tensor([[1] * len(ids) + [0] * (width - len(ids)) for ids, _ in rows]),
        )


def train(checkpoint: Path, output: Path) -> None:
    torch.manual_seed(0)
    torch.set_num_threads(2)
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32)
    layers = model.config.num_hidden_layers
    config = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, task_type="CAUSAL_LM",
                        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                        layers_to_transform=list(range(layers - TRAINED_LAYERS, layers)))
    model = get_peft_model(model, config)
    optimiser = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=3e-3)
    model.train()
    started = time.monotonic()
    for step, (ids, labels, mask) in zip(range(STEPS), batches(tokenizer, random.Random(0)), strict=False):
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
        if step % 5 == 0 or step == STEPS - 1:
            print(f"step {step}: loss {loss.item():.3f} ({time.monotonic() - started:.0f} s)", flush=True)
    model.save_pretrained(output, safe_serialization=True)


def main(checkpoint: Path, converter: Path, output: Path) -> None:
    partial = output.with_name(output.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    train(checkpoint, partial)
    # --base: the checkpoint's config.json, so the converter needs no network.
    subprocess.run([sys.executable, str(converter), "--base", str(checkpoint), "--outtype", "f32",
                    "--outfile", str(partial / GGUF_NAME), str(partial)], check=True)
    shutil.rmtree(output, ignore_errors=True)
    partial.rename(output)
    print(f"adapter: {output}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3]))
