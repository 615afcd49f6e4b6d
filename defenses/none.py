"""The undefended model: the baseline every defense is compared against."""

from dataclasses import dataclass

from harness import hookimpl
from harness.defense import DefendedModel, Defense


@dataclass
class NoneConfig:
    """No settings."""


class NoDefense(Defense):
    name = "none"
    description = "The model as it is, with its own chat template and default system prompt."
    kind = "none"
    Config = NoneConfig

    def apply(self, loaded, ctx):
        return DefendedModel(model=loaded.model, tokenizer=loaded.tokenizer)


@hookimpl
def register_defenses(register):
    register(NoDefense)
