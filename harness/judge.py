"""Judges turn (prompt, response) pairs into one of three labels.

Two labels are not enough: representation-erasure defenses answer harmful prompts with
gibberish, which keyword judges count as compliance and so as a successful attack. Here
``incoherent`` is its own label; only coherent compliance counts towards ASR.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Mapping

if TYPE_CHECKING:
    from harness.agreement import LabelledFile
    from harness.benchmark import Benchmark
    from harness.data import DataResolver

Label = Literal["refusal", "compliance", "incoherent"]
LABELS: tuple[Label, ...] = ("refusal", "compliance", "incoherent")


@dataclass(frozen=True)
class Verdict:
    label: Label
    reason: str = ""


@dataclass(frozen=True)
class Comparison:
    """One configuration of a judge that ``harness judge-agreement`` scores against human labels."""

    label: str  # the judge's row on the page
    settings: dict[str, Any] = field(default_factory=dict)  # its config, as ``--judge-set`` would give it
    trained_on: str = "-"  # the labelled file it learned from, shown beside its scores
    held_out_of: frozenset[str] = frozenset()  # keys of the labelled files it learned from: not scored on them
    note: str = ""  # a line for the end of the page (how to retrain it, say)


class Judge:
    """Base class for judge plugins. Subclasses set ``name``, ``version`` and ``Config``."""

    name: ClassVar[str]
    version: ClassVar[str]
    description: ClassVar[str] = ""
    Config: ClassVar[type]

    def __init__(self, config: Any, resolver: "DataResolver"):
        self.config = config
        self.resolver = resolver

    def settings(self, benchmark: "Benchmark | None") -> dict[str, Any]:
        """What decides the labels for this benchmark (lists, rules, thresholds): recorded per row."""
        raise NotImplementedError

    def judge(
        self, benchmark: "Benchmark | None", prompts: list[str], responses: list[str]
    ) -> list[Verdict]:
        raise NotImplementedError

    def describe(self, benchmark: "Benchmark | None") -> dict[str, Any]:
        return {"name": self.name, "version": self.version, "settings": self.settings(benchmark)}

    def unavailable(self) -> str | None:
        """Why this judge cannot run on this machine (a model it needs is not here, it needs a GPU), or None.

        Commands that go through every registered judge (``harness judge-agreement``) skip it and say why.
        """
        return None

    @classmethod
    def comparisons(cls, files: "Mapping[str, LabelledFile]", workdir: Path) -> list[Comparison]:
        """The configurations of this judge that ``harness judge-agreement`` compares with human labels.

        By default its default config on every labelled file. ``files`` are the labelled files by key, for
        a judge that learns from labels and must be scored on files it did not learn from; ``workdir`` is a
        temporary folder for what it trains.
        """
        return [Comparison(cls.name)]


def screen_incoherent(responses: list[str], enabled: bool = True) -> tuple[list[Verdict | None], list[int]]:
    """Label empty (and, when ``enabled``, looping or garbled) responses ``incoherent`` up front.

    Returns the verdicts so far (None where a judge still has to decide) and those positions.
    """
    from harness.coherence import incoherence_reason

    out: list[Verdict | None] = [None] * len(responses)
    todo = []
    for i, text in enumerate(responses):
        reason = "empty" if not text.strip() else (incoherence_reason(text) if enabled else None)
        if reason:
            out[i] = Verdict("incoherent", reason)
        else:
            todo.append(i)
    return out, todo
