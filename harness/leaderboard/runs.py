"""The leaderboard's view of run folders: complete runs, grouped by the setting that makes them comparable.

A run's setting is its model, its judge (name, version, settings), its generation settings and its suite
(name and file sha256): two numbers only share a column when all of these match.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from harness.benchmark import HARMFUL_CATEGORIES
from harness.errors import HarnessError
from harness.provenance import fingerprint
from harness.runstore import FinishedRun


@dataclass
class Run:
    """One complete run folder, read: its manifest and metrics, and what a page shows of them."""

    folder: FinishedRun
    metrics: dict[str, Any]

    @property
    def path(self) -> Path:
        return self.folder.path

    @property
    def manifest(self) -> dict[str, Any]:
        return self.folder.manifest

    @property
    def run_id(self) -> str:
        return str(self.manifest.get("run_id", ""))

    @property
    def defense(self) -> str:
        return str(self.manifest.get("defense", {}).get("name", "?"))

    @property
    def model(self) -> str:
        spec = str(self.manifest.get("model", {}).get("spec") or self.manifest.get("identity", {}).get("model", "?"))
        # a local folder shows as its name; presets and hub ids as they are
        return Path(spec).name if spec.startswith(("/", ".", "~")) else spec

    @property
    def benchmarks(self) -> dict[str, dict[str, Any]]:
        return self.metrics.get("benchmarks", {})

    @property
    def capability(self) -> dict[str, dict[str, Any]]:
        return self.metrics.get("capability") or {}

    def setting(self) -> dict[str, Any]:
        """What must match for two rows to share a column: judge, generation settings, suite."""
        judge = self.manifest.get("judge", {})
        suite = self.manifest.get("suite", {})
        return {
            "judge": {"name": judge.get("name"), "version": judge.get("version"), "settings": judge.get("settings")},
            "generation": self.manifest.get("generation"),
            "suite": {"name": suite.get("name"), "sha256": suite.get("sha256")},
        }

    def sort_key(self) -> tuple[str, str, str, str]:
        return (self.model, self.defense, self.run_id, str(self.path))

    def mean_rate(self, harmful: bool) -> float | None:
        values = []
        for m in self.benchmarks.values():
            if (m.get("category") in HARMFUL_CATEGORIES) != harmful or m.get("category") == "capability":
                continue
            rate = m.get("asr" if harmful else "over_refusal") or {}
            if rate.get("value") is not None:
                values.append(rate["value"])
        return sum(values) / len(values) if values else None



@dataclass
class Section:
    """The runs of one setting: a section of the page and a panel of the figure."""

    key: dict[str, Any]
    runs: list[Run] = field(default_factory=list)

    def points(self) -> dict[str, tuple[float, float]]:
        """Run id -> (mean over-refusal, mean ASR), for the runs that have both."""
        out = {}
        for run in self.runs:
            x, y = run.mean_rate(harmful=False), run.mean_rate(harmful=True)
            if x is not None and y is not None:
                out[run.run_id] = (x, y)
        return out


def load_runs(paths: Iterable[str | Path]) -> list[Run]:
    """Read run folders; refuse non-run folders, incomplete runs and the same run given twice."""
    runs: list[Run] = []
    problems: list[str] = []
    incomplete: list[str] = []
    seen: dict[Path, str] = {}
    for raw in paths:
        path = Path(raw)
        if not (path / "manifest.json").is_file():
            problems.append(f"{raw} (no manifest.json: not a run folder)")
            continue
        real = path.resolve()
        if real in seen:
            problems.append(f"{raw} (given twice, also as {seen[real]})")
            continue
        seen[real] = str(raw)
        folder = FinishedRun(path, str(raw))
        if not folder.complete:
            incomplete.append(f"{raw} (status {folder.manifest.get('status')!r})")
            continue
        if not (path / "metrics.json").is_file():
            incomplete.append(f"{raw} (no metrics.json)")
            continue
        metrics = folder.metrics()  # an unreadable metrics.json stops the build here, naming the file
        if metrics.get("run_id") != folder.run_id:
            problems.append(f"{raw} (metrics.json belongs to run {metrics.get('run_id')!r}, the manifest to "
                            f"{folder.run_id!r})")
            continue
        runs.append(Run(folder, metrics))
    if incomplete:
        raise HarnessError(
            "incomplete run(s) cannot go on a leaderboard: " + "; ".join(incomplete)
            + ". Finish them (re-run their `harness run` command to resume) or leave them out."
        )
    if problems:
        raise HarnessError("cannot build the leaderboard: " + "; ".join(problems) + ".")
    if not runs:
        raise HarnessError("no run folders given.")
    by_id: dict[str, Run] = {}
    for run in runs:
        if run.run_id in by_id:
            raise HarnessError(
                f"{by_id[run.run_id].path} and {run.path} are the same request (run id {run.run_id}); "
                "give one of them, so a row is not counted twice."
            )
        by_id[run.run_id] = run
    return runs


def group_runs(runs: list[Run]) -> list[Section]:
    """Runs grouped by model and setting (judge, generation, suite); sections and rows in a fixed order.

    The model is part of the key because a Pareto front across models would compare a defense on one model
    with another defense on another: each model gets its own section, table and figure panel.
    """
    sections: dict[str, Section] = {}
    for run in runs:
        key = {"model": run.model, **run.setting()}
        section = sections.setdefault(fingerprint(key), Section(key))
        section.runs.append(run)
    out = list(sections.values())
    for section in out:
        section.runs.sort(key=Run.sort_key)
    out.sort(key=lambda s: (str(s.key["suite"]["name"]), s.key["model"], json.dumps(s.key, sort_keys=True, default=str)))
    return out
