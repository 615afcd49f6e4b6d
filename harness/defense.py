"""The defense plugin API.

A defense turns a loaded model into a ``DefendedModel``: possibly a different model (LoRA
adapters, merged weights), a chat transform (system prompts, reminders) and activation hooks.
Everything a defense changes lives on that object, so generation *and* lm-eval's capability
scoring see the same defended model.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar, ContextManager, Literal

if TYPE_CHECKING:
    from harness.training.probe import TrajectorySettings
    from harness.benchmark import Benchmark
    from harness.data import DataResolver
    from harness.judge import Judge
    from harness.models import LoadedModel

Messages = list[dict[str, str]]


@dataclass
class DefenseContext:
    """What a defense may use while it is applied: where to put artifacts, data, seed, device."""

    work_dir: Path  # the run's folder for this defense's artifacts (adapters, logs, checkpoints)
    resolver: "DataResolver"
    seed: int = 0
    progress: bool = True
    model_key: str = ""  # identifies the model's weights, for caches built from its outputs
    benchmarks: dict[str, "Benchmark"] = field(default_factory=dict)  # every registered benchmark
    # labels the undefended model's own harmful completions when training data is built (only those it
    # complied with are trained on); the pipeline passes one, a defense that builds no training data needs none
    training_judge: "Judge | None" = None
    # what a training run logs about itself (behaviour probe, gradient norms); None: the defaults
    trajectory: "TrajectorySettings | None" = None


@dataclass
class DefendedModel:
    """A model as a defense leaves it."""

    model: Any
    tokenizer: Any
    transform: Callable[[Messages], Messages] = field(default=lambda messages: messages)
    # a function returning a context manager, entered around every generation and the capability scoring
    hooks: Callable[[], ContextManager[Any]] = field(default=contextlib.nullcontext)
    info: dict[str, Any] = field(default_factory=dict)  # recorded in the manifest
    # training prompts by set, checked against the suite's benchmarks before evaluation
    training_texts: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    # the output side: (user request, generated response) -> the response the defense lets through (an output
    # filter replacing a harmful answer by a refusal, say). The harness applies it to every backend's output before
    # judging, so a defense never wraps model.generate; the raw response is kept in the record and the cache.
    output_filter: Callable[[str, str], str] | None = None

    def system_prompt(self) -> str | None:
        """The system prompt the transform adds, if any (lm-eval scores with it too)."""
        msgs = self.transform([{"role": "user", "content": ""}])
        return msgs[0]["content"] if msgs and msgs[0]["role"] == "system" else None


class Defense:
    """Base class for defense plugins.

    Subclasses set ``name``, ``description``, ``kind`` and ``Config`` (a dataclass whose fields
    are the defense's settings) and implement ``apply``; ``search_space`` declares what
    ``harness tune`` may vary (harness.search), empty for a defense with nothing to tune.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    kind: ClassVar[Literal["none", "inference", "training"]] = "inference"
    Config: ClassVar[type]
    # what `harness tune` searches: Config field -> harness.search.Choice/Uniform/LogUniform
    search_space: ClassVar[dict[str, Any]] = {}
    # named sets of Config values (`harness run --preset NAME`; `--set` still overrides them); a baseline keeps a
    # "reference" preset that reproduces its paper's recipe, where the defaults depart from it for small models
    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, config: Any):
        self.config = config

    def apply(self, loaded: "LoadedModel", ctx: DefenseContext) -> DefendedModel:
        raise NotImplementedError
