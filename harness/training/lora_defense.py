"""The base of every LoRA-training defense: one config class and the scaffold around the method.

A LoRA defense builds the training sets, puts LoRA adapters on a range of decoder blocks, trains
them on its loss (or reloads the adapter a finished run saved), merges them into the weights and
records what it did. Only the data streams, the loss and the config differ from one defense to
the next; ``LoraDefense.apply`` does the rest.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

import torch

from harness.defense import DefendedModel, Defense, DefenseContext
from harness.errors import HarnessError
from harness.models import LoadedModel
from harness.training import losses
from harness.training.examples import ChatExample
from harness.training.layers import scale_layers
from harness.training.lora import attach_lora
from harness.training.probe import BehaviourProbe, TrajectorySettings, probe_prompts
from harness.training.trainer import Batch, LossFn, TrainSettings, load_finished, save_adapter, train
from harness.training.trainsets import TrainingData, TrainingDataConfig, build


@dataclass
class LoraTrainingConfig(TrainSettings, TrainingDataConfig):
    """The training-set sizes, the optimisation fields and the LoRA fields (subclasses change defaults).

    A subclass may add ``lora_dropout`` and ``b_init_std`` (the std of the initial LoRA B matrices,
    which peft starts at zero); without them the adapters have no dropout and start at zero.
    """

    lora_r: int = 16
    lora_alpha: int = 16
    lora_layers: tuple[int, ...] = (0, 32)  # first and last adapted block, at reference_depth
    reference_depth: int | None = 32  # the depth the layer numbers refer to; None: absolute

    def __post_init__(self):
        if len(self.lora_layers) != 2 or self.lora_layers[0] > self.lora_layers[1]:
            raise ValueError("lora_layers must be two numbers: the first and last adapted block")
        if self.steps < 1 or self.batch_size < 1:
            raise ValueError("steps and batch_size must be positive")


@dataclass
class LoraRun:
    """One application of a LoRA defense, as its hooks see it."""

    model: Any  # the PeftModel being trained; inside ``model.disable_adapter()`` it is the frozen model
    tokenizer: Any
    data: TrainingData
    ctx: DefenseContext
    streams: dict[str, list[ChatExample]]
    layers: dict[str, list[int]]  # what ``loss_layers`` returned for this model's depth
    prepared: Any = None  # what ``prepare`` computed on the frozen model


def batch_cross_entropy(forward, batch: Batch) -> torch.Tensor:
    """The adapted model's next-token cross-entropy on the tokens ``batch`` marks for it (``ce=True`` examples)."""
    return losses.cross_entropy(forward(batch, logits=True)["logits"], batch.tensors["input_ids"],
                                batch.tensors["ce_mask"])


class LoraDefense(Defense):
    """A defense that trains LoRA adapters on its own loss and merges them into the model.

    ``apply`` builds the training sets (``harness.training.trainsets``, judged by
    ``ctx.training_judge``), puts adapters on blocks ``lora_layers`` (numbered for a
    ``reference_depth``-layer model and scaled to this one), trains them for ``steps`` steps, each
    drawing ``batch_size`` examples of every stream (the trainer: checkpoints, resume, loss log),
    or reloads the adapter a finished run left in ``ctx.work_dir``, then merges it. A subclass
    gives ``name``, ``description``, ``Config`` (a ``LoraTrainingConfig``), ``streams`` and
    ``loss``; a loss on hidden states also names its layers (``loss_layers``) and the streams
    that need the frozen model's states there (``reference``). A refusal SFT::

        @dataclass
        class RefuseConfig(LoraTrainingConfig):
            lr: float = 2e-4

        class Refuse(LoraDefense):
            name = "refuse"
            Config = RefuseConfig

            def streams(self, data, tokenizer, ctx):
                return {"refusal": [ChatExample(({"role": "user", "content": q},), "I can't help with that.",
                                                loss_on="response", ce=True) for q in data.harmful_requests]}

            def loss(self, step, total, forward, batches):
                ce = batch_cross_entropy(forward, batches["refusal"])
                return ce, {"ce": ce.item()}
    """

    kind = "training"
    Config: ClassVar[type] = LoraTrainingConfig
    # the streams whose frozen-model states the loss compares with (True: every one); a loss that reads no
    # layers gets none
    reference: ClassVar[bool | Sequence[str]] = True

    # hooks ----------------------------------------------------------------------------------------
    def streams(self, data: TrainingData, tokenizer: Any, ctx: DefenseContext) -> dict[str, list[ChatExample]]:
        """The named example streams the loss trains on."""
        raise NotImplementedError

    def loss_layers(self, depth: int) -> dict[str, list[int]]:
        """Named groups of the hidden-state layers the loss reads, for a ``depth``-layer model (manifest: layers)."""
        return {}

    def prepare(self, loaded: LoadedModel, data: TrainingData, layers: dict[str, list[int]]) -> Any:
        """Work on the frozen model before the adapters go on; the result is ``LoraRun.prepared``."""
        return None

    def loss(self, step: int, total: int, forward, batches: dict[str, Batch]) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of one micro-batch of every stream and its logged components (``trainer.LossFn``)."""
        raise NotImplementedError

    def loss_function(self, run: LoraRun) -> LossFn:
        """The loss, for one that needs the run (the adapted model, the layers, the data): ``loss`` by default."""
        return self.loss

    def info(self, run: LoraRun) -> dict[str, Any]:
        """What the manifest records besides the training summary, the data report and the layers."""
        return {"examples": {name: len(v) for name, v in run.streams.items()}}

    def training_texts(self, run: LoraRun) -> dict[str, list[tuple[str, str]]]:
        """The training prompts by set, checked against the suite's benchmarks before evaluation."""
        return run.data.texts()

    def probe(self, ctx: DefenseContext, settings: TrajectorySettings) -> BehaviourProbe | None:
        """The behaviour probe of this training run (None without a judge or validation prompts)."""
        if settings.probe_every <= 0 or ctx.training_judge is None:
            return None
        prompts = probe_prompts(ctx.benchmarks, ctx.resolver, settings.probe_prompts, ctx.seed)
        if not prompts:
            return None
        return BehaviourProbe(prompts, ctx.training_judge, ctx.benchmarks, Path(ctx.work_dir) / "probe_log.jsonl",
                              settings)

    # the scaffold ---------------------------------------------------------------------------------
    def apply(self, loaded: LoadedModel, ctx: DefenseContext) -> DefendedModel:
        cfg = self.config
        tok = loaded.tokenizer
        data = build(ctx.model_key, DefendedModel(loaded.model, tok), ctx.resolver, ctx.benchmarks, cfg,
                     judge=ctx.training_judge, seed=ctx.seed, progress=ctx.progress)
        depth = loaded.model.config.num_hidden_layers
        groups = self.loss_layers(depth)
        layers = sorted(set().union(*groups.values()))
        first, last = (min(scale_layers([v], depth, cfg.reference_depth)[0], depth - 1) for v in cfg.lora_layers)
        streams = self.streams(data, tok, ctx)
        for name, examples in streams.items():
            if not examples:
                why = "; ".join(f"{k}: {v}" for k, v in data.report.get("empty", {}).items())
                raise HarnessError(f"training stream {name!r} of defense {self.name!r} has no examples"
                                   + (f". Empty training sets: {why}." if why else "."))
        prepared = self.prepare(loaded, data, groups)
        model = attach_lora(loaded.model, layers=list(range(first, last + 1)), r=cfg.lora_r, alpha=cfg.lora_alpha,
                            dropout=getattr(cfg, "lora_dropout", 0.0), b_init_std=getattr(cfg, "b_init_std", 0.0),
                            seed=ctx.seed)
        run = LoraRun(model, tok, data, ctx, streams, groups, prepared)
        summary = load_finished(model, ctx.work_dir)
        if summary is None:
            traj = ctx.trajectory or TrajectorySettings()
            summary = train(model, tok, streams, layers, self.loss_function(run), cfg, ctx.work_dir, seed=ctx.seed,
                            progress=ctx.progress, reference=self.reference if layers else False,
                            probe=self.probe(ctx, traj), grad_every=traj.grad_every)
            save_adapter(model, ctx.work_dir, summary)
        info = {"training": summary, "data": data.report, "layers": {"lora": [first, last], **groups},
                **self.info(run)}
        merged = model.merge_and_unload()
        merged.eval()
        return DefendedModel(merged, tok, info=info, training_texts=self.training_texts(run))
