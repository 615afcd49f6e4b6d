"""Benchmarks are data: a small declarative spec plus a loader that turns files into samples."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

from harness.data import DataFile, DataResolver
from harness.errors import HarnessError

Category = Literal["safety", "jailbreak", "over_refusal", "capability"]

# What each category's headline rate measures: which prompts are harmful decides whether
# coherent compliance is an attack success (harmful) or the wanted behaviour (benign).
HARMFUL_CATEGORIES = ("safety", "jailbreak")


@dataclass(frozen=True)
class Sample:
    """One prompt, keeping its original id so results can be joined across runs."""

    id: str
    messages: tuple[dict[str, str], ...]  # chat turns, the last one from the user
    harmful: bool
    category: str = ""  # the benchmark's own grouping (XSTest type, JBB category, ...)
    prefill: str = ""  # text the assistant turn starts with (prefilling attacks)
    meta: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    @property
    def prompt(self) -> str:
        return self.messages[-1]["content"]


def user_turn(text: str) -> tuple[dict[str, str], ...]:
    return ({"role": "user", "content": text},)


@dataclass(frozen=True)
class Benchmark:
    """A benchmark's declarative spec; ``load`` reads ``files`` through the resolver."""

    name: str
    category: Category
    description: str
    files: tuple[DataFile, ...]
    load: Callable[[DataResolver], list[Sample]]
    size: int  # the full item count, checked on load
    refusal_keywords: str = "refusal_direction_substring"  # which pinned keyword rule judges it
    citation: str = ""

    @property
    def metric(self) -> str:
        return "asr" if self.category in HARMFUL_CATEGORIES else "over_refusal"

    def samples(self, resolver: DataResolver) -> list[Sample]:
        items = self.load(resolver)
        if len(items) != self.size:
            raise HarnessError(
                f"benchmark {self.name!r}: loaded {len(items)} items, expected {self.size}. "
                "The data file is a different version; check it against the dataset's SOURCE."
            )
        ids = [s.id for s in items]
        if len(set(ids)) != len(ids):
            raise HarnessError(f"benchmark {self.name!r}: duplicate item ids in the data.")
        return items


def stratified_subset(samples: list[Sample], limit: int | None, seed: int) -> list[Sample]:
    """A seeded subset of ``limit`` items, spread evenly over the sample categories.

    The same (samples, limit, seed) always gives the same ids, and a larger limit keeps every
    item of a smaller one per category order, so quick-suite results join onto standard ones.
    """
    if limit is None or limit >= len(samples):
        return list(samples)
    groups: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        groups[s.category].append(s)
    rng = random.Random(seed)
    queues = []
    for cat in sorted(groups):
        members = sorted(groups[cat], key=lambda s: s.id)
        rng.shuffle(members)
        queues.append(members)
    picked: list[Sample] = []
    while len(picked) < limit:
        for q in queues:
            if q and len(picked) < limit:
                picked.append(q.pop(0))
    order = {s.id: i for i, s in enumerate(samples)}
    return sorted(picked, key=lambda s: order[s.id])


def table_loader(
    file: DataFile,
    *,
    prompt: str,
    id: str | None,
    harmful: bool,
    category: str | None = None,
    where: Callable[[dict[str, Any]], bool] | None = None,
    rows: Callable[[Any], list[dict[str, Any]]] | None = None,
    prefill: str | None = None,
) -> Callable[[DataResolver], list[Sample]]:
    """A loader for the common case: one row per prompt in a CSV, JSON or JSONL file.

    ``prompt``/``id``/``category``/``prefill`` name columns (``id=None``: the row number);
    ``where`` filters rows; ``rows`` extracts the row list from a parsed JSON document.
    """
    from harness.data import read_csv, read_json, read_jsonl, require_fields

    def load(resolver: DataResolver) -> list[Sample]:
        path = resolver.path(file)
        if path.suffix == ".csv":
            table = read_csv(path)
        elif path.suffix == ".jsonl":
            table = read_jsonl(path)
        else:
            table = read_json(path)
        if rows is not None:
            table = rows(table)
        needed = [c for c in (prompt, id, category, prefill) if c is not None]
        require_fields(path, table, needed)
        out = []
        for n, row in enumerate(table):
            if where is not None and not where(row):
                continue
            out.append(
                Sample(
                    id=str(row[id]) if id is not None else str(n),
                    messages=user_turn(str(row[prompt]).strip()),
                    harmful=harmful,
                    category=str(row[category]) if category is not None else "",
                    prefill=str(row[prefill]) if prefill is not None else "",
                )
            )
        return out

    return load
