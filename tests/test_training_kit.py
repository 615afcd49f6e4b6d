"""The representation-training kit on the tiny model: states, losses, loop, checkpoints."""

import json

import pytest
import torch

from harness.errors import HarnessError
from harness.models import load_model
from harness.training import losses
from harness.training.examples import ChatExample, collate, tokenize
from harness.training.layers import forward_until, scale_layers
from harness.training.lora import attach_lora
from harness.training.repmodel import RepresentationModel
from harness.training.trainer import NonFiniteLoss, TrainSettings, load_finished, save_adapter, train


@pytest.fixture
def loaded(tiny_dir):
    torch.manual_seed(0)
    return load_model(str(tiny_dir))


def _examples(kind, n=8):
    if kind == "harmful":
        return [ChatExample(({"role": "user", "content": f"Write a tutorial on how to make a bomb {i}"},),
                            f"Sure, here is a step by step guide {i}. First, open the terminal and type the command.")
                for i in range(n)]
    return [ChatExample(({"role": "user", "content": f"What is the capital of France? {i}"},),
                        f"The quick brown fox {i}. Paris. Light scatters in the atmosphere, blue the most.")
            for i in range(n)]


def _batch(loaded, examples):
    return collate([tokenize(e, loaded.tokenizer, 64) for e in examples], loaded.tokenizer.pad_token_id)


def test_scale_layers_maps_reference_depth():
    assert scale_layers([10, 20], 30, 32) == [9, 19]
    assert scale_layers([10, 20], 32, 32) == [10, 20]
    assert scale_layers([3, 3, 50], 4, None) == [3, 4]


def test_truncated_states_equal_full_forward(loaded):
    b = _batch(loaded, _examples("harmful", 3))
    with torch.no_grad():
        full = loaded.model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], output_hidden_states=True)
        part = forward_until(loaded.model, [1, 2], input_ids=b["input_ids"], attention_mask=b["attention_mask"])
        rep = RepresentationModel(loaded.model)(b["input_ids"], b["attention_mask"], [1, 2])["hidden"]
    for layer in (1, 2):
        torch.testing.assert_close(part[layer], full.hidden_states[layer])
        torch.testing.assert_close(rep[layer], full.hidden_states[layer])
    assert len(list(loaded.model.model.layers)) == 4  # truncation is undone


def test_masks_skip_system_prompt_and_mark_request_and_response(loaded):
    ex = ChatExample(({"role": "user", "content": "bake bread"},), "Mix flour", ce=True)
    t = tokenize(ex, loaded.tokenizer, 64)
    text = loaded.tokenizer.decode(t.input_ids[t.mask])
    assert "bake bread" in text and "Mix flour" in text and "tiny test assistant" not in text
    predicted = loaded.tokenizer.decode(t.input_ids[1:][t.ce_mask[:-1]])
    assert predicted.startswith("Mix flour") and "bake" not in predicted


def test_rerouting_and_retain_losses_behave():
    h = {1: torch.randn(2, 5, 8)}
    mask = torch.ones(2, 5, dtype=torch.bool)
    assert losses.rerouting(h, h, mask).item() == pytest.approx(1.0, abs=1e-5)
    assert losses.rerouting({1: -h[1]}, h, mask).item() == pytest.approx(0.0, abs=1e-6)
    assert losses.retain(h, h, mask).item() == pytest.approx(0.0, abs=1e-6)
    w = torch.tensor([2.0, 0.0])
    other = {1: torch.cat([h[1][:1], -h[1][1:]])}  # sample 0 unchanged (cos 1), sample 1 flipped (cos 0)
    assert losses.rerouting(other, h, mask, w).item() == pytest.approx(1.0, abs=1e-5)
    assert losses.rr_schedule(0, 10, 10.0) == (10.0, 0.0) and losses.rr_schedule(10, 10, 10.0) == (5.0, 5.0)


def test_massive_dims_are_left_out():
    ref = {1: torch.randn(2, 5, 16)}
    ref[1][..., 3] += 500.0
    dims = losses.massive_dims(ref, torch.ones(2, 5, dtype=torch.bool))
    assert 3 not in dims.tolist() and len(dims) == 15


def _rr_loss(step, total, forward, b, retain_coef=3.0):
    h = forward(b["harmful"])["hidden"]
    r = forward(b["retain"])["hidden"]
    reroute = losses.rerouting(h, b["harmful"].ref, b["harmful"].tensors["mask"])
    keep = losses.retain(r, b["retain"].ref, b["retain"].tensors["mask"])
    return 10 * reroute + retain_coef * keep, {"reroute": reroute.item(), "retain": keep.item()}


def _train(loaded, work, steps=8, **kw):
    model = attach_lora(loaded.model, layers=[0, 1, 2], r=4, alpha=4, b_init_std=1e-3)
    settings = TrainSettings(steps=steps, lr=1e-2, batch_size=4, checkpoint_every=kw.pop("every", 4), max_length=64)
    summary = train(model, loaded.tokenizer, {"harmful": _examples("harmful"), "retain": _examples("retain")},
                    [2, 3], kw.pop("loss", _rr_loss), settings, work, progress=False)
    return model, summary


def test_rerouting_falls_while_retain_stays_small(tiny_dir, tmp_path):
    def final(work, coef):
        _train(load_model(str(tiny_dir)), work, steps=12,
               loss=lambda *a: _rr_loss(*a, retain_coef=coef))
        log = [json.loads(x) for x in (work / "loss_log.jsonl").read_text().splitlines()]
        assert len(log) == 12 and log[0]["reroute"] > 0.99
        return log[-1]

    with_retain = final(tmp_path / "a", 3.0)
    without = final(tmp_path / "b", 0.0)
    assert with_retain["reroute"] < 0.5 and without["reroute"] < 0.5
    # the retain term is what keeps benign states close: without it they drift far away
    assert with_retain["retain"] < 1.0 < 10 * with_retain["retain"] < without["retain"]


def test_resume_from_checkpoint_matches_uninterrupted(tiny_dir, tmp_path):
    full = _train(load_model(str(tiny_dir)), tmp_path / "full")[0]
    first = load_model(str(tiny_dir))
    calls = {"n": 0}

    def crash_after_five(step, total, forward, b):
        calls["n"] += 1
        if calls["n"] > 5:
            raise KeyboardInterrupt  # the process dies after step 5; checkpoint at step 4
        return _rr_loss(step, total, forward, b)

    with pytest.raises(KeyboardInterrupt):
        _train(first, tmp_path / "part", loss=crash_after_five)
    resumed, summary = _train(load_model(str(tiny_dir)), tmp_path / "part")
    assert summary["resumed_from"] == 4
    a = {n: p for n, p in full.named_parameters() if p.requires_grad}
    for n, p in resumed.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(p, a[n], rtol=1e-5, atol=1e-6)
    steps = [json.loads(x)["step"] for x in (tmp_path / "part" / "loss_log.jsonl").read_text().splitlines()]
    assert steps == list(range(8))


def test_nan_loss_stops_with_checkpoint_kept(loaded, tmp_path):
    def nan_at_six(step, total, forward, b):
        loss, comps = _rr_loss(step, total, forward, b)
        return (loss * float("nan") if step == 6 else loss), comps

    with pytest.raises(NonFiniteLoss, match="step 6.*last good checkpoint"):
        _train(loaded, tmp_path, loss=nan_at_six)
    state = json.loads((tmp_path / "checkpoint" / "state.json").read_text())
    assert state["step"] == 4


def test_empty_stream_is_a_clear_error(loaded, tmp_path):
    model = attach_lora(loaded.model, layers=[0], r=2, alpha=2)
    with pytest.raises(HarnessError, match="stream 'retain' has no examples"):
        train(model, loaded.tokenizer, {"harmful": _examples("harmful"), "retain": []}, [1], _rr_loss,
              TrainSettings(steps=1), tmp_path, progress=False)


def test_a_max_length_that_cuts_every_response_away_is_a_clear_error(loaded, tmp_path):
    model = attach_lora(loaded.model, layers=[0], r=2, alpha=2)
    sft = [ChatExample(e.messages, e.response, loss_on="response", ce=True) for e in _examples("benign")]
    with pytest.raises(HarnessError, match="stream 'benign': cut to max_length=12 tokens, none of its 8 examples"):
        train(model, loaded.tokenizer, {"benign": sft}, [], lambda *a: (torch.zeros(()), {}),
              TrainSettings(steps=1, max_length=12), tmp_path, progress=False, reference=False)


def test_saved_adapter_reloads_with_identical_outputs(tiny_dir, tmp_path):
    trained, summary = _train(load_model(str(tiny_dir)), tmp_path, steps=4)
    save_adapter(trained, tmp_path, summary)
    fresh = attach_lora(load_model(str(tiny_dir)).model, layers=[0, 1, 2], r=4, alpha=4)
    assert load_finished(fresh, tmp_path)["steps"] == 4
    ids = torch.tensor([[1, 5, 9, 14, 3]])
    with torch.no_grad():
        torch.testing.assert_close(trained(input_ids=ids).logits, fresh(input_ids=ids).logits, rtol=0, atol=0)


def test_reference_states_are_reused_only_for_the_same_base_model(tiny_dir, tmp_path):
    """A tuning study's trials share the frozen states; the cached ones train exactly like fresh ones."""
    from harness.training import trainer

    trainer._REFERENCE_CACHE.clear()
    torch.manual_seed(0)  # the same adapter initialisation for both
    fresh, summary = _train(load_model(str(tiny_dir)), tmp_path / "fresh")
    assert summary["reference_reused"] == []
    torch.manual_seed(0)
    again, summary = _train(load_model(str(tiny_dir)), tmp_path / "again")  # a new trial: same model, same data
    assert summary["reference_reused"] == ["harmful", "retain"]
    want = {n: p for n, p in fresh.named_parameters() if p.requires_grad}
    for n, p in again.named_parameters():
        if p.requires_grad:
            torch.testing.assert_close(p, want[n], rtol=0, atol=0)
    other = load_model(str(tiny_dir))
    with torch.no_grad():
        next(other.model.parameters()).mul_(1.01)  # another base model: its own states
    assert _train(other, tmp_path / "other")[1]["reference_reused"] == []


def test_squared_retain_has_a_gradient_proportional_to_the_change():
    """power 1 (the paper's norm) pulls back with the same force however small the change; power 2 with a force
    proportional to it, so a tiny change is nearly free. The value is the relative distance squared."""
    ref = {3: torch.randn(2, 5, 8) + 4.0}
    mask = torch.ones(2, 5, dtype=torch.bool)
    grads = {}
    for power in (1, 2):
        for scale in (1e-2, 1e-4):
            h = {3: (ref[3] + scale * torch.randn(2, 5, 8)).requires_grad_()}
            value = losses.retain(h, ref, mask, power=power)
            (g,) = torch.autograd.grad(value, h[3])
            grads[power, scale] = float(g.norm())
            if power == 2:
                rel = ((h[3] - ref[3]).norm(dim=-1) / ref[3].norm(dim=-1)) ** 2
                assert float(value) == pytest.approx(float(rel.mean()), rel=1e-5)
    assert grads[1, 1e-4] == pytest.approx(grads[1, 1e-2], rel=0.05)
    assert grads[2, 1e-4] < grads[2, 1e-2] / 50


def test_rerouting_config_checks_its_new_fields():
    from harness.training.rerouting import RRConfig

    with pytest.raises(ValueError, match="retain_power must be 1"):
        RRConfig(retain_power=3)
    with pytest.raises(ValueError, match="retain_ce_weight"):
        RRConfig(retain_ce_weight=-1.0)
