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
from harness.defense import DefendedModel, Defense, DefenseContext
from harness.models import LoadedModel
from harness.search import Choice, LogUniform, Uniform
from harness.training import losses
from harness.training.examples import ChatExample
from harness.training.layers import scale_layers
from harness.training.lora import attach_lora
from harness.training.refusals import REFUSALS
from harness.training.trainer import load_finished, save_adapter, train
from harness.training.trainsets import LoraTrainingConfig, build


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
        if len(self.lora_layers) != 2 or self.lora_layers[0] > self.lora_layers[1]:
            raise ValueError("lora_layers must be two numbers: the first and last adapted block")
        if not 0.0 <= self.harmful_fraction <= 1.0:
            raise ValueError("harmful_fraction must be between 0 and 1")
        if self.steps < 1 or self.batch_size < 1 or self.n_refusal < 1:
            raise ValueError("steps, batch_size and n_refusal must be positive")


def refusal_examples(requests: list[str], n: int, seed: int) -> list[ChatExample]:
    """``n`` harmful requests (seeded sample) each paired with a seeded choice of refusal, CE on."""
    rng = random.Random(seed)
    chosen = rng.sample(requests, min(n, len(requests)))
    return [ChatExample(({"role": "user", "content": q},), rng.choice(REFUSALS), loss_on="response", ce=True)
            for q in chosen]


class RefusalSFT(Defense):
    name = "refusal-sft"
    description = "LoRA SFT toward refusals on harmful requests and the model's own answers on benign ones."
    kind = "training"
    Config = RefusalSFTConfig
    search_space = {"steps": Choice((40,)), "lr": LogUniform(5e-5, 5e-4), "harmful_fraction": Uniform(0.2, 0.6)}

    def apply(self, loaded: LoadedModel, ctx: DefenseContext) -> DefendedModel:
        cfg = self.config
        base = DefendedModel(loaded.model, loaded.tokenizer)
        data = build(ctx.model_key, base, ctx.resolver, ctx.benchmarks, cfg, seed=ctx.seed,
                     progress=ctx.progress)
        refuse = refusal_examples(data.harmful_requests, cfg.n_refusal, ctx.seed)
        benign_src = list(data.retain) + (list(data.borderline) if cfg.borderline_in_benign else [])
        benign = [ChatExample(e.messages, e.response, loss_on="response", ce=True) for e in benign_src]
        depth = loaded.model.config.num_hidden_layers
        first, last = (min(scale_layers([v], depth, cfg.reference_depth)[0], depth - 1) for v in cfg.lora_layers)
        model = attach_lora(loaded.model, layers=list(range(first, last + 1)), r=cfg.lora_r, alpha=cfg.lora_alpha,
                            dropout=cfg.lora_dropout, seed=ctx.seed)
        f = cfg.harmful_fraction

        def loss_fn(step, total, forward, b):
            parts = {}
            loss = 0.0
            for name, weight in (("refusal", f), ("benign", 1.0 - f)):
                batch = b[name]
                ce = losses.cross_entropy(forward(batch, logits=True)["logits"], batch.tensors["input_ids"],
                                          batch.tensors["ce_mask"])
                loss = loss + weight * ce
                parts[f"ce_{name}"] = ce.item()
            return loss, parts

        settings = cfg.train_settings(ctx.seed)
        summary = load_finished(model, ctx.work_dir)
        if summary is None:
            summary = train(model, loaded.tokenizer, {"refusal": refuse, "benign": benign}, [], loss_fn, settings,
                            ctx.work_dir, progress=ctx.progress, reference=False)
            save_adapter(model, ctx.work_dir, summary)
        merged = model.merge_and_unload()
        merged.eval()
        texts = data.texts()
        info = {"training": summary, "data": data.report, "layers": {"lora": [first, last]},
                "examples": {"refusal": len(refuse), "benign": len(benign)}}
        training_texts = {"refusal": [(str(i), e.messages[-1]["content"]) for i, e in enumerate(refuse)],
                          "retain": texts["retain"]}
        if cfg.borderline_in_benign:
            training_texts["borderline"] = texts["borderline"]
        return DefendedModel(merged, loaded.tokenizer, info=info, training_texts=training_texts)


@hookimpl
def register_defenses(register):
    register(RefusalSFT)
