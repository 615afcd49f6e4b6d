"""Representation rerouting (RR; Zou et al. 2024): the objective, config and search space of its defenses.

At the target layers, hidden states of harmful examples (request + harmful completion) are pushed
orthogonal to where the frozen model had them (mean ReLU(cos), optionally weighted per sample),
while hidden states of benign examples stay close (an L2 distance). The coefficients follow RR's
schedule, c_s = a(1 - t/2T) on rerouting and c_r = a t/2T on retain, or stay constant.

A defense of the family subclasses ``ReroutingDefense``: ``prepare`` may return per-sample
rerouting weights, ``streams`` may add streams and ``extra_loss`` a term on them.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Callable, Literal

import torch

from harness.search import Choice, LogUniform
from harness.training import losses
from harness.training.examples import ChatExample
from harness.training.layers import scale_layers
from harness.training.lora_defense import LoraDefense, LoraRun, LoraTrainingConfig
from harness.training.trainer import Batch, LossFn
from harness.training.trainsets import TrainingData


@dataclass
class RRConfig(LoraTrainingConfig):
    lora_layers: tuple[int, ...] = (0, 20)  # first and last adapted block, at reference_depth
    target_layers: tuple[int, ...] = (10, 20)  # rerouting layers (hidden-state numbering)
    alpha: float = 10.0  # a in the coefficient schedule
    schedule: Literal["rr", "constant"] = "rr"  # constant: c_s = a, c_r = a * retain_coef
    retain_coef: float = 1.0
    retain_distance: Literal["relative", "absolute"] = "relative"
    # target: the rerouting layers; all: every hidden state from 1 to the top target; all_with_embeddings: from 0
    # (the embedding output, which LoRA on decoder blocks never changes), as Circuit Breakers' code takes them
    retain_layers: Literal["target", "all", "all_with_embeddings"] = "target"
    exclude_massive_dims: bool = True
    b_init_std: float = 1e-3  # 0 reproduces peft's zero init (no gradient at step 0 in float32)
    borderline_in_retain: bool = True  # OR-Bench retain prompts join the retain set
    # not in the paper: 2 squares the retain distance (see harness.training.losses.retain)
    retain_power: int = 1
    # not in the paper: cross-entropy on the retain set's answers, so the output keeps benign answers too
    retain_ce_weight: float = 0.0
    # how tokens are averaged: per sample, then over samples; or every masked token of the batch alike (the paper)
    loss_pooling: Literal["sample", "token"] = "sample"

    def __post_init__(self):
        super().__post_init__()
        if not self.target_layers:
            raise ValueError("target_layers must name at least one layer")
        if self.retain_power not in (1, 2):
            raise ValueError("retain_power must be 1 (the distance, as in the paper) or 2 (its square)")
        if self.retain_ce_weight < 0:
            raise ValueError("retain_ce_weight must be >= 0")


# Between "retain wins, nothing changes" and "rerouting wins, everything breaks" lies a window, found by the
# learning rate and the balance of the two terms: on the default 135M model, with the retain weight at its full
# value from the first step the rerouting cosine stayed at 1.000, and with RR's schedule (retain weight from 0) at
# lr 1e-3 it fell to 0.02 by step 20 and every answer turned to gibberish. 40 steps is the per-trial training
# budget shared by every training defense.
RR_SEARCH_SPACE = {
    "steps": Choice((40,)),
    "lr": LogUniform(2e-4, 2e-3),
    "retain_coef": LogUniform(0.3, 3.0),
    "schedule": Choice(("rr", "constant")),
}


class ReroutingDefense(LoraDefense):
    """RR on LoRA adapters: streams ``harmful`` and ``retain``, both compared with the frozen model's states."""

    Config = RRConfig

    def streams(self, data: TrainingData, tokenizer: Any, ctx) -> dict[str, list[ChatExample]]:
        retain = list(data.retain) + (list(data.borderline) if self.config.borderline_in_retain else [])
        if self.config.retain_ce_weight > 0:
            retain = [dataclasses.replace(e, ce=True) for e in retain]
        return {"harmful": list(data.harmful), "retain": retain}

    def loss_layers(self, depth: int) -> dict[str, list[int]]:
        cfg = self.config
        targets = scale_layers(cfg.target_layers, depth, cfg.reference_depth)
        first = {"target": None, "all": 1, "all_with_embeddings": 0}[cfg.retain_layers]
        retain = targets if first is None else list(range(first, max(targets) + 1))
        return {"targets": targets, "retain": retain}

    def prepare(self, loaded, data, layers) -> torch.Tensor | None:
        """Per-sample rerouting weights of the ``harmful`` stream (None: uniform)."""
        return None

    def extra_loss(self, step: int, total: int, forward: Callable[..., dict[str, Any]], batches: dict[str, Batch],
                   layers: list[int], dims: torch.Tensor | None, c_retain: float) -> tuple[torch.Tensor, dict[str, float]]:
        """A term on further streams (``layers``: the retain layers; ``c_retain``: this step's retain coefficient)."""
        return torch.zeros(()), {}

    def loss_function(self, run: LoraRun) -> LossFn:
        cfg = self.config
        targets, retain_layers, weights = run.layers["targets"], run.layers["retain"], run.prepared

        def loss_fn(step, total, forward, b):
            if cfg.schedule == "rr":
                c_s, c_r = losses.rr_schedule(step, total, cfg.alpha)
                c_r *= cfg.retain_coef
            else:
                c_s, c_r = cfg.alpha, cfg.alpha * cfg.retain_coef
            hb, rb = b["harmful"], b["retain"]
            h = forward(hb)["hidden"]
            dims = losses.massive_dims(hb.ref, hb.tensors["mask"]) if cfg.exclude_massive_dims else None
            w = weights[hb.index.cpu()].to(h[targets[0]].dtype).to(h[targets[0]].device) if weights is not None else None
            h_t = {l: h[l] for l in targets}
            ref_t = {l: hb.ref[l] for l in targets}
            reroute = losses.rerouting(h_t, ref_t, hb.tensors["mask"], w, dims, pooling=cfg.loss_pooling)
            out = forward(rb, logits=cfg.retain_ce_weight > 0)
            r = out["hidden"]
            keep = losses.retain({l: r[l] for l in retain_layers}, {l: rb.ref[l] for l in retain_layers},
                                 rb.tensors["mask"], relative=cfg.retain_distance == "relative", dims=dims,
                                 power=cfg.retain_power, pooling=cfg.loss_pooling)
            extra, comps = self.extra_loss(step, total, forward, b, retain_layers, dims, c_r)
            terms = {"reroute": c_s * reroute, "retain": c_r * keep, "extra": extra}
            if cfg.retain_ce_weight > 0:
                ce = losses.cross_entropy(out["logits"], rb.tensors["input_ids"], rb.tensors["ce_mask"])
                terms["retain_ce"] = cfg.retain_ce_weight * ce
                comps = {**comps, "retain_ce": ce.item()}
            comps = {"reroute": reroute.item(), "retain": keep.item(),
                     "cos": losses.mean_cosine(h_t, ref_t, hb.tensors["mask"], dims),
                     **{f"cos_L{l}": losses.mean_cosine({l: h_t[l]}, {l: ref_t[l]}, hb.tensors["mask"], dims)
                        for l in targets},
                     "retain_rel": losses.relative_distance({l: r[l] for l in retain_layers},
                                                            {l: rb.ref[l] for l in retain_layers},
                                                            rb.tensors["mask"], dims),
                     **comps}
            return sum(terms.values()), comps, terms

        return loss_fn

    def info(self, run: LoraRun) -> dict[str, Any]:
        weights = run.prepared
        if weights is None:
            return {}
        return {"weights": {"min": float(weights.min()), "max": float(weights.max()), "mean": float(weights.mean())}}
