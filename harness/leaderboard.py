"""``harness leaderboard``: markdown tables and a scatter plot, built from run folders only.

Nothing on a page is typed by hand: every number comes from a run folder's ``metrics.json``, every
label from its ``manifest.json`` (and, with ``--show-responses``, example answers from its
``records.jsonl``). A rebuild from the same folders gives byte-identical markdown: rows are sorted,
floats have a fixed format, the page carries no build time, and its paths are relative to the
folder the page is written to.

Settings are never mixed in one column. Runs are grouped by *setting*: the judge (name, version,
settings), the generation settings (max new tokens, greedy or sampling) and the suite (name and
file sha256). Each setting gets its own section with its own tables and its own panel of the
figure, headed by what produced it; a column only ever holds rows made under one setting.

Rates:

* ASR (safety and jailbreak benchmarks): share of coherent compliance;
* over-refusal (over-refusal benchmarks): share not answered with coherent compliance, shown as
  ``value (r refusal share / i incoherent share)``;
* capability: ``metrics["capability"][task] = {metric: value, ..., "n": N}`` where present;
* the figure's axes, "mean ASR" and "mean over-refusal", are unweighted means over the setting's
  harmful and over-refusal benchmarks (every benchmark counts once, whatever its size).
"""

from __future__ import annotations

import json
import math
import os
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable
from urllib.parse import quote

from tabulate import tabulate

from harness.benchmark import HARMFUL_CATEGORIES
from harness.errors import HarnessError
from harness.provenance import fingerprint
from harness.runstore import RunFolder

CATEGORY_ORDER = {"safety": 0, "jailbreak": 1, "over_refusal": 2, "capability": 3}
EXAMPLES_PER_BENCHMARK = 2
PROMPT_CHARS = 160
RESPONSE_CHARS = 320

# Characters that HTML or markdown would interpret, written as character references so they
# show as themselves: tags and entities, table pipes, code spans, emphasis, links/images,
# headings, escapes, math.
_MD_ENTITIES = {
    "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;",
    "|": "&#124;", "`": "&#96;", "*": "&#42;", "_": "&#95;", "[": "&#91;", "]": "&#93;",
    "~": "&#126;", "\\": "&#92;", "#": "&#35;", "!": "&#33;", "$": "&#36;",
}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u2028\u2029]")


def md_escape(text: Any, max_chars: int | None = None) -> str:
    """Text that markdown shows verbatim on one line: HTML, pipes, backticks, markup and newlines escaped.

    Line breaks become ``<br>`` (the only markup this emits), other control characters become
    U+FFFD, and text over ``max_chars`` is cut with an ellipsis before escaping.
    """
    s = "" if text is None else str(text)
    if max_chars is not None and len(s) > max_chars:
        s = s[:max_chars] + "…"
    s = s.replace("\r\n", "\n").replace("\r", "\n").replace("\t", " ")
    s = _CONTROL.sub("\ufffd", s)
    s = "".join(_MD_ENTITIES.get(ch, ch) for ch in s)  # one pass: no entity is escaped twice
    return s.replace("\n", "<br>")


def fmt(value: float | None, digits: int = 3) -> str:
    """A fixed float format; ``-`` for a missing value."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:.{digits}f}"


@dataclass
class Run:
    """One complete run folder, read."""

    path: Path
    manifest: dict[str, Any]
    metrics: dict[str, Any]

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
    key: dict[str, Any]
    runs: list[Run] = field(default_factory=list)

    @property
    def id(self) -> str:
        return fingerprint(self.key)[:8]


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
        manifest = RunFolder(path).read_manifest() or {}
        if manifest.get("status") != "complete":
            incomplete.append(f"{raw} (status {manifest.get('status')!r})")
            continue
        if not (path / "metrics.json").is_file():
            incomplete.append(f"{raw} (no metrics.json)")
            continue
        try:
            metrics = json.loads((path / "metrics.json").read_text())
        except json.JSONDecodeError as err:
            problems.append(f"{raw} (unreadable metrics.json: {err})")
            continue
        if metrics.get("run_id") != manifest.get("run_id"):
            problems.append(f"{raw} (metrics.json belongs to run {metrics.get('run_id')!r}, the manifest to "
                            f"{manifest.get('run_id')!r})")
            continue
        runs.append(Run(path, manifest, metrics))
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


# --- tables -----------------------------------------------------------------------------------


def page_relative(path: str | Path, base: Path) -> str:
    """``path`` as seen from ``base`` (a generated page's folder), with forward slashes."""
    return Path(os.path.relpath(Path(path).resolve(), base.resolve())).as_posix()


def _link(target: Path, base: Path, text: str) -> str:
    return f"[{md_escape(text)}]({quote(page_relative(target, base))})"


def _benchmark_columns(section: Section) -> list[tuple[str, str]]:
    """(benchmark, category) in order: safety, jailbreak, over-refusal; by name within a category."""
    found: dict[str, str] = {}
    for run in section.runs:
        for name, m in run.benchmarks.items():
            found.setdefault(name, str(m.get("category", "")))
    return sorted(found.items(), key=lambda kv: (CATEGORY_ORDER.get(kv[1], 9), kv[0]))


def _capability_columns(section: Section) -> list[str]:
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


def pareto_front(points: dict[str, tuple[float, float]]) -> set[str]:
    """Keys of the points no other point beats (lower or equal on both axes, lower on one)."""
    front = set()
    for key, (x, y) in points.items():
        dominated = any(
            (x2 <= x and y2 <= y) and (x2 < x or y2 < y) for k2, (x2, y2) in points.items() if k2 != key
        )
        if not dominated:
            front.add(key)
    return front


def _points(section: Section) -> dict[str, tuple[float, float]]:
    out = {}
    for run in section.runs:
        x, y = run.mean_rate(harmful=False), run.mean_rate(harmful=True)
        if x is not None and y is not None:
            out[run.run_id] = (x, y)
    return out


def _setting_lines(section: Section, letter: str) -> list[str]:
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


def _main_table(section: Section, base: Path, front: set[str]) -> str:
    benches = _benchmark_columns(section)
    tasks = _capability_columns(section)
    headers = ["defense", "model", "run"]
    for name, cat in benches:
        headers.append(f"{'ASR' if cat in HARMFUL_CATEGORIES else 'over-refusal'} {md_escape(name)}")
    headers += [f"capability {md_escape(t)}" for t in tasks]
    headers += ["mean ASR", "mean over-refusal", "Pareto", "defense time (s)"]
    rows = []
    for run in section.runs:
        row = [md_escape(run.defense), md_escape(run.model), _link(run.path / "manifest.json", base, run.run_id)]
        row += [headline_cell(run.benchmarks.get(name)) for name, _ in benches]
        row += [capability_cell(run.capability.get(t)) for t in tasks]
        row += [fmt(run.mean_rate(True), 2), fmt(run.mean_rate(False), 2),
                "yes" if run.run_id in front else "",
                fmt(_number((run.manifest.get("timings") or {}).get("defense_s")), 1)]
        rows.append(row)
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def _detail_table(section: Section, base: Path, name: str) -> str:
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
            md_escape(run.defense), md_escape(run.model), _link(run.path / "manifest.json", base, run.run_id),
            metric, fmt(rate.get("value")), f"[{fmt(lo)}, {fmt(hi)}]", f"{rate.get('k', '-')} / {rate.get('n', '-')}",
            str(counts.get("refusal", "-")), str(counts.get("compliance", "-")), str(counts.get("incoherent", "-")),
            fmt((m.get("refusal_rate") or {}).get("value")), fmt((m.get("incoherent_rate") or {}).get("value")),
        ])
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def _capability_table(section: Section, base: Path, task: str) -> str:
    metrics = sorted({k for run in section.runs for k, v in (run.capability.get(task) or {}).items()
                      if k != "n" and _number(v) is not None})
    headers = ["defense", "model", "run", *[md_escape(k) for k in metrics], "n"]
    rows = []
    for run in section.runs:
        entry = run.capability.get(task)
        if entry is None:
            continue
        rows.append([md_escape(run.defense), md_escape(run.model), _link(run.path / "manifest.json", base, run.run_id),
                     *[fmt(_number(entry.get(k))) for k in metrics], str(entry.get("n", "-"))])
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def _runs_table(section: Section, base: Path) -> str:
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
            _link(run.path / "manifest.json", base, run.run_id), md_escape(run.defense), md_escape(d.get("kind", "")),
            fingerprint(d.get("config", {}))[:12],
            md_escape(f"{d.get('distribution', '?')} {d.get('version', '?')}"), md_escape(run.model),
            md_escape((model.get("sha256") or model.get("revision") or "-")[:12]), str(m.get("seed", "-")),
            md_escape(m.get("harness_version", "-")), md_escape(commit), md_escape(hw_text),
            fmt(_number((m.get("timings") or {}).get("total_s")), 1),
        ])
    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def _natural(text: str) -> tuple:
    return tuple(int(p) if p.isdigit() else p for p in re.split(r"(\d+)", text))


def _examples(run: Run, per_benchmark: int) -> list[str]:
    path = run.path / "records.jsonl"
    if not path.is_file():
        return ["(no records.jsonl in this run folder)"]
    by_bench: dict[str, list[dict[str, Any]]] = {}
    # read only: RunFolder.read_records would also truncate a torn last line
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            raise HarnessError(f"{path}: line {number} is not valid JSON.") from None
        by_bench.setdefault(str(rec.get("benchmark")), []).append(rec)
    rows = []
    for bench in sorted(by_bench):
        for rec in sorted(by_bench[bench], key=lambda r: _natural(str(r.get("id"))))[:per_benchmark]:
            messages = rec.get("messages") or [{}]
            prompt = messages[-1].get("content", "")
            rows.append([md_escape(bench), md_escape(rec.get("id")), md_escape(prompt, PROMPT_CHARS),
                         md_escape(rec.get("prefill", ""), PROMPT_CHARS), md_escape(rec.get("response", ""), RESPONSE_CHARS),
                         md_escape(rec.get("label", ""))])
    return [tabulate(rows, headers=["benchmark", "id", "prompt", "prefill", "response", "label"],
                     tablefmt="github", disable_numparse=True)]


# --- figure -----------------------------------------------------------------------------------


def scatter(sections: list[Section], path: Path) -> None:
    """Mean ASR against mean over-refusal, one panel per setting, the Pareto front marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = len(sections)
    fig, axes = plt.subplots(1, n, figsize=(6.4 * n, 5.2), squeeze=False)
    for ax, (letter, section) in zip(axes[0], zip(_letters(n), sections)):
        points = _points(section)
        front = pareto_front(points)
        runs = {r.run_id: r for r in section.runs}
        # runs that land on the same spot (to the plotted precision) share one label instead of overprinting
        spots: dict[tuple[float, float], list[str]] = {}
        for rid in sorted(points, key=lambda k: (points[k], runs[k].defense, k)):
            spots.setdefault((round(points[rid][0], 2), round(points[rid][1], 2)), []).append(rid)
        placed: list[tuple[float, float]] = []
        for (x, y), rids in sorted(spots.items(), key=lambda item: (-item[0][1], item[0][0])):
            on = any(rid in front for rid in rids)
            ax.scatter([x], [y], s=60 if on else 36, marker="*" if on else "o",
                       color="tab:red" if on else "tab:blue", zorder=3)
            label = ", ".join(runs[rid].defense for rid in rids).replace("$", r"\$")
            right = x > 0.6  # labels of points near the right edge go to their left
            # nearby points would print their labels over each other: move a label down until it is clear
            ly = y + 0.012
            while any(abs(ly - py) < 0.035 and abs(x - px) < 0.3 for px, py in placed):
                ly -= 0.035
            placed.append((x, ly))
            ax.annotate(label, (x, y), xytext=(x - 0.012 if right else x + 0.012, ly), fontsize=8,
                        ha="right" if right else "left", va="bottom",
                        arrowprops={"arrowstyle": "-", "color": "0.6", "lw": 0.5} if abs(ly - y) > 0.02 else None)
        if front:
            fx, fy = zip(*sorted(points[k] for k in front))
            ax.step(fx, fy, where="post", color="tab:red", linestyle="--", linewidth=1, label="Pareto front", zorder=2)
            ax.legend(loc="upper right", fontsize=8)
        ax.set_xlim(-0.05, 1.05)
        ax.set_ylim(-0.05, 1.05)
        ax.set_xlabel("mean over-refusal (lower is better)")
        ax.set_ylabel("mean ASR (lower is better)")
        gen = section.key["generation"] or {}
        suite = section.key["suite"]
        title = (f"Setting {letter}: {section.key['model']}\nsuite {suite['name']} ({str(suite['sha256'])[:8]}), judge "
                 f"{section.key['judge']['name']} v{section.key['judge']['version']} "
                 f"({fingerprint(section.key['judge'].get('settings'))[:8]}), {gen.get('max_new_tokens')} new "
                 f"tokens, {'greedy' if not gen.get('do_sample') else 'sampled'}")
        ax.set_title(title.replace("$", r"\$"), fontsize=9)
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, metadata={"Software": None})
    plt.close(fig)


def _letters(n: int) -> list[str]:
    out = []
    for i in range(n):
        s, k = "", i
        while True:
            s = chr(ord("A") + k % 26) + s
            k = k // 26 - 1
            if k < 0:
                break
        out.append(s)
    return out


# --- page -------------------------------------------------------------------------------------


def page_command(words: list[str | Path], base: Path) -> str:
    """A shell line for a generated page's code block: ``Path`` words made relative to ``base`` (the page's
    folder, where the line is to be run), everything quoted; a backtick or line break would break the block."""
    parts = [page_relative(w, base) if isinstance(w, Path) else w for w in words]
    bad = [p for p in parts if "`" in p or "\n" in p or "\r" in p]
    if bad:
        raise HarnessError(f"path(s) {', '.join(map(repr, bad))} contain a backtick or line break; rename them.")
    return " ".join(shlex.quote(p) for p in parts)


def rebuild_command(run_dirs: list[Path], base: Path, out: Path | None, figure: Path | None,
                    show_responses: bool) -> str:
    """The command that rebuilds the page, with every path relative to the page's folder."""
    runs = sorted(run_dirs, key=lambda p: page_relative(p, base))
    words: list[str | Path] = ["harness", "leaderboard", *map(Path, runs)]
    if out is not None:
        words += ["--out", Path(out)]
    if figure is not None:
        words += ["--figure", Path(figure)]
    if show_responses:
        words.append("--show-responses")
    return page_command(words, base)


def build(run_dirs: list[str | Path], *, out: Path | None = None, figure: Path | None = None,
          show_responses: bool = False) -> str:
    """The leaderboard markdown for ``run_dirs``; writes ``out`` and ``figure`` when given."""
    runs = load_runs(run_dirs)
    sections = group_runs(runs)
    base = out.parent if out is not None else Path.cwd()
    letters = _letters(len(sections))
    command = rebuild_command([r.path for r in runs], base, out, figure, show_responses)
    lines = [
        "# Defense leaderboard",
        "",
        "<!-- generated by `harness leaderboard` from run folders; do not edit by hand -->",
        "",
        "Rebuild this page (run the command in the folder this page is in):",
        "",
        "```bash",
        command,
        "```",
        "",
        "Every number below is read from a run folder's `metrics.json`; every row links to the run's `manifest.json`. "
        "ASR is the share of harmful prompts answered with coherent compliance; over-refusal is the share of benign "
        "prompts not answered with coherent compliance, shown as `value (r refusal share / i incoherent share)`. "
        "Mean ASR and mean over-refusal are unweighted means over the setting's benchmarks. A run is on the Pareto "
        "front when no other run of its setting has both a lower-or-equal mean ASR and a lower-or-equal mean "
        "over-refusal (one of them strictly lower). Defense time is `timings.defense_s` of the manifest (training "
        "or preparing the defense, on the run's hardware).",
        "",
    ]
    if len(sections) > 1:
        lines += [
            f"The runs fall into {len(sections)} settings (model, judge, generation settings or suite), shown in "
            "separate sections and figure panels, each with its own Pareto front. Sections that differ only in the "
            "model share columns and can be read side by side; numbers from sections with a different judge, "
            "generation settings or suite are not comparable.",
            "",
        ]
    if figure is not None:
        scatter(sections, figure)
        lines += [f"![safety vs over-refusal: mean ASR against mean over-refusal per run]"
                  f"({quote(page_relative(figure, base))})", ""]
    for letter, section in zip(letters, sections):
        points = _points(section)
        front = pareto_front(points)
        lines += _setting_lines(section, letter)
        lines += [f"### Main table (setting {letter})", "", _main_table(section, base, front), ""]
        missing = [r for r in section.runs if r.run_id not in points]
        if missing:
            lines += ["Not in the figure (no harmful or no over-refusal benchmark): "
                      + ", ".join(md_escape(f"{r.defense} ({r.model}, {r.run_id})") for r in missing) + ".", ""]
        for name, cat in _benchmark_columns(section):
            lines += [f"### {md_escape(name)} ({md_escape(cat)}, setting {letter})", "", _detail_table(section, base, name), ""]
        for task in _capability_columns(section):
            lines += [f"### capability: {md_escape(task)} (setting {letter})", "", _capability_table(section, base, task), ""]
        lines += [f"### Runs (setting {letter})", "", _runs_table(section, base), ""]
        if show_responses:
            lines += [f"### Example responses (setting {letter})", "",
                      "Model outputs, escaped and shortened; answers to harmful prompts may contain harmful text.", ""]
            for run in section.runs:
                lines += [f"#### {md_escape(run.defense)} ({md_escape(run.model)}, run "
                          f"{_link(run.path / 'manifest.json', base, run.run_id)})", ""]
                lines += _examples(run, EXAMPLES_PER_BENCHMARK) + [""]
    text = "\n".join(lines).rstrip("\n") + "\n"
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text, encoding="utf-8")
    return text
