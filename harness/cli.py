"""The ``harness`` command line.

    harness run --defense mosr [--model NAME] [--suite quick] [--set key=value ...]
    harness list defenses|benchmarks|judges|models|suites|backends|capability-tasks
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

from tabulate import tabulate

from harness.config import config_fields, parse_assignments
from harness.data import read_jsonl
from harness.defaults import DEFAULT_BACKEND, DEFAULT_DEFENSE, DEFAULT_JUDGE, DEFAULT_MODEL, DEFAULT_SUITE, TUNING_SUITE
from harness.errors import HarnessError
from harness.runstore import FinishedRun
from harness.training.probe import TrajectorySettings

RUN_FILE_KEYS = {"defense", "model", "suite", "seed", "judge", "config", "judge_config", "backend", "backend_config"}


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
        rows = [[n, e.obj.kind, e.obj.description, _fields_text(e.obj.Config), e.distribution]
                for n, e in sorted(p.defenses.items.items())]
        headers = ["defense", "kind", "description", "config fields", "from"]
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


def cmd_judge_agreement(args: argparse.Namespace) -> int:
    from harness.agreement import write_agreement

    print(f"wrote {write_agreement(Path(args.out), Path(args.data_dir) if args.data_dir else None)}")
    return 0


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


def cmd_trajectory(args: argparse.Namespace) -> int:
    from harness.trajectory import draw

    print(f"wrote {draw([Path(r) for r in args.runs], Path(args.out))}")
    return 0


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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="harness",
        description="Train jailbreak defenses and score safety, over-refusal and capability side by side.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run_p = sub.add_parser("run", help="apply a defense to a model and score it on a suite",
                           description="Apply (train) a defense, generate on every benchmark of a suite, "
                           "judge the answers and write a run folder. Re-running the same command resumes.")
    run_p.add_argument("--defense", help="defense name (default: none; see `harness list defenses`)")
    run_p.add_argument("--model", help=f"model preset, local folder or hub id (default: {DEFAULT_MODEL})")
    run_p.add_argument("--suite", help=f"suite name or path to a suite TOML (default: {DEFAULT_SUITE})")
    run_p.add_argument("--config", help="run file (TOML/JSON): defense, model, suite, seed, judge, [config]")
    run_p.add_argument("--from", dest="from_run", metavar="RUN_DIR",
                       help="start from a finished run: its defense, config, model, suite, seed and backend, and "
                       "its trained defense and capability scores, reused; typically to judge it again (--judge)")
    run_p.add_argument("--set", action="append", metavar="KEY=VALUE", help="defense config field (repeatable)")
    run_p.add_argument("--judge", help=f"judge name (default: {DEFAULT_JUDGE})")
    run_p.add_argument("--judge-set", action="append", metavar="KEY=VALUE", help="judge config field (repeatable)")
    run_p.add_argument("--out", help="run folder (default: runs/<model>__<defense>__<suite>__<id>)")
    run_p.add_argument("--runs-dir", default="runs", help="parent of default run folders (default: runs)")
    run_p.add_argument("--data-dir", help="dataset folder (default: $HARNESS_DATA_DIR, then the cache)")
    run_p.add_argument("--seed", type=int, help="random seed (default: 0)")
    run_p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    run_p.add_argument("--chat-template", help="Jinja chat template file for models without one")
    run_p.add_argument("--trust-remote-code", action="store_true", help="allow model repos to run their own code")
    run_p.add_argument("--contamination", choices=["refuse", "drop-eval"],
                       help="when the defense's training data overlaps the suite: refuse (default) or drop those items")
    run_p.add_argument("--no-cache", action="store_true",
                       help="generate every response again instead of reusing cached ones")
    run_p.add_argument("--backend", help=f"generation backend (default: {DEFAULT_BACKEND}; see `harness list backends`)")
    run_p.add_argument("--backend-set", action="append", metavar="KEY=VALUE",
                       help="backend config field (repeatable)")
    run_p.add_argument("--probe-every", type=int, default=TrajectorySettings.probe_every, metavar="N",
                       help="training defenses: judge short answers to a few validation prompts every N steps "
                       f"(0: never; default {TrajectorySettings.probe_every}); see `harness trajectory`")
    run_p.add_argument("--grad-norm-every", type=int, default=TrajectorySettings.grad_every, metavar="N",
                       help="training defenses: log each loss term's gradient norm every N steps (0: never; "
                       f"default {TrajectorySettings.grad_every})")
    run_p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    run_p.set_defaults(func=cmd_run)

    list_p = sub.add_parser("list", help="list installed plugins and their config fields",
                            description="List installed defenses, benchmarks, judges, model presets, suites, "
                            "generation backends or capability tasks.")
    list_p.add_argument("what", choices=["defenses", "benchmarks", "judges", "models", "suites", "backends",
                                         "capability-tasks"])
    list_p.set_defaults(func=cmd_list)

    judge_p = sub.add_parser("judge", help="re-label saved responses with any judge",
                             description="Judge the responses of a run folder (its records.jsonl, which is never "
                             "modified) or of a JSONL/CSV file with prompt and response columns (optional benchmark, "
                             "id), writing one label per row as JSON lines.")
    judge_p.add_argument("input", help="run folder, or .jsonl/.csv file of prompt/response pairs")
    judge_p.add_argument("--judge", default=DEFAULT_JUDGE, help=f"judge name (default: {DEFAULT_JUDGE}; see `harness list judges`)")
    judge_p.add_argument("--judge-set", action="append", metavar="KEY=VALUE", help="judge config field (repeatable)")
    judge_p.add_argument("--out", help="output .jsonl (default: <run>/judged-<judge>.jsonl or <file>.judged-<judge>.jsonl)")
    judge_p.add_argument("--data-dir", help="dataset folder (default: $HARNESS_DATA_DIR, then the cache)")
    judge_p.set_defaults(func=cmd_judge)

    agree_p = sub.add_parser("judge-agreement", help="score the refusal judges against XSTest's human labels",
                             description="Write a markdown table of each refusal judge's accuracy, refusal "
                             "precision/recall/F1 and Cohen's kappa against XSTest's human-labelled responses.")
    agree_p.add_argument("--data-dir", help="dataset folder (default: $HARNESS_DATA_DIR, then the cache)")
    agree_p.add_argument("--out", default="leaderboards/judge_agreement.md",
                         help="markdown file to write (default: leaderboards/judge_agreement.md)")
    agree_p.set_defaults(func=cmd_judge_agreement)

    lb_p = sub.add_parser("leaderboard", help="build a leaderboard page (markdown + figure) from run folders",
                          description="Build markdown tables (main table, per-benchmark details with 95% intervals "
                          "and counts, runs) and a safety-vs-over-refusal scatter plot from complete run folders only. "
                          "Runs made under different judges, generation settings or suites go into separate "
                          "sections (never one column). Incomplete runs are refused.")
    lb_p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders (manifest.json + metrics.json)")
    lb_p.add_argument("--out", help="markdown file to write (default: print to stdout)")
    lb_p.add_argument("--figure", help="scatter plot PNG (default: beside --out with .png; none without --out)")
    lb_p.add_argument("--show-responses", action="store_true",
                      help="add a few example responses per run (escaped; may include harmful text)")
    lb_p.set_defaults(func=cmd_leaderboard)

    tune_p = sub.add_parser("tune", help="search a defense's declared space on validation data, same budget for all",
                            description="Run BUDGET trials of the defense (Latin-hypercube configs from its declared "
                            "search space) on the validation suite, which is disjoint from every test benchmark, and "
                            "pick one by the selection rule: the lowest validation ASR among trials keeping benign "
                            "compliance >= min_benign_ratio x the undefended model's; ties to higher borderline "
                            "compliance. Writes trials.jsonl, selection.json and best.toml (for `harness run "
                            "--config`). Re-running the same command resumes.")
    tune_p.add_argument("--defense", required=True, help="defense to tune (see `harness list defenses`)")
    tune_p.add_argument("--model", default=DEFAULT_MODEL, help="model preset, folder or hub id")
    tune_p.add_argument("--suite", default=TUNING_SUITE, help=f"validation suite name or TOML (default: {TUNING_SUITE})")
    tune_p.add_argument("--budget", type=int, default=4, help="trials (default: 4; keep it equal across defenses)")
    tune_p.add_argument("--set", action="append", metavar="KEY=VALUE",
                        help="defense config field fixed for every trial (repeatable; not a searched one)")
    tune_p.add_argument("--rule", action="append", metavar="KEY=VALUE",
                        help="selection rule field: min_benign_ratio (default 0.9), harmful, benign, borderline")
    tune_p.add_argument("--out", help="study folder (default: <tune-dir>/<model>/<defense>)")
    tune_p.add_argument("--tune-dir", default="tuning", help="parent of default study folders (default: tuning)")
    tune_p.add_argument("--data-dir", help="dataset folder (default: $HARNESS_DATA_DIR, then the cache)")
    tune_p.add_argument("--seed", type=int, default=0, help="seed for the trial configs and every run (default: 0)")
    tune_p.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    tune_p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    tune_p.set_defaults(func=cmd_tune)

    trade_p = sub.add_parser("tradeoff", help="plot tuning trials: validation ASR vs over-refusal per defense",
                             description="One scatter plot of every trial of the given tuning studies (validation "
                             "ASR against val-borderline over-refusal) with each defense's Pareto front, its "
                             "selected trial (star) and the undefended model (X).")
    trade_p.add_argument("studies", nargs="+", metavar="STUDY_DIR", help="folders written by `harness tune`")
    trade_p.add_argument("--out", required=True, help="PNG file to write")
    trade_p.add_argument("--md", help="also write a markdown report: rule, budget, every trial, the choices")
    trade_p.set_defaults(func=cmd_tradeoff)

    an_p = sub.add_parser("analyze", help="representation analysis: per-layer probe, logit lens",
                          description="The paper's Figure 3 analysis on any model, defended or not: hidden states "
                          "at the last prompt position of every layer, with the defense's transform and hooks applied.")
    an_sub = an_p.add_subparsers(dest="what", required=True)
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--model", help="model preset, local folder or hub id (default: the run's model, "
                        f"else {DEFAULT_MODEL})")
    common.add_argument("--defense", help=f"defense to apply (default: {DEFAULT_DEFENSE}; not with --run)")
    common.add_argument("--set", action="append", metavar="KEY=VALUE", help="defense config field (repeatable)")
    common.add_argument("--run", help="apply the finished defense of this run folder (its config, adapter, seed)")
    common.add_argument("--data-dir", help="dataset folder (default: $HARNESS_DATA_DIR, then the cache)")
    common.add_argument("--out", help="output folder (default: analysis/<model>__<defense> or analysis/<run name>)")
    common.add_argument("--n", type=int, default=64, help="prompts per set (default: 64)")
    common.add_argument("--seed", type=int, default=0, help="seed for prompt subsets and the probe (default: 0)")
    common.add_argument("--split", choices=["test", "val"], default="test",
                        help="held-out split of refusal_direction's harmful/harmless prompts (default: test)")
    common.add_argument("--batch-size", type=int, default=8, help="prompts per forward pass (default: 8)")
    common.add_argument("--device", help="torch device (default: cuda if available, else cpu)")
    common.add_argument("--chat-template", help="Jinja chat template file for models without one")
    common.add_argument("--trust-remote-code", action="store_true", help="allow model repos to run their own code")
    common.add_argument("--no-progress", action="store_true", help="hide progress output")
    an_sub.add_parser("probe", parents=[common], help="per-layer linear probe harmful vs harmless; over-refusal shares",
                      description="Train a logistic-regression probe per layer on harmful_train vs harmless_train, "
                      "report held-out accuracy and the share of over-refusal prompts (xstest-safe, oktest, orbench, "
                      "phtest) it calls harmful. Writes probe.md, probe.json and PNG figures into --out.")
    an_sub.add_parser("logitlens", parents=[common], help="per-layer logit lens: top tokens, refusal vs compliance mass",
                      description="Decode each layer's last-prompt-position state through the final norm and "
                      "unembedding: top tokens and refusal-like vs compliance-like probability mass for benign, "
                      "harmful and over-refusal prompts. Writes logitlens.md, logitlens.json and a PNG into --out.")
    an_p.set_defaults(func=cmd_analyze)

    traj_p = sub.add_parser("trajectory", help="draw training runs' courses: loss terms, cosines, behaviour",
                            description="One row per run folder of a training defense: its loss terms, the "
                            "representation measures (harmful cosine per target layer, benign distance, gradient "
                            "norms) and the behaviour probe's shares, against the training step.")
    traj_p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders of training defenses")
    traj_p.add_argument("--out", required=True, help="PNG file to write")
    traj_p.set_defaults(func=cmd_trajectory)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except HarnessError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted; re-run the same command to resume.", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
