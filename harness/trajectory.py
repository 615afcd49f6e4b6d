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
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(runs), 4, figsize=(19, 3.6 * len(runs)), squeeze=False)
    for row, run in zip(axes, runs):
        logs = read_trajectory(run)
        keys = sorted({k for r in logs["loss"] for k in r} - _NOT_TERMS)
        for k in (k for k in keys if not k.startswith(_MEASURE_PREFIXES)):
            row[0].plot(*_series(logs["loss"], k), label=k)
        row[0].set_title(f"{Path(run).name}: loss terms")
        for k in (k for k in keys if k.startswith(("cos", "retain_rel"))):
            row[1].plot(*_series(logs["loss"], k), label=k)
        row[1].set_title("cos: harmful to frozen; retain_rel: benign distance")
        for k in (k for k in keys if k.startswith("grad_")):
            row[2].semilogy(*_series(logs["loss"], k), marker=".", label=k)
        row[2].set_title("gradient norm of each weighted term")
        for side, label, style in (("harmful", "refusal", "-"), ("harmful", "incoherent", ":"),
                                   ("benign", "compliance", "-"), ("benign", "incoherent", ":")):
            steps = [p["step"] for p in logs["probe"] if side in p]
            row[3].plot(steps, [p[side][label] for p in logs["probe"] if side in p], style, marker="o",
                        label=f"{side} {label}")
        row[3].set_ylim(-0.05, 1.05)
        row[3].set_title("behaviour probe (share of answers)")
        for ax in row:
            ax.set_xlabel("step")
            if ax.lines:
                ax.legend(fontsize=7)
    fig.tight_layout()
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
