"""MOSR: representation rerouting with Overlap-Aware Loss Weighting and Context-Aware Augmentation.

This is the project's reconstruction from the paper's abstract and figure captions (arXiv
2511.19009): every choice below is a config field. MOSR is a defense of the Circuit Breakers
family: the training kit's representation rerouting (``harness.training.rerouting``) with two
parts added.

- **OALW.** Before training, the frozen model's prompt representations (user tokens mean-pooled
  at the target layers, massive dimensions left out, centred) of every harmful training prompt
  are compared with a pool of pseudo-malicious prompts (benign prompts that look harmful: the
  OR-Bench retain prompts). A harmful sample's overlap s_i is the mean of its top-k cosine
  similarities to the pool, averaged over layers; its rerouting weight is exp(-s_i / T),
  normalised to mean 1. Samples deep in harmful territory are erased hard; those next to
  benign-but-scary prompts gently, so erasing them does not drag the neighbours along.
- **CAA.** Refusal examples whose refusal comes *after* the first k tokens of a harmful
  completion (k drawn from a range; refusals from a varied set). They join the retain side:
  the retain distance on the refusal tokens, and cross-entropy on them, so the model learns to
  refuse from harmful content in context rather than from scary words in the request. The
  harmful prefix and the request are masked out of both terms.

MOSR's point is less over-refusal: a reconstruction that refuses benign prompts is wrong, not a
trade-off. The ablations ``mosr-no-oalw`` and ``mosr-no-caa`` are the same defense with one
part off.

What the trajectories showed on the default model (leaderboards/operating-points): with the paper's norm retain
term in force from step 1 the rerouting cosine never left 1.000, so every change came from CAA's refusal
cross-entropy, which sees only harmful requests: the tuned studies' MOSR refused nearly everything. Two fields of
the training kit change that: ``retain_power = 2`` lets the rerouting term act (see ``harness.training.rerouting``)
and ``retain_ce_weight`` puts the retain set's own answers under cross-entropy, the output-side counterweight the
abstract's "reduce over-refusal" needs. With both (the ``squared-retain`` preset: retain cross-entropy weight 2)
validation ASR fell from 0.949 to 0.692 (exact McNemar p = 0.002) at harmless compliance 0.938 and borderline
over-refusal 0.031 (undefended 0.062); at weight 1 ASR fell to 0.333 but harmless compliance to 0.875. The
ablations take the same preset.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from harness import hookimpl
from harness.search import LogUniform
from harness.training import losses
from harness.training.examples import ChatExample, collate, tokenize
from harness.training.layers import forward_until
from harness.training.refusals import REFUSALS
from harness.training.rerouting import RR_SEARCH_SPACE, ReroutingDefense, RRConfig


@dataclass
class MosrConfig(RRConfig):
    oalw: bool = True
    oalw_top_k: int = 8  # neighbours in the pseudo-malicious pool that define the overlap
    oalw_temperature: float = 0.1  # T in exp(-s/T): lower spreads the weights further
    caa: bool = True
    caa_examples: int = 64  # CAA examples built from the harmful set
    caa_prefix_min: int = 4  # tokens of harmful completion before the refusal (inclusive range)
    caa_prefix_max: int = 24
    caa_ce_weight: float = 1.0  # cross-entropy on the refusal tokens (0: retain distance only)

    def __post_init__(self):
        super().__post_init__()
        if self.oalw_temperature <= 0:
            raise ValueError("oalw_temperature must be positive")
        if not 0 <= self.caa_prefix_min <= self.caa_prefix_max:
            raise ValueError("need 0 <= caa_prefix_min <= caa_prefix_max")


def pooled_prompts(model, tokenizer, prompts: list[str], layers: list[int], batch_size: int = 16,
                   max_length: int = 128) -> torch.Tensor:
    """[N, layers, D] frozen-model states mean-pooled over each prompt's user tokens."""
    out = []
    device = next(model.parameters()).device
    with torch.no_grad():
        for i in range(0, len(prompts), batch_size):
            items = [tokenize(ChatExample(({"role": "user", "content": p},), ""), tokenizer, max_length)
                     for p in prompts[i : i + batch_size]]
            batch = {k: v.to(device) for k, v in collate(items, tokenizer.pad_token_id).items()}
            hidden = forward_until(model, layers, input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            m = batch["mask"].unsqueeze(-1).float()
            out.append(torch.stack([(hidden[l].float() * m).sum(1) / m.sum(1).clamp(min=1) for l in layers], 1))
    return torch.cat(out).cpu()


def overlap_weights(harmful: torch.Tensor, pool: torch.Tensor, top_k: int, temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """OALW: (weights [N] with mean 1, overlaps s [N]) from pooled states [N, L, D] and [M, L, D].

    States are centred on the mean of both sets per layer (otherwise every cosine is close to 1,
    from what all prompts share); massive dimensions should already be left out.
    """
    centre = torch.cat([harmful, pool]).mean(0, keepdim=True)
    a = F.normalize(harmful - centre, dim=-1)
    b = F.normalize(pool - centre, dim=-1)
    sims = torch.einsum("nld,mld->lnm", a, b)  # [L, N, M]
    k = min(top_k, b.shape[0])
    s = sims.topk(k, dim=-1).values.mean(-1).mean(0)  # [N]
    w = torch.exp(-s / temperature)
    return w / w.mean(), s


def caa_examples(harmful: list[ChatExample], tokenizer, n: int, kmin: int, kmax: int, seed: int) -> list[ChatExample]:
    """Refusals after a harmful prefix: request; assistant: first k tokens of the completion, refusal."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ex = harmful[rng.randrange(len(harmful))]
        ids = tokenizer(ex.response, add_special_tokens=False).input_ids
        k = min(rng.randint(kmin, kmax), len(ids))
        prefix = tokenizer.decode(ids[:k]).rstrip()
        refusal = rng.choice(REFUSALS)
        response = f"{prefix} {refusal}" if prefix else refusal
        # the masks start at the token that begins the refusal (with its leading space)
        out.append(ChatExample(ex.messages, response, loss_on="response", skip_response_chars=len(prefix), ce=True,
                               meta={"prefix_tokens": k}))
    return out


# The recipe that beats none on the default model (leaderboards/operating-points, run mosr-sq-rce2-lr1e-3).
SQUARED_RETAIN = {"retain_power": 2, "schedule": "constant", "retain_coef": 1.0, "lr": 1e-3, "steps": 80,
                  "caa_ce_weight": 0.367, "retain_ce_weight": 2.0}


class Mosr(ReroutingDefense):
    name = "mosr"
    description = "RR + Overlap-Aware Loss Weighting + Context-Aware Augmentation (reconstruction of arXiv 2511.19009)."
    Config = MosrConfig
    # RR's space plus the weight of CAA's refusal cross-entropy; the ablations search the same space
    search_space = {**RR_SEARCH_SPACE, "caa_ce_weight": LogUniform(0.1, 1.0)}
    presets = {"squared-retain": SQUARED_RETAIN}

    def streams(self, data, tokenizer, ctx):
        streams = super().streams(data, tokenizer, ctx)
        cfg = self.config
        if cfg.caa:
            streams["caa"] = caa_examples(data.harmful, tokenizer, cfg.caa_examples, cfg.caa_prefix_min,
                                          cfg.caa_prefix_max, seed=cfg.caa_examples)
        return streams

    def prepare(self, loaded, data, layers):
        """OALW's rerouting weights, from the frozen model's prompt states at the target layers."""
        cfg = self.config
        if not cfg.oalw:
            return None
        prompts = [e.messages[-1]["content"] for e in data.harmful]
        h = pooled_prompts(loaded.model, loaded.tokenizer, prompts, layers["targets"])
        p = pooled_prompts(loaded.model, loaded.tokenizer, data.pseudo_malicious, layers["targets"])
        if cfg.exclude_massive_dims:
            scale = torch.cat([h, p]).abs().mean((0, 1))
            keep = scale <= 20 * scale.median()
            h, p = h[..., keep], p[..., keep]
        weights, _ = overlap_weights(h, p, cfg.oalw_top_k, cfg.oalw_temperature)
        return weights

    def extra_loss(self, step, total, forward, batches, layers, dims, c_retain):
        cfg = self.config
        if "caa" not in batches:
            return torch.zeros(()), {}
        cb = batches["caa"]
        out = forward(cb, logits=cfg.caa_ce_weight > 0)
        keep = losses.retain({l: out["hidden"][l] for l in layers}, {l: cb.ref[l] for l in layers},
                             cb.tensors["mask"], relative=cfg.retain_distance == "relative", dims=dims,
                             power=cfg.retain_power, pooling=cfg.loss_pooling)
        loss = c_retain * keep
        comps = {"caa_retain": keep.item()}
        if cfg.caa_ce_weight > 0:
            ce = losses.cross_entropy(out["logits"], cb.tensors["input_ids"], cb.tensors["ce_mask"])
            loss = loss + cfg.caa_ce_weight * ce
            comps["caa_ce"] = ce.item()
        return loss, comps


@dataclass
class MosrNoOalwConfig(MosrConfig):
    oalw: bool = False


@dataclass
class MosrNoCaaConfig(MosrConfig):
    caa: bool = False


class MosrNoOalw(Mosr):
    name = "mosr-no-oalw"
    description = "MOSR ablation: Overlap-Aware Loss Weighting off (uniform rerouting weights)."
    Config = MosrNoOalwConfig


class MosrNoCaa(Mosr):
    name = "mosr-no-caa"
    description = "MOSR ablation: Context-Aware Augmentation off (no refusal-after-harmful-prefix examples)."
    Config = MosrNoCaaConfig


@hookimpl
def register_defenses(register):
    register(Mosr)
    register(MosrNoOalw)
    register(MosrNoCaa)
