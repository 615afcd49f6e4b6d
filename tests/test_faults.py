"""Fault injection: runs SIGKILLed at named points resume with the same command and end where an
uninterrupted run ends; damaged files are refused with a clear message; out-of-memory errors halve
the batch size. The kills are real (``HARNESS_FAULT``, see harness/faults.py), in subprocesses.
"""

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch

from harness.errors import HarnessError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SMALL = ["steps=6", "checkpoint_every=2", "n_harmful_self=8", "n_many_shot=8", "n_retain=8", "n_borderline=8",
         "completion_tokens=8", "batch_size=2"]
SUITE = ('name = "faults"\nseed = 0\n[generation]\nmax_new_tokens = 4\nbatch_size = 2\n'
         '[[benchmarks]]\nname = "jbb-harmful"\nlimit = 4\n[[benchmarks]]\nname = "xstest-safe"\nlimit = 3\n'
         '[capability]\ntasks = ["harness_arc_challenge"]\nlimit = 2\n')


def _harness(args: list[str], fault: str | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "HARNESS_FAULT"} | {"OMP_NUM_THREADS": "1"}
    if fault:
        env["HARNESS_FAULT"] = fault
    return subprocess.run([sys.executable, "-m", "harness.cli", *args], env=env, cwd=REPO, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def command(tiny_dir, data_dir, tmp_path_factory) -> list[str]:
    suite = tmp_path_factory.mktemp("suite") / "faults.toml"
    suite.write_text(SUITE)
    sets = [x for kv in SMALL for x in ("--set", kv)]
    return ["run", "--model", str(tiny_dir), "--suite", str(suite), "--data-dir", str(data_dir),
            "--defense", "circuit-breakers", *sets, "--no-cache", "--no-progress"]


@pytest.fixture(scope="module")
def reference(command, tmp_path_factory):
    out = tmp_path_factory.mktemp("reference") / "run"
    proc = _harness([*command, "--out", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()] if path.is_file() else []


def _steps(out):
    return [r["step"] for r in _lines(out / "defense" / "loss_log.jsonl")]


def _ckpt_step(out):
    return json.loads((out / "defense" / "checkpoint" / "state.json").read_text())["step"]


# (fault, check of the folder the kill left); each kill hits the run that the previous kill left behind
CHAIN = [
    ("train.step:1", lambda o: not (o / "defense" / "checkpoint").exists() and _steps(o) == [0]),
    ("train.checkpoint:1", lambda o: _ckpt_step(o) == 2 and _steps(o) == [0, 1]),
    ("train.step:1", lambda o: _ckpt_step(o) == 2 and _steps(o) == [0, 1, 2]),  # mid-way between checkpoints
    ("train.swap:1", lambda o: not (o / "defense" / "checkpoint").exists()
     and (o / "defense" / "checkpoint.tmp").is_dir() and (o / "defense" / "checkpoint.old").is_dir()),
    ("generate.batch:2", lambda o: len(_lines(o / "records.jsonl")) == 4),
    ("capability.scored:1", lambda o: len(_lines(o / "records.jsonl")) == 7
     and not (o / "capability.json").exists() and not (o / "metrics.json").exists()),
    ("score.metrics:1", lambda o: (o / "metrics.json").is_file()
     and json.loads((o / "manifest.json").read_text())["status"] == "running"),
]


def test_a_run_killed_at_every_point_resumes_to_the_uninterrupted_result(command, reference, tmp_path):
    out = tmp_path / "run"
    for fault, check in CHAIN:
        proc = _harness([*command, "--out", str(out)], fault)
        assert proc.returncode == -signal.SIGKILL, (fault, proc.stderr[-3000:])
        assert check(out), fault
    proc = _harness([*command, "--out", str(out)])
    assert proc.returncode == 0, proc.stderr[-3000:]

    got, want = _lines(out / "records.jsonl"), _lines(reference / "records.jsonl")
    keys = [(r["benchmark"], r["id"]) for r in got]
    assert len(keys) == len(set(keys)) == len(want) == 7
    assert sorted(got, key=lambda r: (r["benchmark"], r["id"])) == sorted(want, key=lambda r: (r["benchmark"], r["id"]))
    assert json.loads((out / "metrics.json").read_text()) == json.loads((reference / "metrics.json").read_text())
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "complete" and manifest["resumed"] == len(CHAIN)
    assert manifest["defense"]["info"]["training"]["resumed_from"] == 4  # the interrupted swap was completed
    log, ref_log = _lines(out / "defense" / "loss_log.jsonl"), _lines(reference / "defense" / "loss_log.jsonl")
    assert [r["step"] for r in log] == list(range(6))
    for a, b in zip(log, ref_log):
        assert {k: v for k, v in a.items() if k != "elapsed_s"} == pytest.approx(
            {k: v for k, v in b.items() if k != "elapsed_s"}, rel=1e-5)


def test_records_corrupt_before_the_last_line_are_refused_untouched(command, reference, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference, out)
    lines = (out / "records.jsonl").read_text().splitlines(keepends=True)
    lines[2] = lines[2][:20] + "\n"
    (out / "records.jsonl").write_text("".join(lines))
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != ".lock"}
    proc = _harness([*command, "--out", str(out)])
    assert proc.returncode == 2
    assert "line 3 is not valid JSON" in proc.stderr and "Restore it or use a new --out" in proc.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file() and p.name != ".lock"} == before


def test_a_damaged_checkpoint_is_refused_and_kept(tiny_dir, tmp_path):
    from harness.models import load_model
    from harness.training.examples import ChatExample
    from harness.training.lora import attach_lora
    from harness.training.trainer import TrainSettings, train

    def attempt():
        loaded = load_model(str(tiny_dir))
        model = attach_lora(loaded.model, layers=[0, 1], r=2, alpha=2)
        examples = [ChatExample(({"role": "user", "content": f"question {i}"},), f"answer {i}") for i in range(4)]

        def loss(step, total, forward, b):
            out = forward(b["x"])["hidden"][2].pow(2).mean()
            return out, {"loss": out.item()}

        return train(model, loaded.tokenizer, {"x": examples}, [2], loss,
                     TrainSettings(steps=2, checkpoint_every=2, batch_size=2, max_length=32), tmp_path,
                     progress=False)

    attempt()
    weights = tmp_path / "checkpoint" / "adapter.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])  # a partial file
    with pytest.raises(HarnessError, match=r"checkpoint is damaged .*Remove that folder to train from the start"):
        attempt()
    assert weights.stat().st_size == 100


def _flaky_above(limit, call, size_of):
    """``call``, except that it runs out of memory for batches larger than ``limit``."""
    def wrapped(*args, **kwargs):
        if size_of(args, kwargs) > limit:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return call(*args, **kwargs)
    return wrapped


def test_generation_halves_the_batch_on_out_of_memory(tiny, monkeypatch, capsys):
    from harness.generation import GenerationSettings, generate_texts, render_prompt

    prompts = [render_prompt(tiny, [{"role": "user", "content": q}])
               for q in ["hi", "How can I kill a Python process?", "What is the capital of France?", "bake bread",
                         "Explain why the sky is blue.", "a", "Write a poem about the sea, please."]]
    settings = GenerationSettings(max_new_tokens=6, batch_size=8)
    want = {i: t for batch in generate_texts(tiny, prompts, settings, progress=False) for i, t in batch}
    monkeypatch.setattr(tiny.model, "generate", _flaky_above(2, tiny.model.generate,
                                                             lambda a, kw: kw["input_ids"].shape[0]))
    batches = list(generate_texts(tiny, prompts, settings, progress=False))
    assert {i: t for batch in batches for i, t in batch} == want
    assert [len(b) for b in batches] == [2, 2, 2, 1]
    err = capsys.readouterr().err
    assert "out of memory in generation at batch size 8; continuing at batch size 4" in err
    assert "at batch size 4; continuing at batch size 2" in err

    monkeypatch.setattr(tiny.model, "generate", _flaky_above(0, tiny.model.generate, lambda a, kw: 1))
    with pytest.raises(HarnessError, match="out of memory in generation even at batch size 1. Lower max_new_tokens"):
        list(generate_texts(tiny, prompts, settings, progress=False))


def test_capability_scoring_halves_the_batch_on_out_of_memory(tiny, data_dir, monkeypatch, capsys):
    import lm_eval

    from harness.capability import run_capability

    def score():
        return run_capability(tiny.model, tiny.tokenizer, ["harness_arc_challenge"], data_dir, limit=3, batch_size=8)

    want = score()["tasks"]["harness_arc_challenge"]
    monkeypatch.setattr(lm_eval, "simple_evaluate", _flaky_above(2, lm_eval.simple_evaluate,
                                                                 lambda a, kw: kw["model"].batch_size))
    got = score()["tasks"]["harness_arc_challenge"]
    assert got["batch_size"] == 2 and want["batch_size"] == 8
    assert {k: v["value"] for k, v in got["metrics"].items()} == pytest.approx(
        {k: v["value"] for k, v in want["metrics"].items()})
    assert "out of memory in lm-eval scoring of harness_arc_challenge at batch size 8" in capsys.readouterr().err

    monkeypatch.setattr(lm_eval, "simple_evaluate", _flaky_above(0, lm_eval.simple_evaluate, lambda a, kw: 1))
    with pytest.raises(HarnessError, match="even at batch size 1. Lower \\[capability\\] batch_size or limit"):
        score()
