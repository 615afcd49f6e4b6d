"""Capability scoring through lm-eval on the real local data, with the tiny random model.

The tiny model's scores are noise, so these tests check the plumbing: every task scores
exactly ``limit`` seeded documents, metrics are in range, adapters and system prompts reach the
model, errors name what to fix, and (with a stub LM that knows the answers) that each YAML maps
its data to the right gold answer.
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import pytest

from benchmarks.lm_eval_tasks import FOLDER as TASK_DIR
from benchmarks.lm_eval_tasks import TASKS as CAPABILITY_TASKS
from harness.capability import capability_data_files, run_capability, task_data_files

LIMIT = 5
ACCURACY = {"acc", "acc_norm", "exact_match"}


@pytest.fixture(scope="module")
def cap_data_dir() -> Path:
    path = Path(os.environ.get("HARNESS_DATA_DIR") or Path(__file__).resolve().parents[2] / "shared" / "data")
    if not path.is_dir():
        pytest.fail(f"data folder {path} not found; set HARNESS_DATA_DIR to the dataset mirror")
    return path


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory) -> Path:
    from harness.tiny import tiny_model_dir

    return tiny_model_dir(tmp_path_factory.mktemp("cache"))




def _load(folder):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    return AutoModelForCausalLM.from_pretrained(folder), AutoTokenizer.from_pretrained(folder)


@pytest.fixture(scope="module")
def tiny_hf(tiny_folder):
    return _load(tiny_folder)


@pytest.fixture(scope="module")
def report(tiny_hf, cap_data_dir):
    model, tok = tiny_hf
    model.train()  # run_capability must hand it back in the mode it found it
    out = run_capability(model, tok, list(CAPABILITY_TASKS), cap_data_dir, limit=LIMIT, batch_size=4)
    assert model.training
    return out


def _value(report, task, metric):
    return report["tasks"][task]["metrics"][metric]["value"]


def test_every_task_scores_limit_docs_with_metrics_in_range(report):
    import lm_eval

    assert set(report["tasks"]) == set(CAPABILITY_TASKS)
    for task, res in report["tasks"].items():
        assert res["n"] == LIMIT, task
        ids = res["doc_ids"]
        assert ids == sorted(set(ids)) and len(ids) == LIMIT and ids[-1] < res["n_available"], task
        assert res["lm_eval_version"] == lm_eval.__version__
        assert set(res["data_files_sha256"]) == set(task_data_files(task))
        assert all(len(h) == 64 for h in res["data_files_sha256"].values())
        assert len(res["config_sha256"]) == 64
        assert res["chat_template"] is (res["output_type"] != "multiple_choice")
        for name, m in res["metrics"].items():
            if name in ACCURACY:
                assert 0.0 <= m["value"] <= 1.0, (task, name, m)
    assert 0.0 <= _value(report, "harness_truthfulqa_mc2", "acc") <= 1.0
    bpb = _value(report, "harness_benign_loglik", "bits_per_byte")
    assert math.isfinite(bpb) and bpb > 0
    lpb = report["tasks"]["harness_benign_loglik"]["metrics"]["logprob_per_byte"]
    assert lpb["value"] < 0 and lpb["stderr"] is not None and lpb["stderr"] > 0
    assert report["prompt_rule"] and report["limit"] == LIMIT


def test_subset_is_deterministic_and_follows_the_seed(tiny_hf, cap_data_dir, report):
    model, tok = tiny_hf
    tasks = ["harness_mmlu", "harness_benign_loglik"]
    again = run_capability(model, tok, tasks, cap_data_dir, limit=LIMIT, batch_size=4)
    for task in tasks:
        assert again["tasks"][task]["doc_ids"] == report["tasks"][task]["doc_ids"]
        assert again["tasks"][task]["metrics"] == report["tasks"][task]["metrics"]
    other = run_capability(model, tok, ["harness_mmlu"], cap_data_dir, limit=LIMIT, seed=1)
    assert other["tasks"]["harness_mmlu"]["doc_ids"] != report["tasks"]["harness_mmlu"]["doc_ids"]


def test_lora_adapter_is_in_force(tiny_folder, cap_data_dir, report):
    from peft import LoraConfig, get_peft_model

    def score(init_lora_weights):
        import torch

        base, tok = _load(tiny_folder)
        torch.manual_seed(0)  # the random LoRA weights
        cfg = LoraConfig(r=8, lora_alpha=256, target_modules=["q_proj", "v_proj", "down_proj"],
                         init_lora_weights=init_lora_weights)
        out = run_capability(get_peft_model(base, cfg), tok, ["harness_benign_loglik"], cap_data_dir, limit=LIMIT, batch_size=4)
        res = out["tasks"]["harness_benign_loglik"]
        assert res["doc_ids"] == report["tasks"]["harness_benign_loglik"]["doc_ids"]  # paired comparison
        return res["metrics"]["logprob_per_byte"]["value"]

    bare = _value(report, "harness_benign_loglik", "logprob_per_byte")
    # Default init has B = 0: the adapter is the identity, so the score must not move...
    assert score(True) == pytest.approx(bare, abs=1e-6)
    # ...while a random, non-zero B must move it: the adapter is what gets scored.
    moved = score(False)
    assert abs(moved - bare) > 1e-3, (moved, bare)


def test_system_prompt_reaches_the_model_and_is_recorded(tiny_hf, cap_data_dir, report):
    model, tok = tiny_hf
    tasks = ["harness_benign_loglik", "harness_mmlu"]
    out = run_capability(model, tok, tasks, cap_data_dir, limit=LIMIT, system_prompt="Answer carefully.")
    assert out["system_prompt"] == "Answer carefully."
    assert out["tasks"]["harness_benign_loglik"]["system_prompt_mode"] == "chat_system_message"
    assert out["tasks"]["harness_mmlu"]["system_prompt_mode"] == "plain_text_prefix"
    with_sp = _value(out, "harness_benign_loglik", "logprob_per_byte")
    assert with_sp != _value(report, "harness_benign_loglik", "logprob_per_byte")


def test_unknown_task_lists_the_known_ones(tiny_hf, cap_data_dir):
    with pytest.raises(ValueError) as err:
        run_capability(*tiny_hf, ["mmlu"], cap_data_dir, limit=2)
    assert all(t in str(err.value) for t in CAPABILITY_TASKS)


def test_missing_data_file_is_named(tiny_hf, tmp_path):
    (tmp_path / "gsm8k").mkdir()
    with pytest.raises(FileNotFoundError, match=r"gsm8k/test\.jsonl.*HARNESS_DATA_DIR"):
        run_capability(*tiny_hf, ["harness_gsm8k"], tmp_path, limit=2)


def test_builtin_tasks_are_registered_through_an_entry_point():
    from harness.plugins import plugins

    registry = plugins().capability_tasks
    assert registry.names() == sorted(CAPABILITY_TASKS)
    assert registry.entry("harness_mmlu").plugin == "capability-tasks"
    assert registry.get("harness_mmlu").folder == TASK_DIR


def test_harness_list_shows_the_capability_tasks(capsys):
    from harness.cli import main

    assert main(["list", "capability-tasks"]) == 0
    listed = capsys.readouterr().out
    assert all(t in listed for t in CAPABILITY_TASKS) and "generate_until" in listed


def test_data_file_listing_matches_the_yamls_and_the_data(cap_data_dir):
    assert set(CAPABILITY_TASKS) == {p.stem for p in TASK_DIR.glob("*.yaml")}
    files = capability_data_files()
    assert set(files) == set(CAPABILITY_TASKS)
    assert len(files["harness_mmlu"]) == 57
    assert files["harness_benign_loglik"] == ("alpaca_seed_tasks/seed_tasks.jsonl",)
    for rels in files.values():
        assert all((cap_data_dir / r).is_file() for r in rels)


def _gold(task: str, doc: dict) -> int:
    """The correct option, computed from the raw fields independently of the YAMLs."""
    if task == "harness_mmlu":
        return int(doc["answer"])
    if task == "harness_arc_challenge":
        return [o["label"] for o in doc["options"]].index(doc["answer"])
    return doc["mc1_labels"].index(1)


@pytest.mark.parametrize("task", CAPABILITY_TASKS)
def test_yaml_scores_an_oracle_perfectly(task, cap_data_dir):
    """A stub LM that knows the answers must get full marks: the YAML maps data to gold."""
    import lm_eval
    from lm_eval.api.model import LM
    from lm_eval.tasks import TaskManager

    class Oracle(LM):
        def loglikelihood(self, requests):
            out = []
            for r in requests:
                if task == "harness_benign_loglik":
                    out.append((-float(len(r.args[1].encode())), True))  # exactly -1 nat per byte
                elif task == "harness_truthfulqa_mc2":
                    out.append((0.0 if r.doc["mc2_labels"][r.idx] else -60.0, True))
                else:
                    out.append((0.0 if r.idx == _gold(task, r.doc) else -5.0, True))
            return out

        def loglikelihood_rolling(self, requests):
            raise NotImplementedError

        def generate_until(self, requests):
            return [f"3 + 4 = 7 steps.\nThe answer is ${r.doc['answer'].split('####')[-1].strip()}." for r in requests]

    manager = TaskManager(include_path=str(TASK_DIR), include_defaults=False, metadata={"data_dir": str(cap_data_dir)})
    out = lm_eval.simple_evaluate(model=Oracle(), tasks=[task], task_manager=manager, limit=20, log_samples=False)
    res = out["results"][task]
    if task == "harness_benign_loglik":
        assert res["logprob_per_byte,none"] == pytest.approx(-1.0)
        assert res["bits_per_byte,none"] == pytest.approx(1 / math.log(2))
    else:
        score = {k: v for k, v in res.items() if k.split(",")[0] in ACCURACY | {"acc"} and "stderr" not in k}
        assert score and all(v == pytest.approx(1.0, abs=1e-6) for v in score.values()), res


def test_mc2_scorer_is_stable_for_very_unlikely_answers():
    spec = importlib.util.spec_from_file_location("harness_lm_eval_utils", TASK_DIR / "utils.py")
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    doc = {"mc2_labels": [1, 0, 0]}
    lls = [(math.log(0.5) - 2000, False), (math.log(0.25) - 2000, False), (math.log(0.25) - 2000, False)]
    assert utils.process_results_mc2(doc, lls)["acc"] == pytest.approx(0.5)
