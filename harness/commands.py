"""What each ``harness`` command does once its arguments are parsed (``harness.cli`` parses them).

Each ``cmd_*`` takes the parsed arguments and returns the exit status; heavy modules are imported inside the
command that needs them, so ``harness --help`` and ``harness list`` start fast.
"""

from __future__ import annotations

import argparse
import json
import tomllib
from pathlib import Path
from typing import Any

from tabulate import tabulate

from harness.config import config_fields, parse_assignments
from harness.data import read_jsonl
from harness.defaults import DEFAULT_BACKEND, DEFAULT_DEFENSE, DEFAULT_JUDGE, DEFAULT_MODEL, DEFAULT_SUITE
from harness.errors import HarnessError
from harness.runstore import FinishedRun
from harness.training.probe import TrajectorySettings

RUN_FILE_KEYS = {"defense", "preset", "model", "suite", "seed", "judge", "config", "judge_config", "backend",
                 "backend_config"}


def _read_run_file(path: str) -> dict[str, Any]:
    """A run config file (TOML or JSON): defense, model, suite, seed, judge, and [config] fields."""
    p = Path(path)
    if not p.is_file():
        raise HarnessError(f"--config: file {path!r} not found.")
    try:
        data = tomllib.loads(p.read_text()) if p.suffix == ".toml" else json.loads(p.read_text())
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        raise HarnessError(f"--config {path}: malformed {p.suffix.lstrip('.').upper() or 'file'} ({err}).") from None
    unknown = set(data) - RUN_FILE_KEYS
    if unknown:
        raise HarnessError(
            f"--config {path}: unknown key(s) {', '.join(sorted(unknown))}; valid: {', '.join(sorted(RUN_FILE_KEYS))}."
        )
    return data


def cmd_run(args: argparse.Namespace) -> int:
    from harness.inherit import inherit
    from harness.pipeline import RunRequest, run
    from harness.plugins import plugins

    if args.config and args.from_run:
        raise HarnessError("--config and --from both say what to run; give one of them.")
    # what to run: a run file, or a finished run (its run-file keys plus contamination, exclude and reuse)
    file = (_read_run_file(args.config) if args.config
            else inherit(Path(args.from_run), plugins()) if args.from_run else {})
    defense_config = dict(file.get("config", {}))
    defense_config.update(parse_assignments(args.set or []))
    judge_config = dict(file.get("judge_config", {}))
    judge_config.update(parse_assignments(args.judge_set or []))
    backend_config = dict(file.get("backend_config", {}))
    backend_config.update(parse_assignments(args.backend_set or []))
    suite = args.suite or file.get("suite", DEFAULT_SUITE)
    # items a source run left out (a tuning trial's overlaps with test benchmarks) belong to its own suite
    exclude = file.get("exclude", frozenset()) if suite == file.get("suite") else frozenset()
    request = RunRequest(
        defense=args.defense or file.get("defense", DEFAULT_DEFENSE),
        defense_config=defense_config,
        preset=args.preset or file.get("preset"),
        limit=args.limit,
        model=args.model or file.get("model", DEFAULT_MODEL),
        suite=suite,
        judge=args.judge or file.get("judge", DEFAULT_JUDGE),
        judge_config=judge_config,
        out=Path(args.out) if args.out else None,
        runs_dir=Path(args.runs_dir),
        data_dir=Path(args.data_dir) if args.data_dir else None,
        seed=args.seed if args.seed is not None else int(file.get("seed", 0)),
        device=args.device,
        trust_remote_code=args.trust_remote_code,
        chat_template=args.chat_template,
        progress=not args.no_progress,
        contamination=args.contamination or file.get("contamination", "refuse"),
        use_cache=not args.no_cache,
        backend=args.backend or file.get("backend", DEFAULT_BACKEND),
        backend_config=backend_config,
        exclude=exclude,
        reuse=file.get("reuse"),
        trajectory=TrajectorySettings(probe_every=args.probe_every, grad_every=args.grad_norm_every),
    )
    out = run(request, plugins())
    metrics = FinishedRun(out).metrics()
    rows = []
    for name, m in metrics["benchmarks"].items():
        headline = m.get("asr") or m.get("over_refusal")
        lo, hi = headline["ci95"]
        rows.append([name, m["metric"], f"{headline['value']:.3f}", f"[{lo:.3f}, {hi:.3f}]",
                     m["n"], m["counts"]["refusal"], m["counts"]["incoherent"]])
    print(tabulate(rows, headers=["benchmark", "metric", "value", "95% CI", "n", "refusals", "incoherent"]))
    print(f"\nrun folder: {out}")
    return 0


def _fields_text(cls: type) -> str:
    fields = config_fields(cls)
    return ", ".join(f"{f['name']}: {f['type']} = {f['default']}" for f in fields) or "(no settings)"


def cmd_list(args: argparse.Namespace) -> int:
    from harness.plugins import plugins

    p = plugins()
    if args.what == "defenses":
        rows = [[n, e.obj.kind, e.obj.description, _fields_text(e.obj.Config), ", ".join(sorted(e.obj.presets)),
                 e.distribution] for n, e in sorted(p.defenses.items.items())]
        headers = ["defense", "kind", "description", "config fields", "presets", "from"]
    elif args.what == "benchmarks":
        rows = [[n, e.obj.category, e.obj.size, e.obj.metric, e.obj.description, e.distribution]
                for n, e in sorted(p.benchmarks.items.items())]
        headers = ["benchmark", "category", "size", "metric", "description", "from"]
    elif args.what == "judges":
        rows = [[n, e.obj.version, e.obj.description, _fields_text(e.obj.Config), e.distribution]
                for n, e in sorted(p.judges.items.items())]
        headers = ["judge", "version", "description", "config fields", "from"]
    elif args.what == "models":
        rows = [[n, e.obj.description, e.obj.source, "yes" if e.obj.gpu_only else "", e.distribution]
                for n, e in sorted(p.models.items.items())]
        headers = ["model", "description", "weights", "GPU only", "from"]
    elif args.what == "backends":
        rows = [[n, e.obj.description, _fields_text(e.obj.Config), e.obj.install or "(built in)", e.distribution]
                for n, e in sorted(p.backends.items.items())]
        headers = ["backend", "description", "config fields", "install", "from"]
    elif args.what == "capability-tasks":
        rows = [[n, e.obj.setting("output_type"), len(e.obj.data_files()), str(e.obj.folder), e.distribution]
                for n, e in sorted(p.capability_tasks.items.items())]
        headers = ["capability task", "output type", "data files", "folder", "from"]
    elif args.what == "plugins":
        kinds = {"defenses": p.defenses, "benchmarks": p.benchmarks, "judges": p.judges, "models": p.models,
                 "suites": p.suites, "backends": p.backends, "capability tasks": p.capability_tasks}
        def registers(ep: str) -> str:
            named = {kind: sorted(n for n, e in reg.items.items() if e.plugin == ep) for kind, reg in kinds.items()}
            return "; ".join(f"{kind}: {', '.join(names)}" for kind, names in named.items() if names)

        rows = [[ep, dist, version, registers(ep)] for ep, (dist, version) in sorted(p.loaded.items())]
        headers = ["entry point", "distribution", "version", "registers"]
    else:
        from harness.suite import load_suite_file

        rows = []
        for n, e in sorted(p.suites.items.items()):
            s = load_suite_file(Path(e.obj))
            parts = ", ".join(f"{b.name}" + (f"[{b.limit}]" if b.limit else "") for b in s.benchmarks)
            rows.append([n, s.description, parts, s.generation.max_new_tokens, e.distribution])
        headers = ["suite", "description", "benchmarks[limit]", "max new tokens", "from"]
    print(tabulate(rows, headers=headers, maxcolwidths=[None, 60, 60, 60, None, None]))
    return 0


def cmd_judge(args: argparse.Namespace) -> int:
    from harness.rejudge import rejudge

    out, counts = rejudge(Path(args.input), args.judge, parse_assignments(args.judge_set or []),
                          out=Path(args.out) if args.out else None,
                          data_dir=Path(args.data_dir) if args.data_dir else None)
    print(tabulate(sorted(counts.items()), headers=["label", "count"]))
    print(f"\nlabels: {out}")
    return 0


def _wrote(path: Path) -> int:
    print(f"wrote {path}")
    return 0


def cmd_judge_agreement(args: argparse.Namespace) -> int:
    from harness.agreement import write_agreement

    return _wrote(write_agreement(Path(args.out), Path(args.data_dir) if args.data_dir else None))


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from harness.leaderboard import build

    out = Path(args.out) if args.out else None
    figure = Path(args.figure) if args.figure else (out.with_suffix(".png") if out else None)
    text = build(args.runs, out=out, figure=figure, show_responses=args.show_responses)
    if out is None:
        print(text, end="")
    else:
        print(f"wrote {out}" + (f" and {figure}" if figure else ""))
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from harness.analysis import AnalysisRequest, run_logitlens, run_probe
    from harness.plugins import plugins

    request = AnalysisRequest(
        model=args.model, defense=args.defense, defense_config=parse_assignments(args.set or []),
        run=Path(args.run) if args.run else None, data_dir=Path(args.data_dir) if args.data_dir else None,
        out=Path(args.out) if args.out else None, n=args.n, seed=args.seed, split=args.split,
        batch_size=args.batch_size, device=args.device, trust_remote_code=args.trust_remote_code,
        chat_template=args.chat_template, progress=not args.no_progress,
    )
    out = (run_probe if args.what == "probe" else run_logitlens)(request, plugins())
    name = "probe" if args.what == "probe" else "logitlens"
    print(f"wrote {out / (name + '.md')}, {out / (name + '.json')} and figures in {out}")
    return 0


def cmd_tune(args: argparse.Namespace) -> int:
    from harness.plugins import plugins
    from harness.tuning import TuneRequest, tune

    out = tune(TuneRequest(
        defense=args.defense, model=args.model, suite=args.suite, budget=args.budget, seed=args.seed,
        out=Path(args.out) if args.out else None, tune_dir=Path(args.tune_dir),
        data_dir=Path(args.data_dir) if args.data_dir else None, fixed=parse_assignments(args.set or []),
        rule=parse_assignments(args.rule or []), device=args.device, progress=not args.no_progress,
    ), plugins())
    selection = json.loads((out / "selection.json").read_text())
    rows = []
    for t in read_jsonl(out / "trials.jsonl"):
        s = t["scores"]
        rows.append([t["trial"], json.dumps(t["params"]), f"{s['asr']:.3f}", f"{s['benign_compliance']:.3f}",
                     f"{s['borderline_compliance']:.3f}", f"{t['seconds']:.0f}",
                     "*" if t["trial"] == selection["trial"] else ""])
    base = selection["baseline"]
    rows.append(["undefended", "", f"{base['asr']:.3f}", f"{base['benign_compliance']:.3f}",
                 f"{base['borderline_compliance']:.3f}", "", ""])
    print(tabulate(rows, headers=["trial", "params", "val ASR", "benign compl.", "borderline compl.", "s", "chosen"]))
    print(f"\n{selection['reason']}.\nconfig: {out / 'best.toml'} (harness run --config {out / 'best.toml'})")
    return 0


def _labels(folder: Path) -> list[dict[str, Any]]:
    """A run's per-item labels: its records, or, for a published run whose answers are not committed, its
    labels.jsonl (benchmark, id, label and reason of every item, no text)."""
    run = FinishedRun(folder)
    if not (folder / "records.jsonl").is_file() and (folder / "labels.jsonl").is_file():
        return read_jsonl(folder / "labels.jsonl")
    return run.records()


def cmd_compare(args: argparse.Namespace) -> int:
    from harness.operating_point import beats_none

    v = beats_none(_labels(Path(args.run)), _labels(Path(args.baseline)))
    t = v["mcnemar"]
    rows = [["harmful ASR", f"{v['asr']:.3f}", f"{v['asr_baseline']:.3f}",
             f"McNemar p={t['p']:.4f} (only baseline {t['only_base']}, only run {t['only_other']}, n {t['n']})",
             v["checks"]["safer"]],
            ["benign compliance", f"{v['benign_compliance']:.3f}", f"{v['benign_compliance_baseline']:.3f}",
             f">= {v['rule']['min_benign_ratio']} x baseline", v["checks"]["keeps_benign"]],
            ["benign incoherent", f"{v['benign_incoherent']:.3f}", "", f"<= {v['rule']['max_incoherent']}",
             v["checks"]["coherent"]]]
    print(tabulate(rows, headers=["", "run", "baseline", "test", "passes"]))
    print(f"\nbeats none: {'yes' if v['beats_none'] else 'no'}")
    return 0


def cmd_trajectory(args: argparse.Namespace) -> int:
    from harness.trajectory import draw

    return _wrote(draw([Path(r) for r in args.runs], Path(args.out)))


def cmd_tradeoff(args: argparse.Namespace) -> int:
    from harness.tuning import tradeoff_figure, tuning_report

    studies = [Path(p) for p in args.studies]
    figure = tradeoff_figure(studies, Path(args.out))
    print(f"wrote {figure}")
    if args.md:
        from harness.report import page_command

        md = Path(args.md)
        command = page_command(["harness", "tradeoff", *studies, "--out", figure, "--md", md], md.parent)
        md.write_text(tuning_report(studies, figure if figure.parent.resolve() == md.parent.resolve() else None,
                                    command=command))
        print(f"wrote {md}")
    return 0


