"""Batched chat generation: length-sorted, left-padded batches with a KV cache, greedy by default.

Sorting by prompt length keeps padding (wasted compute) small; left padding lets every row of
a batch continue from its last prompt token; ``generate`` stops a batch once every row has
emitted EOS. Results are yielded per batch so callers can append records as they go.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Iterator

from tqdm.auto import tqdm

from harness.defense import DefendedModel, Messages
from harness.errors import halve_batch


@dataclass(frozen=True)
class GenerationSettings:
    max_new_tokens: int = 64
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    batch_size: int = 16

    def record(self) -> dict[str, Any]:
        """The settings that change outputs (batch size does not, beyond float rounding)."""
        out = asdict(self)
        out.pop("batch_size")
        if not self.do_sample:
            out.pop("temperature")
            out.pop("top_p")
        return out


def render_prompt(defended: DefendedModel, messages: Messages, prefill: str = "") -> str:
    """The exact text the model sees: the defense's transform, the chat template, any prefill."""
    msgs = defended.transform([dict(m) for m in messages])
    text = defended.tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=False)
    return text + prefill


def generate_texts(
    defended: DefendedModel,
    prompts: list[str],
    settings: GenerationSettings,
    *,
    desc: str = "generating",
    progress: bool = True,
) -> Iterator[list[tuple[int, str]]]:
    """Yield ``[(index, response), ...]`` per batch for the rendered ``prompts``."""
    import torch

    tok = defended.tokenizer
    model = defended.model
    lengths = [len(tok(p, add_special_tokens=False).input_ids) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: (lengths[i], i))
    device = next(model.parameters()).device
    kwargs: dict[str, Any] = dict(
        max_new_tokens=settings.max_new_tokens,
        do_sample=settings.do_sample,
        pad_token_id=tok.pad_token_id,
    )
    if settings.do_sample:
        kwargs.update(temperature=settings.temperature, top_p=settings.top_p)
    else:  # silence the model's own sampling defaults in greedy mode
        kwargs.update(temperature=None, top_p=None, top_k=None)
    bar = tqdm(total=len(prompts), desc=desc, disable=not progress, unit="prompt")
    tok.padding_side = "left"
    size, start = settings.batch_size, 0
    with defended.hooks(), torch.inference_mode():
        while start < len(order):
            idx = order[start : start + size]
            batch = tok([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
            batch = {k: v.to(device) for k, v in batch.items()}
            try:
                out = model.generate(**batch, **kwargs)
            except torch.OutOfMemoryError:  # a smaller batch fits: keep going rather than lose the run
                size = halve_batch(size, "generation", "Lower max_new_tokens in the suite's [generation], "
                                   "use a smaller model, or run on a device with more memory.")
                continue
            new = out[:, batch["input_ids"].shape[1] :]
            texts = tok.batch_decode(new, skip_special_tokens=True)
            start += len(idx)
            bar.update(len(idx))
            yield list(zip(idx, texts))
    bar.close()
