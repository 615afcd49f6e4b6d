"""Re-label saved responses with any registered judge (``harness judge``).

Input is a run folder (its ``records.jsonl``) or a JSONL/CSV file of prompt and response pairs
(columns ``prompt``, ``response``; optional ``benchmark`` and ``id``). When a row names a
benchmark, the judge is given that benchmark, so the keyword judge applies the benchmark's pinned
rule. Labels go to a new JSONL file (default ``<run>/judged-<judge>.jsonl``, or
``<file>.judged-<judge>.jsonl`` beside an input file), one line per input row, in input order;
the input is only ever read.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.data import DataResolver, read_csv, read_jsonl
from harness.errors import HarnessError, unknown_name
from harness.runstore import read_run_records, safe_name

REQUIRED = ("prompt", "response")


@dataclass
class Pair:
    row: int  # 0-based position in the input
    prompt: str
    response: str
    benchmark: str | None
    id: str
    old_label: str | None = None


def load_pairs(source: Path) -> tuple[list[Pair], Path]:
    """The (prompt, response) pairs of a run folder or a JSONL/CSV file, and the file read."""
    source = Path(source)
    if source.is_dir():
        path = source / "records.jsonl"
        if not path.is_file():
            raise HarnessError(f"{str(source)!r} is a folder without records.jsonl; give a run folder or a JSONL/CSV file.")
        pairs = []
        for n, rec in enumerate(read_run_records(source)):
            messages = rec.get("messages") or []
            if "response" not in rec or not messages:
                raise HarnessError(f"{path}: record {n + 1} has no messages or response; not a harness run's records.")
            pairs.append(Pair(n, str(messages[-1]["content"]), str(rec["response"]), rec.get("benchmark"),
                              str(rec.get("id", n)), rec.get("label")))
        return pairs, path
    if not source.is_file():
        raise HarnessError(f"input {str(source)!r} not found; give a run folder or a JSONL/CSV file.")
    if source.suffix == ".csv":
        rows = read_csv(source)
    elif source.suffix in (".jsonl", ".jsonlines"):
        rows = read_jsonl(source)
        bad = next((i for i, r in enumerate(rows) if not isinstance(r, dict)), None)
        if bad is not None:
            raise HarnessError(f"{source}: line {bad + 1} is not a JSON object with prompt and response fields.")
    else:
        raise HarnessError(f"input {str(source)!r}: expected a run folder, a .jsonl or a .csv file.")
    missing = sorted({c for r in rows for c in REQUIRED if c not in r}, key=REQUIRED.index)
    if missing:
        found = sorted({k for r in rows for k in r})
        raise HarnessError(f"{source}: missing column(s) {', '.join(missing)}; found {', '.join(found) or '(none)'}. "
                           f"Each row needs {' and '.join(REQUIRED)} (benchmark and id are optional).")
    pairs = [Pair(n, str(r["prompt"]), str(r["response"]), (str(r["benchmark"]) if r.get("benchmark") else None),
                  str(r.get("id") or n), r.get("label")) for n, r in enumerate(rows)]
    return pairs, source


def default_out(source: Path, judge: str) -> Path:
    source = Path(source)
    if source.is_dir():
        return source / f"judged-{safe_name(judge)}.jsonl"
    return source.with_name(f"{source.stem}.judged-{safe_name(judge)}.jsonl")


def rejudge(source: Path, judge_name: str, judge_config: dict[str, Any] | None = None, *,
            out: Path | None = None, data_dir: Path | None = None, plugins=None,
            batch_size: int = 64) -> tuple[Path, Counter]:
    """Judge every pair of ``source`` and write the labels; returns the output path and label counts."""
    if plugins is None:
        from harness.plugins import plugins as load

        plugins = load()
    entry = plugins.judges.entry(judge_name)
    resolver = DataResolver(data_dir)
    judge = plugins.judges.construct(judge_name, judge_config, resolver)
    pairs, read_path = load_pairs(source)
    out = Path(out) if out else default_out(source, judge_name)
    if out.resolve() == read_path.resolve():
        raise HarnessError(f"--out {str(out)!r} is the input file; labels are never written over the input.")

    groups: dict[str | None, list[Pair]] = {}
    for p in pairs:
        groups.setdefault(p.benchmark, []).append(p)
    known = plugins.benchmarks.names()
    results: dict[int, dict[str, Any]] = {}
    for bench_name, members in groups.items():
        if bench_name is not None and bench_name not in known:
            raise unknown_name("benchmark", bench_name, known, f"(named by rows of {read_path}; leave the column "
                               "empty to judge without a benchmark's pinned rule)")
        bench = plugins.benchmarks.get(bench_name) if bench_name else None
        info = {**judge.describe(bench), "distribution": entry.distribution, "plugin_version": entry.version}
        for start in range(0, len(members), batch_size):
            chunk = members[start : start + batch_size]
            verdicts = judge.judge(bench, [p.prompt for p in chunk], [p.response for p in chunk])
            if len(verdicts) != len(chunk):
                raise HarnessError(f"judge {judge_name!r} returned {len(verdicts)} labels for {len(chunk)} responses.")
            for p, v in zip(chunk, verdicts):
                results[p.row] = {"row": p.row, "benchmark": p.benchmark, "id": p.id, "label": v.label,
                                  "reason": v.reason, "previous_label": p.old_label, "judge": info}

    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        for n in range(len(pairs)):
            fh.write(json.dumps(results[n], ensure_ascii=False) + "\n")
    os.replace(tmp, out)
    return out, Counter(r["label"] for r in results.values())
