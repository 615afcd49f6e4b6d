"""Loss pieces for representation defenses, each a function of hidden states and masks.

All take per-layer hidden states ``{layer: [B, T, D]}`` of the adapted model and of the frozen
reference, a token mask ``[B, T]`` and optional per-sample weights ``[B]``; token means are
taken per sample first, so long and short examples count the same.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

Hidden = dict[int, torch.Tensor]


def _per_sample_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """[B, T] values -> [B] mean over masked tokens (0 for a sample with no masked token)."""
    m = mask.to(values.dtype)
    return (values * m).sum(-1) / m.sum(-1).clamp(min=1)


def _weighted_mean(per_sample: torch.Tensor, weights: torch.Tensor | None) -> torch.Tensor:
    if weights is None:
        return per_sample.mean()
    return (per_sample * weights).sum() / weights.sum().clamp(min=1e-8)


def _select(h: torch.Tensor, dims: torch.Tensor | None) -> torch.Tensor:
    return h if dims is None else h[..., dims]


def _pool(values: torch.Tensor, mask: torch.Tensor, weights: torch.Tensor | None, pooling: str) -> torch.Tensor:
    """[B, T] per-token values -> one number. ``sample``: each sample's mean over its masked tokens, then the
    (weighted) mean over samples, so a long example weighs as much as a short one. ``token``: every masked token
    of the batch weighs the same (Circuit Breakers' code: a sum over masked positions over their count)."""
    if pooling == "sample":
        return _weighted_mean(_per_sample_mean(values, mask), weights)
    m = mask.to(values.dtype)
    if weights is not None:
        m = m * weights.to(values.dtype).unsqueeze(-1)
    return (values * m).sum() / m.sum().clamp(min=1e-8)


def rerouting(h: Hidden, ref: Hidden, mask: torch.Tensor, weights: torch.Tensor | None = None,
              dims: torch.Tensor | None = None, pooling: str = "sample") -> torch.Tensor:
    """Mean ReLU(cos(h, h_ref)) over the layers of ``h``: pushes representations away from where they were (RR)."""
    total = 0.0
    for layer in h:
        cos = F.cosine_similarity(_select(h[layer], dims), _select(ref[layer], dims).to(h[layer].dtype), dim=-1)
        total = total + _pool(F.relu(cos), mask, weights, pooling)
    return total / len(h)


def retain(h: Hidden, ref: Hidden, mask: torch.Tensor, *, relative: bool = True,
           dims: torch.Tensor | None = None, power: int = 1, pooling: str = "sample") -> torch.Tensor:
    """Mean L2 distance to the reference: keeps benign representations where they were.

    ``relative`` divides by the reference norm per token, so massive-activation positions
    (on the default 135M model, norms of ~25,000 against a median of ~220 at layer 20) do not
    dominate the loss.

    ``power`` 1 is Circuit Breakers' norm, whose gradient has the same size however small the change: with
    any retain weight it holds the unchanged model in place against the rerouting term, whose gradient vanishes
    there (cos is at its maximum). ``power`` 2, the squared distance, has a gradient proportional to the change,
    so both terms start at second order and the retain weight decides which changes may grow.
    """
    total = 0.0
    for layer in h:
        a, b = _select(h[layer], dims), _select(ref[layer], dims).to(h[layer].dtype)
        dist = (a - b).norm(dim=-1)
        if relative:
            dist = dist / b.norm(dim=-1).clamp(min=1e-6)
        if power != 1:
            dist = dist ** power
        total = total + _pool(dist, mask, None, pooling)
    return total / len(h)


def cross_entropy(logits: torch.Tensor, input_ids: torch.Tensor, ce_mask: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy on the positions ``ce_mask`` marks (position t predicts t+1)."""
    target = torch.roll(input_ids, -1, dims=1)
    losses = F.cross_entropy(logits.transpose(1, 2).float(), target, reduction="none")
    m = ce_mask.float()
    return (losses * m).sum() / m.sum().clamp(min=1)


def mean_cosine(h: Hidden, ref: Hidden, mask: torch.Tensor, dims: torch.Tensor | None = None) -> float:
    """The mean cosine similarity to the reference (a progress signal: 1.0 = unchanged)."""
    with torch.no_grad():
        vals = [
            _per_sample_mean(F.cosine_similarity(_select(h[l], dims), _select(ref[l], dims).to(h[l].dtype), dim=-1),
                             mask).mean()
            for l in h
        ]
    return float(torch.stack(vals).mean())


def relative_distance(h: Hidden, ref: Hidden, mask: torch.Tensor, dims: torch.Tensor | None = None) -> float:
    """The mean of ||h - h_ref|| / ||h_ref|| (a progress signal: 0 = unchanged, 1 = as far as the state's own
    norm, where collapsed states end up), whatever distance a loss uses."""
    with torch.no_grad():
        return float(retain(h, ref, mask, relative=True, dims=dims))


def rr_schedule(step: int, total: int, alpha: float) -> tuple[float, float]:
    """Circuit Breakers' coefficients: c_s = a(1 - t/2T) on rerouting, c_r = a t/2T on retain."""
    frac = step / (2 * max(total, 1))
    return alpha * (1 - frac), alpha * frac


def massive_dims(ref: Hidden, mask: torch.Tensor, factor: float = 20.0) -> torch.Tensor:
    """Indices of the hidden dimensions that are *not* massive activations.

    A dimension whose mean |activation| over masked tokens exceeds ``factor`` times the median
    dimension's is left out of cosine and distance terms, which it would otherwise dominate.
    """
    m = mask.unsqueeze(-1).float()
    scores = []
    for layer in ref:
        mean_abs = (ref[layer].abs().float() * m).sum((0, 1)) / m.sum().clamp(min=1)
        scores.append(mean_abs / mean_abs.median().clamp(min=1e-8))
    worst = torch.stack(scores).max(0).values
    return torch.nonzero(worst <= factor).flatten()
