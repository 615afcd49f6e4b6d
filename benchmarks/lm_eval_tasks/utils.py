"""Loaders and scorers for the harness's own lm-eval tasks (the YAMLs in this folder).

Why local loaders instead of ``dataset_path: csv/json``: the data folder must be a run-time
parameter, and lm-eval 0.4.13 hands a task's ``custom_dataset`` function its TaskManager
``metadata`` plus its ``dataset_kwargs``. So each YAML names its files *relative to the data
folder* in ``dataset_kwargs.data_files`` and the caller passes ``metadata={"data_dir": ...}``
(``harness.capability`` does; on the CLI: ``--metadata '{"data_dir": "/path/to/data"}'``).
Reading the files ourselves also avoids two real problems of the datasets csv/json builders:
pandas turns MMLU answer options such as "None" into NaN and infers different column types per
subject file, and TruthfulQA's ``mc_task.json`` keys its answers by text, which Arrow would turn
into one struct with thousands of fields (losing the answer order MC1 relies on).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import datasets
import numpy as np


def _paths(data_dir, data_files) -> dict[str, list[Path]]:
    """Resolve ``{split: file | [files]}`` against ``data_dir``; fail loudly on anything missing."""
    if not data_dir:
        raise ValueError(
            "harness lm-eval tasks need the data folder: pass TaskManager(metadata={'data_dir': ...}) "
            "or --metadata '{\"data_dir\": \"/path/to/data\"}' on the lm-eval command line"
        )
    out = {}
    for split, rels in dict(data_files).items():
        paths = [Path(data_dir) / r for r in ([rels] if isinstance(rels, str) else rels)]
        for p in paths:
            if not p.is_file():
                raise FileNotFoundError(f"missing data file {p} (data_dir={data_dir})")
        out[split] = paths
    return out


def _dataset(data_dir, data_files, read) -> datasets.DatasetDict:
    return datasets.DatasetDict(
        {
            split: datasets.Dataset.from_list([row for p in paths for row in read(p)])
            for split, paths in _paths(data_dir, data_files).items()
        }
    )


def _read_csv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))  # every cell stays a string: no NA guessing


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _read_truthfulqa(path: Path) -> list[dict]:
    """mc_task.json keys answers by text; keep their order (MC1's correct answer is first)."""
    rows = []
    for item in json.loads(path.read_text(encoding="utf-8")):
        row = {"question": item["question"]}
        for key in ("mc1", "mc2"):
            targets = item[f"{key}_targets"]
            row[f"{key}_choices"] = list(targets)
            row[f"{key}_labels"] = [int(v) for v in targets.values()]
        rows.append(row)
    return rows


def load_csv(data_dir=None, data_files=None, **_metadata) -> datasets.DatasetDict:
    """custom_dataset for CSV files with a header row."""
    return _dataset(data_dir, data_files, _read_csv)


def load_jsonl(data_dir=None, data_files=None, **_metadata) -> datasets.DatasetDict:
    """custom_dataset for JSON-lines files."""
    return _dataset(data_dir, data_files, _read_jsonl)


def load_truthfulqa(data_dir=None, data_files=None, **_metadata) -> datasets.DatasetDict:
    """custom_dataset for TruthfulQA's mc_task.json (one JSON array)."""
    return _dataset(data_dir, data_files, _read_truthfulqa)


def process_results_mc2(doc, results):
    """TruthfulQA MC2: probability mass on the true answers, normalised over all answers."""
    ll = np.array([r[0] for r in results], dtype=np.float64)
    probs = np.exp(ll - ll.max())  # shift first: raw exp underflows for long answers
    labels = np.array(doc["mc2_labels"])
    return {"acc": float(probs[labels == 1].sum() / probs.sum())}


def process_results_loglik(doc, results):
    """Byte-normalised log-likelihood of the reference answer (tokenizer-independent)."""
    ll = float(results[0][0])
    n_bytes = max(1, len(doc_to_target_benign(doc).encode("utf-8")))
    return {"bits_per_byte": (ll, n_bytes), "logprob_per_byte": ll / n_bytes}


def doc_to_text_benign(doc) -> str:
    inst = doc["instances"][0]
    return doc["instruction"] + (f"\n\n{inst['input']}" if inst["input"] else "") + "\n"


def doc_to_target_benign(doc) -> str:
    return doc["instances"][0]["output"]
