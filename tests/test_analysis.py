"""The representation analysis (probe, logit lens) on the tiny model, undefended and from a run folder."""

import json

import numpy as np
import pytest
import torch

from harness.analysis.common import AnalysisRequest, last_states, prepare, prompt_sets
from harness.analysis.logitlens import logit_lens, token_sets
from harness.benchmark import Sample, user_turn
from harness.cli import main
from harness.data import DataResolver
from harness.defaults import ANALYSIS_OVER_REFUSAL as OVER_REFUSAL_BENCHMARKS
from harness.errors import HarnessError
from harness.pipeline import RunRequest, run
from harness.plugins import plugins

PNG = b"\x89PNG\r\n\x1a\n"




def test_probe_reports_every_layer_and_the_over_refusal_shares(tiny_dir, data_dir, tmp_path):
    out = tmp_path / "probe"
    assert main(["analyze", "probe", "--model", str(tiny_dir), "--data-dir", str(data_dir), "--n", "6",
                 "--out", str(out), "--no-progress"]) == 0
    result = json.loads((out / "probe.json").read_text())
    depth = 4
    assert result["layers"] == list(range(depth + 1))
    assert len(result["accuracy"]) == depth + 1 and all(0 <= a <= 1 for a in result["accuracy"])
    assert set(result["share_harmful"]) == {"benign", "harmful", *OVER_REFUSAL_BENCHMARKS}
    for shares in result["share_harmful"].values():
        assert len(shares) == depth + 1 and all(0 <= s <= 1 for s in shares)
    # at layer 0 the last prompt token is the same for every prompt (the assistant header): chance
    assert result["accuracy"][0] == 0.5
    assert result["prompts"]["sizes"]["train_harmful"] == 6 and result["prompts"]["sizes"]["orbench"] == 6
    assert "refusal_direction_splits/splits/harmful_test.json" in result["prompts"]["data_files"]
    for png in ("probe_accuracy.png", "probe_share_harmful.png"):
        assert (out / png).read_bytes()[:8] == PNG
    page = (out / "probe.md").read_text()
    assert "| layer" in page and "harmful share: xstest-safe" in page and "harness analyze probe" in page


def test_logit_lens_masses_are_probabilities_and_top_tokens_decode(tiny_dir, data_dir, tmp_path):
    out = tmp_path / "lens"
    assert main(["analyze", "logitlens", "--model", str(tiny_dir), "--data-dir", str(data_dir), "--n", "4",
                 "--out", str(out), "--no-progress"]) == 0
    result = json.loads((out / "logitlens.json").read_text())
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_dir)
    assert set(result["mass"]) == {"benign", "harmful", *OVER_REFUSAL_BENCHMARKS, "over-refusal (all)"}
    for m in result["mass"].values():
        assert len(m["refusal"]) == len(result["layers"]) == 5
        for r, c in zip(m["refusal"], m["compliance"]):
            assert 0 <= r <= 1 and 0 <= c <= 1 and r + c <= 1 + 1e-6
    for tops in result["top_tokens"].values():
        for layer in tops:
            assert len(layer) == 5
            assert [t["p"] for t in layer] == sorted((t["p"] for t in layer), reverse=True)
            assert all(0 < t["p"] <= 1 and t["token"] == tok.decode([t["id"]]) for t in layer)
    sets = result["token_sets"]
    assert not {t["id"] for t in sets["refusal"]} & {t["id"] for t in sets["compliance"]}
    for t in sets["refusal"] + sets["compliance"]:
        assert t["id"] == tok(t["word"], add_special_tokens=False).input_ids[0]
    assert (out / "logitlens_mass.png").read_bytes()[:8] == PNG
    assert "Top 5 tokens: harmful" in (out / "logitlens.md").read_text()


def test_states_ignore_padding_and_the_last_layer_lens_is_the_models_own_output(tiny, tiny_dir):
    samples = [Sample(id=str(i), messages=user_turn(t), harmful=False) for i, t in
               enumerate(["Hi", "How can I kill a Python process in the terminal?", "Explain why the sky is blue."])]
    batched = last_states(tiny, samples, batch_size=3)
    single = np.concatenate([last_states(tiny, [s], batch_size=1) for s in samples])
    assert batched.shape == (3, 5, tiny.model.config.hidden_size)
    assert np.allclose(batched, single, atol=1e-4)
    from harness.generation import render_prompt

    tokens = token_sets(tiny.tokenizer)
    refusal_ids = [t["id"] for t in tokens["refusal"]]
    for i, s in enumerate(samples):
        ids = tiny.tokenizer(render_prompt(tiny, list(s.messages)), return_tensors="pt", add_special_tokens=False)
        with torch.no_grad():
            probs = torch.softmax(tiny.model(**ids).logits[0, -1].float(), -1)
        lens = logit_lens(tiny, {"x": single[i:i + 1]}, tokens)  # one prompt: the mean is its own distribution
        top = lens["top_tokens"]["x"][-1][0]
        assert top["id"] == int(probs.argmax()) and abs(top["p"] - float(probs.max())) < 1e-5
        assert abs(lens["mass"]["x"]["refusal"][-1] - float(probs[refusal_ids].sum())) < 1e-5


def test_a_run_folders_trained_defense_is_reloaded_not_retrained(tiny_dir, data_dir, tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text('name = "a"\n[generation]\nmax_new_tokens = 2\n[[benchmarks]]\nname = "xstest-safe"\nlimit = 2\n')
    small = dict(n_harmful_self=4, n_many_shot=4, n_retain=4, n_borderline=4, completion_tokens=4, steps=3,
                 lr=3e-2, n_refusal=4)
    folder = run(RunRequest(model=str(tiny_dir), suite=str(suite), data_dir=data_dir, out=tmp_path / "run",
                            defense="refusal-sft", defense_config=small, progress=False), plugins())
    log = (folder / "defense" / "loss_log.jsonl").read_text()
    request = AnalysisRequest(run=folder, data_dir=data_dir, n=2, progress=False)
    defended, info = prepare(request, plugins())
    assert (folder / "defense" / "loss_log.jsonl").read_text() == log  # reloaded, not trained again
    assert info["defense"]["name"] == "refusal-sft" and info["defense"]["config"]["steps"] == 3
    assert info["run_id"] == json.loads((folder / "manifest.json").read_text())["run_id"]
    base, _ = prepare(AnalysisRequest(model=str(tiny_dir), data_dir=data_dir, n=2, progress=False), plugins())
    sets, _ = prompt_sets(request, plugins(), DataResolver(data_dir), include_train=False)
    assert not np.allclose(last_states(defended, sets["harmful"])[:, -1], last_states(base, sets["harmful"])[:, -1])
    # a run whose defense never finished is refused rather than trained here
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["defense"]["info"]
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(HarnessError, match="has not finished"):
        prepare(AnalysisRequest(run=folder, data_dir=data_dir), plugins())
    with pytest.raises(HarnessError, match="--run takes the defense"):
        prepare(AnalysisRequest(run=folder, defense="none", data_dir=data_dir), plugins())
