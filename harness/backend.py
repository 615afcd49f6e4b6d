"""The generation backend plugin API.

A backend turns rendered prompts (``harness.generation.render_prompt``: the defense's transform,
the chat template and any prefill, already applied) into responses for a ``DefendedModel``.
The built-in backends live in the top-level ``backends`` package; the default one
(``harness.defaults.DEFAULT_BACKEND``) is ``harness.generation.generate_texts`` (batched,
length-sorted, left-padded, greedy by default). Backends yield ``[(index, response), ...]``
batches, so the pipeline appends records per batch and an interrupted run resumes where it
stopped.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Iterator

if TYPE_CHECKING:
    from harness.defense import DefendedModel
    from harness.generation import GenerationSettings


@dataclass
class NoConfig:
    """A backend without settings."""


class Backend:
    """Base class for generation backends.

    Subclasses set ``name``, ``description``, ``Config`` (a dataclass of settings) and, when they
    need packages the harness does not install, ``install`` (the command that installs them); they
    implement ``generate`` and may override ``require`` (checked before the model is loaded),
    ``check`` (checked once the defense is applied) and ``close``.
    """

    name: ClassVar[str]
    description: ClassVar[str] = ""
    install: ClassVar[str] = ""  # e.g. "pip install vllm"; empty when nothing extra is needed
    Config: ClassVar[type] = NoConfig

    def __init__(self, config: Any = None):
        self.config = config if config is not None else self.Config()

    def require(self) -> None:
        """Raise ``HarnessError`` (naming the install command) when the backend's packages are missing."""

    def check(self, defended: "DefendedModel") -> None:
        """Raise ``HarnessError`` when this backend cannot generate for ``defended``."""

    def generate(
        self,
        defended: "DefendedModel",
        prompts: list[str],
        settings: "GenerationSettings",
        *,
        desc: str = "generating",
        progress: bool = True,
    ) -> Iterator[list[tuple[int, str]]]:
        """Yield ``[(index, response), ...]`` batches covering every one of the rendered ``prompts``."""
        raise NotImplementedError

    def close(self) -> None:
        """Free what ``generate`` set up (engines, temporary weights)."""

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "config": asdict(self.config)}
