"""LoRA adapters through peft, on a chosen range of layers.

peft initialises LoRA's B matrices to zero, so at step 0 the adapted model equals the frozen
one *bit for bit* in float32 and a cosine-based rerouting loss has exactly zero gradient: on a
CPU nothing moves (on GPUs in bf16, rounding noise breaks the tie). ``b_init_std`` breaks that
symmetry with small random B matrices.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def attach_lora(
    model: nn.Module,
    *,
    layers: Sequence[int],
    r: int = 16,
    alpha: int = 16,
    dropout: float = 0.0,
    targets: Sequence[str] = DEFAULT_TARGETS,
    b_init_std: float = 0.0,
    seed: int = 0,
) -> nn.Module:
    """Wrap ``model`` in a PeftModel with adapters on decoder ``layers`` (indices of blocks)."""
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=r,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(targets),
        layers_to_transform=list(layers),
        bias="none",
        task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, config)
    if b_init_std > 0:
        gen = torch.Generator().manual_seed(seed)
        with torch.no_grad():
            for name, param in peft_model.named_parameters():
                if "lora_B" in name:
                    noise = torch.randn(param.shape, generator=gen) * b_init_std
                    param.copy_(noise.to(param.dtype))
    return peft_model


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The trainable adapter tensors (what a checkpoint needs to hold)."""
    return {n: p.detach().cpu().clone() for n, p in model.named_parameters() if p.requires_grad}
