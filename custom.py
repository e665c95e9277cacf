"""DRUM hooks for the NVIDIA NIM drop-in; the work is done in the nim_drum package."""

import logging
from pathlib import Path

import nim_drum
from nim_drum import hooks

CODE_DIR = Path(__file__).resolve().parent
# The image has one copy of nim_drum (/opt/nim-drum); one uploaded with the model comes first.
logging.getLogger("nim_drum").info("nim_drum imported from %s", Path(nim_drum.__file__).resolve().parent)


def load_model(code_dir):
    return hooks.load_model(code_dir)


def read_input_data(input_binary_data):
    return hooks.read_input_data(input_binary_data)


def score(data, model, **kwargs):
    return hooks.score(data, model, CODE_DIR, **kwargs)


def chat(completion_create_params, model):
    return hooks.chat(completion_create_params, model, CODE_DIR)


def get_supported_llm_models(model):
    return hooks.supported_models(model, CODE_DIR)
