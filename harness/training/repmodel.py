"""A module whose forward returns hidden states at chosen layers (and logits only when asked).

Wrapping this, rather than the causal LM, in DDP keeps multi-process training on the normal
path (DDP hooks run in its forward), while the forward itself runs only the decoder layers
up to the highest one a loss needs: no upper layers, no unembedding.
"""

from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import torch
from torch import nn

from harness.training.layers import decoder_layers


def _layers_owner(model: nn.Module) -> tuple[nn.Module, str]:
    blocks = decoder_layers(model)
    for module in model.modules():
        for name, child in module.named_children():
            if child is blocks:
                return module, name
    raise ValueError("decoder layers have no parent module")


def _inner_decoder(model: nn.Module) -> nn.Module:
    """The transformer body without the LM head (LlamaModel inside LlamaForCausalLM)."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return base.get_decoder()


@contextlib.contextmanager
def _truncated(model: nn.Module, top: int) -> Iterator[None]:
    owner, name = _layers_owner(model)
    full = getattr(owner, name)
    setattr(owner, name, nn.ModuleList(list(full)[:top]))
    try:
        yield
    finally:
        setattr(owner, name, full)


class RepresentationModel(nn.Module):
    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, layers: Sequence[int],
                logits: bool = False) -> dict[str, Any]:
        blocks = decoder_layers(self.model)
        wanted = set(layers)
        states: dict[int, torch.Tensor] = {}

        def hook_for(index: int):
            def hook(_m: nn.Module, _i: Any, output: Any):
                states[index + 1] = output[0] if isinstance(output, tuple) else output

            return hook

        handles = [blocks[i - 1].register_forward_hook(hook_for(i - 1)) for i in wanted if i > 0]
        try:
            if logits:
                out = self.model(input_ids=input_ids, attention_mask=attention_mask, use_cache=False)
                result: dict[str, Any] = {"logits": out.logits}
            else:
                with _truncated(self.model, max(wanted)):
                    out = _inner_decoder(self.model)(input_ids=input_ids, attention_mask=attention_mask,
                                                     use_cache=False)
                result = {}
            if 0 in wanted:
                states[0] = self.model.get_input_embeddings()(input_ids)
        finally:
            for h in handles:
                h.remove()
        result["hidden"] = {layer: states[layer] for layer in sorted(wanted)}
        return result
