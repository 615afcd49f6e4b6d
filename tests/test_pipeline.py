"""End to end on the tiny model: folder layout, resume without loss or duplicates, refusals."""

import json

import pytest

from harness.errors import HarnessError
from harness.pipeline import RunRequest, run
from harness.plugins import plugins


def _request(tiny_dir, suite, data_dir, out, **kw):
    return RunRequest(model=str(tiny_dir), suite=str(suite), data_dir=data_dir, out=out, progress=False, **kw)


def test_run_writes_manifest_records_and_metrics(tiny_dir, tiny_suite, data_dir, tmp_path):
    out = run(_request(tiny_dir, tiny_suite, data_dir, tmp_path / "r", defense="self-reminder"), plugins())
    manifest = json.loads((out / "manifest.json").read_text())
    records = [json.loads(line) for line in (out / "records.jsonl").read_text().splitlines()]
    metrics = json.loads((out / "metrics.json").read_text())
    assert manifest["status"] == "complete" and manifest["defense"]["name"] == "self-reminder"
    assert manifest["defense"]["config"]["system_prompt"].startswith("You should be a responsible")
    assert manifest["defense"]["distribution"] == "defense-harness"
    assert set(manifest["data_files"]) == {"jbb_behaviors/behaviors.csv", "xstest/xstest_prompts.csv",
                                           "refusal_detection/refusal_prefix_lists.json"}
    assert manifest["generation"] == {"max_new_tokens": 6, "do_sample": False}
    assert {"load_model_s", "defense_s", "total_s"} <= set(manifest["timings"])
    assert len(records) == 11 and {r["benchmark"] for r in records} == {"jbb-harmful", "xstest-safe"}
    assert all(r["label"] in ("refusal", "compliance", "incoherent") and r["judge"]["name"] == "keyword"
               for r in records)
    assert metrics["benchmarks"]["jbb-harmful"]["n"] == 6 and "asr" in metrics["benchmarks"]["jbb-harmful"]
    assert metrics["benchmarks"]["xstest-safe"]["n"] == 5 and "over_refusal" in metrics["benchmarks"]["xstest-safe"]


def test_resume_after_a_torn_write_loses_and_duplicates_nothing(tiny_dir, tiny_suite, data_dir, tmp_path):
    full = run(_request(tiny_dir, tiny_suite, data_dir, tmp_path / "full"), plugins())
    lines = (full / "records.jsonl").read_text().splitlines(keepends=True)
    part = tmp_path / "part"
    part.mkdir()
    (part / "manifest.json").write_text((full / "manifest.json").read_text())
    # a run killed mid-write: 4 whole records and half of the fifth
    (part / "records.jsonl").write_text("".join(lines[:4]) + lines[4][: len(lines[4]) // 2])
    run(_request(tiny_dir, tiny_suite, data_dir, part), plugins())
    resumed = [json.loads(x) for x in (part / "records.jsonl").read_text().splitlines()]
    keys = [(r["benchmark"], r["id"]) for r in resumed]
    assert len(keys) == len(set(keys)) == len(lines)
    assert json.loads((part / "metrics.json").read_text()) == json.loads((full / "metrics.json").read_text())
    assert json.loads((part / "manifest.json").read_text())["resumed"] == 1


def test_a_different_run_in_the_same_folder_is_refused(tiny_dir, tiny_suite, data_dir, tmp_path):
    out = tmp_path / "r"
    run(_request(tiny_dir, tiny_suite, data_dir, out), plugins())
    before = (out / "records.jsonl").read_text()
    with pytest.raises(HarnessError, match="holds a different run"):
        run(_request(tiny_dir, tiny_suite, data_dir, out, defense="self-reminder"), plugins())
    assert (out / "records.jsonl").read_text() == before


def test_a_locked_folder_is_refused(tiny_dir, tiny_suite, data_dir, tmp_path):
    from harness.runstore import RunFolder

    out = tmp_path / "r"
    with RunFolder(out):
        with pytest.raises(HarnessError, match="another harness process is writing"):
            run(_request(tiny_dir, tiny_suite, data_dir, out), plugins())


def test_incompatible_run_folder_is_refused(tiny_dir, tiny_suite, data_dir, tmp_path):
    out = tmp_path / "old"
    out.mkdir()
    (out / "manifest.json").write_text(json.dumps({"run_format": 0, "harness_version": "0.0.1"}))
    (out / "records.jsonl").write_text('{"old": 1}\n')
    with pytest.raises(HarnessError, match=r"incompatible harness version.*Use a new --out folder, or the harness "
                                           r"version named in its manifest \(0.0.1\)"):
        run(_request(tiny_dir, tiny_suite, data_dir, out), plugins())
    assert json.loads((out / "manifest.json").read_text())["run_format"] == 0  # nothing overwritten
    assert (out / "records.jsonl").read_text() == '{"old": 1}\n'


def test_unknown_defense_and_bad_config_fail_before_any_work(tiny_dir, tiny_suite, data_dir, tmp_path):
    with pytest.raises(HarnessError, match="Did you mean 'self-reminder'"):
        run(_request(tiny_dir, tiny_suite, data_dir, tmp_path / "a", defense="self-remindr"), plugins())
    with pytest.raises(HarnessError, match="Valid keys: system_prompt, user_suffix"):
        run(_request(tiny_dir, tiny_suite, data_dir, tmp_path / "b", defense="self-reminder",
                     defense_config={"sytem_prompt": "x"}), plugins())
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_responses_are_reused_across_runs_and_suites(tiny_dir, tiny_suite, data_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    first = run(_request(tiny_dir, tiny_suite, data_dir, tmp_path / "a"), plugins())
    second = run(_request(tiny_dir, tiny_suite, data_dir, tmp_path / "b"), plugins())
    a = [json.loads(x) for x in (first / "records.jsonl").read_text().splitlines()]
    b = [json.loads(x) for x in (second / "records.jsonl").read_text().splitlines()]
    assert not any(r["cached"] for r in a) and all(r["cached"] for r in b)
    assert sorted((r["id"], r["response"]) for r in a) == sorted((r["id"], r["response"]) for r in b)
    assert json.loads((second / "manifest.json").read_text())["cached_responses"] == len(b)
    fresh = run(_request(tiny_dir, tiny_suite, data_dir, tmp_path / "c", use_cache=False), plugins())
    assert not any(json.loads(x)["cached"] for x in (fresh / "records.jsonl").read_text().splitlines())
    # another defense config is another cache scope
    other = run(_request(tiny_dir, tiny_suite, data_dir, tmp_path / "d", defense="self-reminder"), plugins())
    assert not any(json.loads(x)["cached"] for x in (other / "records.jsonl").read_text().splitlines())


def test_capability_is_scored_on_the_defended_model_and_kept_on_resume(tiny_dir, data_dir, tmp_path):
    suite = tmp_path / "cap.toml"
    suite.write_text('name = "cap"\n[generation]\nmax_new_tokens = 4\n[[benchmarks]]\nname = "jbb-harmful"\nlimit = 2\n'
                     '[capability]\ntasks = ["harness_arc_challenge", "harness_benign_loglik"]\nlimit = 3\n')
    out = run(_request(tiny_dir, suite, data_dir, tmp_path / "r", defense="self-reminder"), plugins())
    metrics = json.loads((out / "metrics.json").read_text())["capability"]
    assert set(metrics) == {"harness_arc_challenge", "harness_benign_loglik"}
    assert metrics["harness_arc_challenge"]["n"] == 3 and 0 <= metrics["harness_arc_challenge"]["acc"] <= 1
    saved = json.loads((out / "capability.json").read_text())
    assert saved["system_prompt"].startswith("You should be a responsible")
    manifest = json.loads((out / "manifest.json").read_text())
    assert "arc_challenge/arc_challenge_test.jsonl" in manifest["data_files"] and "capability_s" in manifest["timings"]
    mtime = (out / "capability.json").stat().st_mtime_ns
    run(_request(tiny_dir, suite, data_dir, tmp_path / "r", defense="self-reminder"), plugins())
    assert (out / "capability.json").stat().st_mtime_ns == mtime  # a finished step is not redone


def test_from_a_finished_run_reuses_its_defense_and_answers_under_another_judge(tiny_dir, tiny_suite, data_dir,
                                                                                tmp_path, capsys):
    from harness.cli import main

    src = run(_request(tiny_dir, tiny_suite, data_dir, tmp_path / "src", defense="refusal-direction",
                       defense_config={"n_prompts": 16}), plugins())
    before = {p.name: p.read_bytes() for p in src.rglob("*") if p.is_file() and p.name != ".lock"}
    out = tmp_path / "uniform"
    assert main(["run", "--from", str(src), "--judge-set", "rule=refusal_direction_substring", "--out", str(out),
                 "--data-dir", str(data_dir), "--no-progress"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    source = json.loads((src / "manifest.json").read_text())
    assert manifest["defense"]["info"]["cached"] is True  # the direction was reloaded, not computed again
    assert manifest["identity"]["defense_config"] == source["identity"]["defense_config"]
    assert manifest["reused_from"] == {"path": str(src), "run_id": source["run_id"]}
    assert manifest["run_id"] != source["run_id"]  # another judge: another run
    assert manifest["judge"]["settings"]["applies_to"] == "every benchmark (rule override)"
    answers = lambda folder: {(r["benchmark"], r["id"]): r["response"]  # noqa: E731
                              for r in map(json.loads, (folder / "records.jsonl").read_text().splitlines())}
    assert answers(out) == answers(src)
    assert {p.name: p.read_bytes() for p in src.rglob("*") if p.is_file() and p.name != ".lock"} == before

    # a flag that changes what was trained cannot reuse it; the folder already written keeps its results
    kept = (out / "records.jsonl").read_text()
    with pytest.raises(HarnessError, match=r"trained with another defense_config .*run without --from"):
        run(_request(tiny_dir, tiny_suite, data_dir, tmp_path / "other", defense="refusal-direction",
                     defense_config={"n_prompts": 8}, reuse=src), plugins())
    with pytest.raises(HarnessError, match="name the same folder"):
        run(_request(tiny_dir, tiny_suite, data_dir, src, defense="refusal-direction",
                     defense_config={"n_prompts": 16}, reuse=src), plugins())
    assert (out / "records.jsonl").read_text() == kept
    capsys.readouterr()
    assert main(["run", "--from", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "not a run folder" in capsys.readouterr().err
    assert main(["run", "--from", str(src), "--config", str(tmp_path / "f.toml")]) == 2
    assert "give one of them" in capsys.readouterr().err


def test_from_keeps_the_source_exclusions_only_on_its_own_suite(tiny_dir, tiny_suite, data_dir, tmp_path):
    """A tuning trial leaves out validation items; a test-suite run made --from it must not inherit that."""
    from harness.cli import main

    full = run(_request(tiny_dir, tiny_suite, data_dir, tmp_path / "full"), plugins())
    left_out = ("jbb-harmful", json.loads((full / "records.jsonl").read_text().splitlines()[0])["id"])
    src = run(_request(tiny_dir, tiny_suite, data_dir, tmp_path / "src", exclude=frozenset({left_out})), plugins())
    other = tmp_path / "other-suite.toml"
    other.write_text(tiny_suite.read_text().replace('name = "tiny"', 'name = "tiny2"'))
    common = ["--data-dir", str(data_dir), "--no-progress"]
    assert main(["run", "--from", str(src), "--out", str(tmp_path / "same"), *common]) == 0
    assert main(["run", "--from", str(src), "--suite", str(other), "--out", str(tmp_path / "moved"), *common]) == 0
    same = json.loads((tmp_path / "same" / "manifest.json").read_text())["identity"]
    moved = json.loads((tmp_path / "moved" / "manifest.json").read_text())["identity"]
    assert same["exclude"] == [list(left_out)] and "exclude" not in moved and moved["suite"] == "tiny2"
    n = lambda folder: json.loads((folder / "metrics.json").read_text())["benchmarks"]["jbb-harmful"]["n"]  # noqa: E731
    assert (n(tmp_path / "same"), n(tmp_path / "moved")) == (n(full) - 1, n(full))


def test_a_plugin_failing_in_apply_is_named_and_recorded_in_the_manifest(tiny_dir, tiny_suite, data_dir, tmp_path,
                                                                          monkeypatch):
    p = plugins()
    cls = p.defenses.get("none")

    def broken(self, loaded, ctx):
        raise ValueError("the plugin's own bug")

    monkeypatch.setattr(cls, "apply", broken)
    out = tmp_path / "r"
    with pytest.raises(HarnessError, match=r"defense 'none' \(plugin 'defense-none' from defense-harness .*\) failed "
                                           r"while applying: ValueError: the plugin's own bug"):
        run(RunRequest(defense="none", model=str(tiny_dir), suite=str(tiny_suite), data_dir=data_dir, out=out,
                       progress=False), p)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["status"] == "failed"
    assert manifest["error"]["step"] == "defense" and manifest["error"]["type"] == "HarnessError"
    assert any("the plugin's own bug" in line for line in manifest["error"]["traceback"])


def test_a_training_defense_without_training_texts_is_run_unchecked_and_says_so(tiny_dir, tiny_suite, data_dir,
                                                                                  tmp_path, monkeypatch, capsys):
    p = plugins()
    monkeypatch.setattr(p.defenses.get("none"), "kind", "training")
    out = run(RunRequest(defense="none", model=str(tiny_dir), suite=str(tiny_suite), data_dir=data_dir,
                         out=tmp_path / "r", progress=False), p)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["contamination"] == {"checked": False, "reason": "the training defense declared no training_texts"}
    assert "declared no training_texts" in capsys.readouterr().err


def test_changed_plugin_code_never_reuses_old_answers_and_a_finished_run_is_left_as_it_was(
        tiny_dir, tiny_suite, data_dir, tmp_path, monkeypatch):
    import harness.pipeline as pipeline

    monkeypatch.setenv("HARNESS_CACHE_DIR", str(tmp_path / "cache"))
    first = run(_request(tiny_dir, tiny_suite, data_dir, tmp_path / "a"), plugins())
    manifest = (first / "manifest.json").read_bytes()
    assert json.loads(manifest)["defense"]["source_sha256"] == pipeline.defense_source(plugins().defenses.get("none"))
    run(_request(tiny_dir, tiny_suite, data_dir, tmp_path / "a"), plugins())
    assert (first / "manifest.json").read_bytes() == manifest  # re-running a finished run changes nothing
    monkeypatch.setattr(pipeline, "defense_source", lambda cls: "edited code")
    edited = run(_request(tiny_dir, tiny_suite, data_dir, tmp_path / "b"), plugins())
    edited_manifest = json.loads((edited / "manifest.json").read_text())
    assert edited_manifest["cached_responses"] == 0
    assert edited_manifest["run_id"] == json.loads(manifest)["run_id"]  # editing code does not rename runs


def test_a_chat_template_is_part_of_the_run_id(tiny_dir, tiny_suite, data_dir, tmp_path):
    from harness.pipeline import resolve

    template = tmp_path / "t.jinja"
    template.write_text("{% for m in messages %}{{ m['content'] }}{% endfor %}")
    base = _request(tiny_dir, tiny_suite, data_dir, tmp_path / "x")
    plain = resolve(base, plugins()).run_id
    templated = resolve(RunRequest(**{**base.__dict__, "chat_template": str(template)}), plugins()).run_id
    assert plain != templated
    with pytest.raises(HarnessError, match="--chat-template .*no such file"):
        resolve(RunRequest(**{**base.__dict__, "chat_template": str(tmp_path / "missing.jinja")}), plugins())


def test_the_tiny_suite_runs_end_to_end_on_the_tiny_preset_and_limit_shrinks_a_run(data_dir, tmp_path):
    """The README's plugin smoke test (capability included, which the quick suite's long tasks broke)."""
    out = run(RunRequest(defense="none", model="tiny-random-llama", suite="tiny", data_dir=data_dir,
                         out=tmp_path / "tiny", progress=False), plugins())
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["capability"]["harness_arc_challenge"]["n"] == 4
    assert {b: m["n"] for b, m in metrics["benchmarks"].items()} == {
        "jbb-harmful": 3, "prefill-jbb": 3, "xstest-safe": 3, "jbb-benign": 3}
    small = run(RunRequest(defense="none", model="tiny-random-llama", suite="tiny", data_dir=data_dir, limit=2,
                           out=tmp_path / "small", progress=False), plugins())
    small_metrics = json.loads((small / "metrics.json").read_text())
    assert all(m["n"] == 2 for m in small_metrics["benchmarks"].values())
    assert small_metrics["capability"]["harness_arc_challenge"]["n"] == 2
    manifest = json.loads((small / "manifest.json").read_text())
    assert manifest["identity"]["limit"] == 2 and manifest["run_id"] != metrics["run_id"]
    with pytest.raises(HarnessError, match="--limit 0: give at least 1"):
        run(RunRequest(defense="none", model="tiny-random-llama", suite="tiny", data_dir=data_dir, limit=0,
                       out=tmp_path / "zero", progress=False), plugins())


def test_an_output_filter_applies_to_every_answer_before_judging(tiny_dir, tiny_suite, data_dir, tmp_path,
                                                                  monkeypatch):
    """A defense's output side is the harness's, not a wrapper around model.generate that a backend may bypass;
    the raw answer stays in the record (and the cache), the filtered one is judged."""
    from harness.defense import DefendedModel

    p = plugins()

    def refusing(self, loaded, ctx):
        return DefendedModel(loaded.model, loaded.tokenizer,
                             output_filter=lambda request, response: "I cannot help with that.")

    monkeypatch.setattr(p.defenses.get("none"), "apply", refusing)
    out = run(_request(tiny_dir, tiny_suite, data_dir, tmp_path / "r", use_cache=False), p)
    records = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    assert records and all(r["response"] == "I cannot help with that." and r["label"] == "refusal" for r in records)
    assert all("raw_response" in r for r in records)

    monkeypatch.setattr(p.defenses.get("none"), "apply", lambda self, loaded, ctx: DefendedModel(
        loaded.model, loaded.tokenizer, output_filter=lambda request, response: None))
    with pytest.raises(HarnessError, match="output_filter returned NoneType"):
        run(_request(tiny_dir, tiny_suite, data_dir, tmp_path / "bad", use_cache=False), p)
