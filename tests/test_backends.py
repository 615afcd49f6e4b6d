"""Generation backends: the registry, the default transformers backend, vLLM's refusals and its lazy import."""

import contextlib
import json
import sys

import pytest

from harness.backend import Backend
from harness.cli import main
from harness.defaults import DEFAULT_BACKEND
from harness.defense import DefendedModel
from harness.errors import HarnessError
from harness.generation import GenerationSettings, generate_texts, render_prompt
from harness.pipeline import RunRequest, run
from harness.plugins import load_plugins, plugins

QUESTIONS = ["hi", "How can I kill a Python process?", "Explain why the sky is blue, in detail please.",
             "What is the capital of France?", "bake bread"]


def _collect(batches) -> dict[int, str]:
    out: dict[int, str] = {}
    for batch in batches:
        out.update(batch)
    return out


def test_builtin_backends_are_registered_through_entry_points():
    p = plugins()
    assert {"transformers", "vllm"} <= set(p.backends.names())
    assert p.backends.entry("transformers").distribution == "defense-harness"
    assert {"backend-transformers", "backend-vllm"} <= set(p.loaded)


def test_transformers_backend_equals_generate_texts(tiny):
    prompts = [render_prompt(tiny, [{"role": "user", "content": q}]) for q in QUESTIONS]
    settings = GenerationSettings(max_new_tokens=8, batch_size=3)
    backend = plugins().backends.get(DEFAULT_BACKEND)()
    batches = list(backend.generate(tiny, prompts, settings, progress=False))
    direct = list(generate_texts(tiny, prompts, settings, progress=False))
    assert batches == direct  # same batches, same order, same texts
    assert sorted(_collect(batches)) == list(range(len(prompts)))
    backend.close()


def test_unknown_backend_lists_the_known_ones(capsys):
    with pytest.raises(HarnessError) as err:
        plugins().backends.get("vlm")
    assert "Did you mean 'vllm'" in str(err.value) and "transformers" in str(err.value)
    assert main(["run", "--backend", "nope", "--model", "tiny-random-llama", "--no-progress"]) == 2
    msg = capsys.readouterr().err
    assert "unknown backend 'nope'" in msg and "transformers" in msg and "vllm" in msg


def test_list_backends(capsys):
    assert main(["list", "backends"]) == 0
    out = capsys.readouterr().out
    assert "transformers" in out and "vllm" in out and "pip install vllm" in out and "tensor_parallel_size" in out


def test_vllm_missing_names_the_install_command(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)  # `import vllm` now raises ImportError
    backend = plugins().backends.get("vllm")()
    with pytest.raises(HarnessError, match="pip install vllm"):
        backend.require()


def test_vllm_missing_fails_before_the_model_loads(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(HarnessError, match="pip install vllm"):
        run(RunRequest(model=str(tmp_path / "no-such-model"), backend="vllm", out=tmp_path / "r", progress=False),
            plugins())
    assert not (tmp_path / "r").exists()


def test_vllm_refuses_activation_hooks(tiny):
    backend = plugins().backends.get("vllm")()

    @contextlib.contextmanager
    def steer():
        yield

    with pytest.raises(HarnessError, match="activation hooks"):
        backend.check(DefendedModel(tiny.model, tiny.tokenizer, hooks=steer))
    handle = tiny.model.get_input_embeddings().register_forward_hook(lambda *a: None)
    try:
        with pytest.raises(HarnessError, match="forward hooks"):
            backend.check(DefendedModel(tiny.model, tiny.tokenizer))
    finally:
        handle.remove()
    backend.check(tiny)  # no hooks: accepted (and vllm is not imported for the check)


def test_vllm_refuses_the_refusal_direction_defense_shape(tiny):
    """refusal-direction returns DefendedModel(hooks=addition_hooks(...)): the shape the check must catch."""
    from defenses.refusal_direction import addition_hooks
    import torch

    hidden = tiny.model.config.hidden_size
    defended = DefendedModel(tiny.model, tiny.tokenizer, hooks=addition_hooks(tiny.model, 1, torch.zeros(hidden),
                                                                              "single"))
    with pytest.raises(HarnessError, match="--backend transformers"):
        plugins().backends.get("vllm")().check(defended)


class EchoBackend(Backend):
    name = "echo"
    description = "test backend: answers every prompt with a fixed refusal, two prompts per batch"

    def generate(self, defended, prompts, settings, *, desc="generating", progress=True):
        for start in range(0, len(prompts), 2):
            yield [(i, "I cannot help with that.") for i in range(start, min(start + 2, len(prompts)))]


def test_pipeline_uses_the_backend_and_keeps_the_default_run_id(tiny_dir, tiny_suite, data_dir, tmp_path):
    p = load_plugins()
    p.backends.add(EchoBackend, "test-echo", ("tests", "0"))
    common = dict(model=str(tiny_dir), suite=str(tiny_suite), data_dir=data_dir, runs_dir=tmp_path, progress=False,
                  use_cache=False)
    default = run(RunRequest(**common), p)
    echo = run(RunRequest(backend="echo", **common), p)
    m_default = json.loads((default / "manifest.json").read_text())
    m_echo = json.loads((echo / "manifest.json").read_text())
    assert "backend" not in m_default["identity"] and m_default["backend"]["name"] == "transformers"
    assert m_echo["identity"]["backend"] == "echo" and m_echo["backend"]["distribution"] == "tests"
    assert m_default["run_id"] != m_echo["run_id"]
    records = [json.loads(x) for x in (echo / "records.jsonl").read_text().splitlines()]
    assert len(records) == 11 and {r["response"] for r in records} == {"I cannot help with that."}
    assert {r["label"] for r in records} == {"refusal"}


def test_vllm_generates_on_a_gpu(tiny):
    pytest.importorskip("vllm")
    import torch

    if not torch.cuda.is_available():
        pytest.skip("vLLM needs a GPU")
    prompts = [render_prompt(tiny, [{"role": "user", "content": q}]) for q in QUESTIONS]
    settings = GenerationSettings(max_new_tokens=8, batch_size=3)
    backend = plugins().backends.get("vllm")(plugins().backends.get("vllm").Config(chunk_size=2,
                                                                                    enforce_eager=True))
    try:
        got = _collect(backend.generate(tiny, prompts, settings, progress=False))
    finally:
        backend.close()
    want = _collect(generate_texts(tiny, prompts, settings, progress=False))
    assert sorted(got) == list(range(len(prompts)))
    # greedy on both; other kernels may flip a near-tie on a random model, so most (not all) must match
    assert sum(got[i] == want[i] for i in want) >= len(want) - 1
