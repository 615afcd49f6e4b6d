"""The baseline defenses on the tiny model: refusal SFT, RepBend and the refusal direction."""

import dataclasses
import json

import pytest
import torch

from harness import contamination
from harness.data import DataResolver
from harness.defense import DefendedModel, DefenseContext
from harness.generation import GenerationSettings, generate_texts, render_prompt
from harness.models import load_model
from harness.pipeline import training_judge
from harness.training import losses
from harness.training.examples import ChatExample, collate, tokenize
from harness.training.layers import forward_until
from harness.training.refusals import REFUSALS
from harness.training.trainsets import build
from defenses.refusal_direction import RefusalDirection, RefusalDirectionConfig
from defenses.refusal_sft import RefusalSFT, RefusalSFTConfig
from defenses.repbend import RepBend, RepBendConfig, kl_to_reference, last_prompt_index, pairwise_cosine

SMALL = dict(n_harmful_self=4, n_many_shot=4, n_retain=4, n_borderline=4, completion_tokens=8)




@pytest.fixture(scope="module")
def benchmarks():
    from harness.plugins import plugins

    return {n: e.obj for n, e in plugins().benchmarks.items.items()}


def _judge(data_dir):
    from harness.plugins import plugins

    return training_judge(plugins(), DataResolver(data_dir))


def _ctx(work, data_dir, benchmarks):
    return DefenseContext(work_dir=work, resolver=DataResolver(data_dir), model_key="tiny", benchmarks=benchmarks,
                          progress=False, training_judge=_judge(data_dir))


@pytest.fixture(scope="module")
def data(tiny_dir, data_dir, benchmarks):
    loaded = load_model(str(tiny_dir))
    return build("tiny", DefendedModel(loaded.model, loaded.tokenizer), DataResolver(data_dir), benchmarks,
                 RefusalSFTConfig(**SMALL), judge=_judge(data_dir), progress=False)


def _nll(model, tok, examples):
    items = [tokenize(dataclasses.replace(e, ce=True, loss_on="response"), tok, 128) for e in examples]
    b = collate(items, tok.pad_token_id)
    with torch.no_grad():
        logits = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"]).logits
    return losses.cross_entropy(logits, b["input_ids"], b["ce_mask"]).item()


def _logits(model, tok, text="<|im_start|>user\nHow do I bake bread?<|im_end|>\n<|im_start|>assistant\n"):
    ids = tok(text, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        return model(**ids).logits


# refusal SFT -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def sft(tiny_dir, data_dir, benchmarks, tmp_path_factory, data):
    work = tmp_path_factory.mktemp("refusal-sft")
    cfg = RefusalSFTConfig(steps=10, lr=3e-2, n_refusal=8, **SMALL)
    defended = RefusalSFT(cfg).apply(load_model(str(tiny_dir)), _ctx(work, data_dir, benchmarks))
    return cfg, work, defended


def test_refusal_sft_makes_refusals_likelier_on_harmful_prompts(tiny_dir, sft, data):
    _, work, defended = sft
    base = load_model(str(tiny_dir))
    prompts = [q for _, q in defended.training_texts["refusal"]][:6]
    refusals = [ChatExample(({"role": "user", "content": p},), r) for p in prompts for r in REFUSALS[:4]]
    compliance = [ChatExample(({"role": "user", "content": p},), "Sure, here is a step by step guide. First, open "
                              "the terminal and type the command.") for p in prompts]
    tok = base.tokenizer
    gain_refusal = _nll(base.model, tok, refusals) - _nll(defended.model, tok, refusals)
    gain_compliance = _nll(base.model, tok, compliance) - _nll(defended.model, tok, compliance)
    assert gain_refusal > 0.1  # measured: 0.18 nats, against 0.03 for a compliant answer
    assert gain_refusal > 3 * gain_compliance  # it learned refusals, not just common tokens
    log = [json.loads(line) for line in (work / "loss_log.jsonl").read_text().splitlines()]
    assert len(log) == 10 and log[-1]["ce_refusal"] < log[0]["ce_refusal"]
    assert set(defended.training_texts) == {"refusal", "retain", "borderline"}
    assert defended.info["examples"]["refusal"] == 8


def test_refusal_sft_examples_train_the_response_only(tiny_dir, data):
    from defenses.refusal_sft import refusal_examples

    tok = load_model(str(tiny_dir)).tokenizer
    a = refusal_examples(data.harmful_requests, 5, seed=3)
    assert a == refusal_examples(data.harmful_requests, 5, seed=3) and len(a) == 5
    assert all(e.response in REFUSALS and e.ce for e in a)
    t = tokenize(a[0], tok, 1024)
    predicted = tok.decode(t.input_ids[1:][t.ce_mask[:-1]])
    assert predicted.startswith(a[0].response) and a[0].messages[0]["content"] not in predicted


def test_saved_adapter_reloads_to_identical_outputs(tiny_dir, data_dir, benchmarks, sft):
    cfg, work, defended = sft
    lines = (work / "loss_log.jsonl").read_text()
    again = RefusalSFT(cfg).apply(load_model(str(tiny_dir)), _ctx(work, data_dir, benchmarks))
    assert (work / "loss_log.jsonl").read_text() == lines  # nothing was trained again
    assert torch.equal(_logits(again.model, again.tokenizer), _logits(defended.model, defended.tokenizer))
    assert not torch.equal(_logits(load_model(str(tiny_dir)).model, again.tokenizer),
                           _logits(again.model, again.tokenizer))


# RepBend -----------------------------------------------------------------------------------------

def test_repbend_loss_pieces():
    same = torch.randn(2, 1, 8).expand(2, 3, 8)
    assert pairwise_cosine(same).item() == pytest.approx(0.0, abs=1e-6)
    ortho = torch.eye(3).unsqueeze(0)
    assert pairwise_cosine(ortho).item() == pytest.approx(1.0, abs=1e-6)
    assert pairwise_cosine(torch.randn(2, 1, 8)).item() == 0.0
    logits = torch.randn(2, 5, 11)
    attention = torch.ones(2, 5)
    assert kl_to_reference(logits, logits, attention, 2.0).item() == pytest.approx(0.0, abs=1e-6)
    assert kl_to_reference(logits, logits.flip(-1), attention, 2.0).item() > 0
    mask = torch.tensor([[0, 0, 0, 1, 1, 0], [0, 0, 0, 0, 0, 1]], dtype=torch.bool)
    assert last_prompt_index(mask).tolist() == [2, 4]


def _states(model, tok, examples, layers):
    b = collate([tokenize(e, tok, 128) for e in examples], tok.pad_token_id)
    with torch.no_grad():
        out = model(input_ids=b["input_ids"], attention_mask=b["attention_mask"], output_hidden_states=True)
    return {l: out.hidden_states[l] for l in layers}, b["mask"]


def test_repbend_bends_harmful_states_and_keeps_safe_ones(tiny_dir, data_dir, benchmarks, tmp_path, data):
    cfg = RepBendConfig(steps=10, lr=3e-3, pair_coef=0.1, **SMALL)
    defended = RepBend(cfg).apply(load_model(str(tiny_dir)), _ctx(tmp_path, data_dir, benchmarks))
    bend = defended.info["layers"]["bend"]
    assert bend == [2, 3, 4]  # layers 20-30 of 32, scaled to the tiny model's 4
    log = [json.loads(line) for line in (tmp_path / "loss_log.jsonl").read_text().splitlines()]
    assert {"safe", "unsafe", "cos", "kl", "pair"} <= set(log[0])
    base, tok = load_model(str(tiny_dir)), defended.tokenizer
    harmful = [dataclasses.replace(e, loss_on="response") for e in data.harmful]
    h_ref, h_mask = _states(base.model, tok, harmful, bend)
    h_new, _ = _states(defended.model, tok, harmful, bend)
    assert losses.mean_cosine(h_new, h_ref, h_mask) < 0.95  # harmful states bent (measured 0.89)
    # on the streams it trains on, harmful states move away much further than safe ones
    # (last step, measured: unsafe 0.53 vs safe 0.21 relative distance)
    assert log[-1]["unsafe"] > 2 * log[-1]["safe"] and log[-1]["unsafe"] > 5 * log[0]["unsafe"]


# refusal direction -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def direction(tiny_dir, data_dir, benchmarks, tmp_path_factory):
    work = tmp_path_factory.mktemp("refusal-direction")
    loaded = load_model(str(tiny_dir))
    defended = RefusalDirection(RefusalDirectionConfig(n_prompts=8)).apply(loaded, _ctx(work, data_dir, benchmarks))
    return work, loaded, defended


def test_direction_is_unit_norm_cached_and_decontaminated(tiny_dir, data_dir, benchmarks, direction):
    from safetensors.torch import load_file

    work, loaded, defended = direction
    info = defended.info
    assert info["layer"] == 2 and info["direction_norm"] == pytest.approx(1.0, abs=1e-5)
    stored = load_file(info["cache"])
    assert stored["direction"].norm().item() == pytest.approx(1.0, abs=1e-5)
    assert stored["diff"].norm().item() == pytest.approx(info["diff_norm"], rel=1e-5)
    assert info["added_norm"] == pytest.approx(info["diff_norm"], rel=1e-5)  # strength 1, scale "diff"
    again = RefusalDirection(RefusalDirectionConfig(n_prompts=8, strength=3.0)).apply(
        load_model(str(tiny_dir)), _ctx(work, data_dir, benchmarks))
    assert again.info["cached"] and again.info["cache"] == info["cache"]
    assert again.info["added_norm"] == pytest.approx(3 * info["diff_norm"], rel=1e-5)
    # harmful_train holds AdvBench behaviours: they were dropped before any was used
    assert info["data"]["harmful_train"]["dropped"] >= 100
    evals = {n: [(s.id, s.prompt) for s in b.samples(DataResolver(data_dir))] for n, b in benchmarks.items()
             if b.category != "capability"}
    assert contamination.check(defended.training_texts, evals) == {}
    assert {k: len(v) for k, v in defended.training_texts.items()} == {"harmful": 8, "harmless": 8}


def test_direction_hooks_change_logits_only_while_active(direction):
    _, loaded, defended = direction
    before = _logits(defended.model, defended.tokenizer)
    with defended.hooks():
        during = _logits(defended.model, defended.tokenizer)
        with defended.hooks():  # nested entry adds nothing more
            nested = _logits(defended.model, defended.tokenizer)
    after = _logits(defended.model, defended.tokenizer)
    assert not torch.equal(before, during)
    assert torch.equal(during, nested)
    assert torch.equal(before, after)  # bit-identical once the hooks are removed


def test_direction_strength_scales_the_added_vector(tiny_dir, data_dir, benchmarks, direction):
    work, loaded, defended = direction
    layer = defended.info["layer"]
    tok = defended.tokenizer
    ids = tok("<|im_start|>user\nhello there<|im_end|>\n", return_tensors="pt", add_special_tokens=False)

    def shift(d):
        plain = forward_until(d.model, [layer], **ids)[layer]
        with d.hooks():
            hooked = forward_until(d.model, [layer], **ids)[layer]
        return hooked - plain

    one = shift(defended)
    two = shift(RefusalDirection(RefusalDirectionConfig(n_prompts=8, strength=2.0)).apply(
        load_model(str(tiny_dir)), _ctx(work, data_dir, benchmarks)))
    from safetensors.torch import load_file

    unit = load_file(defended.info["cache"])["direction"]
    expected = unit * defended.info["diff_norm"]
    torch.testing.assert_close(one, expected.expand_as(one), rtol=1e-4, atol=1e-6)  # every position
    torch.testing.assert_close(two, 2 * one, rtol=1e-4, atol=1e-6)


def test_direction_hooks_are_in_force_during_generation(tiny_dir, data_dir, benchmarks, direction):
    work = direction[0]
    loaded = load_model(str(tiny_dir))
    cfg = RefusalDirectionConfig(n_prompts=8, scale="activation", strength=20.0, span="onward")
    defended = RefusalDirection(cfg).apply(loaded, _ctx(work, data_dir, benchmarks))
    plain = DefendedModel(loaded.model, loaded.tokenizer)
    prompts = [render_prompt(plain, [{"role": "user", "content": p}]) for p in ("How do I bake bread?", "Hi")]
    settings = GenerationSettings(max_new_tokens=6)

    def run(d):
        return sorted(x for batch in generate_texts(d, prompts, settings, progress=False) for x in batch)

    assert run(defended) != run(plain)
    assert run(plain) == run(DefendedModel(loaded.model, loaded.tokenizer))


def test_empty_answers_of_the_undefended_model_say_why_there_is_no_retain_set(tiny_dir, data_dir, benchmarks,
                                                                                monkeypatch, tmp_path):
    from harness.errors import HarnessError
    from harness.training import trainsets

    monkeypatch.setattr(trainsets, "_complete", lambda defended, prompts, *a, **k: [""] * len(prompts))
    cfg = {**SMALL, "n_retain": "6", "steps": "1", "borderline_in_benign": "false"}
    from harness.config import build_config

    defense = RefusalSFT(build_config(RefusalSFTConfig, cfg, "refusal-sft"))
    ctx = _ctx(tmp_path, data_dir, benchmarks)
    ctx.seed = 991  # a training-set cache of its own
    with pytest.raises(HarnessError, match="training stream 'benign' of defense 'refusal-sft' has no examples. Empty "
                                           "training sets: retain: the undefended model answered every one of the 6 "
                                           "harmless instructions it was asked with an empty string"):
        defense.apply(load_model(str(tiny_dir)), ctx)
