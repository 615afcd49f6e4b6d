"""Training examples: a chat prompt and an assistant response, tokenised with loss masks.

Masks are computed from character offsets, so they are exact whatever the chat template:
``mask`` marks the tokens a representation loss sees (the user's request and/or the response;
never the template's system prompt, which every example shares), ``ce_mask`` the tokens a
cross-entropy loss predicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch


@dataclass(frozen=True)
class ChatExample:
    messages: tuple[dict[str, str], ...]  # the prompt turns, the last from the user
    response: str
    # which tokens the representation loss sees
    loss_on: Literal["request+response", "response"] = "request+response"
    skip_response_chars: int = 0  # leading response characters left out of both masks (CAA's prefix)
    ce: bool = False  # train the response (after the skipped prefix) with cross-entropy
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass
class Tokenized:
    input_ids: torch.Tensor  # [T]
    mask: torch.Tensor  # [T] bool
    ce_mask: torch.Tensor  # [T] bool: positions whose *next* token is predicted


def tokenize(example: ChatExample, tokenizer: Any, max_length: int) -> Tokenized:
    prompt = tokenizer.apply_chat_template(list(example.messages), add_generation_prompt=True, tokenize=False)
    end = tokenizer.eos_token or ""
    text = prompt + example.response + end
    enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, truncation=True,
                    max_length=max_length)
    ids = torch.tensor(enc["input_ids"], dtype=torch.long)
    starts = torch.tensor([s for s, _ in enc["offset_mapping"]], dtype=torch.long)
    user_start = prompt.rfind(example.messages[-1]["content"]) if example.messages[-1]["content"] else len(prompt)
    response_start = len(prompt) + example.skip_response_chars
    response_end = len(prompt) + len(example.response) + len(end)
    in_response = (starts >= response_start) & (starts < response_end)
    if example.loss_on == "request+response":
        mask = ((starts >= user_start) & (starts < len(prompt))) | in_response
    else:
        mask = in_response
    # the token at position t predicts token t+1: shift the response marks left by one
    ce_mask = torch.zeros_like(mask)
    if example.ce:
        ce_mask[:-1] = in_response[1:]
    return Tokenized(ids, mask, ce_mask)


def collate(items: list[Tokenized], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch tensors (training needs no left padding)."""
    width = max(len(t.input_ids) for t in items)
    batch = {
        "input_ids": torch.full((len(items), width), pad_id, dtype=torch.long),
        "attention_mask": torch.zeros((len(items), width), dtype=torch.long),
        "mask": torch.zeros((len(items), width), dtype=torch.bool),
        "ce_mask": torch.zeros((len(items), width), dtype=torch.bool),
    }
    for row, t in enumerate(items):
        n = len(t.input_ids)
        batch["input_ids"][row, :n] = t.input_ids
        batch["attention_mask"][row, :n] = 1
        batch["mask"][row, :n] = t.mask
        batch["ce_mask"][row, :n] = t.ce_mask
    return batch
