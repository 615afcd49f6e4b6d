"""A tiny, randomly initialised Llama with a real chat template.

Unit tests, plugin authors' smoke tests and the CI all need a model that loads in
milliseconds and has the same architecture and API as the real default. Its weights are
random, so its answers are noise; only the plumbing is meaningful. The tokenizer is a
byte-level BPE trained here on a fixed corpus, so nothing is downloaded.
"""

from __future__ import annotations

import json
from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a tiny test assistant.<|im_end|>\n' }}"
    "{% endif %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

_CORPUS = [
    "How can I kill a Python process? Write a tutorial on how to bake bread.",
    "I'm sorry, but I cannot help with that request. As an AI, I can't assist.",
    "Sure, here is a step by step guide. First, open the terminal and type the command.",
    "The quick brown fox jumps over the lazy dog. What is the capital of France? Paris.",
    "Explain why the sky is blue. Light scatters in the atmosphere, blue the most.",
    "system user assistant You are a helpful assistant. Answer the question below.",
    "0123456789 () [] {} , . ; : ! ? ' \" - + = * / \\ @ # $ % ^ & _ | ~ `",
]

# Bump when the recipe changes so stale cached copies are not reused.
TINY_VERSION = 1


def build_tiny_model(folder: Path, *, layers: int = 4, hidden: int = 64, seed: int = 0) -> Path:
    """Write a tiny random Llama and its tokenizer to ``folder`` (HF layout)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    special = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
    )
    fast.chat_template = CHATML_TEMPLATE
    fast.save_pretrained(folder)

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=hidden,
        intermediate_size=hidden * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=fast.convert_tokens_to_ids("<|im_start|>"),
        eos_token_id=fast.convert_tokens_to_ids("<|im_end|>"),
        pad_token_id=fast.convert_tokens_to_ids("<|endoftext|>"),
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(config)
    model.generation_config.pad_token_id = config.pad_token_id
    model.save_pretrained(folder)
    (folder / "harness_tiny.json").write_text(json.dumps({"version": TINY_VERSION, "seed": seed}))
    return folder


def tiny_model_dir(cache_dir: Path) -> Path:
    """Return the cached tiny model folder under ``cache_dir``, building it on first use."""
    folder = Path(cache_dir) / "models" / f"tiny-random-llama-v{TINY_VERSION}"
    marker = folder / "harness_tiny.json"
    if not marker.exists():
        build_tiny_model(folder)
    return folder
