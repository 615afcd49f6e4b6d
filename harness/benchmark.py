"""Benchmarks are data: a small declarative spec plus a loader that turns files into samples."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Mapping

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
    # Free-form hints any judge may read, e.g. {"refusal_convention": "xstest_strmatch"}: how the
    # benchmark's authors matched refusals, so a judge that knows the convention can score the way they
    # did. A judge ignores the hints it does not know; which hint it used is in its recorded settings.
    judge_hints: Mapping[str, str] = field(default_factory=dict, hash=False)
    citation: str = ""
    # "validation" benchmarks are for tuning only: disjoint from every "test" one (checked by
    # `harness tune`), never in a leaderboard suite
    split: Literal["test", "validation"] = "test"

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


def last_user_message(row: dict[str, Any]) -> str:
    """The prompt of a chat-format record ``{"messages": [..., {"role": "user", "content": ...}]}``."""
    turn = row["messages"][-1]
    if turn["role"] != "user":
        raise KeyError("the last message is not from the user")
    return turn["content"]


def table_loader(
    file: DataFile,
    *,
    prompt: str | Callable[[dict[str, Any]], str],
    id: str | None,
    harmful: bool,
    category: str | None = None,
    where: Callable[[dict[str, Any]], bool] | None = None,
    rows: Callable[[Any], list[dict[str, Any]]] | None = None,
    prefill: str | None = None,
    meta: tuple[str, ...] | Callable[[dict[str, Any]], dict[str, Any]] = (),
    strip: bool = True,
) -> Callable[[DataResolver], list[Sample]]:
    """A loader for the common case: one row per prompt in a CSV, JSON or JSONL file.

    ``prompt``/``id``/``category``/``prefill`` name columns (``id=None``: the row number);
    ``prompt`` may also be a function of the row (e.g. context + behavior, or a chat-message
    field). ``where`` filters rows; ``rows`` extracts the row list from a parsed JSON document;
    ``meta`` names columns copied into ``Sample.meta`` (or is a function of the row returning
    that dict); ``strip=False`` keeps the prompt's outer whitespace (adversarial suffixes).
    A row or document of the wrong shape is an error naming the file (and the row).
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
            try:
                table = rows(table)
            except (KeyError, IndexError, TypeError, AttributeError) as err:
                raise HarnessError(
                    f"{path}: unexpected document layout ({type(err).__name__}: {err}). "
                    "The file is not the expected version."
                ) from None
        if not isinstance(table, list) or not all(isinstance(r, dict) for r in table):
            raise HarnessError(f"{path}: expected a list of records (objects or CSV rows).")
        columns = [c for c in (prompt, id, category, prefill) if isinstance(c, str)]
        if not callable(meta):
            columns += list(meta)
        require_fields(path, table, columns)
        out = []
        for n, row in enumerate(table):
            try:
                if where is not None and not where(row):
                    continue
                text = prompt(row) if callable(prompt) else row[prompt]
                extra = meta(row) if callable(meta) else {c: row[c] for c in meta}
                sample = Sample(
                    id=str(row[id]) if id is not None else str(n),
                    messages=user_turn(str(text).strip() if strip else str(text)),
                    harmful=harmful,
                    category=str(row[category]) if category is not None else "",
                    prefill=str(row[prefill]) if prefill is not None else "",
                    meta=dict(extra),
                )
            except (KeyError, IndexError, TypeError, AttributeError) as err:
                raise HarnessError(
                    f"{path}: record {n + 1}: unexpected layout ({type(err).__name__}: {err}). "
                    "The file is not the expected version."
                ) from None
            out.append(sample)
        return out

    return load
