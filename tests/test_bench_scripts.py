"""The measuring scripts under bench/ run end to end in their tiny modes, and train_step's check is real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from bench import train_step as ts  # noqa: E402


@pytest.fixture(scope="module")
def runs(tmp_path_factory, data_dir, tiny_dir):
    """Start the three scripts at once (one torch thread each) and collect their outputs."""
    out = tmp_path_factory.mktemp("bench")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONWARNINGS": "ignore"}
    commands = {
        "eval_speed": ["bench/eval_speed.py", "--quick", "--model", "tiny-random-llama", "--data-dir", str(data_dir),
                       "--threads", "1", "--out", str(out / "eval_speed.json")],
        "train_step": ["bench/train_step.py", "--model", "tiny-random-llama", "--steps", "2", "--seq", "32",
                       "--threads", "1", "--out", str(out / "train_step.json")],
        "gpu_check": ["bench/gpu_check.py", "--device", "cpu", "--small", "--threads", "1",
                      "--out", str(out / "gpu_check.json")],
    }
    procs = {name: subprocess.Popen([sys.executable, *cmd], cwd=REPO, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.STDOUT, text=True)
             for name, cmd in commands.items()}
    results = {}
    for name, proc in procs.items():
        try:
            stdout, _ = proc.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            proc.kill()
            stdout, _ = proc.communicate()
        results[name] = (proc.returncode, stdout, out / f"{name}.json")
    return results


def _ok(runs, name):
    rc, stdout, path = runs[name]
    assert rc == 0, f"{name} exited {rc}:\n{stdout[-3000:]}"
    return stdout, json.loads(path.read_text())


def test_eval_speed_quick_prints_its_figures(runs):
    stdout, fig = _ok(runs, "eval_speed")
    for name in ("prompts/s", "tokens/s", "speed-up batched/plain", "target >= 8x", "identical responses",
                 "target >= 95%", "throughput vs batch size"):
        assert name in stdout, name
    assert fig["n"] == 8 and [r["batch_size"] for r in fig["sweep"]] == [1, 4, 8]
    assert fig["plain"]["tokens"] > 0 and fig["batched"]["tokens"] > 0
    assert 0.0 <= fig["identical"] <= 1.0


def test_train_step_prints_its_figures(runs):
    stdout, fig = _ok(runs, "train_step")
    for name in ("loss check:", "-> match", "plain step:", "project step:", "steps/s", "speed-up project/plain",
                 "target >= 1.8x", "peak memory plain", "peak memory project"):
        assert name in stdout, name
    assert fig["check"]["match"] and fig["check"]["rel_diff"] <= 1e-5
    assert len(fig["times_s"]["plain"]) == len(fig["times_s"]["project"]) == 2
    assert all("peak_rss_mib" in fig["memory"][v] for v in ("plain", "project"))


def test_gpu_check_small_on_cpu(runs):
    stdout, fig = _ok(runs, "gpu_check")
    for name in ("gpu_check:", "torch", "generate batch", "prompts/s", "tokens/s", "RR loss check", "train step",
                 "speed-up", "all sections ran"):
        assert name in stdout, name
    assert fig["ok"] and fig["environment"]["torch"] == torch.__version__
    for entry in fig["models"].values():
        assert [r["batch_size"] for r in entry["generation"]] == [1, 4]
        assert entry["training"]["check"]["match"]


def test_loss_comparison_is_strict():
    assert ts.losses_match(1.2345678, 1.2345678 * (1 + 1e-7))
    assert not ts.losses_match(1.2345678, 1.2345678 * (1 + 1e-4))
    assert not ts.losses_match(1.0, float("nan"))
    assert ts.losses_match(1.0, 1.005, torch.bfloat16) and not ts.losses_match(1.0, 1.05, torch.bfloat16)


def test_check_same_loss_fails_when_one_variant_is_perturbed(tiny_dir):
    from harness.models import load_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a tiny model: more threads only wait on each other on a shared machine
    try:
        _perturbed_check(load_model(str(tiny_dir), device="cpu"))
    finally:
        torch.set_num_threads(threads)


def _perturbed_check(loaded):
    plan = ts.rr_plan(loaded.model.config.num_hidden_layers)
    model = ts.attach(loaded.model, plan)
    data = ts.random_data(loaded.model.config.vocab_size, 2, 24, loaded.tokenizer.pad_token_id)
    same = ts.check_same_loss(model, plan, data, "cpu")
    assert same["match"] and same["plain_loss"] == pytest.approx(same["project_loss"], rel=1e-6)
    with pytest.raises(ts.LossMismatch):
        ts.check_same_loss(model, plan, data, "cpu", perturb=0.05)
    # the perturbation is undone: the unperturbed check passes again
    assert ts.check_same_loss(model, plan, data, "cpu")["match"]
