"""Circuit Breakers: representation rerouting (RR; Zou et al. 2024), scaled to the model.

LoRA adapters on the lower layers are trained so that, at the target layers, hidden states of
harmful examples (request + harmful completion) turn orthogonal to where the frozen model had
them (mean ReLU(cos)), while hidden states of benign examples stay close (L2 distance). The
coefficients follow RR's schedule, c_s = a(1 - t/2T) and c_r = a t/2T.

The reference recipe (a = 10, layers 10 and 20 of 32, LoRA r 16 on layers 0-20, lr 1e-4) does
nothing on the default 135M model (NOTES.md): adapters start as the identity, and absolute L2
on massive-activation positions dominates. So three departures are config fields here:
``b_init_std`` breaks the zero-gradient symmetry, ``retain_distance = "relative"`` divides by
the reference norm, and ``exclude_massive_dims`` leaves the massive-activation dimensions out of
both terms. Layer numbers are given for a ``reference_depth``-layer model and scaled.

``RepresentationDefense`` is the shared machinery MOSR builds on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Literal

import torch

from harness import hookimpl
from harness.defense import DefendedModel, Defense, DefenseContext
from harness.models import LoadedModel
from harness.search import Choice, LogUniform
from harness.training import losses
from harness.training.examples import ChatExample
from harness.training.layers import scale_layers
from harness.training.lora import attach_lora
from harness.training.trainer import Batch, load_finished, save_adapter, train
from harness.training.trainsets import LoraTrainingConfig, TrainingData, build


@dataclass
class RRConfig(LoraTrainingConfig):
    lora_layers: tuple[int, ...] = (0, 20)  # first and last adapted block, at reference_depth
    target_layers: tuple[int, ...] = (10, 20)  # rerouting layers (hidden-state numbering)
    alpha: float = 10.0  # a in the coefficient schedule
    schedule: Literal["rr", "constant"] = "rr"  # constant: c_s = a, c_r = a * retain_coef
    retain_coef: float = 1.0
    retain_distance: Literal["relative", "absolute"] = "relative"
    retain_layers: Literal["target", "all"] = "target"
    exclude_massive_dims: bool = True
    b_init_std: float = 1e-3  # 0 reproduces peft's zero init (no gradient at step 0 in float32)
    borderline_in_retain: bool = True  # OR-Bench retain prompts join the retain set

    def __post_init__(self):
        if len(self.lora_layers) != 2 or self.lora_layers[0] > self.lora_layers[1]:
            raise ValueError("lora_layers must be two numbers: the first and last adapted block")
        if not self.target_layers:
            raise ValueError("target_layers must name at least one layer")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be positive")


class RepresentationDefense(Defense):
    """Shared RR machinery: data, LoRA, the rerouting + retain objective, train or reload."""

    kind = "training"
    Config = RRConfig

    # hooks for variants -------------------------------------------------------------
    def streams(self, data: TrainingData, tokenizer: Any) -> dict[str, list[ChatExample]]:
        retain = list(data.retain) + (list(data.borderline) if self.config.borderline_in_retain else [])
        return {"harmful": list(data.harmful), "retain": retain}

    def harmful_weights(self, loaded: LoadedModel, data: TrainingData, ctx: DefenseContext,
                        layers: list[int]) -> torch.Tensor | None:
        """Per-sample rerouting weights (None: uniform)."""
        return None

    def extra_loss(self, step: int, total: int, forward: Callable[..., dict[str, Any]], batches: dict[str, Batch],
                   layers: list[int], dims: torch.Tensor | None, c_retain: float) -> tuple[torch.Tensor, dict[str, float]]:
        return torch.zeros(()), {}

    # the method ---------------------------------------------------------------------
    def apply(self, loaded: LoadedModel, ctx: DefenseContext) -> DefendedModel:
        cfg = self.config
        base = DefendedModel(loaded.model, loaded.tokenizer)
        data = build(ctx.model_key, base, ctx.resolver, ctx.benchmarks, cfg, seed=ctx.seed, progress=ctx.progress)
        depth = loaded.model.config.num_hidden_layers
        targets = scale_layers(cfg.target_layers, depth, cfg.reference_depth)
        first, last = (min(scale_layers([v], depth, cfg.reference_depth)[0], depth - 1) for v in cfg.lora_layers)
        retain_layers = targets if cfg.retain_layers == "target" else list(range(1, max(targets) + 1))
        layers = sorted(set(targets) | set(retain_layers))
        weights = self.harmful_weights(loaded, data, ctx, targets)
        model = attach_lora(loaded.model, layers=list(range(first, last + 1)), r=cfg.lora_r, alpha=cfg.lora_alpha,
                            b_init_std=cfg.b_init_std, seed=ctx.seed)

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
            reroute = losses.rerouting(h_t, ref_t, hb.tensors["mask"], w, dims)
            r = forward(rb)["hidden"]
            keep = losses.retain({l: r[l] for l in retain_layers}, {l: rb.ref[l] for l in retain_layers},
                                 rb.tensors["mask"], relative=cfg.retain_distance == "relative", dims=dims)
            extra, comps = self.extra_loss(step, total, forward, b, retain_layers, dims, c_r)
            loss = c_s * reroute + c_r * keep + extra
            comps = {"reroute": reroute.item(), "retain": keep.item(),
                     "cos": losses.mean_cosine(h_t, ref_t, hb.tensors["mask"], dims), **comps}
            return loss, comps

        settings = cfg.train_settings(ctx.seed)
        summary = load_finished(model, ctx.work_dir)
        if summary is None:
            summary = train(model, loaded.tokenizer, self.streams(data, loaded.tokenizer), layers, loss_fn, settings,
                            ctx.work_dir, progress=ctx.progress)
            save_adapter(model, ctx.work_dir, summary)
        info = {"training": summary, "data": data.report, "layers": {"lora": [first, last], "targets": targets,
                                                                     "retain": retain_layers}}
        if weights is not None:
            info["weights"] = {"min": float(weights.min()), "max": float(weights.max()), "mean": float(weights.mean())}
        merged = model.merge_and_unload()
        merged.eval()
        return DefendedModel(merged, loaded.tokenizer, info=info, training_texts=data.texts())


# NOTES.md: between "retain wins, nothing changes" and "rerouting wins, everything breaks" lies a
# window, found by the learning rate and the balance of the two terms. 40 steps is the per-trial
# training budget shared by every training defense.
RR_SEARCH_SPACE = {
    "steps": Choice((40,)),
    "lr": LogUniform(2e-4, 2e-3),
    "retain_coef": LogUniform(0.3, 3.0),
    "schedule": Choice(("rr", "constant")),
}


class CircuitBreakers(RepresentationDefense):
    name = "circuit-breakers"
    description = "Representation rerouting (Zou et al. 2024): LoRA pushes harmful states orthogonal, keeps benign ones."
    search_space = RR_SEARCH_SPACE


@hookimpl
def register_defenses(register):
    register(CircuitBreakers)
