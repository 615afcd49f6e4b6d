"""The leaderboard's tables: one row per run, every cell read from its metrics or manifest, escaped.

Rates:

* ASR (safety and jailbreak benchmarks): share of coherent compliance;
* over-refusal (over-refusal benchmarks): share not answered with coherent compliance, shown as
  ``value (r refusal share / i incoherent share)``;
* capability: ``metrics["capability"][task] = {metric: value, ..., "n": N}`` where present.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from harness.benchmark import HARMFUL_CATEGORIES
from harness.leaderboard.runs import Run, Section
from harness.provenance import fingerprint
from harness.report import fmt, link, md_escape, md_table

CATEGORY_ORDER = {"safety": 0, "jailbreak": 1, "over_refusal": 2, "capability": 3}
PROMPT_CHARS = 160
RESPONSE_CHARS = 320


def benchmark_columns(section: Section) -> list[tuple[str, str]]:
    """(benchmark, category) in order: safety, jailbreak, over-refusal; by name within a category."""
    found: dict[str, str] = {}
    for run in section.runs:
        for name, m in run.benchmarks.items():
            found.setdefault(name, str(m.get("category", "")))
    return sorted(found.items(), key=lambda kv: (CATEGORY_ORDER.get(kv[1], 9), kv[0]))


def capability_columns(section: Section) -> list[str]:
    return sorted({task for run in section.runs for task in run.capability})


def _number(value: Any) -> float | None:
    if isinstance(value, dict):
        value = value.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)


def capability_cell(entry: dict[str, Any] | None, digits: int = 3) -> str:
    """``acc 0.250 / acc_norm 0.270`` from ``{metric: value, ..., "n": N}``."""
    if not entry:
        return "-"
    parts = [f"{md_escape(name)} {fmt(_number(v), digits)}" for name, v in sorted(entry.items())
             if name != "n" and not name.endswith("_stderr") and _number(v) is not None]
    return " / ".join(parts) or "-"


def headline_cell(m: dict[str, Any] | None, digits: int = 2) -> str:
    """ASR as a number; over-refusal with its refusal and incoherent shares."""
    if not m:
        return "-"
    if m.get("category") in HARMFUL_CATEGORIES:
        return fmt((m.get("asr") or {}).get("value"), digits)
    value = (m.get("over_refusal") or {}).get("value")
    r = (m.get("refusal_rate") or {}).get("value")
    i = (m.get("incoherent_rate") or {}).get("value")
    return f"{fmt(value, digits)} (r {fmt(r, digits)} / i {fmt(i, digits)})"


def setting_lines(section: Section, letter: str) -> list[str]:
    judge, gen, suite = section.key["judge"], section.key["generation"] or {}, section.key["suite"]
    settings = ", ".join(f"{md_escape(k)}={md_escape(v if isinstance(v, str) else json.dumps(v, sort_keys=True))}"
                         for k, v in sorted((judge.get("settings") or {}).items()))
    decoding = "greedy" if not gen.get("do_sample") else (
        f"sampling (temperature {md_escape(gen.get('temperature'))}, top_p {md_escape(gen.get('top_p'))})")
    return [
        f"## Setting {letter}: model {md_escape(section.key['model'])}, suite {md_escape(suite['name'])} "
        f"({md_escape(str(suite['sha256'])[:8])}), judge "
        f"{md_escape(judge['name'])} v{md_escape(judge['version'])} (settings "
        f"{fingerprint(judge.get('settings'))[:8]}), {md_escape(gen.get('max_new_tokens'))} new tokens, "
        f"{'greedy' if not gen.get('do_sample') else 'sampled'}",
        "",
        f"- **model**: {md_escape(section.key['model'])}",
        f"- **suite**: {md_escape(suite['name'])} (file sha256 {md_escape(suite['sha256'])})",
        f"- **judge**: {md_escape(judge['name'])} version {md_escape(judge['version'])}; settings: {settings or '(none)'}",
        f"- **generation**: max_new_tokens={md_escape(gen.get('max_new_tokens'))}, {decoding}",
        f"- **runs**: {len(section.runs)}",
        "",
    ]


def _run_cells(run: Run, base: Path) -> list[str]:
    """The first cells of a row: the defense, the model and a link to the run's manifest."""
    return [md_escape(run.defense), md_escape(run.model), link(run.path / "manifest.json", base, run.run_id)]


def main_table(section: Section, base: Path, front: set[str]) -> str:
    benches = benchmark_columns(section)
    tasks = capability_columns(section)
    headers = ["defense", "model", "run"]
    for name, cat in benches:
        headers.append(f"{'ASR' if cat in HARMFUL_CATEGORIES else 'over-refusal'} {md_escape(name)}")
    headers += [f"capability {md_escape(t)}" for t in tasks]
    headers += ["mean ASR", "mean over-refusal", "Pareto", "defense time (s)"]
    rows = []
    for run in section.runs:
        row = _run_cells(run, base)
        row += [headline_cell(run.benchmarks.get(name)) for name, _ in benches]
        row += [capability_cell(run.capability.get(t)) for t in tasks]
        row += [fmt(run.mean_rate(True), 2), fmt(run.mean_rate(False), 2),
                "yes" if run.run_id in front else "",
                fmt(_number((run.manifest.get("timings") or {}).get("defense_s")), 1)]
        rows.append(row)
    return md_table(headers, rows)


def detail_table(section: Section, base: Path, name: str) -> str:
    headers = ["defense", "model", "run", "metric", "value", "95% CI", "k / n", "refusal", "compliance",
               "incoherent", "refusal share", "incoherent share"]
    rows = []
    for run in section.runs:
        m = run.benchmarks.get(name)
        if not m:
            continue
        metric = "asr" if m.get("category") in HARMFUL_CATEGORIES else "over_refusal"
        rate = m.get(metric) or {}
        lo, hi = (rate.get("ci95") or [None, None])[:2]
        counts = m.get("counts") or {}
        rows.append([
            *_run_cells(run, base), metric, fmt(rate.get("value")), f"[{fmt(lo)}, {fmt(hi)}]",
            f"{rate.get('k', '-')} / {rate.get('n', '-')}",
            str(counts.get("refusal", "-")), str(counts.get("compliance", "-")), str(counts.get("incoherent", "-")),
            fmt((m.get("refusal_rate") or {}).get("value")), fmt((m.get("incoherent_rate") or {}).get("value")),
        ])
    return md_table(headers, rows)


def capability_table(section: Section, base: Path, task: str) -> str:
    metrics = sorted({k for run in section.runs for k, v in (run.capability.get(task) or {}).items()
                      if k != "n" and _number(v) is not None})
    headers = ["defense", "model", "run", *[md_escape(k) for k in metrics], "n"]
    rows = []
    for run in section.runs:
        entry = run.capability.get(task)
        if entry is None:
            continue
        rows.append([*_run_cells(run, base), *[fmt(_number(entry.get(k))) for k in metrics], str(entry.get("n", "-"))])
    return md_table(headers, rows)


def runs_table(section: Section, base: Path) -> str:
    headers = ["run", "defense", "kind", "config sha256", "plugin", "model", "model file / revision", "seed",
               "harness", "git", "hardware", "total time (s)"]
    rows = []
    for run in section.runs:
        m = run.manifest
        d = m.get("defense", {})
        model = m.get("model", {})
        git = m.get("git") or {}
        hw = m.get("hardware") or {}
        hw_text = ", ".join(hw.get("cuda") or []) or f"CPU x{hw.get('cpu_count', '?')}"
        commit = (git.get("commit") or "-")[:10] + (" (dirty)" if git.get("dirty") else "")
        rows.append([
            link(run.path / "manifest.json", base, run.run_id), md_escape(run.defense), md_escape(d.get("kind", "")),
            fingerprint(d.get("config", {}))[:12],
            md_escape(f"{d.get('distribution', '?')} {d.get('version', '?')}"), md_escape(run.model),
            md_escape((model.get("sha256") or model.get("revision") or "-")[:12]), str(m.get("seed", "-")),
            md_escape(m.get("harness_version", "-")), md_escape(commit), md_escape(hw_text),
            fmt(_number((m.get("timings") or {}).get("total_s")), 1),
        ])
    return md_table(headers, rows)


def _natural(text: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


def examples(run: Run, per_benchmark: int) -> list[str]:
    """The first ``per_benchmark`` records of each benchmark (by id, numbers in numeric order), escaped and cut."""
    if not (run.path / "records.jsonl").is_file():
        return ["(no records.jsonl in this run folder)"]
    by_bench: dict[str, list[dict[str, Any]]] = {}
    for rec in run.folder.records():
        by_bench.setdefault(str(rec.get("benchmark")), []).append(rec)
    rows = []
    for bench in sorted(by_bench):
        for rec in sorted(by_bench[bench], key=lambda r: _natural(str(r.get("id"))))[:per_benchmark]:
            messages = rec.get("messages") or [{}]
            prompt = messages[-1].get("content", "")
            rows.append([md_escape(bench), md_escape(rec.get("id")), md_escape(prompt, PROMPT_CHARS),
                         md_escape(rec.get("prefill", ""), PROMPT_CHARS), md_escape(rec.get("response", ""), RESPONSE_CHARS),
                         md_escape(rec.get("label", ""))])
    return [md_table(["benchmark", "id", "prompt", "prefill", "response", "label"], rows)]
