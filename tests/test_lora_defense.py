"""A plugin author's SFT defense on the LoRA defense base: the dozen lines of its docstring, trained and reloaded."""

import textwrap
from dataclasses import dataclass

import torch

from harness.data import DataResolver
from harness.defense import DefenseContext
from harness.models import load_model
from harness.pipeline import training_judge
from harness.plugins import plugins
from harness.training.examples import ChatExample
from harness.training.lora_defense import LoraDefense, LoraTrainingConfig, batch_cross_entropy


def _docstring_defense():
    """The example at the end of ``LoraDefense``'s docstring, run as written: (its config, its defense)."""
    code = textwrap.dedent(LoraDefense.__doc__.split("::\n", 1)[1])
    assert len([line for line in code.splitlines() if line.strip()]) <= 14  # about a dozen lines
    names = {"dataclass": dataclass, "ChatExample": ChatExample, "LoraDefense": LoraDefense,
             "LoraTrainingConfig": LoraTrainingConfig, "batch_cross_entropy": batch_cross_entropy}
    exec(code, names)
    return names["RefuseConfig"], names["Refuse"]


def test_a_dozen_line_sft_defense_trains_and_reloads(tiny_dir, data_dir, tmp_path):
    RefuseConfig, Refuse = _docstring_defense()
    p = plugins()
    resolver = DataResolver(data_dir)
    ctx = DefenseContext(work_dir=tmp_path, resolver=resolver, model_key="tiny", progress=False,
                         benchmarks={n: e.obj for n, e in p.benchmarks.items.items()},
                         training_judge=training_judge(p, resolver))
    cfg = RefuseConfig(steps=2, batch_size=2, n_harmful_self=4, n_many_shot=4, n_retain=4, n_borderline=4,
                       completion_tokens=8)
    base = load_model(str(tiny_dir)).model.state_dict()
    defended = Refuse(cfg).apply(load_model(str(tiny_dir)), ctx)
    trained = defended.model.state_dict()
    assert set(trained) == set(base)  # merged: no adapter modules left
    assert any(not torch.equal(trained[k], base[k]) for k in base)
    assert defended.info["training"]["steps"] == 2 and defended.info["layers"] == {"lora": [0, 3]}
    assert defended.info["examples"]["refusal"] > 0
    again = Refuse(cfg).apply(load_model(str(tiny_dir)), ctx)  # the finished adapter, reloaded from the work dir
    assert again.info["training"] == defended.info["training"]
    reloaded = again.model.state_dict()
    assert all(torch.equal(reloaded[k], trained[k]) for k in trained)
