"""Refusal direction: activation addition along the difference-in-means refusal direction.

Arditi et al. 2024, "Refusal in language models is mediated by a single direction" (arXiv
2406.11717): the difference between the mean residual-stream activations of harmful and harmless
instructions, taken at the last prompt token(s) at one layer, is a direction that mediates
refusal; *adding* it at that layer, at every token position, makes the model refuse. As a
defense, the addition is applied to every prompt.

- Prompts: ``harmful_train.json`` / ``harmless_train.json`` of the refusal-direction splits.
  ``harmful_train`` holds AdvBench and JailbreakBench behaviours, so every prompt overlapping any
  registered benchmark (exact after normalising, or near duplicate) is dropped first, as the
  training sets do. ``n_prompts`` of each (seeded) are used; they are the defense's
  ``training_texts``.
- Direction: frozen-model hidden state ``layer`` (``output_hidden_states`` numbering: the output
  of decoder block ``layer - 1``), mean-pooled over the last ``positions`` prompt tokens (the chat
  template's generation prompt), averaged over the prompts of each set; r = mean(harmful) -
  mean(harmless). Cached with its norms (safetensors) under the run's defense folder.
- Addition: ``strength * s * r / ||r||`` is added to the output of block ``layer - 1`` (``span =
  "single"``, Arditi's activation addition) or of every block from there on (``"onward"``), at
  every position, through forward hooks that ``DefendedModel.hooks()`` registers and removes.
  ``s`` is set by ``scale``: ``"diff"`` (default) ||r||, so strength 1 adds the difference of means
  itself, exactly the paper's intervention; ``"activation"`` the mean norm of the activations at
  that layer and those positions (strength is then a fraction of a typical activation);
  ``"unit"`` 1 (strength is the added norm).

On SmolLM2-135M-Instruct (barely aligned) the addition did not induce refusals in a probe on
held-out harmful_train prompts (layers 9, 15, 21 of 30; strengths 1-8 with ``scale="diff"``):
answers changed, and turned incoherent from strength 4-8 on. Expect it to act on aligned models.
"""

from __future__ import annotations

import contextlib
import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator, Literal

import torch

from harness import contamination, hookimpl
from harness.data import read_json
from harness.datafiles import HARMFUL_TRAIN, HARMLESS_TRAIN
from harness.defense import DefendedModel, Defense, DefenseContext
from harness.models import LoadedModel
from harness.provenance import fingerprint
from harness.search import Choice, LogUniform
from harness.training.layers import decoder_layers, forward_until
from harness.training.trainsets import eval_texts

DATA_FILES = (HARMFUL_TRAIN, HARMLESS_TRAIN)  # refusal_direction_splits/splits/{harmful,harmless}_train.json


@dataclass
class RefusalDirectionConfig:
    layer: float = 0.5  # below 1: a fraction of the depth; 1 or more: an absolute layer (hidden-state numbering)
    n_prompts: int = 128  # harmful and harmless prompts each (the paper's train split size)
    positions: int = 1  # last prompt tokens pooled for the means
    strength: float = 1.0
    scale: Literal["diff", "activation", "unit"] = "diff"
    span: Literal["single", "onward"] = "single"  # add at that layer only, or at it and every later one
    batch_size: int = 16
    near_duplicate: float = 0.8  # trigram Jaccard at which a prompt counts as an evaluation item

    def __post_init__(self):
        if self.layer <= 0 or (self.layer >= 1 and not float(self.layer).is_integer()):
            raise ValueError("layer must be a fraction in (0, 1) or a whole layer number >= 1")
        if self.n_prompts < 1 or self.positions < 1 or self.batch_size < 1:
            raise ValueError("n_prompts, positions and batch_size must be positive")


def resolve_layer(layer: float, depth: int) -> int:
    """The hidden-state layer (1..depth) a fraction or absolute number names."""
    value = round(layer * depth) if layer < 1 else int(layer)
    return max(1, min(depth, value))


def _decontaminate(name: str, items: list[tuple[str, str]], evals: dict[str, list[tuple[str, str]]], near: float,
                   report: dict[str, Any]) -> list[tuple[str, str]]:
    found = contamination.check({name: items}, evals, near).get(name, {})
    dropped = set().union(*(o.train_ids for o in found.values())) if found else set()
    report[name] = {"before": len(items), "dropped": len(dropped),
                    "overlaps": contamination.summary({name: found}).get(name, {})}
    return [it for it in items if it[0] not in dropped]


def prompt_sets(ctx: DefenseContext, n: int, near: float) -> tuple[list[tuple[str, str]], list[tuple[str, str]], dict]:
    """(harmful, harmless) decontaminated prompt lists of up to ``n`` each, and the report."""
    evals, unchecked = eval_texts(ctx.benchmarks, ctx.resolver)
    report: dict[str, Any] = {"unchecked_benchmarks": unchecked}
    harmful = [(f"ht{i}", r["instruction"]) for i, r in enumerate(read_json(ctx.resolver.path(HARMFUL_TRAIN)))]
    harmless = [(f"hl{i}", r["instruction"]) for i, r in enumerate(read_json(ctx.resolver.path(HARMLESS_TRAIN)))]
    harmful = _decontaminate("harmful_train", harmful, evals, near, report)
    random.Random(ctx.seed).shuffle(harmful)
    pool = random.Random(ctx.seed + 1).sample(harmless, min(len(harmless), 2 * n))
    harmless = _decontaminate("harmless_train", pool, evals, near, report)
    return harmful[:n], harmless[:n], report


def last_token_states(model, tokenizer, prompts: list[str], layer: int, positions: int,
                      batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """([N, D] states at ``layer`` pooled over each prompt's last ``positions`` tokens, [N] their mean norms)."""
    device = next(model.parameters()).device
    pooled, norms = [], []
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    with torch.no_grad():
        for i in range(0, len(prompts), batch_size):
            texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                                   tokenize=False) for p in prompts[i : i + batch_size]]
            ids = [tokenizer(t, add_special_tokens=False).input_ids for t in texts]
            width = max(len(x) for x in ids)
            input_ids = torch.full((len(ids), width), pad, dtype=torch.long)
            attention = torch.zeros((len(ids), width), dtype=torch.long)
            for row, x in enumerate(ids):  # right padding: real tokens keep their states
                input_ids[row, : len(x)] = torch.tensor(x)
                attention[row, : len(x)] = 1
            hidden = forward_until(model, [layer], input_ids=input_ids.to(device),
                                   attention_mask=attention.to(device))[layer].float()
            for row, x in enumerate(ids):
                k = min(positions, len(x))
                states = hidden[row, len(x) - k : len(x)]
                pooled.append(states.mean(0).cpu())
                norms.append(states.norm(dim=-1).mean().cpu())
    return torch.stack(pooled), torch.stack(norms)


def addition_hooks(model, layer: int, vector: torch.Tensor, span: str) -> Callable[[], ContextManager[None]]:
    """A factory of context managers that add ``vector`` to decoder-block outputs while entered.

    ``single``: the output of block ``layer - 1`` (hidden state ``layer``); ``onward``: that block
    and every later one. Entering again while already entered adds nothing more.
    """
    blocks = decoder_layers(model)
    targets = [layer - 1] if span == "single" else list(range(layer - 1, len(blocks)))
    active = {"on": False}
    cast: dict[tuple[Any, Any], torch.Tensor] = {}

    def add(_module, _inputs, output):
        hidden = output[0] if isinstance(output, tuple) else output
        key = (hidden.device, hidden.dtype)
        if key not in cast:
            cast[key] = vector.to(device=hidden.device, dtype=hidden.dtype)
        hidden = hidden + cast[key]
        return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

    @contextlib.contextmanager
    def hooks() -> Iterator[None]:
        if active["on"]:  # nested: the addition is already in force
            yield
            return
        handles = [blocks[i].register_forward_hook(add) for i in targets]
        active["on"] = True
        try:
            yield
        finally:
            for h in handles:
                h.remove()
            active["on"] = False

    return hooks


class RefusalDirection(Defense):
    name = "refusal-direction"
    description = "Adds the difference-in-means refusal direction (Arditi et al. 2024) to the residual stream."
    kind = "inference"
    Config = RefusalDirectionConfig
    # where the direction is added (fraction of depth), how strongly, and at one layer or onward. On the
    # default model a single-layer addition up to 2.85x the difference of means changed no answers,
    # hence strengths up to 8 and the onward span.
    search_space = {"layer": Choice((0.3, 0.45, 0.6, 0.75)), "strength": LogUniform(0.5, 8.0),
                    "span": Choice(("single", "onward"))}

    def apply(self, loaded: LoadedModel, ctx: DefenseContext) -> DefendedModel:
        from safetensors import safe_open
        from safetensors.torch import save_file

        cfg = self.config
        model, tok = loaded.model, loaded.tokenizer
        depth = model.config.num_hidden_layers
        layer = resolve_layer(cfg.layer, depth)
        harmful, harmless, report = prompt_sets(ctx, cfg.n_prompts, cfg.near_duplicate)
        key = fingerprint({"model": ctx.model_key, "layer": layer, "positions": cfg.positions,
                           "harmful": harmful, "harmless": harmless, "v": 1})[:16]
        path = Path(ctx.work_dir) / f"refusal_direction-{key}.safetensors"
        cached = path.is_file()
        if cached:
            with safe_open(str(path), framework="pt") as fh:
                meta = json.loads(fh.metadata()["meta"])
                direction = fh.get_tensor("direction")
        else:
            h, h_norms = last_token_states(model, tok, [p for _, p in harmful], layer, cfg.positions, cfg.batch_size)
            b, b_norms = last_token_states(model, tok, [p for _, p in harmless], layer, cfg.positions,
                                           cfg.batch_size)
            diff = h.mean(0) - b.mean(0)
            direction = diff / diff.norm().clamp(min=1e-12)
            meta = {"layer": layer, "diff_norm": float(diff.norm()),
                    "activation_norm": float(torch.cat([h_norms, b_norms]).mean()),
                    "n_harmful": len(harmful), "n_harmless": len(harmless)}
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            save_file({"direction": direction.contiguous(), "diff": diff.contiguous()}, str(tmp),
                      metadata={"meta": json.dumps(meta)})
            tmp.replace(path)
        scale = {"diff": meta["diff_norm"], "activation": meta["activation_norm"], "unit": 1.0}[cfg.scale]
        vector = direction * (cfg.strength * scale)
        info = {"layer": layer, "depth": depth, "span": cfg.span, "positions": cfg.positions,
                "strength": cfg.strength, "scale": cfg.scale, "scale_norm": scale,
                "added_norm": float(vector.norm()), "direction_norm": float(direction.norm()),
                "diff_norm": meta["diff_norm"], "activation_norm": meta["activation_norm"],
                "n_prompts": {"harmful": len(harmful), "harmless": len(harmless)},
                "data": report, "cache": str(path), "cached": cached}
        return DefendedModel(model, tok, hooks=addition_hooks(model, layer, vector, cfg.span), info=info,
                             training_texts={"harmful": harmful, "harmless": harmless})


@hookimpl
def register_defenses(register):
    register(RefusalDirection)
