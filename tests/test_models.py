import shutil

import pytest

from harness.errors import HarnessError
from harness.models import load_model
from harness.plugins import plugins


def test_model_without_chat_template_is_a_clear_error(templateless_tiny, tmp_path):
    with pytest.raises(HarnessError, match="has no chat template.*--chat-template"):
        load_model(str(templateless_tiny))
    template = tmp_path / "t.jinja"
    template.write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    loaded = load_model(str(templateless_tiny), chat_template=str(template))
    assert loaded.tokenizer.chat_template == template.read_text()


def test_mismatched_tokenizer_is_a_clear_error(tiny_dir, tmp_path):
    from transformers import AutoModelForCausalLM, LlamaConfig, LlamaForCausalLM

    small = tmp_path / "small"
    shutil.copytree(tiny_dir, small)
    cfg = AutoModelForCausalLM.from_pretrained(tiny_dir).config.to_dict()
    cfg["vocab_size"] = 100
    LlamaForCausalLM(LlamaConfig(**cfg)).save_pretrained(small)
    with pytest.raises(HarnessError, match="do not belong together. Load the tokenizer saved with the model"):
        load_model(str(small))


def test_unknown_model_preset_suggests_closest():
    with pytest.raises(HarnessError, match="Did you mean 'smollm2-135m-instruct'"):
        plugins().models.get("smollm2-135m")


def test_gpu_only_preset_refuses_cpu():
    with pytest.raises(HarnessError, match="needs a GPU"):
        load_model("llama-3-8b-instruct", presets={n: e.obj for n, e in plugins().models.items.items()},
                   device="cpu")
