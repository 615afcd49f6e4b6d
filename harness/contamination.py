"""Overlap between training and evaluation text: exact (after normalising) and near duplicates.

A defense trained on its own test prompts scores well for the wrong reason (Circuit Breakers'
XSTest numbers are contaminated that way). Texts are lower-cased, stripped of punctuation and
white-space-folded; near duplicates share at least ``near`` of their word trigrams (Jaccard),
found through an inverted index so thousands of texts compare in well under a second.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Iterable

from harness.errors import HarnessError

_PUNCT = re.compile(r"[^\w\s]", re.UNICODE)
_SPACE = re.compile(r"\s+")


def normalise(text: str) -> str:
    return _SPACE.sub(" ", _PUNCT.sub(" ", text.lower())).strip()


def _trigrams(norm: str) -> set[tuple[str, ...]]:
    words = norm.split()
    if len(words) < 3:
        return {tuple(words)} if words else set()
    return set(zip(words, words[1:], words[2:]))


@dataclass
class Overlap:
    exact: list[tuple[str, str]] = field(default_factory=list)  # (train id, eval id)
    near: list[tuple[str, str, float]] = field(default_factory=list)  # (train id, eval id, jaccard)

    @property
    def eval_ids(self) -> set[str]:
        return {e for _, e in self.exact} | {e for _, e, _ in self.near}

    @property
    def train_ids(self) -> set[str]:
        return {t for t, _ in self.exact} | {t for t, _, _ in self.near}


class TextIndex:
    """Training texts, indexed for exact and trigram-Jaccard lookups."""

    def __init__(self, items: Iterable[tuple[str, str]]):
        self.exact: dict[str, list[str]] = defaultdict(list)
        self.grams: dict[str, set[tuple[str, ...]]] = {}
        self.postings: dict[tuple[str, ...], list[str]] = defaultdict(list)
        for item_id, text in items:
            norm = normalise(text)
            self.exact[norm].append(item_id)
            grams = _trigrams(norm)
            self.grams[item_id] = grams
            for g in grams:
                self.postings[g].append(item_id)

    def match(self, items: Iterable[tuple[str, str]], near: float = 0.8) -> Overlap:
        out = Overlap()
        for eval_id, text in items:
            norm = normalise(text)
            for train_id in self.exact.get(norm, []):
                out.exact.append((train_id, eval_id))
            if norm in self.exact:
                continue
            grams = _trigrams(norm)
            shared = Counter(t for g in grams for t in self.postings.get(g, ()))
            for train_id, k in shared.items():
                jaccard = k / (len(grams) + len(self.grams[train_id]) - k)
                if jaccard >= near:
                    out.near.append((train_id, eval_id, round(jaccard, 3)))
        return out


def check(train: dict[str, list[tuple[str, str]]], evaluation: dict[str, list[tuple[str, str]]],
          near: float = 0.8) -> dict[str, dict[str, Overlap]]:
    """Every training set against every evaluation set: ``{train: {eval: Overlap}}``, overlaps only."""
    report: dict[str, dict[str, Overlap]] = {}
    for train_name, items in train.items():
        index = TextIndex(items)
        for eval_name, eval_items in evaluation.items():
            overlap = index.match(eval_items, near)
            if overlap.exact or overlap.near:
                report.setdefault(train_name, {})[eval_name] = overlap
    return report


def summary(report: dict[str, dict[str, Overlap]]) -> dict[str, dict[str, dict[str, int]]]:
    """Counts for a manifest: training items and evaluation items involved, exact and near."""
    return {
        t: {e: {"exact_pairs": len(o.exact), "near_pairs": len(o.near), "eval_items": len(o.eval_ids),
                "train_items": len(o.train_ids)} for e, o in evals.items()}
        for t, evals in report.items()
    }


def check_suite(training_texts: dict[str, list[tuple[str, str]]], suite_samples: dict[str, list], policy: str,
                kind: str = "inference") -> tuple[set[tuple[str, str]], dict]:
    """Step 5 of a run: a defense's training prompts against the suite's items. Returns the (benchmark, item id)
    pairs to leave out of scoring and the manifest's record; with ``policy`` "refuse" an overlap is an error.
    A training defense that declares no training prompts cannot be checked: that is said, not passed over."""
    if not training_texts:
        if kind == "training":
            import sys

            print("warning: the training defense declared no training_texts, so its training data is not checked "
                  "against the suite (set DefendedModel.training_texts).", file=sys.stderr)
            return set(), {"checked": False, "reason": "the training defense declared no training_texts"}
        return set(), {"checked": False, "reason": "the defense trains on nothing"}
    evals = {name: [(s.id, s.prompt) for s in samples] for name, samples in suite_samples.items()}
    report = check(training_texts, evals)
    found = {(e, i) for per_eval in report.values() for e, o in per_eval.items() for i in o.eval_ids}
    record = {"checked": True, "policy": policy, "overlaps": summary(report),
              "excluded_items": len(found) if policy == "drop-eval" else 0}
    if found and policy == "refuse":
        worst = ", ".join(f"{t} vs {e}" for t, per in report.items() for e in per)
        raise HarnessError(
            f"the defense's training data overlaps {len(found)} evaluation item(s) of this suite ({worst}); "
            "the scores would be inflated. Fix the training data, or pass --contamination drop-eval to "
            "leave those items out of scoring (recorded in the manifest)."
        )
    return (found if policy == "drop-eval" else set()), record
