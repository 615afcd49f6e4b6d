"""The ``harness`` command line.

    harness run --defense mosr [--model NAME] [--suite quick] [--set key=value ...]
    harness list defenses|benchmarks|judges|models|suites|backends|capability-tasks
"""

from __future__ import annotations

import argparse
import sys

from harness import commands
from harness.defaults import DEFAULT_BACKEND, DEFAULT_DEFENSE, DEFAULT_JUDGE, DEFAULT_MODEL, DEFAULT_SUITE, TUNING_SUITE
from harness.errors import HarnessError
from harness.training.probe import TrajectorySettings


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
    run_p.add_argument("--limit", type=int, metavar="N",
                       help="at most N items per benchmark and capability task (a quick look; another run id)")
    run_p.add_argument("--preset", help="a named set of the defense's config values (`harness list defenses`; e.g. "
                       "reference: its paper's recipe); --set overrides them")
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
    run_p.set_defaults(func=commands.cmd_run)

    list_p = sub.add_parser("list", help="list installed plugins and their config fields",
                            description="List installed defenses, benchmarks, judges, model presets, suites, "
                            "generation backends or capability tasks.")
    list_p.add_argument("what", choices=["defenses", "benchmarks", "judges", "models", "suites", "backends",
                                         "capability-tasks", "plugins"])
    list_p.set_defaults(func=commands.cmd_list)

    judge_p = sub.add_parser("judge", help="re-label saved responses with any judge",
                             description="Judge the responses of a run folder (its records.jsonl, which is never "
                             "modified) or of a JSONL/CSV file with prompt and response columns (optional benchmark, "
                             "id), writing one label per row as JSON lines.")
    judge_p.add_argument("input", help="run folder, or .jsonl/.csv file of prompt/response pairs")
    judge_p.add_argument("--judge", default=DEFAULT_JUDGE, help=f"judge name (default: {DEFAULT_JUDGE}; see `harness list judges`)")
    judge_p.add_argument("--judge-set", action="append", metavar="KEY=VALUE", help="judge config field (repeatable)")
    judge_p.add_argument("--out", help="output .jsonl (default: <run>/judged-<judge>.jsonl or <file>.judged-<judge>.jsonl)")
    judge_p.add_argument("--data-dir", help="dataset folder (default: $HARNESS_DATA_DIR, then the cache)")
    judge_p.set_defaults(func=commands.cmd_judge)

    agree_p = sub.add_parser("judge-agreement", help="score the refusal judges against XSTest's human labels",
                             description="Write a markdown table of each refusal judge's accuracy, refusal "
                             "precision/recall/F1 and Cohen's kappa against XSTest's human-labelled responses.")
    agree_p.add_argument("--data-dir", help="dataset folder (default: $HARNESS_DATA_DIR, then the cache)")
    agree_p.add_argument("--out", default="leaderboards/judge_agreement.md",
                         help="markdown file to write (default: leaderboards/judge_agreement.md)")
    agree_p.set_defaults(func=commands.cmd_judge_agreement)

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
    lb_p.set_defaults(func=commands.cmd_leaderboard)

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
    tune_p.set_defaults(func=commands.cmd_tune)

    trade_p = sub.add_parser("tradeoff", help="plot tuning trials: validation ASR vs over-refusal per defense",
                             description="One scatter plot of every trial of the given tuning studies (validation "
                             "ASR against val-borderline over-refusal) with each defense's Pareto front, its "
                             "selected trial (star) and the undefended model (X).")
    trade_p.add_argument("studies", nargs="+", metavar="STUDY_DIR", help="folders written by `harness tune`")
    trade_p.add_argument("--out", required=True, help="PNG file to write")
    trade_p.add_argument("--md", help="also write a markdown report: rule, budget, every trial, the choices")
    trade_p.set_defaults(func=commands.cmd_tradeoff)

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
    an_p.set_defaults(func=commands.cmd_analyze)

    cmp_p = sub.add_parser("compare", help="does a run beat the undefended one? (paired exact McNemar)",
                           description="Compare a run with the undefended run on the same validation prompts: "
                           "lower harmful ASR by a two-sided exact McNemar test, benign compliance kept, harmless "
                           "answers coherent (harness.operating_point).")
    cmp_p.add_argument("run", help="run folder of the defended model")
    cmp_p.add_argument("baseline", help="run folder of the undefended model on the same suite")
    cmp_p.set_defaults(func=commands.cmd_compare)

    traj_p = sub.add_parser("trajectory", help="draw training runs' courses: loss terms, cosines, behaviour",
                            description="One row per run folder of a training defense: its loss terms, the "
                            "representation measures (harmful cosine per target layer, benign distance, gradient "
                            "norms) and the behaviour probe's shares, against the training step.")
    traj_p.add_argument("runs", nargs="+", metavar="RUN_DIR", help="run folders of training defenses")
    traj_p.add_argument("--out", required=True, help="PNG file to write")
    traj_p.set_defaults(func=commands.cmd_trajectory)
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
