"""RepBend: Representation Bending (Yousefpour et al. 2025, arXiv 2504.01550, ACL 2025).

RepBend turns activation steering (vector arithmetic on safe / unsafe activations) into a LoRA
fine-tuning loss. Implemented here after the authors' code (github.com/AIM-Intelligence/RepBend,
``methods/rep_bending/trainer.py``, offline mode, ``loss_mode="response_all"``) and ``train.sh``:

    L = a * L_safe - b * L_unsafe + g * L_cos + e * L_KL + n * L_pair

- ``L_unsafe`` (bending; coefficient b = ``unsafe_coef``): the mean distance between the adapted and
  the frozen model's hidden states of *harmful* examples (harmful request + harmful completion),
  on the response tokens, at the bending layers. It is *subtracted*, unbounded: harmful
  representations are pushed as far as possible from where the frozen model had them.
- ``L_safe`` (a = ``safe_coef``): the same distance on *safe* examples (benign request + answer,
  and harmful request + refusal), on the response tokens: keeps them where they were.
- ``L_cos`` (g = ``cosine_coef``): for the harmful batch, the mean over pairs i != j of
  ``1 - cos(h_i, h_j)`` of the adapted states at the last prompt token, averaged over the bending
  layers: pulls the harmful requests' representations together (one cluster that the model can
  treat alike, as a refusal direction does).
- ``L_KL`` (e = ``kl_coef``): KL(frozen || adapted) of next-token distributions on retain chats
  (every token), at temperature T, times T^2; summed over tokens and divided by the batch size
  (``F.kl_div(..., reduction="batchmean")`` on [B, T, V], as the authors do).
- ``L_pair`` (n = ``pair_coef``; 0 in the published recipe): the distance between the adapted
  states of (harmful request + harmful completion) and the frozen states of (the same request + a
  refusal) over the last prompt token and the first ``pair_tokens - 1`` response tokens: bends
  harmful continuations *towards* the refusal representations.

The published recipe for Llama-3-8B-Instruct (``train.sh``): a 0.5, b 0.5, g 0.1, e 0.3, n 0; bending
layers 20-30 of 32; safe term on every layer (``alpha_mode="all"``); LoRA r 16 / alpha 16 /
dropout 0.05 on all linear projections of every layer; lr 1e-5 constant; 450 steps of 16.

Where this differs from the paper's code, each as a config field:
- Distances: the authors use the absolute L2 norm over all hidden dimensions. On the default
  135M model one massive-activation dimension dominates that (at layer 20 the first token's norm
  is about 25,000 against a median of about 220), so by default the
  distance is relative to the frozen state's norm (``distance="relative"``) and massive dimensions
  are left out of the distances and cosines (``exclude_massive_dims``). ``distance="absolute"``,
  ``exclude_massive_dims=false`` gives the authors' form.
- Safe layers: the bending layers by default (``safe_layers="bend"``), not every layer, because
  the kit caches the frozen states of every example at every loss layer (memory on CPU);
  ``safe_layers="all"`` is the paper's choice.
- Data: the unsafe set is the harness's ``harmful`` training set; the safe set is ``retain`` +
  ``borderline`` + the harmful requests paired with refusals from ``REFUSALS`` (the paper uses
  WildGuardMix / WildJailbreak pairs); the KL set is ``retain`` + ``borderline`` (benign chats with
  the model's own or compliant answers; the paper: UltraChat).
- The learning rate and step count are set for this CPU setting (lr 1e-3, 60 steps of 4),
  not the paper's; LoRA B matrices start slightly random (``b_init_std``) because the distance
  terms have no gradient at exactly zero distance. The online mode (classifier-filtered
  generations) is not implemented; the published recipe is offline.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn.functional as F

from harness import hookimpl
from harness.search import Choice, LogUniform
from harness.training import losses
from harness.training.examples import ChatExample, collate, tokenize
from harness.training.layers import forward_until, scale_layers
from harness.training.lora_defense import LoraDefense, LoraTrainingConfig
from harness.training.refusals import REFUSALS


@dataclass
class RepBendConfig(LoraTrainingConfig):
    lora_dropout: float = 0.05
    lora_layers: tuple[int, ...] = (0, 32)  # first and last adapted block, at reference_depth (paper: all)
    bend_layers: tuple[int, ...] = (20, 30)  # first and last bending layer (hidden-state numbering)
    safe_layers: Literal["bend", "all"] = "bend"  # all: every layer from 1 to the top bending layer
    safe_coef: float = 0.5  # alpha: keep safe states
    unsafe_coef: float = 0.5  # beta: push harmful states away from the frozen model's
    cosine_coef: float = 0.1  # gamma: pull harmful last-prompt-token states together
    kl_coef: float = 0.3  # epsilon: KL to the frozen model on retain chats
    pair_coef: float = 0.0  # eta: harmful continuation towards the frozen refusal states
    kl_temperature: float = 2.0
    pair_tokens: int = 20  # paired_repr_length
    distance: Literal["relative", "absolute"] = "relative"
    exclude_massive_dims: bool = True
    refusals_in_safe: bool = True  # harmful requests + refusals join the safe set
    borderline_in_safe: bool = True
    b_init_std: float = 1e-3  # 0 reproduces peft's zero init (no distance gradient at step 0)

    def __post_init__(self):
        super().__post_init__()
        if len(self.bend_layers) != 2 or self.bend_layers[0] > self.bend_layers[1]:
            raise ValueError("bend_layers must be two numbers: the first and the last")
        if self.bend_layers[0] < 1:
            raise ValueError("bend_layers start at 1 (layer 0 is the embedding output)")
        if self.pair_tokens < 1:
            raise ValueError("pair_tokens must be positive")
        if self.kl_temperature <= 0:
            raise ValueError("kl_temperature must be positive")


# loss pieces ----------------------------------------------------------------------------------

def _pick(h: torch.Tensor, dims: torch.Tensor | None) -> torch.Tensor:
    return h if dims is None else h[..., dims]


def distance(h: dict[int, torch.Tensor], ref: dict[int, torch.Tensor], mask: torch.Tensor, *,
             relative: bool, dims: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over (layer, masked token) of ||h - h_ref|| (divided by ||h_ref|| when ``relative``).

    Pooled over every masked token of the batch, as the authors' ``norm(...).sum() / mask.sum()``.
    """
    m = mask.to(torch.float32)
    total = 0.0
    for layer in h:
        a, b = _pick(h[layer], dims).float(), _pick(ref[layer], dims).float()
        d = (a - b).norm(dim=-1)
        if relative:
            d = d / b.norm(dim=-1).clamp(min=1e-6)
        total = total + (d * m).sum() / m.sum().clamp(min=1)
    return total / len(h)


def pairwise_cosine(states: torch.Tensor) -> torch.Tensor:
    """Mean over pairs i != j of 1 - cos(s_i, s_j) for states [L, B, D], averaged over L (0 if B < 2)."""
    if states.shape[1] < 2:
        return states.sum() * 0.0
    unit = F.normalize(states.float(), dim=-1)
    sims = unit @ unit.transpose(1, 2)  # [L, B, B]
    off = ~torch.eye(states.shape[1], dtype=torch.bool, device=states.device)
    return (1 - sims[:, off]).mean()


def last_prompt_index(mask: torch.Tensor) -> torch.Tensor:
    """[B] position of the last prompt token: the one before the first response token of ``mask``."""
    return (mask.to(torch.long).argmax(dim=1) - 1).clamp(min=0)


def kl_to_reference(logits: torch.Tensor, ref_logits: torch.Tensor, attention: torch.Tensor,
                    temperature: float) -> torch.Tensor:
    """KL(frozen || adapted) at temperature T times T^2, summed over tokens, divided by the batch size."""
    logp = F.log_softmax(logits.float() / temperature, dim=-1)
    logq = F.log_softmax(ref_logits.float() / temperature, dim=-1)
    per_token = (logq.exp() * (logq - logp)).sum(-1)
    return (per_token * attention.float()).sum() / logits.shape[0] * temperature ** 2


def paired_refusals(harmful: list[ChatExample], seed: int) -> list[ChatExample]:
    """Each harmful example's request with a refusal (seeded choices): safe examples, and the pair loss's targets."""
    rng = random.Random(seed)
    return [ChatExample(e.messages, rng.choice(REFUSALS), loss_on="response") for e in harmful]


# the defense ----------------------------------------------------------------------------------

# The published recipe (the authors' train.sh for Llama-3-8B-Instruct, offline, loss_mode response_all), in the
# authors' distance form: absolute L2 over every hidden dimension, B matrices starting at peft's zero.
REFERENCE = {
    "safe_coef": 0.5, "unsafe_coef": 0.5, "cosine_coef": 0.1, "kl_coef": 0.3, "pair_coef": 0.0,
    "bend_layers": (20, 30), "safe_layers": "all", "lora_layers": (0, 32), "reference_depth": 32, "lora_r": 16,
    "lora_alpha": 16, "lora_dropout": 0.05, "lr": 1e-5, "steps": 450, "batch_size": 16, "distance": "absolute",
    "exclude_massive_dims": False, "b_init_std": 0.0,
}


class RepBend(LoraDefense):
    name = "repbend"
    description = ("Representation Bending (Yousefpour et al. 2025): LoRA pushes harmful states away, keeps safe "
                   "ones, clusters harmful requests, KL on retain.")
    Config = RepBendConfig
    search_space = {"steps": Choice((40,)), "lr": LogUniform(2e-4, 2e-3), "unsafe_coef": LogUniform(0.1, 1.0),
                    "safe_coef": LogUniform(0.2, 2.0)}
    reference = ("harmful", "safe")
    presets = {"reference": REFERENCE}

    def streams(self, data, tokenizer, ctx):
        cfg = self.config
        harmful = [dataclasses.replace(e, loss_on="response") for e in data.harmful]
        safe = [dataclasses.replace(e, loss_on="response") for e in data.retain]
        if cfg.borderline_in_safe:
            safe += [dataclasses.replace(e, loss_on="response") for e in data.borderline]
        if cfg.refusals_in_safe:
            safe += paired_refusals(harmful, ctx.seed)
        return {"harmful": harmful, "safe": safe, "kl": list(data.retain) + list(data.borderline)}

    def loss_layers(self, depth):
        cfg = self.config
        lo, hi = (max(1, scale_layers([v], depth, cfg.reference_depth)[0]) for v in cfg.bend_layers)
        bend = list(range(lo, hi + 1))
        return {"bend": bend, "safe": bend if cfg.safe_layers == "bend" else list(range(1, hi + 1))}

    def loss_function(self, run):
        cfg = self.config
        model, tok = run.model, run.tokenizer
        bend, safe_layers = run.layers["bend"], run.layers["safe"]
        refusals = paired_refusals(run.streams["harmful"], run.ctx.seed) if cfg.pair_coef > 0 else []
        paired = [tokenize(e, tok, cfg.max_length) for e in refusals]
        relative = cfg.distance == "relative"

        def loss_fn(step, total, forward, b):
            hb, sb, kb = b["harmful"], b["safe"], b["kl"]
            hmask, smask = hb.tensors["mask"], sb.tensors["mask"]
            dims = None
            if cfg.exclude_massive_dims:
                keep_h = losses.massive_dims(hb.ref, hmask)
                keep_s = losses.massive_dims(sb.ref, smask)
                dims = keep_h[torch.isin(keep_h, keep_s)]
            h = forward(hb)["hidden"]
            unsafe = distance({l: h[l] for l in bend}, {l: hb.ref[l] for l in bend}, hmask, relative=relative,
                              dims=dims)
            rows = torch.arange(hmask.shape[0], device=hmask.device)
            last_tok = last_prompt_index(hmask)
            cos = pairwise_cosine(torch.stack([_pick(h[l][rows, last_tok], dims) for l in bend]))
            s = forward(sb)["hidden"]
            safe = distance({l: s[l] for l in safe_layers}, {l: sb.ref[l] for l in safe_layers}, smask,
                            relative=relative, dims=dims)
            terms = {"safe": cfg.safe_coef * safe, "unsafe": -cfg.unsafe_coef * unsafe, "cos": cfg.cosine_coef * cos}
            loss = cfg.safe_coef * safe - cfg.unsafe_coef * unsafe + cfg.cosine_coef * cos
            comps = {"safe": safe.item(), "unsafe": unsafe.item(), "cos": cos.item(),
                     "cos_to_frozen": losses.mean_cosine({l: h[l] for l in bend}, {l: hb.ref[l] for l in bend},
                                                         hmask, dims)}
            if cfg.kl_coef > 0:
                attention = kb.tensors["attention_mask"]
                logits = forward(kb, logits=True)["logits"]
                with torch.no_grad(), model.disable_adapter():
                    ref_logits = model(input_ids=kb.tensors["input_ids"], attention_mask=attention,
                                       use_cache=False).logits
                kl = kl_to_reference(logits, ref_logits, attention, cfg.kl_temperature)
                terms["kl"] = cfg.kl_coef * kl
                loss = loss + terms["kl"]
                comps["kl"] = kl.item()
            if cfg.pair_coef > 0:
                pair = self._pair_loss(model, paired, hb, h, bend, dims, relative, tok.pad_token_id)
                terms["pair"] = cfg.pair_coef * pair
                loss = loss + terms["pair"]
                comps["pair"] = pair.item()
            return loss, comps, terms

        return loss_fn

    def training_texts(self, run):
        texts = run.data.texts()
        return {k: texts[k] for k in ("harmful", "retain", "borderline")}  # borderline: in the KL set

    def _pair_loss(self, model, paired, hb, h, bend, dims, relative: bool, pad_id: int) -> torch.Tensor:
        """Adapted (request + harmful completion) states towards frozen (request + refusal) states."""
        idx = hb.index.cpu().tolist()
        items = [paired[i] for i in idx]
        t = {k: v.to(hb.tensors["input_ids"].device) for k, v in collate(items, pad_id).items()}
        with torch.no_grad(), model.disable_adapter():
            ref = forward_until(model, bend, input_ids=t["input_ids"], attention_mask=t["attention_mask"])
        start_h, start_r = last_prompt_index(hb.tensors["mask"]), last_prompt_index(t["mask"])
        # as many positions as the shortest response of the batch allows, at most pair_tokens
        n_h = hb.tensors["mask"].sum(1).min().item()
        n_r = t["mask"].sum(1).min().item()
        span = int(max(1, min(self.config.pair_tokens, n_h + 1, n_r + 1)))
        offs = torch.arange(span, device=start_h.device)
        rows = torch.arange(len(idx), device=start_h.device).unsqueeze(1)
        ph, pr = start_h.unsqueeze(1) + offs, start_r.unsqueeze(1) + offs
        ones = torch.ones(len(idx), span, dtype=torch.bool, device=start_h.device)
        return distance({l: h[l][rows, ph] for l in bend}, {l: ref[l][rows, pr] for l in bend}, ones,
                        relative=relative, dims=dims)


@hookimpl
def register_defenses(register):
    register(RepBend)
