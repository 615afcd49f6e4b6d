"""``harness trajectory``: one training run's whole course, drawn from its logs.

A training defense writes ``defense/loss_log.jsonl`` (every step: each loss term, the harmful cosine to the
frozen states per target layer, the benign retain distance, each term's gradient norm on the adapter where
logged) and ``defense/probe_log.jsonl`` (every few steps: the behaviour probe's refusal, compliance and
incoherent shares on a few harmful and benign validation prompts). Four panels against the step: the loss terms,
the representation measures, each term's gradient norm (log scale), and behaviour. That is what tells "nothing moved" from "everything broke" from "a
window was crossed", and at which step.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.data import read_jsonl
from harness.errors import HarnessError

# keys of a loss-log line that are not loss terms
_NOT_TERMS = {"step", "elapsed_s"}
# representation measures and gradient norms (drawn on panels of their own, not with the loss terms)
_MEASURE_PREFIXES = ("cos", "retain_rel", "grad_")


def read_trajectory(run: Path) -> dict[str, list[dict[str, Any]]]:
    """The loss and probe logs of a run folder (or of a defense work folder)."""
    run = Path(run)
    folder = run / "defense" if (run / "defense").is_dir() else run
    loss = folder / "loss_log.jsonl"
    if not loss.is_file():
        raise HarnessError(f"{run}: no defense/loss_log.jsonl; only a training defense's run has a trajectory.")
    probe = folder / "probe_log.jsonl"
    return {"loss": read_jsonl(loss, torn_tail=True),
            "probe": read_jsonl(probe, torn_tail=True) if probe.is_file() else []}


def _series(rows: list[dict[str, Any]], key: str) -> tuple[list[int], list[float]]:
    pts = [(r["step"], r[key]) for r in rows if isinstance(r.get(key), (int, float))]
    return [p[0] for p in pts], [p[1] for p in pts]


def draw(runs: list[Path], out: Path) -> Path:
    """One row of four panels per run (loss terms, representation, gradient norms, behaviour); returns the path."""
    from harness.report import TrajectoryRow, trajectory_rows

    rows = []
    for run in runs:
        logs = read_trajectory(run)
        keys = sorted({k for r in logs["loss"] for k in r} - _NOT_TERMS)
        probe = {f"{side} {label}": ([p["step"] for p in logs["probe"] if side in p],
                                     [p[side][label] for p in logs["probe"] if side in p])
                 for side, label in (("harmful", "refusal"), ("harmful", "incoherent"), ("benign", "compliance"),
                                     ("benign", "incoherent"))}
        rows.append(TrajectoryRow(
            name=Path(run).name,
            terms={k: _series(logs["loss"], k) for k in keys if not k.startswith(_MEASURE_PREFIXES)},
            measures={k: _series(logs["loss"], k) for k in keys if k.startswith(("cos", "retain_rel"))},
            grads={k: _series(logs["loss"], k) for k in keys if k.startswith("grad_")},
            probe=probe))
    out = Path(out)
    trajectory_rows(rows, out)
    return out
