"""load_model's artifacts: the routes (NGC, cache, model-repo, LoRA), fetching from their sources, unpacking."""
