"""Search spaces that defense plugins declare for ``harness tune``.

A defense class sets ``search_space = {"lr": LogUniform(1e-4, 1e-3), "steps": Choice((40,)), ...}``
over fields of its ``Config``. A one-value ``Choice`` fixes a field for every trial, which is how
the per-trial training budget is declared. Trials are drawn by Latin hypercube sampling: with the
small budgets a CPU affords (a handful of trials), it spreads every parameter over its whole range,
which independent random draws often do not, and it is deterministic given (space, budget, seed),
so a tuning run can be resumed and audited trial by trial.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Any


def _round(x: float) -> float:
    """Three significant digits: trial configs stay readable and exactly reproducible in TOML."""
    return float(f"{x:.3g}")


@dataclass(frozen=True)
class Choice:
    values: tuple[Any, ...]

    def pick(self, u: float) -> Any:
        return self.values[min(int(u * len(self.values)), len(self.values) - 1)]

    def describe(self) -> str:
        return "one of " + ", ".join(map(repr, self.values)) if len(self.values) > 1 else f"fixed {self.values[0]!r}"


@dataclass(frozen=True)
class Uniform:
    low: float
    high: float

    def pick(self, u: float) -> float:
        return _round(self.low + u * (self.high - self.low))

    def describe(self) -> str:
        return f"uniform [{self.low}, {self.high}]"


@dataclass(frozen=True)
class LogUniform:
    low: float
    high: float

    def pick(self, u: float) -> float:
        return _round(math.exp(math.log(self.low) + u * (math.log(self.high) - math.log(self.low))))

    def describe(self) -> str:
        return f"log-uniform [{self.low:g}, {self.high:g}]"


Param = Choice | Uniform | LogUniform


def latin_hypercube(space: dict[str, Param], n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` configurations: each parameter's range cut into ``n`` strata, one draw per stratum."""
    rng = random.Random(seed)
    columns = {}
    for name in sorted(space):
        strata = list(range(n))
        rng.shuffle(strata)
        columns[name] = [(s + rng.random()) / n for s in strata]
    return [{name: space[name].pick(columns[name][i]) for name in sorted(space)} for i in range(n)]


def check_space(config_cls: type, space: dict[str, Any], owner: str) -> None:
    """Refuse a search space that could only fail later, after a baseline run: a key that is not a field of
    ``config_cls``, a distribution that is not one of this module's, a continuous range on a field that is not a
    float, an empty or reversed range, or a choice the field cannot hold."""
    import dataclasses
    import typing

    from harness.config import _coerce
    from harness.errors import HarnessError

    hints = typing.get_type_hints(config_cls)
    names = [f.name for f in dataclasses.fields(config_cls)]
    for key, param in space.items():
        where = f"{owner}: search_space[{key!r}]"
        if key not in names:
            raise HarnessError(f"{where}: not a field of {config_cls.__name__}; its fields: {', '.join(names)}.")
        if isinstance(param, Choice):
            if not param.values:
                raise HarnessError(f"{where}: a Choice needs at least one value.")
            for value in param.values:
                _coerce(value, hints[key], where)
        elif isinstance(param, (Uniform, LogUniform)):
            if hints[key] is not float:
                raise HarnessError(f"{where}: {type(param).__name__} draws floats, but the field is "
                                   f"{getattr(hints[key], '__name__', hints[key])}; use Choice((...)) for it.")
            if not param.low < param.high or (isinstance(param, LogUniform) and param.low <= 0):
                raise HarnessError(f"{where}: the range [{param.low}, {param.high}] is empty or reversed"
                                   f"{' or not positive' if isinstance(param, LogUniform) else ''}.")
        else:
            raise HarnessError(f"{where}: {param!r} is not a Choice, Uniform or LogUniform (harness.search).")
