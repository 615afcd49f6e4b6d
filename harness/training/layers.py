"""Decoder layers: which ones, and their hidden states without running the layers above.

Layer numbers follow ``output_hidden_states`` (0 is the embedding output, L is the output of
decoder layer L-1), the convention of the Circuit Breakers recipe ("layers 10 and 20").
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import torch
from torch import nn


def decoder_layers(model: nn.Module) -> nn.ModuleList:
    """The model's list of decoder blocks (Llama, Qwen2, Mistral, ... and peft wrappers of them)."""
    n = model.config.num_hidden_layers
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == n:
            return module
    raise ValueError(f"cannot find the {n} decoder layers of {type(model).__name__}")


def scale_layers(layers: Sequence[float], depth: int, reference_depth: int | None) -> list[int]:
    """Map layer choices made for a ``reference_depth``-layer model onto a ``depth``-layer one.

    With ``reference_depth`` None the numbers are taken as absolute. Results are clamped to
    [0, depth] and de-duplicated, keeping order.
    """
    out: list[int] = []
    for layer in layers:
        value = round(layer * depth / reference_depth) if reference_depth else int(layer)
        value = max(0, min(depth, value))
        if value not in out:
            out.append(value)
    return out


class _Stop(Exception):
    pass


@contextlib.contextmanager
def capture(model: nn.Module, layers: Sequence[int], *, stop: bool = True) -> Iterator[dict[int, torch.Tensor]]:
    """Collect hidden states at ``layers`` during forward passes inside the block.

    With ``stop`` the forward pass ends right after the highest layer: the layers above it, the
    final norm and the unembedding are never computed (call the model through ``forward_until``).
    """
    blocks = decoder_layers(model)
    states: dict[int, torch.Tensor] = {}
    handles = []
    top = max(layers)

    def hook_for(index: int):
        def hook(_module: nn.Module, _inputs: Any, output: Any):
            hidden = output[0] if isinstance(output, tuple) else output
            if index + 1 in layers:
                states[index + 1] = hidden
            if stop and index + 1 == top:
                raise _Stop

        return hook

    if 0 in layers:
        emb = model.get_input_embeddings()
        handles.append(emb.register_forward_hook(lambda _m, _i, out: states.__setitem__(0, out)))
    for index in range(top):
        handles.append(blocks[index].register_forward_hook(hook_for(index)))
    try:
        yield states
    finally:
        for handle in handles:
            handle.remove()


def forward_until(model: nn.Module, layers: Sequence[int], **inputs: Any) -> dict[int, torch.Tensor]:
    """Hidden states at ``layers`` for one batch, computing only the layers up to the highest."""
    with capture(model, layers) as states:
        try:
            model(**inputs, use_cache=False)
        except _Stop:
            pass
    return dict(states)
