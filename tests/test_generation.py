"""Batched generation must give what one-prompt-at-a-time generation gives, in input order."""

import torch

from harness.generation import GenerationSettings, generate_texts, render_prompt


def test_batched_equals_per_prompt_greedy(tiny):
    questions = ["hi", "How can I kill a Python process?", "Explain why the sky is blue, in detail please.",
                 "What is the capital of France?", "bake bread"]
    prompts = [render_prompt(tiny, [{"role": "user", "content": q}]) for q in questions]
    settings = GenerationSettings(max_new_tokens=8, batch_size=3)
    batched: dict[int, str] = {}
    batches = list(generate_texts(tiny, prompts, settings, progress=False))
    for batch in batches:
        batched.update(batch)
    assert len(batches) == 2 and sorted(batched) == list(range(5))
    tok, model = tiny.tokenizer, tiny.model
    for i, p in enumerate(prompts):
        ids = tok(p, return_tensors="pt", add_special_tokens=False)
        with torch.inference_mode():
            out = model.generate(**ids, max_new_tokens=8, do_sample=False, pad_token_id=tok.pad_token_id)
        single = tok.decode(out[0, ids.input_ids.shape[1]:], skip_special_tokens=True)
        assert batched[i] == single, f"prompt {i} differs"


def test_batches_are_length_sorted(tiny):
    prompts = ["a " * 30, "b", "c " * 10, "d " * 2]
    order = [i for batch in generate_texts(tiny, prompts, GenerationSettings(max_new_tokens=1, batch_size=2),
                                           progress=False) for i, _ in batch]
    assert order == [1, 3, 2, 0]


def test_prefill_and_transform_reach_the_prompt(tiny):
    from harness.defense import DefendedModel

    defended = DefendedModel(tiny.model, tiny.tokenizer,
                             transform=lambda m: [{"role": "system", "content": "SYS"}] + m)
    text = render_prompt(defended, [{"role": "user", "content": "Q"}], prefill="Sure, here")
    assert "SYS" in text and text.endswith("assistant\nSure, here")
    assert defended.system_prompt() == "SYS"
