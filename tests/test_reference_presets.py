"""The baselines' ``reference`` presets reproduce their papers' recipes: the loss recomputed from the published
equations on a fixed batch matches the defense's loss at that preset."""

from __future__ import annotations

from dataclasses import asdict

import pytest
import torch

from harness.errors import HarnessError
from harness.pipeline import resolve_defense
from harness.plugins import plugins
from harness.training.lora_defense import LoraRun
from harness.training.trainer import Batch


def _circuit_breakers_paper_loss(step, h, ref, hr, refr, mask, rmask, targets, alpha=10.0):
    """Zou et al. 2024 (their training code): c_r = a t/300, c_s = a (1 - t/300);
    L_cb = sum over target layers and masked tokens of ReLU(<h/|h|, h_ref/|h_ref|>) / (number of such pairs);
    L_retain = mean over every hidden state and token of ||h - h_ref||_2 (states multiplied by the mask)."""
    progress = step / 300
    c_r, c_s = alpha * progress, alpha * (1 - progress)
    lay = torch.stack([h[l] for l in targets])
    orig = torch.stack([ref[l] for l in targets])
    m = mask.repeat(len(targets), 1, 1).unsqueeze(-1).float()
    inner = (lay / lay.norm(dim=-1, keepdim=True) * orig / orig.norm(dim=-1, keepdim=True)) * m
    cb = torch.relu(inner.sum(-1)).sum() / m.sum()
    layers = sorted(hr)
    rm = rmask.repeat(len(layers), 1, 1).unsqueeze(-1).float()
    lora_r = torch.stack([hr[l] for l in layers]) * rm
    orig_r = torch.stack([refr[l] for l in layers]) * rm
    retain = torch.norm(lora_r - orig_r, dim=-1, p=2).mean()
    return c_r * retain + c_s * cb


def test_circuit_breakers_reference_preset_is_the_papers_loss():
    p = plugins()
    entry, cfg = resolve_defense(p, "circuit-breakers", {}, preset="reference")
    assert (cfg.lr, cfg.steps, cfg.batch_size, cfg.alpha, cfg.schedule) == (1e-4, 150, 16, 10.0, "rr")
    defense = entry.obj(cfg)
    depth = 32  # the paper's model: layer numbers need no scaling
    groups = defense.loss_layers(depth)
    assert groups["targets"] == [10, 20] and groups["retain"] == list(range(0, 21))
    loss_fn = defense.loss_function(LoraRun(None, None, None, None, {}, groups, None))
    gen = torch.Generator().manual_seed(0)
    B, T, D = 3, 7, 16
    layers = sorted(set(groups["targets"]) | set(groups["retain"]))
    ref = {l: torch.randn(B, T, D, generator=gen) for l in layers}
    # harmful states moved away a little at the targets, retain states moved a little everywhere; one large
    # dimension too, which the preset must not leave out
    ref[20][..., 3] += 50.0
    h = {l: ref[l] + 0.3 * torch.randn(B, T, D, generator=gen) for l in layers}
    refr = {l: torch.randn(B, T, D, generator=gen) for l in layers}
    hr = {l: refr[l] + 0.1 * torch.randn(B, T, D, generator=gen) for l in layers}
    mask = torch.ones(B, T, dtype=torch.bool)
    mask[1, :2] = False  # the request's template tokens, say: left out of both
    rmask = torch.ones(B, T, dtype=torch.bool)
    hb = Batch({"mask": mask}, ref, torch.arange(B))
    rb = Batch({"mask": rmask}, refr, torch.arange(B))

    def forward(batch, logits=False):
        return {"hidden": h if batch is hb else hr}

    for step in (0, 40, 149):
        loss, comps, _ = loss_fn(step, 150, forward, {"harmful": hb, "retain": rb})
        expected = _circuit_breakers_paper_loss(step, h, ref, {l: hr[l] for l in groups["retain"]},
                                                {l: refr[l] for l in groups["retain"]}, mask, rmask,
                                                groups["targets"])
        assert float(loss) == pytest.approx(float(expected), rel=1e-5)


def test_the_default_config_is_not_the_reference_and_set_overrides_a_preset():
    p = plugins()
    _, default = resolve_defense(p, "circuit-breakers", {})
    _, ref = resolve_defense(p, "circuit-breakers", {"lr": "3e-4"}, preset="reference")
    assert asdict(default) != asdict(ref) and ref.lr == 3e-4 and ref.retain_distance == "absolute"
    with pytest.raises(HarnessError, match="has no preset 'paper'; its presets: reference"):
        resolve_defense(p, "circuit-breakers", {}, preset="paper")


@pytest.mark.parametrize("defense", ["mosr", "mosr-no-oalw", "mosr-no-caa"])
def test_mosr_and_its_ablations_share_the_squared_retain_preset(defense):
    _, cfg = resolve_defense(plugins(), defense, {}, preset="squared-retain")
    assert (cfg.retain_power, cfg.schedule, cfg.retain_ce_weight) == (2, "constant", 2.0)
    assert cfg.oalw == (defense != "mosr-no-oalw") and cfg.caa == (defense != "mosr-no-caa")
