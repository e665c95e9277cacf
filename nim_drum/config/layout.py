"""Names fixed by DRUM, NIM and this environment's code directory (docs/drum.md, docs/nim.md)."""

METADATA_FILE = "model-metadata.yaml"
# DRUM sets each runtime parameter as MLOPS_RUNTIME_PARAM_<fieldName>, holding JSON {"type", "payload"}.
RUNTIME_PARAM_PREFIX = "MLOPS_RUNTIME_PARAM_"
# DRUM's NimPredictor.DEFAULT_MODEL_DIR: NIM_MODEL_NAME points here when it is not empty.
MODEL_REPO = "model-repo"
# LoRA adapters go here when NIM_PEFT_SOURCE is not set.
LORA_DIR = "loras"
# NIM's default when NIM_CACHE_PATH is not set.
DEFAULT_NIM_CACHE_PATH = "/opt/nim/.cache"
# DRUM's name for "whatever model this deployment serves" (BaseOpenAiGpuPredictor.DEFAULT_MODEL_NAME).
DEFAULT_MODEL_NAME = "datarobot-deployed-llm"
# DRUM names the prediction column after the deployment's target (TARGET_NAME); locally we fall back to this.
DEFAULT_TARGET_NAME = "completion"
