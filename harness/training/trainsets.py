"""Training data for training-time defenses, built once per model and cached.

- harmful: harmful requests with harmful completions: PyRIT's many-shot Q/A pairs, and
  ``harmful_train.json`` requests completed by the undefended model itself, kept when the
  judge the caller passes (``DefenseContext.training_judge``) labels the answer compliance;
- retain: benign instructions (``harmless_train.json``) with the model's own answers;
- borderline: borderline-benign OR-Bench retain prompts with their compliant answers;
- pseudo_malicious: benign prompts that look harmful (the OR-Bench retain prompts), for overlap-aware weighting.

Every source is checked against every registered evaluation benchmark (exact after
normalising, and near duplicates) and overlapping *training* items are dropped, so the
evaluation sets stay whole and identical for every defense. The report goes to the manifest.
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field, fields
from typing import Any

from harness import contamination
from harness.benchmark import Benchmark
from harness.data import DataFile, DataResolver, cache_dir, read_json
from harness.datafiles import HARMFUL_TRAIN, HARMLESS_TRAIN, ORBENCH_RETAIN
from harness.defense import DefendedModel
from harness.errors import HarnessError
from harness.generation import GenerationSettings, generate_texts, render_prompt
from harness.judge import Judge
from harness.provenance import fingerprint
from harness.training.examples import ChatExample

MANY_SHOT = DataFile("pyrit_many_shot", "pyrit_jailbreak_templates/many_shot_examples.json",
                     "35871679fc865ace138564cab78dc295885292918518fc5a69200aa7e06d91df")


@dataclass
class TrainingDataConfig:
    """Sizes of the training sets (fields shared by every training-time defense's config)."""

    n_harmful_self: int = 96  # harmful_train requests the model completes itself
    n_many_shot: int = 64  # many-shot harmful Q/A pairs (after decontamination)
    n_retain: int = 128  # harmless_train instructions answered by the model
    n_borderline: int = 128  # OR-Bench retain prompts with compliant answers
    completion_tokens: int = 64  # new tokens for the model's own completions
    near_duplicate: float = 0.8  # trigram Jaccard at which two texts count as the same


@dataclass
class TrainingData:
    harmful: list[ChatExample]
    retain: list[ChatExample]
    borderline: list[ChatExample]
    pseudo_malicious: list[str]
    harmful_requests: list[str]  # every decontaminated harmful request, with or without completion
    report: dict[str, Any] = field(default_factory=dict)  # sources, sizes, contamination

    def texts(self) -> dict[str, list[tuple[str, str]]]:
        """Training prompts by set, for the pipeline's contamination check against the suite."""
        def user(e: ChatExample) -> str:
            return e.messages[-1]["content"]

        return {
            "harmful": [(str(i), user(e)) for i, e in enumerate(self.harmful)],
            "retain": [(str(i), user(e)) for i, e in enumerate(self.retain)],
            "borderline": [(str(i), user(e)) for i, e in enumerate(self.borderline)],
            "pseudo_malicious": [(str(i), t) for i, t in enumerate(self.pseudo_malicious)],
        }


def eval_texts(benchmarks: dict[str, Benchmark], resolver: DataResolver) -> tuple[dict[str, list[tuple[str, str]]], list[str]]:
    """Prompts of every prompt-based benchmark whose files are available; the rest are named."""
    out, missing = {}, []
    for name, bench in sorted(benchmarks.items()):
        if bench.category == "capability":
            continue
        try:
            out[name] = [(s.id, s.prompt) for s in bench.samples(resolver)]
        except HarnessError:
            missing.append(name)
    return out, missing


def _decontaminate(name: str, items: list[tuple[str, Any, str]], index_eval: dict[str, list[tuple[str, str]]],
                   near: float, report: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """Drop items (id, payload, text) that overlap any evaluation set; record what was dropped."""
    found = contamination.check({name: [(i, t) for i, _, t in items]}, index_eval, near).get(name, {})
    dropped = set().union(*(o.train_ids for o in found.values())) if found else set()
    report[name] = {"before": len(items), "dropped": len(dropped),
                    "overlaps": contamination.summary({name: found}).get(name, {})}
    return [it for it in items if it[0] not in dropped]


def _seeded(items: list, n: int, seed: int) -> list:
    items = list(items)
    random.Random(seed).shuffle(items)
    return items[:n]


def _complete(defended: DefendedModel, prompts: list[str], tokens: int, desc: str, progress: bool) -> list[str]:
    rendered = [render_prompt(defended, [{"role": "user", "content": p}]) for p in prompts]
    out = [""] * len(prompts)
    for batch in generate_texts(defended, rendered, GenerationSettings(max_new_tokens=tokens), desc=desc,
                                progress=progress):
        for i, text in batch:
            out[i] = text
    return out


def build(model_key: str, defended: DefendedModel, resolver: DataResolver, benchmarks: dict[str, Benchmark],
          cfg: TrainingDataConfig, *, judge: Judge | None, seed: int = 0, progress: bool = True) -> TrainingData:
    """Build (or load from the cache) the training sets for the undefended model ``defended``.

    ``judge`` labels the model's own harmful completions (``judge.judge(None, prompts, answers)``);
    only those labelled compliance are kept. The cache key holds the model's weights, the data
    sizes, the seed, the evaluation sets checked against, the chat template and the judge.
    """
    if judge is None:
        raise HarnessError("building training data needs a judge (DefenseContext.training_judge) to keep the "
                           "harmful completions the model complied with.")
    evals, unchecked = eval_texts(benchmarks, resolver)
    # only the data fields: a defense config that extends TrainingDataConfig shares the cache
    sizes = {f.name: getattr(cfg, f.name) for f in fields(TrainingDataConfig)}
    # the model's own completions depend on the chat template they were rendered with and on the judge that kept
    # them, so both are part of the key (another --chat-template, another training judge: other training sets)
    template = hashlib.sha256(str(defended.tokenizer.chat_template).encode()).hexdigest()[:16]
    key = fingerprint({"model": model_key, "cfg": sizes, "seed": seed, "evals": sorted(evals), "v": 1,
                       "chat_template": template, "judge": judge.describe(None)})[:16]
    path = cache_dir() / "trainsets" / f"{key}.json"
    report: dict[str, Any] = {"cache": str(path), "unchecked_benchmarks": unchecked, "sources": {}}

    if path.is_file():
        cached = json.loads(path.read_text())
    else:
        many = read_json(resolver.path(MANY_SHOT))
        harmful_train = read_json(resolver.path(HARMFUL_TRAIN))
        harmless = read_json(resolver.path(HARMLESS_TRAIN))
        orbench = read_json(resolver.path(ORBENCH_RETAIN))
        src = report["sources"]
        many_items = _decontaminate("many_shot", [(f"ms{i}", r, r["user"]) for i, r in enumerate(many)],
                                    evals, cfg.near_duplicate, src)
        ht_items = _decontaminate("harmful_train", [(f"ht{i}", r, r["instruction"]) for i, r in enumerate(harmful_train)],
                                  evals, cfg.near_duplicate, src)
        pool = _seeded(list(enumerate(harmless)), cfg.n_retain * 2, seed)
        hl_items = _decontaminate("harmless_train", [(f"hl{i}", r, r["instruction"]) for i, r in pool],
                                  evals, cfg.near_duplicate, src)[: cfg.n_retain]
        ob_items = _decontaminate("orbench_retain", [(f"ob{r['prompt_id']}", r, r["prompt"]) for r in orbench
                                                     if r["status"] == "1_full_compliance"],
                                  evals, cfg.near_duplicate, src)

        asked = _seeded(ht_items, cfg.n_harmful_self, seed)
        answers = _complete(defended, [t for _, _, t in asked], cfg.completion_tokens, "harmful completions", progress)
        verdicts = judge.judge(None, [t for _, _, t in asked], answers)
        self_harmful = [(t, a) for (_, _, t), a, v in zip(asked, answers, verdicts) if v.label == "compliance"]
        src["harmful_self"] = {"asked": len(asked), "complied": len(self_harmful)}
        retain_answers = _complete(defended, [t for _, _, t in hl_items], cfg.completion_tokens, "retain answers",
                                   progress)
        cached = {
            "harmful": [[t, a] for t, a in self_harmful]
                       + [[r["user"], r["assistant"]] for _, r, _ in _seeded(many_items, cfg.n_many_shot, seed)],
            "retain": [[t, a] for (_, _, t), a in zip(hl_items, retain_answers) if a.strip()],
            "borderline": [[r["prompt"], r["completion"]] for _, r, _ in _seeded(ob_items, cfg.n_borderline, seed)],
            "pseudo_malicious": [r["prompt"] for _, r, _ in ob_items],
            "harmful_requests": [t for _, _, t in ht_items] + [r["user"] for _, r, _ in many_items],
            "sources": src,
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(cached))
        tmp.replace(path)

    def chats(pairs: list[list[str]]) -> list[ChatExample]:
        return [ChatExample(({"role": "user", "content": q},), a) for q, a in pairs]

    report["sources"] = cached["sources"]
    data = TrainingData(
        harmful=chats(cached["harmful"]),
        retain=chats(cached["retain"]),
        borderline=chats(cached["borderline"]),
        pseudo_malicious=cached["pseudo_malicious"],
        harmful_requests=cached["harmful_requests"],
        report=report,
    )
    report["sizes"] = {k: len(v) for k, v in data.texts().items()}
    report["empty"] = _why_empty(data, cfg, report["sources"])
    return data


def _why_empty(data: TrainingData, cfg: TrainingDataConfig, sources: dict[str, Any]) -> dict[str, str]:
    """Why a training set came out empty, for the error of a defense whose stream needed it."""
    why = {}
    if not data.retain and cfg.n_retain > 0:
        why["retain"] = (f"the undefended model answered every one of the {cfg.n_retain} harmless instructions it "
                         f"was asked with an empty string ({cfg.completion_tokens} new tokens each), and empty "
                         "answers are dropped. Check that the model generates text (its chat template, its "
                         "end-of-turn token), or raise completion_tokens")
    if not data.harmful and cfg.n_harmful_self + cfg.n_many_shot > 0:
        asked = sources.get("harmful_self", {}).get("asked", 0)
        why["harmful"] = (f"the model complied with none of the {asked} harmful requests it was asked (refusals "
                          "and incoherent answers are dropped) and no many-shot pair is left "
                          f"(n_many_shot={cfg.n_many_shot}). Raise n_many_shot")
    return why
