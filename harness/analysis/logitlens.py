"""``harness analyze logitlens``: what each layer, read at the last prompt position, would say first.

Each layer's last-position state is decoded through the model's final norm and unembedding. Per layer and
prompt set (benign, harmful, each over-refusal set, and all over-refusal prompts pooled): the top-5 tokens of
the mean next-token distribution, and the mean probability mass on refusal-like and on compliance-like first
tokens (``REFUSAL_WORDS``, ``COMPLIANCE_WORDS``: the first sub-token of each word, as the tokenizer splits it
at the start of an answer; an id that both lists produce is dropped from both).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness.analysis.common import AnalysisRequest, collect, command_line, out_dir, page_head
from harness.defense import DefendedModel
from harness.errors import HarnessError
from harness.report import fmt, mass_panels, md_escape, md_table
from harness.runstore import write_json_atomic

# First sub-token of each word, as an answer would start with it (no leading space).
REFUSAL_WORDS = ("I", "Sorry", "sorry", "cannot", "As", "Unfortunately")
COMPLIANCE_WORDS = ("Sure", "Here", "To", "The", "1", "Certainly")
TOP_K = 5
POOLED = "over-refusal (all)"  # every over-refusal prompt in one set


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
    out = out_dir(request)
    request.command = request.command or command_line("logitlens", request)
    defended, info, states, report = collect(request, plugins, include_train=False)
    if request.over_refusal:
        states[POOLED] = np.concatenate([states[s] for s in request.over_refusal])
        report["sizes"][POOLED] = int(states[POOLED].shape[0])
    ordered = {k: states[k] for k in ["benign", "harmful", *request.over_refusal,
                                      *([POOLED] if request.over_refusal else [])]}
    tokens = token_sets(defended.tokenizer)
    result = logit_lens(defended, ordered, tokens)
    layers = list(range(next(iter(ordered.values())).shape[1]))
    write_logitlens(out, {"analysis": "logitlens", "command": request.command, **info, "prompts": report,
                          "position": "last prompt token", "token_sets": tokens, "layers": layers, **result})
    return out


def write_logitlens(out: Path, data: dict[str, Any]) -> None:
    """logitlens.json, its figure and logitlens.md, all drawn from ``data`` (what logitlens.json holds)."""
    write_json_atomic(out / "logitlens.json", data)
    mass_panels(out / "logitlens_mass.png", data["layers"], data["mass"], solid=("benign", "harmful", POOLED))
    (out / "logitlens.md").write_text(logitlens_page(data), encoding="utf-8")


def _token_list(entries: list[dict[str, Any]]) -> str:
    return ", ".join(f"{show_token(t['word'])} → {show_token(t['token'])} ({t['id']})" for t in entries) or "(none)"


def logitlens_page(data: dict[str, Any]) -> str:
    """logitlens.md: the token sets, then per layer and prompt set the two masses and the top tokens."""
    tokens, layers, mass = data["token_sets"], data["layers"], data["mass"]
    lines = page_head("Logit lens at the last prompt position", data) + [
        f"- **refusal-like tokens**: {_token_list(tokens['refusal'])}",
        f"- **compliance-like tokens**: {_token_list(tokens['compliance'])}",
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
    headers = ["layer", *[md_escape(s) for s in mass]]
    rows = [[str(l), *[f"{mass[s]['refusal'][l]:.2e} / {mass[s]['compliance'][l]:.2e}" for s in mass]] for l in layers]
    lines += [md_table(headers, rows), ""]
    for name in mass:
        lines += [f"### Top {TOP_K} tokens: {md_escape(name)}", ""]
        rows = [[str(l), *[f"{show_token(t['token'])} {fmt(t['p'])}" for t in data["top_tokens"][name][l]]]
                for l in layers]
        lines += [md_table(["layer", *[f"#{i + 1}" for i in range(TOP_K)]], rows), ""]
    return "\n".join(lines)
