"""Suites are data: a TOML file naming benchmarks, subset sizes and generation settings.

    name = "quick"
    description = "..."
    seed = 0
    [generation]
    max_new_tokens = 48
    [[benchmarks]]
    name = "jbb-harmful"
    limit = 24          # seeded, stratified by the benchmark's categories; omit for all items
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.config import build_config
from harness.data import sha256_file
from harness.errors import HarnessError
from harness.generation import GenerationSettings


@dataclass(frozen=True)
class SuiteEntry:
    name: str
    limit: int | None = None


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    benchmarks: tuple[SuiteEntry, ...]
    generation: GenerationSettings
    seed: int = 0
    capability: dict[str, Any] = field(default_factory=dict)
    path: str = ""
    sha256: str = ""


def load_suite_file(path: Path) -> Suite:
    """Parse and validate a suite file; errors name the file and the bad key."""
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise HarnessError(f"suite file {str(path)!r} not found.") from None
    except tomllib.TOMLDecodeError as err:
        raise HarnessError(f"suite file {path}: malformed TOML ({err}).") from None
    allowed = {"name", "description", "seed", "generation", "benchmarks", "capability"}
    extra = set(raw) - allowed
    if extra:
        raise HarnessError(f"suite file {path}: unknown key(s) {', '.join(sorted(extra))}; valid: {', '.join(sorted(allowed))}.")
    if "name" not in raw or not raw.get("benchmarks"):
        raise HarnessError(f"suite file {path}: needs a name and at least one [[benchmarks]] entry.")
    entries = tuple(build_config(SuiteEntry, b, f"suite {raw['name']!r} benchmark entry") for b in raw["benchmarks"])
    generation = build_config(GenerationSettings, raw.get("generation", {}), f"suite {raw['name']!r} [generation]")
    return Suite(
        name=raw["name"],
        description=raw.get("description", ""),
        benchmarks=entries,
        generation=generation,
        seed=int(raw.get("seed", 0)),
        capability=dict(raw.get("capability", {})),
        path=str(path),
        sha256=sha256_file(path),
    )
