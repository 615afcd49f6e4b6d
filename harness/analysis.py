"""``harness analyze probe|logitlens``: the representation analysis the paper starts from (its Figure 3).

Both commands read the hidden state at the **last prompt position** (the last token of the
rendered chat prompt, i.e. the end of the assistant header, where the model decides how to
answer) at every layer, on the model as a defense leaves it: the defense's chat transform is
applied through ``harness.generation.render_prompt`` and its activation hooks are active.
Layers follow ``output_hidden_states`` numbering (0 = embedding output, L = output of the last
decoder block, before the final norm); they are captured with ``harness.training.layers``.

probe
    A logistic-regression probe per layer (standardised features, L2, sklearn, seeded) tells
    harmful from harmless prompts. It trains on refusal_direction's ``harmful_train`` /
    ``harmless_train`` and is scored on the held-out ``*_test`` (or ``*_val``) split, ``n``
    prompts per set, balanced. It is then applied to over-refusal prompts (XSTest safe, OKTest,
    OR-Bench, PHTest, loaded through the benchmark plugins): the share it calls harmful, per
    layer. The paper's finding is that over-refusal prompts sit near the harmful side.

logitlens
    Each layer's last-position state is decoded through the model's final norm and unembedding.
    Per layer and prompt set (benign, harmful, each over-refusal benchmark, and all over-refusal
    prompts pooled): the top-5 tokens of the mean next-token distribution, and the mean
    probability mass on refusal-like and on compliance-like first tokens (``REFUSAL_WORDS``,
    ``COMPLIANCE_WORDS``: the first sub-token of each word, as the tokenizer splits it at the
    start of an answer; an id that both lists produce is dropped from both).

A trained defense is applied from a run folder (``--run``): its manifest gives the defense, its
resolved config, the model and the seed, and the defense's own ``apply`` reloads the finished
adapter from ``<run>/defense`` (it is never retrained: an unfinished defense is refused).
Prompts that also occur (normalised text) in the probe's training prompts are dropped from the
held-out and over-refusal sets, and counted.
"""

from __future__ import annotations

import json
import random
import re
import shlex
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.benchmark import Sample, stratified_subset, user_turn
from harness.data import DataFile, DataResolver, read_json
from harness.defaults import DEFAULT_DEFENSE, DEFAULT_MODEL
from harness.defense import DefendedModel
from harness.errors import HarnessError
from harness.generation import render_prompt
from harness.pipeline import apply_defense, check_model, load, resolve_defense
from harness.leaderboard import fmt, md_escape
from harness.runstore import FinishedRun, RunFolder, safe_name, write_json_atomic
from harness.training.trainsets import HARMFUL_TRAIN, HARMFUL_VAL, HARMLESS_TRAIN, HARMLESS_VAL

OVER_REFUSAL_BENCHMARKS = ("xstest-safe", "oktest", "orbench", "phtest")

# First sub-token of each word, as an answer would start with it (no leading space).
REFUSAL_WORDS = ("I", "Sorry", "sorry", "cannot", "As", "Unfortunately")
COMPLIANCE_WORDS = ("Sure", "Here", "To", "The", "1", "Certainly")
TOP_K = 5

_SPLITS = "refusal_direction_splits/splits"
HELD_OUT = {
    "test": (
        DataFile("refusal_direction_splits", f"{_SPLITS}/harmful_test.json",
                 "5e12ae102c3791dee083a69ab6269a78e033411c629bc3f66f75d2fde196d9ef"),
        DataFile("refusal_direction_splits", f"{_SPLITS}/harmless_test.json",
                 "1b5930ce5e855ada758b3116ce7c4aaea9b9d05f8cdd77b385511d4c84173b19"),
    ),
    "val": (HARMFUL_VAL, HARMLESS_VAL),
}


@dataclass
class AnalysisRequest:
    model: str | None = None  # default: the run's model with --run, else smollm2-135m-instruct
    defense: str | None = None  # default: the run's defense with --run, else none
    defense_config: dict[str, Any] = field(default_factory=dict)
    run: Path | None = None  # apply the (finished) defense of this run folder
    data_dir: Path | None = None
    out: Path | None = None
    n: int = 64
    seed: int = 0
    split: str = "test"  # held-out split of the probe: "test" or "val"
    batch_size: int = 8
    device: str | None = None
    trust_remote_code: bool = False
    chat_template: str | None = None
    progress: bool = True
    over_refusal: tuple[str, ...] = OVER_REFUSAL_BENCHMARKS
    command: str = ""  # the command line, recorded in the outputs


# --- the model as the defense leaves it --------------------------------------------------------


def prepare(request: AnalysisRequest, plugins) -> tuple[DefendedModel, dict[str, Any]]:
    """Load the model and apply the defense (from ``--run`` or ``--defense``); returns it and provenance.

    Steps 3 and 4 of ``harness run`` (``harness.pipeline.load`` and ``apply_defense``), so the analysis sees the
    model exactly as a run scores it.
    """
    manifest = None
    if request.run is not None:
        if request.defense is not None or request.defense_config:
            raise HarnessError("--run takes the defense and its config from the run's manifest; "
                               "drop --defense/--set, or drop --run.")
        manifest = FinishedRun(Path(request.run)).manifest
        if "info" not in manifest.get("defense", {}):
            raise HarnessError(
                f"the defense of {request.run} has not finished (its manifest has no defense info); analysing it "
                "would train it now. Finish the run first (re-run its `harness run` command)."
            )
        defense_name = manifest["defense"]["name"]
        defense_config = dict(manifest["defense"].get("config", {}))
        seed = int(manifest.get("seed", 0))
        run_model = manifest.get("model", {}).get("spec") or manifest.get("identity", {}).get("model")
        model_spec = request.model or run_model
    else:
        defense_name = request.defense or DEFAULT_DEFENSE
        defense_config = dict(request.defense_config)
        seed = request.seed
        model_spec = request.model or DEFAULT_MODEL

    entry, config = resolve_defense(plugins, defense_name, defense_config)
    check_model(plugins, model_spec)
    loaded = load(plugins, model_spec, device=request.device, trust_remote_code=request.trust_remote_code,
                  chat_template=request.chat_template)
    if manifest is not None:
        want = manifest.get("model", {}).get("sha256")
        if want and loaded.info.get("sha256") and want != loaded.info["sha256"]:
            raise HarnessError(
                f"{request.run} was trained on model weights {want[:12]}, but {model_spec!r} loads "
                f"{loaded.info['sha256'][:12]}; its adapter does not belong to this model."
            )
    resolver = DataResolver(request.data_dir)
    if manifest is not None:
        with RunFolder(Path(request.run)):  # not while a run writes there
            defended = apply_defense(entry.obj(config), loaded, plugins, Path(request.run) / "defense", resolver,
                                     seed, request.progress)
    else:
        defended = apply_defense(entry.obj(config), loaded, plugins, Path(request.out or ".") / "defense", resolver,
                                 seed, request.progress)
    defended.model.eval()
    info = {
        "model": loaded.info,
        "defense": {"name": defense_name, "kind": entry.obj.kind, "config": asdict(config),
                    "distribution": entry.distribution, "version": entry.version},
        "run": str(request.run) if request.run is not None else None,
        "run_id": manifest.get("run_id") if manifest else None,
        "seed": seed,
    }
    if manifest is not None and manifest["defense"].get("version") != entry.version:
        info["defense"]["note"] = (f"the run was made with {defense_name} {manifest['defense'].get('version')}, "
                                   f"this is {entry.version}")
    return defended, info


# --- prompts ----------------------------------------------------------------------------------


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text.strip().lower())


def _split_samples(resolver: DataResolver, spec: DataFile, n: int, seed: int, harmful: bool) -> list[Sample]:
    rows = read_json(resolver.path(spec))
    if not isinstance(rows, list) or not all(isinstance(r, dict) and "instruction" in r for r in rows):
        raise HarnessError(f"{spec.path}: expected a list of objects with an 'instruction' field.")
    items = [Sample(id=str(i), messages=user_turn(str(r["instruction"]).strip()), harmful=harmful,
                    category=str(r.get("category") or "")) for i, r in enumerate(rows)]
    if n >= len(items):
        return items
    picked = sorted(random.Random(f"{seed}:{spec.path}").sample(range(len(items)), n))
    return [items[i] for i in picked]


def prompt_sets(request: AnalysisRequest, plugins, resolver: DataResolver,
                include_train: bool = True) -> tuple[dict[str, list[Sample]], dict[str, Any]]:
    """``{set name: samples}``: probe training sets, held-out sets and the over-refusal benchmarks.

    Held-out and over-refusal prompts that also occur in the training prompts are dropped.
    """
    if request.split not in HELD_OUT:
        raise HarnessError(f"unknown held-out split {request.split!r}; use one of {', '.join(HELD_OUT)}.")
    if request.n < 2:
        raise HarnessError("--n must be at least 2 prompts per set.")
    harmful_test, harmless_test = HELD_OUT[request.split]
    sets: dict[str, list[Sample]] = {}
    if include_train:
        sets["train_harmful"] = _split_samples(resolver, HARMFUL_TRAIN, request.n, request.seed, True)
        sets["train_harmless"] = _split_samples(resolver, HARMLESS_TRAIN, request.n, request.seed, False)
    sets["harmful"] = _split_samples(resolver, harmful_test, request.n, request.seed, True)
    sets["benign"] = _split_samples(resolver, harmless_test, request.n, request.seed, False)
    for name in request.over_refusal:
        bench = plugins.benchmarks.get(name)
        sets[name] = stratified_subset(bench.samples(resolver), request.n, request.seed)
    dropped: dict[str, int] = {}
    if include_train:
        seen = {_norm(s.prompt) for key in ("train_harmful", "train_harmless") for s in sets[key]}
        for key in list(sets):
            if key.startswith("train_"):
                continue
            keep = [s for s in sets[key] if _norm(s.prompt) not in seen]
            dropped[key] = len(sets[key]) - len(keep)
            sets[key] = keep
    for key, samples in sets.items():
        if not samples:
            raise HarnessError(f"prompt set {key!r} is empty after dropping prompts seen in training.")
    report = {"n_requested": request.n, "split": request.split, "seed": request.seed,
              "sizes": {k: len(v) for k, v in sets.items()}, "dropped_as_in_training": dropped,
              "data_files": dict(sorted(resolver.used.items()))}
    return sets, report


# --- hidden states ----------------------------------------------------------------------------


def last_states(defended: DefendedModel, samples: list[Sample], batch_size: int = 8) -> np.ndarray:
    """``[n, L + 1, d]`` float32: every layer's hidden state at the last prompt position.

    Prompts are rendered as generation sees them (defense transform, chat template, prefill),
    left-padded with position ids counted from the first real token, under the defense's hooks.
    """
    import torch

    from harness.training.layers import forward_until

    model, tok = defended.model, defended.tokenizer
    depth = model.config.num_hidden_layers
    layers = list(range(depth + 1))
    prompts = [render_prompt(defended, list(s.messages), s.prefill) for s in samples]
    device = next(model.parameters()).device
    old_side = tok.padding_side
    tok.padding_side = "left"
    out = []
    try:
        with defended.hooks(), torch.inference_mode():
            for start in range(0, len(prompts), batch_size):
                batch = tok(prompts[start:start + batch_size], return_tensors="pt", padding=True,
                            add_special_tokens=False)
                mask = batch["attention_mask"].to(device)
                position_ids = (mask.long().cumsum(-1) - 1).clamp(min=0)
                states = forward_until(model, layers, input_ids=batch["input_ids"].to(device), attention_mask=mask,
                                       position_ids=position_ids)
                out.append(torch.stack([states[l][:, -1, :].float().cpu() for l in layers], dim=1))
    finally:
        tok.padding_side = old_side
    return torch.cat(out).numpy()


def collect(request: AnalysisRequest, plugins, include_train: bool) -> tuple[DefendedModel, dict[str, Any],
                                                                           dict[str, np.ndarray], dict[str, Any]]:
    defended, info = prepare(request, plugins)
    resolver = DataResolver(request.data_dir)
    sets, report = prompt_sets(request, plugins, resolver, include_train=include_train)
    states = {}
    for name, samples in sets.items():
        if request.progress:
            print(f"hidden states: {name} ({len(samples)} prompts)", file=sys.stderr)
        states[name] = last_states(defended, samples, request.batch_size)
    return defended, info, states, report


# --- probe ------------------------------------------------------------------------------------


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
    out = _out_dir(request)
    request.command = request.command or command_line("probe", request)
    _, info, states, report = collect(request, plugins, include_train=True)
    eval_sets = ["benign", "harmful", *request.over_refusal]
    result = fit_probes(states, request.seed, eval_sets)
    data = {"analysis": "probe", "command": request.command, **info, "prompts": report,
            "probe": {"kind": "logistic regression on standardised features", "C": 1.0, "max_iter": 2000,
                      "position": "last prompt token", "label": "1 = harmful"},
            **result}
    write_json_atomic(out / "probe.json", data)
    _plot_lines(out / "probe_accuracy.png", result["layers"], {"held-out accuracy": result["accuracy"],
                                                                "train accuracy": result["train_accuracy"]},
                "probe accuracy (harmful vs harmless)", "accuracy", chance=0.5)
    _plot_lines(out / "probe_share_harmful.png", result["layers"], result["share_harmful"],
                "share of prompts the probe calls harmful", "share called harmful")
    headers = ["layer", "held-out accuracy", "train accuracy", *[f"harmful share: {md_escape(s)}" for s in eval_sets]]
    rows = [[str(l), fmt(result["accuracy"][l]), fmt(result["train_accuracy"][l]),
             *[fmt(result["share_harmful"][s][l]) for s in eval_sets]] for l in result["layers"]]
    best = result["best_layer"]
    lines = _header("Linear probe: harmful vs harmless, per layer", info, report, request) + [
        f"Best held-out accuracy: **{fmt(result['accuracy'][best])}** at layer {best}. At that layer the probe calls "
        + ", ".join(f"{fmt(result['share_harmful'][s][best])} of {md_escape(s)}" for s in eval_sets)
        + " prompts harmful (benign and harmful are the held-out sets; the rest are over-refusal benchmarks).",
        "",
    ]
    if request.over_refusal:
        mean_over = float(np.mean([result["share_harmful"][s][best] for s in request.over_refusal]))
        lines += [f"Mean over the over-refusal benchmarks at layer {best}: {fmt(mean_over)} called harmful "
                  f"(held-out benign: {fmt(result['share_harmful']['benign'][best])}, held-out harmful: "
                  f"{fmt(result['share_harmful']['harmful'][best])}).", ""]
    lines += [
        "![probe accuracy per layer](probe_accuracy.png)",
        "",
        "![share called harmful per layer](probe_share_harmful.png)",
        "",
        _table(headers, rows),
        "",
    ]
    (out / "probe.md").write_text("\n".join(lines), encoding="utf-8")
    return out


# --- logit lens -------------------------------------------------------------------------------


def _final_norm(model):
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else getattr(model, "model", None)
    for name in ("norm", "final_layernorm", "ln_f", "final_layer_norm"):
        module = getattr(decoder, name, None)
        if module is not None:
            return module
    raise HarnessError(f"cannot find the final norm of {type(model).__name__} (looked for norm, final_layernorm, ln_f).")


def token_sets(tokenizer) -> dict[str, Any]:
    """The refusal-like and compliance-like token ids, disjoint.

    For each word, the first sub-token of the word as an answer starts with it (``"Sorry"``) and
    of the word after a space (``" Sorry"``): intermediate layers put their mass mostly on the
    space-prefixed forms. A form whose first sub-token is only whitespace is skipped; an id that
    both lists produce is dropped from both.
    """
    def first(words):
        out, seen = [], set()
        for word in words:
            for form in (word, " " + word):
                ids = tokenizer(form, add_special_tokens=False).input_ids
                # a bare space (" 1" -> " ", "1") says nothing about tone: skip that form
                if ids and ids[0] not in seen and tokenizer.decode([ids[0]]).strip():
                    seen.add(ids[0])
                    out.append({"word": form, "id": int(ids[0]), "token": tokenizer.decode([ids[0]])})
        return out

    refusal, compliance = first(REFUSAL_WORDS), first(COMPLIANCE_WORDS)
    shared = {t["id"] for t in refusal} & {t["id"] for t in compliance}
    return {
        "refusal": [t for t in refusal if t["id"] not in shared],
        "compliance": [t for t in compliance if t["id"] not in shared],
        "dropped_shared_ids": sorted(shared),
        "rule": "first sub-token of each word and of the word after a space (whitespace-only tokens skipped); ids in both lists dropped",
    }


def show_token(token: str) -> str:
    """A token made visible for markdown: spaces as '␣', control characters as escapes, then escaped."""
    out = []
    for ch in token:
        if ch == " ":
            out.append("␣")
        elif ch in "\n\t\r":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r"}[ch])
        elif ord(ch) < 32 or ord(ch) == 127:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return md_escape("".join(out)) or "(empty)"


def logit_lens(defended: DefendedModel, states: dict[str, np.ndarray], tokens: dict[str, Any]) -> dict[str, Any]:
    """Per set and layer: mean refusal / compliance mass and the top tokens of the mean distribution."""
    import torch

    model, tok = defended.model, defended.tokenizer
    norm, head = _final_norm(model), model.get_output_embeddings()
    param = next(model.parameters())
    refusal_ids = torch.tensor(sorted({t["id"] for t in tokens["refusal"]}), dtype=torch.long)
    compliance_ids = torch.tensor(sorted({t["id"] for t in tokens["compliance"]}), dtype=torch.long)
    result: dict[str, Any] = {"mass": {}, "top_tokens": {}}
    with defended.hooks(), torch.inference_mode():
        for name, array in states.items():
            n_layers = array.shape[1]
            mass = {"refusal": [], "compliance": []}
            tops = []
            for layer in range(n_layers):
                h = torch.from_numpy(array[:, layer]).to(device=param.device, dtype=param.dtype)
                probs = torch.softmax(head(norm(h)).float(), dim=-1).cpu()
                mass["refusal"].append(float(probs[:, refusal_ids].sum(-1).mean()) if len(refusal_ids) else 0.0)
                mass["compliance"].append(float(probs[:, compliance_ids].sum(-1).mean()) if len(compliance_ids) else 0.0)
                mean = probs.mean(0)
                values, ids = torch.topk(mean, min(TOP_K, mean.numel()))
                tops.append([{"id": int(i), "token": tok.decode([int(i)]), "p": float(v)} for v, i in zip(values, ids)])
            result["mass"][name] = mass
            result["top_tokens"][name] = tops
    return result


def run_logitlens(request: AnalysisRequest, plugins) -> Path:
    """Decode every layer at the last prompt position; write logitlens.json, logitlens.md and a figure."""
    out = _out_dir(request)
    request.command = request.command or command_line("logitlens", request)
    defended, info, states, report = collect(request, plugins, include_train=False)
    if request.over_refusal:
        states["over-refusal (all)"] = np.concatenate([states[s] for s in request.over_refusal])
        report["sizes"]["over-refusal (all)"] = int(states["over-refusal (all)"].shape[0])
    ordered = {k: states[k] for k in ["benign", "harmful", *request.over_refusal,
                                      *(["over-refusal (all)"] if request.over_refusal else [])]}
    tokens = token_sets(defended.tokenizer)
    result = logit_lens(defended, ordered, tokens)
    layers = list(range(next(iter(ordered.values())).shape[1]))
    data = {"analysis": "logitlens", "command": request.command, **info, "prompts": report,
            "position": "last prompt token", "token_sets": tokens, "layers": layers, **result}
    write_json_atomic(out / "logitlens.json", data)
    _plot_mass(out / "logitlens_mass.png", layers, result["mass"])

    def token_list(entries):
        return ", ".join(f"{show_token(t['word'])} → {show_token(t['token'])} ({t['id']})" for t in entries) or "(none)"

    lines = _header("Logit lens at the last prompt position", info, report, request) + [
        f"- **refusal-like tokens**: {token_list(tokens['refusal'])}",
        f"- **compliance-like tokens**: {token_list(tokens['compliance'])}",
        f"- ids produced by both lists (dropped from both): {tokens['dropped_shared_ids'] or 'none'}",
        "",
        "Mass: the probability of the next token being one of the refusal-like (compliance-like) tokens, "
        "averaged over the set's prompts. Top tokens: of the set's mean next-token distribution ('␣' is a space).",
        "",
        "![refusal and compliance mass per layer](logitlens_mass.png)",
        "",
        "### Refusal mass / compliance mass per layer",
        "",
    ]
    headers = ["layer", *[md_escape(s) for s in ordered]]
    rows = [[str(l), *[f"{result['mass'][s]['refusal'][l]:.2e} / {result['mass'][s]['compliance'][l]:.2e}"
                       for s in ordered]] for l in layers]
    lines += [_table(headers, rows), ""]
    for name in ordered:
        lines += [f"### Top {TOP_K} tokens: {md_escape(name)}", ""]
        rows = [[str(l), *[f"{show_token(t['token'])} {fmt(t['p'])}" for t in result["top_tokens"][name][l]]]
                for l in layers]
        lines += [_table(["layer", *[f"#{i + 1}" for i in range(TOP_K)]], rows), ""]
    (out / "logitlens.md").write_text("\n".join(lines), encoding="utf-8")
    return out


# --- output helpers ---------------------------------------------------------------------------


def _out_dir(request: AnalysisRequest) -> Path:
    if request.out is None:
        label = request.run.name if request.run else f"{request.model or 'smollm2-135m-instruct'}__{request.defense or 'none'}"
        request.out = Path("analysis") / safe_name(label)
    request.out.mkdir(parents=True, exist_ok=True)
    return request.out


def _table(headers: list[str], rows: list[list[str]]) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def _header(title: str, info: dict[str, Any], report: dict[str, Any], request: AnalysisRequest) -> list[str]:
    d = info["defense"]
    model = info["model"]
    config = ", ".join(f"{k}={v if isinstance(v, str) else json.dumps(v)}" for k, v in sorted(d["config"].items()))
    lines = [f"# {title}", ""]
    if request.command:
        lines += ["Made with:", "", "```bash", request.command.replace("`", "'"), "```", ""]
    lines += [
        f"- **model**: {md_escape(model.get('spec'))} (weights {md_escape((model.get('sha256') or model.get('revision') or '')[:12] or model.get('location', ''))}, "
        f"{md_escape(model.get('dtype'))} on {md_escape(model.get('device'))})",
        f"- **defense**: {md_escape(d['name'])} ({md_escape(d['kind'])}, {md_escape(d['distribution'])} {md_escape(d['version'])})"
        + (f" from run {md_escape(info['run'])} ({md_escape(info['run_id'])})" if info.get("run") else ""),
        f"- **defense config**: {md_escape(config, 2000) or '(no settings)'}",
        f"- **prompts per set** (asked {report['n_requested']}, seed {report['seed']}, held-out split "
        f"`{report['split']}`): " + ", ".join(f"{md_escape(k)} {v}" for k, v in report["sizes"].items()),
        "- **dropped as also in the probe's training prompts**: "
        + (", ".join(f"{md_escape(k)} {v}" for k, v in report["dropped_as_in_training"].items()) or "(not checked: no training set)"),
        "- **position**: the last prompt token (end of the assistant header), defense transform and hooks applied",
        "",
    ]
    return lines


def _plot_lines(path: Path, layers: list[int], series: dict[str, list[float]], title: str, ylabel: str,
                chance: float | None = None) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for name, values in series.items():
        ax.plot(layers, values, marker="o", markersize=3, label=name)
    if chance is not None:
        ax.axhline(chance, color="grey", linestyle=":", linewidth=1, label="chance")
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("layer (0 = embeddings)")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(fig)


def _plot_mass(path: Path, layers: list[int], mass: dict[str, dict[str, list[float]]]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tiny = 1e-12  # keeps log scales finite where a mass underflows to 0
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for name, m in mass.items():
        style = "-" if name in ("benign", "harmful", "over-refusal (all)") else ":"
        r = [max(v, tiny) for v in m["refusal"]]
        c = [max(v, tiny) for v in m["compliance"]]
        axes[0].plot(layers, r, style, marker="o", markersize=2, label=name)
        axes[1].plot(layers, c, style, marker="o", markersize=2, label=name)
        axes[2].plot(layers, [float(np.log10(a / b)) for a, b in zip(r, c)], style, marker="o", markersize=2,
                     label=name)
    titles = ("refusal-like token mass", "compliance-like token mass", "log10(refusal mass / compliance mass)")
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("layer (0 = embeddings)")
        ax.grid(True, alpha=0.3)
    axes[0].set_yscale("log")
    axes[1].set_yscale("log")
    axes[0].set_ylabel("mean probability")
    axes[2].axhline(0, color="grey", linewidth=0.8)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(fig)


def command_line(what: str, request: AnalysisRequest) -> str:
    """The ``harness analyze`` command that repeats ``request`` (recorded in the outputs)."""
    parts = ["harness", "analyze", what]
    if request.model:
        parts += ["--model", request.model]
    if request.run is not None:
        parts += ["--run", str(request.run)]
    if request.defense:
        parts += ["--defense", request.defense]
    for key, value in sorted(request.defense_config.items()):
        parts += ["--set", f"{key}={value}"]
    if request.data_dir is not None:
        parts += ["--data-dir", str(request.data_dir)]
    parts += ["--n", str(request.n), "--seed", str(request.seed), "--split", request.split]
    if request.out is not None:
        parts += ["--out", str(request.out)]
    return " ".join(shlex.quote(p) for p in parts)
