"""``harness analyze probe``: does a linear probe on each layer tell harmful from harmless prompts, and
which side does it put over-refusal prompts on?

A logistic-regression probe per layer (standardised features, L2, sklearn, seeded) trains on
refusal_direction's ``harmful_train`` / ``harmless_train`` and is scored on the held-out split; it is then
applied to the over-refusal prompt sets: the share it calls harmful, per layer. The paper's finding is that
over-refusal prompts sit near the harmful side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.analysis.common import AnalysisRequest, collect, command_line, out_dir, page_head
from harness.report import fmt, layer_lines, md_escape, md_table
from harness.runstore import write_json_atomic

HELD_OUT_SETS = ("benign", "harmful")  # the probe's held-out sets; every other scored set is an over-refusal set


def fit_probes(states: dict[str, np.ndarray], seed: int, eval_sets: list[str]) -> dict[str, Any]:
    """Per layer: a logistic-regression probe on the train sets; accuracy and share called harmful."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train = np.concatenate([states["train_harmful"], states["train_harmless"]])
    y_train = np.array([1] * len(states["train_harmful"]) + [0] * len(states["train_harmless"]))
    x_test = np.concatenate([states["harmful"], states["benign"]])
    y_test = np.array([1] * len(states["harmful"]) + [0] * len(states["benign"]))
    n_layers = x_train.shape[1]
    result: dict[str, Any] = {"layers": list(range(n_layers)), "accuracy": [], "train_accuracy": [],
                              "share_harmful": {name: [] for name in eval_sets}}
    for layer in range(n_layers):
        probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000, random_state=seed))
        probe.fit(x_train[:, layer].astype(np.float64), y_train)
        result["train_accuracy"].append(float(probe.score(x_train[:, layer].astype(np.float64), y_train)))
        result["accuracy"].append(float(probe.score(x_test[:, layer].astype(np.float64), y_test)))
        for name in eval_sets:
            pred = probe.predict(states[name][:, layer].astype(np.float64))
            result["share_harmful"][name].append(float(pred.mean()))
    best = int(np.argmax(result["accuracy"]))
    result["best_layer"] = best
    return result


def run_probe(request: AnalysisRequest, plugins) -> Path:
    """Fit and score the per-layer probes; write probe.json, probe.md and two figures into ``out``."""
    out = out_dir(request)
    request.command = request.command or command_line("probe", request)
    _, info, states, report = collect(request, plugins, include_train=True)
    result = fit_probes(states, request.seed, [*HELD_OUT_SETS, *request.over_refusal])
    write_probe(out, {"analysis": "probe", "command": request.command, **info, "prompts": report,
                      "probe": {"kind": "logistic regression on standardised features", "C": 1.0, "max_iter": 2000,
                                "position": "last prompt token", "label": "1 = harmful"},
                      **result})
    return out


def write_probe(out: Path, data: dict[str, Any]) -> None:
    """probe.json, its two figures and probe.md, all drawn from ``data`` (what probe.json holds)."""
    write_json_atomic(out / "probe.json", data)
    layer_lines(out / "probe_accuracy.png", data["layers"], {"held-out accuracy": data["accuracy"],
                                                              "train accuracy": data["train_accuracy"]},
                "probe accuracy (harmful vs harmless)", "accuracy", chance=0.5)
    layer_lines(out / "probe_share_harmful.png", data["layers"], data["share_harmful"],
                "share of prompts the probe calls harmful", "share called harmful")
    (out / "probe.md").write_text(probe_page(data), encoding="utf-8")


def probe_page(data: dict[str, Any]) -> str:
    """probe.md: the best layer, what the probe calls harmful there, and every layer's scores."""
    share = data["share_harmful"]
    eval_sets = list(share)
    over_refusal = [s for s in eval_sets if s not in HELD_OUT_SETS]
    headers = ["layer", "held-out accuracy", "train accuracy", *[f"harmful share: {md_escape(s)}" for s in eval_sets]]
    rows = [[str(l), fmt(data["accuracy"][l]), fmt(data["train_accuracy"][l]), *[fmt(share[s][l]) for s in eval_sets]]
            for l in data["layers"]]
    best = data["best_layer"]
    lines = page_head("Linear probe: harmful vs harmless, per layer", data) + [
        f"Best held-out accuracy: **{fmt(data['accuracy'][best])}** at layer {best}. At that layer the probe calls "
        + ", ".join(f"{fmt(share[s][best])} of {md_escape(s)}" for s in eval_sets)
        + " prompts harmful (benign and harmful are the held-out sets; the rest are over-refusal benchmarks).",
        "",
    ]
    if over_refusal:
        mean_over = float(np.mean([share[s][best] for s in over_refusal]))
        lines += [f"Mean over the over-refusal benchmarks at layer {best}: {fmt(mean_over)} called harmful "
                  f"(held-out benign: {fmt(share['benign'][best])}, held-out harmful: {fmt(share['harmful'][best])}).",
                  ""]
    lines += [
        "![probe accuracy per layer](probe_accuracy.png)",
        "",
        "![share called harmful per layer](probe_share_harmful.png)",
        "",
        md_table(headers, rows),
        "",
    ]
    return "\n".join(lines)
