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
