"""What both analyses share: the request, the model as the defense leaves it, the prompt sets and their
hidden states at the last prompt position, and the head of each page.
"""

from __future__ import annotations

import json
import random
import re
import shlex
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.benchmark import Sample, stratified_subset, user_turn
from harness.data import DataFile, DataResolver, read_json
from harness.datafiles import HARMFUL_TRAIN, HARMFUL_VAL, HARMLESS_TRAIN, HARMLESS_VAL
from harness.defaults import ANALYSIS_OVER_REFUSAL, DEFAULT_DEFENSE, DEFAULT_MODEL
from harness.defense import DefendedModel
from harness.errors import HarnessError
from harness.generation import render_prompt
from harness.pipeline import apply_defense, check_model, load, resolve_defense
from harness.report import code_block, md_escape
from harness.runstore import FinishedRun, RunFolder, safe_name

_SPLITS = "refusal_direction_splits/splits"
HELD_OUT = {
    "test": (
        DataFile("refusal_direction_splits", f"{_SPLITS}/harmful_test.json",
                 "5e12ae102c3791dee083a69ab6269a78e033411c629bc3f66f75d2fde196d9ef"),
        DataFile("refusal_direction_splits", f"{_SPLITS}/harmless_test.json",
                 "1b5930ce5e855ada758b3116ce7c4aaea9b9d05f8cdd77b385511d4c84173b19"),
    ),
    "val": (HARMFUL_VAL, HARMLESS_VAL),
}


@dataclass
class AnalysisRequest:
    model: str | None = None  # default: the run's model with --run, else DEFAULT_MODEL
    defense: str | None = None  # default: the run's defense with --run, else DEFAULT_DEFENSE
    defense_config: dict[str, Any] = field(default_factory=dict)
    run: Path | None = None  # apply the (finished) defense of this run folder
    data_dir: Path | None = None
    out: Path | None = None
    n: int = 64
    seed: int = 0
    split: str = "test"  # held-out split of the probe: "test" or "val"
    batch_size: int = 8
    device: str | None = None
    trust_remote_code: bool = False
    chat_template: str | None = None
    progress: bool = True
    over_refusal: tuple[str, ...] = ANALYSIS_OVER_REFUSAL
    command: str = ""  # the command line, recorded in the outputs


# --- the model as the defense leaves it --------------------------------------------------------


def prepare(request: AnalysisRequest, plugins) -> tuple[DefendedModel, dict[str, Any]]:
    """Load the model and apply the defense (from ``--run`` or ``--defense``); returns it and provenance.

    Steps 3 and 4 of ``harness run`` (``harness.pipeline.load`` and ``apply_defense``), so the analysis sees the
    model exactly as a run scores it.
    """
    manifest = None
    if request.run is not None:
        if request.defense is not None or request.defense_config:
            raise HarnessError("--run takes the defense and its config from the run's manifest; "
                               "drop --defense/--set, or drop --run.")
        manifest = FinishedRun(Path(request.run)).manifest
        if "info" not in manifest.get("defense", {}):
            raise HarnessError(
                f"the defense of {request.run} has not finished (its manifest has no defense info); analysing it "
                "would train it now. Finish the run first (re-run its `harness run` command)."
            )
        defense_name = manifest["defense"]["name"]
        defense_config = dict(manifest["defense"].get("config", {}))
        seed = int(manifest.get("seed", 0))
        run_model = manifest.get("model", {}).get("spec") or manifest.get("identity", {}).get("model")
        model_spec = request.model or run_model
    else:
        defense_name = request.defense or DEFAULT_DEFENSE
        defense_config = dict(request.defense_config)
        seed = request.seed
        model_spec = request.model or DEFAULT_MODEL

    entry, config = resolve_defense(plugins, defense_name, defense_config)
    check_model(plugins, model_spec)
    loaded = load(plugins, model_spec, device=request.device, trust_remote_code=request.trust_remote_code,
                  chat_template=request.chat_template)
    if manifest is not None:
        want = manifest.get("model", {}).get("sha256")
        if want and loaded.info.get("sha256") and want != loaded.info["sha256"]:
            raise HarnessError(
                f"{request.run} was trained on model weights {want[:12]}, but {model_spec!r} loads "
                f"{loaded.info['sha256'][:12]}; its adapter does not belong to this model."
            )
    resolver = DataResolver(request.data_dir)
    if manifest is not None:
        with RunFolder(Path(request.run)):  # not while a run writes there
            defended = apply_defense(entry.obj(config), loaded, plugins, Path(request.run) / "defense", resolver,
                                     seed, request.progress)
    else:
        defended = apply_defense(entry.obj(config), loaded, plugins, Path(request.out or ".") / "defense", resolver,
                                 seed, request.progress)
    defended.model.eval()
    info = {
        "model": loaded.info,
        "defense": {"name": defense_name, "kind": entry.obj.kind, "config": asdict(config),
                    "distribution": entry.distribution, "version": entry.version},
        "run": str(request.run) if request.run is not None else None,
        "run_id": manifest.get("run_id") if manifest else None,
        "seed": seed,
    }
    if manifest is not None and manifest["defense"].get("version") != entry.version:
        info["defense"]["note"] = (f"the run was made with {defense_name} {manifest['defense'].get('version')}, "
                                   f"this is {entry.version}")
    return defended, info


# --- prompts ----------------------------------------------------------------------------------


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def _split_samples(resolver: DataResolver, spec: DataFile, n: int, seed: int, harmful: bool) -> list[Sample]:
    rows = read_json(resolver.path(spec))
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "instruction" in r for r in rows):
        raise HarnessError(f"{spec.path}: expected a list of objects with an 'instruction' field.")
    items = [Sample(id=str(i), messages=user_turn(str(r["instruction"]).strip()), harmful=harmful,
                    category=str(r.get("category") or "")) for i, r in enumerate(rows)]
    if n >= len(items):
        return items
    picked = sorted(random.Random(f"{seed}:{spec.path}").sample(range(len(items)), n))
    return [items[i] for i in picked]


def prompt_sets(request: AnalysisRequest, plugins, resolver: DataResolver,
                include_train: bool = True) -> tuple[dict[str, list[Sample]], dict[str, Any]]:
    """``{set name: samples}``: probe training sets, held-out sets and the over-refusal benchmarks.

    Held-out and over-refusal prompts that also occur in the training prompts are dropped.
    """
    if request.split not in HELD_OUT:
        raise HarnessError(f"unknown held-out split {request.split!r}; use one of {', '.join(HELD_OUT)}.")
    if request.n < 2:
        raise HarnessError("--n must be at least 2 prompts per set.")
    harmful_test, harmless_test = HELD_OUT[request.split]
    sets: dict[str, list[Sample]] = {}
    if include_train:
        sets["train_harmful"] = _split_samples(resolver, HARMFUL_TRAIN, request.n, request.seed, True)
        sets["train_harmless"] = _split_samples(resolver, HARMLESS_TRAIN, request.n, request.seed, False)
    sets["harmful"] = _split_samples(resolver, harmful_test, request.n, request.seed, True)
    sets["benign"] = _split_samples(resolver, harmless_test, request.n, request.seed, False)
    for name in request.over_refusal:
        bench = plugins.benchmarks.get(name)
        sets[name] = stratified_subset(bench.samples(resolver), request.n, request.seed)
    dropped: dict[str, int] = {}
    if include_train:
        seen = {_norm(s.prompt) for key in ("train_harmful", "train_harmless") for s in sets[key]}
        for key in list(sets):
            if key.startswith("train_"):
                continue
            keep = [s for s in sets[key] if _norm(s.prompt) not in seen]
            dropped[key] = len(sets[key]) - len(keep)
            sets[key] = keep
    for key, samples in sets.items():
        if not samples:
            raise HarnessError(f"prompt set {key!r} is empty after dropping prompts seen in training.")
    report = {"n_requested": request.n, "split": request.split, "seed": request.seed,
              "sizes": {k: len(v) for k, v in sets.items()}, "dropped_as_in_training": dropped,
              "data_files": dict(sorted(resolver.used.items()))}
    return sets, report


# --- hidden states ----------------------------------------------------------------------------


def last_states(defended: DefendedModel, samples: list[Sample], batch_size: int = 8) -> np.ndarray:
    """``[n, L + 1, d]`` float32: every layer's hidden state at the last prompt position.

    Prompts are rendered as generation sees them (defense transform, chat template, prefill),
    left-padded with position ids counted from the first real token, under the defense's hooks.
    """
    import torch

    from harness.training.layers import forward_until

    model, tok = defended.model, defended.tokenizer
    depth = model.config.num_hidden_layers
    layers = list(range(depth + 1))
    prompts = [render_prompt(defended, list(s.messages), s.prefill) for s in samples]
    device = next(model.parameters()).device
    old_side = tok.padding_side
    tok.padding_side = "left"
    out = []
    try:
        with defended.hooks(), torch.inference_mode():
            for start in range(0, len(prompts), batch_size):
                batch = tok(prompts[start:start + batch_size], return_tensors="pt", padding=True,
                            add_special_tokens=False)
                mask = batch["attention_mask"].to(device)
                position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)
                states = forward_until(model, layers, input_ids=batch["input_ids"].to(device), attention_mask=mask,
                                       position_ids=position_ids)
                out.append(torch.stack([states[l][:, -1, :].float().cpu() for l in layers], dim=1))
    finally:
        tok.padding_side = old_side
    return torch.cat(out).numpy()


def collect(request: AnalysisRequest, plugins, include_train: bool) -> tuple[DefendedModel, dict[str, Any],
                                                                           dict[str, np.ndarray], dict[str, Any]]:
    defended, info = prepare(request, plugins)
    resolver = DataResolver(request.data_dir)
    sets, report = prompt_sets(request, plugins, resolver, include_train=include_train)
    states = {}
    for name, samples in sets.items():
        if request.progress:
            print(f"hidden states: {name} ({len(samples)} prompts)", file=sys.stderr)
        states[name] = last_states(defended, samples, request.batch_size)
    return defended, info, states, report


# --- outputs ----------------------------------------------------------------------------------


def page_head(title: str, data: dict[str, Any]) -> list[str]:
    """The top of an analysis page, from what its json records: the command, the model, the defense and the
    prompt sets, so a page rebuilds from its json alone."""
    d, model, report = data["defense"], data["model"], data["prompts"]
    config = ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in sorted(d["config"].items()))
    lines = [f"# {title}", ""]
    if data["command"]:
        lines += code_block("Made with:", data["command"].replace("`", "'"))
    lines += [
        f"- **model**: {md_escape(model.get('spec'))} (weights {md_escape((model.get('sha256') or model.get('revision') or '')[:12] or model.get('location', ''))}, "
        f"{md_escape(model.get('dtype'))} on {md_escape(model.get('device'))})",
        f"- **defense**: {md_escape(d['name'])} ({md_escape(d['kind'])}, {md_escape(d['distribution'])} {md_escape(d['version'])})"
        + (f" from run {md_escape(data['run'])} ({md_escape(data['run_id'])})" if data.get("run") else ""),
        f"- **defense config**: {md_escape(config, 2000) or '(no settings)'}",
        f"- **prompts per set** (asked {report['n_requested']}, seed {report['seed']}, held-out split "
        f"`{report['split']}`): " + ", ".join(f"{md_escape(k)} {v}" for k, v in report["sizes"].items()),
        "- **dropped as also in the probe's training prompts**: "
        + (", ".join(f"{md_escape(k)} {v}" for k, v in report["dropped_as_in_training"].items()) or "(not checked: no training set)"),
        "- **position**: the last prompt token (end of the assistant header), defense transform and hooks applied",
        "",
    ]
    return lines


def out_dir(request: AnalysisRequest) -> Path:
    """``--out``, by default ``analysis/<run name>`` or ``analysis/<model>__<defense>``; created."""
    if request.out is None:
        label = request.run.name if request.run else f"{request.model or DEFAULT_MODEL}__{request.defense or DEFAULT_DEFENSE}"
        request.out = Path("analysis") / safe_name(label)
    request.out.mkdir(parents=True, exist_ok=True)
    return request.out


def command_line(what: str, request: AnalysisRequest) -> str:
    """The ``harness analyze`` command that repeats ``request`` (recorded in the outputs)."""
    parts = ["harness", "analyze", what]
    if request.model:
        parts += ["--model", request.model]
    if request.run is not None:
        parts += ["--run", str(request.run)]
    if request.defense:
        parts += ["--defense", request.defense]
    for key, value in sorted(request.defense_config.items()):
        parts += ["--set", f"{key}={value}"]
    if request.data_dir is not None:
        parts += ["--data-dir", str(request.data_dir)]
    parts += ["--n", str(request.n), "--seed", str(request.seed), "--split", request.split]
    if request.out is not None:
        parts += ["--out", str(request.out)]
    return " ".join(shlex.quote(p) for p in parts)
