"""Judges turn (prompt, response) pairs into one of three labels.

Two labels are not enough: representation-erasure defenses answer harmful prompts with
gibberish, which keyword judges count as compliance and so as a successful attack. Here
``incoherent`` is its own label; only coherent compliance counts towards ASR.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from harness.benchmark import Benchmark
    from harness.data import DataResolver

Label = Literal["refusal", "compliance", "incoherent"]
LABELS: tuple[Label, ...] = ("refusal", "compliance", "incoherent")


@dataclass(frozen=True)
class Verdict:
    label: Label
    reason: str = ""


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
