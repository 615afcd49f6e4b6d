"""A behaviour probe during training: every few steps, short greedy answers to a few validation prompts, judged.

The loss terms and cosines of a representation defense say where the hidden states went, not what the model now
does: a run whose rerouting cosine falls to 0 may refuse harmful requests, or may answer everything, benign
requests included, with word salad. The probe answers that question along the way, so one training run shows its
whole trajectory (``probe_log.jsonl`` beside ``loss_log.jsonl``; ``harness trajectory`` draws both).

The prompts come from the registered *validation* benchmarks (never a test benchmark): harmful ones from those
with harmful items, benign ones from the others, a seeded few of each. Answers are greedy, so the probe consumes
no random numbers and training is the same with it as without it.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any

from harness.benchmark import Benchmark, stratified_subset
from harness.defense import DefendedModel
from harness.errors import HarnessError
from harness.generation import GenerationSettings, generate_texts, render_prompt


@dataclass(frozen=True)
class TrajectorySettings:
    """What a training run logs about itself beyond its losses. Observation only: the probe answers greedily and
    the gradient norms are read, never applied, so the trained adapter is the same whatever these are, and they
    are not part of a run's identity."""

    probe_every: int = 10  # steps between behaviour probes (0: none); the first and the last step are probed too
    probe_prompts: int = 4  # harmful and benign validation prompts each
    probe_tokens: int = 24  # new tokens per probe answer
    grad_every: int = 10  # steps between logs of each loss term's gradient norm (0: never)


@dataclass
class BehaviourProbe:
    """Callable as ``probe(step, total, model, tokenizer)`` after every step; on the steps it is due, it appends
    one line to ``path``: per side the share of refusal, compliance and incoherent answers, and two answers."""

    prompts: dict[str, list[tuple[str, str]]]  # side ("harmful"/"benign") -> [(benchmark, prompt)]
    judge: Any  # a harness.judge.Judge
    benchmarks: dict[str, Benchmark]
    path: Path
    settings: TrajectorySettings = field(default_factory=TrajectorySettings)

    def due(self, step: int, total: int) -> bool:
        every = self.settings.probe_every
        return every > 0 and (step == 0 or (step + 1) % every == 0 or step + 1 == total)

    def __call__(self, step: int, total: int, model: Any, tokenizer: Any) -> dict[str, Any] | None:
        if not self.due(step, total):
            return None
        was_training = model.training
        model.eval()
        defended = DefendedModel(model, tokenizer)
        row: dict[str, Any] = {"step": step}
        try:
            for side, items in self.prompts.items():
                rendered = [render_prompt(defended, [{"role": "user", "content": p}]) for _, p in items]
                answers = [""] * len(items)
                settings = GenerationSettings(max_new_tokens=self.settings.probe_tokens, batch_size=len(items))
                for batch in generate_texts(defended, rendered, settings, progress=False):
                    for i, text in batch:
                        answers[i] = text
                labels = []
                for (bench, prompt), answer in zip(items, answers):
                    labels.append(self.judge.judge(self.benchmarks.get(bench), [prompt], [answer])[0].label)
                counts = Counter(labels)
                row[side] = {label: counts.get(label, 0) / len(labels) for label in ("refusal", "compliance",
                                                                                     "incoherent")}
                row[f"{side}_examples"] = answers[:2]
        finally:
            if was_training:
                model.train()
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        return row


def probe_prompts(benchmarks: dict[str, Benchmark], resolver: Any, per_side: int, seed: int
                  ) -> dict[str, list[tuple[str, str]]]:
    """A seeded few prompts of each side, spread over the registered validation benchmarks whose files are at
    hand (harmful items on one side, benign on the other)."""
    per_bench: dict[str, list[list[tuple[str, str]]]] = {"harmful": [], "benign": []}
    for name, bench in sorted(benchmarks.items()):
        if bench.split != "validation" or bench.category == "capability":
            continue
        try:
            samples = bench.samples(resolver)
        except HarnessError:  # a validation set whose files are missing is left out of the probe
            continue
        for side, harmful in (("harmful", True), ("benign", False)):
            chosen = stratified_subset([s for s in samples if s.harmful == harmful], per_side, seed)
            if chosen:
                per_bench[side].append([(name, s.prompt) for s in chosen])
    out = {}
    for side, lists in per_bench.items():
        mixed = [item for group in zip_longest(*lists) for item in group if item is not None]
        if mixed:
            out[side] = mixed[:per_side]
    return out
