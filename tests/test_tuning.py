"""harness tune: search spaces, the selection rule, resumable studies, validation disjointness."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from harness.config import build_config
from harness.errors import HarnessError
from harness.plugins import plugins
from harness.search import Choice, LogUniform, Uniform, latin_hypercube
from harness.report import front_line as pareto_front
from harness.tuning import SelectionRule, TuneRequest, select, tradeoff_figure, tune, tuning_report


def test_latin_hypercube_is_deterministic_and_covers_every_stratum():
    space = {"lr": LogUniform(1e-4, 1e-2), "f": Uniform(0.0, 1.0), "steps": Choice((40,)), "s": Choice(("a", "b"))}
    a = latin_hypercube(space, 4, seed=3)
    assert a == latin_hypercube(space, 4, seed=3)
    assert a != latin_hypercube(space, 4, seed=4)
    # one draw per quarter of each range
    assert sorted(int((math.log10(c["lr"]) + 4) / 0.5) for c in a) == [0, 1, 2, 3]
    assert sorted(min(int(c["f"] * 4), 3) for c in a) == [0, 1, 2, 3]
    assert {c["steps"] for c in a} == {40}
    assert sorted(c["s"] for c in a) == ["a", "a", "b", "b"]


def test_every_declared_search_space_builds_valid_configs():
    p = plugins()
    tuned = 0
    for name, entry in p.defenses.items.items():
        cls = entry.obj
        for config in latin_hypercube(cls.search_space, 6, seed=0) if cls.search_space else []:
            built = build_config(cls.Config, config, name)
            assert all(getattr(built, k) == v for k, v in config.items())
        tuned += bool(cls.search_space)
    assert tuned >= 7  # every training-time and hook-based built-in defense


def _trial(i, asr, benign, border, config=None):
    return {"trial": i, "config": config or {"i": i},
            "scores": {"asr": asr, "benign_compliance": benign, "borderline_compliance": border}}


BASE = {"asr": 0.9, "benign_compliance": 1.0, "borderline_compliance": 0.9}


def test_rule_picks_lowest_asr_among_trials_that_keep_benign_compliance():
    trials = [_trial(0, 0.0, 0.2, 0.1), _trial(1, 0.3, 0.95, 0.5), _trial(2, 0.3, 0.9, 0.8), _trial(3, 0.6, 1.0, 1.0)]
    choice = select(trials, BASE, SelectionRule())
    assert choice["trial"] == 2  # trial 0 breaks the benign floor; 1 and 2 tie on ASR, 2 wins on borderline
    assert choice["meets_rule"] and choice["benign_floor"] == pytest.approx(0.9)
    assert select(trials, BASE, SelectionRule(min_benign_ratio=0.1))["trial"] == 0


def test_rule_without_a_qualifying_trial_says_so():
    choice = select([_trial(0, 0.0, 0.1, 0.0), _trial(1, 0.0, 0.4, 0.0)], BASE, SelectionRule())
    assert choice["trial"] == 1 and not choice["meets_rule"]
    assert "no trial kept benign compliance" in choice["reason"]


def test_rule_values_are_checked():
    with pytest.raises(ValueError, match="min_benign_ratio"):
        SelectionRule(min_benign_ratio=1.5)


def test_pareto_front_keeps_points_no_other_beats():
    pts = [(0.1, 0.9), (0.2, 0.5), (0.3, 0.6), (0.5, 0.1), (0.5, 0.3)]
    assert pareto_front(pts) == [(0.1, 0.9), (0.2, 0.5), (0.5, 0.1)]


@pytest.fixture
def tiny_val_suite(tmp_path) -> Path:
    path = tmp_path / "tinyval.toml"
    path.write_text('name = "tinyval"\nseed = 0\n[generation]\nmax_new_tokens = 4\nbatch_size = 8\n'
                    + "".join(f'[[benchmarks]]\nname = "{b}"\nlimit = 5\n'
                              for b in ("val-harmful", "val-harmless", "val-borderline")))
    return path


def test_tune_runs_resumes_and_writes_a_run_file(tiny_dir, tiny_val_suite, data_dir, tmp_path):
    from harness.commands import _read_run_file

    request = TuneRequest(defense="refusal-direction", model=str(tiny_dir), suite=str(tiny_val_suite), budget=2,
                          data_dir=data_dir, out=tmp_path / "study", progress=False, fixed={"n_prompts": 16})
    out = tune(request, plugins())
    trials = [json.loads(line) for line in (out / "trials.jsonl").read_text().splitlines()]
    assert [t["trial"] for t in trials] == [0, 1]
    assert all(t["config"]["n_prompts"] == 16 and set(t["params"]) == {"layer", "span", "strength"} for t in trials)
    assert all(t["scores"]["n"] == {"val-harmful": 5, "val-harmless": 5, "val-borderline": 5} for t in trials)
    selection = json.loads((out / "selection.json").read_text())
    run_file = _read_run_file(str(out / "best.toml"))
    assert run_file["defense"] == "refusal-direction"
    assert run_file["config"] == trials[selection["trial"]]["config"]

    before = (out / "trials.jsonl").read_text()
    tune(request, plugins())  # resumes: nothing left to run
    assert (out / "trials.jsonl").read_text() == before

    png = tradeoff_figure([out], tmp_path / "tradeoff.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = tuning_report([out], png)
    assert "## refusal-direction" in report and "Budget 2 trials" in report
    assert report.count("\n| ") == 2 + 1 + 1  # header row, two trials, the undefended row

    with pytest.raises(HarnessError, match="another budget"):
        tune(TuneRequest(**{**request.__dict__, "budget": 3}), plugins())


def test_studies_started_together_wait_for_their_shared_baseline(tiny_dir, tiny_val_suite, data_dir, tmp_path,
                                                                  capfd):
    """Two defenses of one model tuned at once share the undefended baseline run: the second waits, not fails."""
    import threading
    import time

    from harness.runstore import RunFolder

    request = TuneRequest(defense="refusal-direction", model=str(tiny_dir), suite=str(tiny_val_suite), budget=1,
                          data_dir=data_dir, out=tmp_path / "study", progress=False, fixed={"n_prompts": 16})
    outcome = {}

    def study():
        try:
            outcome["out"] = tune(request, plugins())
        except Exception as err:  # noqa: BLE001 - reported by the assertion below
            outcome["error"] = err

    with RunFolder(tmp_path / "runs" / "baseline-tinyval"):  # another study is writing the baseline
        thread = threading.Thread(target=study)
        thread.start()
        err, deadline = "", time.time() + 120
        while thread.is_alive() and "waiting for another harness process" not in err and time.time() < deadline:
            err += capfd.readouterr().err
            time.sleep(0.05)
        assert "waiting for another harness process" in err, outcome
    thread.join(120)
    assert "error" not in outcome
    assert len((outcome["out"] / "trials.jsonl").read_text().splitlines()) == 1


def test_tune_refuses_test_benchmarks_untunable_defenses_and_clashing_sets(tiny_dir, tiny_suite, tiny_val_suite,
                                                                           data_dir, tmp_path):
    base = dict(model=str(tiny_dir), data_dir=data_dir, out=tmp_path / "s", progress=False)
    with pytest.raises(HarnessError, match="must not look at test data"):
        tune(TuneRequest(defense="refusal-direction", suite=str(tiny_suite), **base), plugins())
    with pytest.raises(HarnessError, match="declares no search space"):
        tune(TuneRequest(defense="self-reminder", suite=str(tiny_val_suite), **base), plugins())
    with pytest.raises(HarnessError, match="searched by the defense's space"):
        tune(TuneRequest(defense="refusal-direction", suite=str(tiny_val_suite), fixed={"strength": "2"}, **base),
             plugins())
    with pytest.raises(HarnessError, match="unknown config key 'strenght'"):
        tune(TuneRequest(defense="refusal-direction", suite=str(tiny_val_suite), fixed={"strenght": "2"}, **base),
             plugins())


def test_validation_suite_is_disjoint_from_test_benchmarks_after_exclusion(data_dir):
    from harness import contamination
    from harness.data import DataResolver
    from harness.pipeline import suite_by_name
    from harness.tuning import validation_overlaps

    p = plugins()
    resolver = DataResolver(data_dir)
    suite = suite_by_name(p, "validation")
    excluded, report = validation_overlaps(p, suite, resolver)
    assert "harmbench" in report["checked_against"] and "xstest-safe" in report["checked_against"]
    tests = {n: [(s.id, s.prompt) for s in e.obj.samples(resolver)] for n, e in p.benchmarks.items.items()
             if e.obj.split == "test" and e.obj.category != "capability"}
    kept = {e.name: [(s.id, s.prompt) for s in p.benchmarks.get(e.name).samples(resolver)
                     if (e.name, s.id) not in excluded] for e in suite.benchmarks}
    assert contamination.check(tests, kept) == {}
    assert len(excluded) < 5  # the splits are meant to be disjoint; only stray near duplicates go


def test_tradeoff_figure_needs_finished_studies(tmp_path):
    with pytest.raises(HarnessError, match="no selection.json"):
        tradeoff_figure([tmp_path], tmp_path / "f.png")


def test_a_study_with_no_finished_trial_takes_corrected_settings(tiny_dir, tiny_val_suite, data_dir, tmp_path):
    """A mistake found before any trial finished (here: another budget) must not lock the study folder."""
    out = tmp_path / "study"
    out.mkdir()
    (out / "tune.json").write_text(json.dumps({"format": 1, "defense": "refusal-direction", "budget": 9}))
    request = TuneRequest(defense="refusal-direction", model=str(tiny_dir), suite=str(tiny_val_suite), budget=1,
                          data_dir=data_dir, out=out, progress=False, fixed={"n_prompts": 16})
    tune(request, plugins())
    assert len((out / "trials.jsonl").read_text().splitlines()) == 1
    assert json.loads((out / "tune.json").read_text())["budget"] == 1


def test_search_space_mistakes_fail_when_the_defense_registers():
    from harness.defense import Defense
    from harness.plugins import Registry, _check_plugin_class
    from harness.search import LogUniform, Uniform
    from harness.training.rerouting import RRConfig

    def defense(space, kind="training"):
        return type("Bad", (Defense,), {"name": "bad", "kind": kind, "Config": RRConfig, "search_space": space})

    registry = Registry("defense", _check_plugin_class("defense", Defense))
    with pytest.raises(HarnessError, match=r"search_space\['lrr'\]: not a field of RRConfig"):
        registry.add(defense({"lrr": LogUniform(1e-4, 1e-3)}), "p", ("d", "1"))
    with pytest.raises(HarnessError, match=r"search_space\['steps'\]: Uniform draws floats, but the field is int"):
        registry.add(defense({"steps": Uniform(10, 40)}), "p", ("d", "1"))
    with pytest.raises(HarnessError, match="kind 'trainng' is not one of none, inference, training"):
        registry.add(defense({}, kind="trainng"), "p", ("d", "1"))
    registry.add(defense({"lr": LogUniform(1e-4, 1e-3)}), "p", ("d", "1"))
    assert registry.names() == ["bad"]
