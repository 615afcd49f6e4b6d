"""Refusal SFT: supervised LoRA fine-tuning toward refusals, the classic safety-tuning baseline.

Harmful requests (the decontaminated ``harmful_requests`` of the training sets) are paired with
a refusal from ``harness.training.refusals.REFUSALS`` (picked by a seeded rng); benign requests
(``retain``: the model's own answers, plus ``borderline``: OR-Bench prompts with compliant
answers) keep their answers. Cross-entropy is taken on the response tokens only (and the EOS
that ends them), so the model learns when to refuse and when to answer, not to predict prompts.

Each step draws ``batch_size`` refusal examples and ``batch_size`` benign examples; the loss is
``f * CE(refusals) + (1 - f) * CE(benign)`` with ``f = harmful_fraction`` (the harmful:benign
mix). Training toward refusals on surface features of harmful requests is known to spill over
onto benign requests that look harmful: this baseline is expected to over-refuse.

The adapter is saved (safetensors) and reloaded on a resumed run, then merged into the model.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from harness import hookimpl
from harness.search import Choice, LogUniform, Uniform
from harness.training.examples import ChatExample
from harness.training.lora_defense import LoraDefense, LoraTrainingConfig, batch_cross_entropy
from harness.training.refusals import REFUSALS


@dataclass
class RefusalSFTConfig(LoraTrainingConfig):
    lr: float = 2e-4  # a usual LoRA SFT rate; CE gives a gradient from peft's zero init
    batch_size: int = 4  # examples of *each* kind (refusal, benign) per step
    lora_dropout: float = 0.05
    lora_layers: tuple[int, ...] = (0, 32)  # first and last adapted block, at reference_depth: all of them
    n_refusal: int = 160  # harmful requests paired with a refusal (n_harmful_self + n_many_shot by default)
    harmful_fraction: float = 0.5  # share of the loss on refusal examples: the harmful:benign mix
    borderline_in_benign: bool = True  # OR-Bench retain prompts (compliant answers) join the benign set

    def __post_init__(self):
        super().__post_init__()
        if not 0.0 <= self.harmful_fraction <= 1.0:
            raise ValueError("harmful_fraction must be between 0 and 1")
        if self.n_refusal < 1:
            raise ValueError("n_refusal must be positive")


def refusal_examples(requests: list[str], n: int, seed: int) -> list[ChatExample]:
    """``n`` harmful requests (seeded sample) each paired with a seeded choice of refusal, CE on."""
    rng = random.Random(seed)
    chosen = rng.sample(requests, min(n, len(requests)))
    return [ChatExample(({"role": "user", "content": q},), rng.choice(REFUSALS), loss_on="response", ce=True)
            for q in chosen]


class RefusalSFT(LoraDefense):
    name = "refusal-sft"
    description = "LoRA SFT toward refusals on harmful requests and the model's own answers on benign ones."
    Config = RefusalSFTConfig
    search_space = {"steps": Choice((40,)), "lr": LogUniform(5e-5, 5e-4), "harmful_fraction": Uniform(0.2, 0.6)}

    def streams(self, data, tokenizer, ctx):
        benign = list(data.retain) + (list(data.borderline) if self.config.borderline_in_benign else [])
        return {"refusal": refusal_examples(data.harmful_requests, self.config.n_refusal, ctx.seed),
                "benign": [ChatExample(e.messages, e.response, loss_on="response", ce=True) for e in benign]}

    def loss(self, step, total, forward, batches):
        f = self.config.harmful_fraction
        refusal = batch_cross_entropy(forward, batches["refusal"])
        benign = batch_cross_entropy(forward, batches["benign"])
        terms = {"refusal": f * refusal, "benign": (1.0 - f) * benign}
        return terms["refusal"] + terms["benign"], {"ce_refusal": refusal.item(), "ce_benign": benign.item()}, terms

    def training_texts(self, run):
        texts = run.data.texts()
        out = {"refusal": [(str(i), e.messages[-1]["content"]) for i, e in enumerate(run.streams["refusal"])],
               "retain": texts["retain"]}
        if self.config.borderline_in_benign:
            out["borderline"] = texts["borderline"]
        return out


@hookimpl
def register_defenses(register):
    register(RefusalSFT)
