"""Engines: where chat completions come from (the handle, embedded llama-server, vLLM, external), and the
launcher and guard that run local engine processes."""
