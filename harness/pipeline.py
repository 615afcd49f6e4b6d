"""``harness run``: the numbered steps from a request to a scored run folder.

1. resolve   plugins, the defense's typed config, the suite, the judge
2. folder    create or resume the run folder (same request -> same folder -> resume)
3. model     load the model (cached conversion)
4. defense   apply the defense (training defenses write their artifacts into the folder)
5. generate  per benchmark: subset, skip what is done, generate, judge, append records
6. score     metrics.json from the records, manifest with timings
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import harness
from harness.backend import DEFAULT_BACKEND
from harness.benchmark import HARMFUL_CATEGORIES, Benchmark, stratified_subset
from harness.config import build_config
from harness.data import DataResolver, cache_dir
from harness.defense import DefenseContext
from harness import faults
from harness.errors import HarnessError
from harness.generation import render_prompt
from harness.metrics import summarize
from harness.models import load_model
from harness.plugins import Plugins
from harness.provenance import fingerprint, git_commit, hardware, package_versions
from harness.responsecache import ResponseCache
from harness.runstore import RunFolder, safe_name
from harness.suite import Suite, load_suite_file


@dataclass
class RunRequest:
    defense: str = "none"
    defense_config: dict[str, Any] = field(default_factory=dict)
    model: str = "smollm2-135m-instruct"
    suite: str = "quick"
    judge: str = "keyword"
    judge_config: dict[str, Any] = field(default_factory=dict)
    out: Path | None = None
    runs_dir: Path = Path("runs")
    data_dir: Path | None = None
    seed: int = 0
    device: str | None = None
    trust_remote_code: bool = False
    chat_template: str | None = None
    progress: bool = True
    contamination: Literal["refuse", "drop-eval"] = "refuse"  # when training overlaps the suite
    use_cache: bool = True  # reuse responses generated before for the same model, defense and prompt
    backend: str = DEFAULT_BACKEND  # generation backend (harness list backends)
    backend_config: dict[str, Any] = field(default_factory=dict)
    # (benchmark, item id) pairs left out of generation and scoring, e.g. validation items that
    # overlap a test benchmark (harness tune); part of the run's identity when not empty
    exclude: frozenset[tuple[str, str]] = frozenset()
    wait_for_folder: bool = False  # a folder another process writes is waited for, not refused (shared runs)
    # a finished run of the same model, defense, config and seed whose trained defense/ and capability.json are
    # copied in, so only what differs (typically the judge) is done again (harness run --from)
    reuse: Path | None = None


def _suite(plugins: Plugins, name: str) -> Suite:
    if name.endswith(".toml") or "/" in name:
        return load_suite_file(Path(name))
    return load_suite_file(Path(plugins.suites.get(name)))


def inherit(source: Path, plugins: Plugins) -> dict[str, Any]:
    """A finished run as a run file (``harness run --config`` keys) plus what only a finished run has
    (contamination policy, left-out items, and itself to reuse), for a new run that reuses its trained defense
    (``--from``). The judge is not inherited: judging the same answers another way is what ``--from`` is for.
    """
    manifest = _finished(source)
    identity = manifest["identity"]
    suite = identity["suite"]
    if suite not in plugins.suites.items:  # a suite file, not a registered name
        suite = manifest["suite"]["path"]
        if not Path(suite).is_file():
            raise HarnessError(f"--from {source}: its suite file {suite!r} is gone; pass --suite.")
    backend = manifest.get("backend", {})
    return {"defense": identity["defense"], "config": identity["defense_config"], "model": identity["model"],
            "suite": suite, "seed": identity["seed"], "backend": backend.get("name", DEFAULT_BACKEND),
            "backend_config": backend.get("config", {}),
            "contamination": manifest.get("contamination", {}).get("policy", "refuse"),
            "exclude": frozenset(map(tuple, identity.get("exclude", []))), "reuse": source}


def _finished(source: Path) -> dict[str, Any]:
    manifest = RunFolder(source).read_manifest()
    if manifest is None:
        raise HarnessError(f"--from {source}: not a run folder (no manifest.json).")
    if manifest.get("status") != "complete":
        raise HarnessError(f"--from {source}: the run is not finished (status {manifest.get('status')!r}); "
                           "finish it first by running its command again.")
    return manifest


def _reuse(source: Path, identity: dict[str, Any], out: Path) -> dict[str, Any]:
    """Copy a finished run's trained defense and capability scores into ``out``, after checking they fit."""
    import shutil

    if source.resolve() == out.resolve():
        raise HarnessError(f"--from {source} and --out name the same folder; choose a new --out for the new run.")
    with RunFolder(source):  # not while another process writes there
        manifest = _finished(source)
        keys = ("model", "defense", "defense_config", "seed")
        theirs = manifest["identity"]
        differ = [k for k in keys if theirs.get(k) != json.loads(json.dumps(identity[k]))]  # as the manifest has it
        if differ:
            was = ", ".join(f"{k}={theirs.get(k)!r}" for k in differ)
            raise HarnessError(f"--from {source}: its defense was trained with another {', '.join(differ)} ({was}); "
                               "drop the flags that change them, or run without --from to train again.")
        if (source / "defense").is_dir() and not (out / "defense").exists():
            shutil.copytree(source / "defense", out / "defense")
        if (source / "capability.json").is_file() and not (out / "capability.json").exists():
            shutil.copy2(source / "capability.json", out / "capability.json")
    return {"path": str(source), "run_id": manifest["run_id"]}


def model_identity(loaded) -> str:
    """What identifies a model's weights, for caches of its outputs."""
    return loaded.info.get("sha256") or loaded.info.get("revision") or loaded.info["location"]


def apply_defense(defense, loaded, plugins: Plugins, work_dir: Path, resolver: DataResolver, seed: int,
                  progress: bool):
    """Seed and apply a defense; a training defense reloads a finished adapter from ``work_dir``."""
    import torch

    torch.manual_seed(seed)
    ctx = DefenseContext(work_dir=work_dir, resolver=resolver, seed=seed, progress=progress,
                         model_key=model_identity(loaded),
                         benchmarks={n: e.obj for n, e in plugins.benchmarks.items.items()})
    return defense.apply(loaded, ctx)


def run(request: RunRequest, plugins: Plugins) -> Path:
    """Run (or resume) one defense on one model over one suite; returns the run folder."""
    started = time.time()
    timings: dict[str, float] = {}

    # 1. resolve
    defense_entry = plugins.defenses.entry(request.defense)
    defense_cls = defense_entry.obj
    config = build_config(defense_cls.Config, request.defense_config, f"defense {request.defense!r}")
    backend_entry = plugins.backends.entry(request.backend)
    backend = backend_entry.obj(build_config(backend_entry.obj.Config, request.backend_config,
                                             f"backend {request.backend!r}"))
    backend.require()  # a missing engine is reported before the model loads and the defense trains
    suite = _suite(plugins, request.suite)
    benchmarks: list[tuple[Benchmark, int | None]] = [
        (plugins.benchmarks.get(e.name), e.limit) for e in suite.benchmarks
    ]
    judge_entry = plugins.judges.entry(request.judge)
    resolver = DataResolver(request.data_dir)
    judge = judge_entry.obj(build_config(judge_entry.obj.Config, request.judge_config, f"judge {request.judge!r}"), resolver)
    if request.model not in plugins.models.items and not Path(request.model).exists() and "/" not in request.model:
        plugins.models.get(request.model)  # raises the unknown-preset error with suggestions

    identity = {
        "model": request.model,
        "defense": request.defense,
        "defense_config": asdict(config),
        "suite": suite.name,
        "suite_sha256": suite.sha256,
        "judge": judge.describe(None),
        "seed": request.seed,
    }
    if request.exclude:
        identity["exclude"] = sorted(map(list, request.exclude))
    if request.backend != DEFAULT_BACKEND:  # outputs can differ slightly; the default keeps published run ids
        identity["backend"] = request.backend
    run_id = fingerprint(identity)[:10]

    # 2. folder
    out = request.out or request.runs_dir / safe_name(f"{request.model}__{request.defense}__{suite.name}__{run_id}")
    with RunFolder(out, wait=request.wait_for_folder) as folder:
        previous = folder.read_manifest()
        if previous and previous.get("run_id") != run_id:
            raise HarnessError(
                f"{out} holds a different run (model {previous.get('model', {}).get('spec')!r}, defense "
                f"{previous.get('defense', {}).get('name')!r}, another config or suite). Its results are "
                "kept; choose another --out to start this run."
            )
        manifest: dict[str, Any] = {
            "run_id": run_id,
            "harness_version": harness.__version__,
            "created": previous.get("created") if previous else time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "status": "running",
            "identity": identity,
            "defense": {
                "name": request.defense,
                "kind": defense_cls.kind,
                "config": asdict(config),
                "plugin": defense_entry.plugin,
                "distribution": defense_entry.distribution,
                "version": defense_entry.version,
            },
            "suite": {"name": suite.name, "path": suite.path, "sha256": suite.sha256,
                      "benchmarks": [asdict(e) for e in suite.benchmarks]},
            "generation": suite.generation.record(),
            "backend": {**backend.describe(), "plugin": backend_entry.plugin,
                        "distribution": backend_entry.distribution, "version": backend_entry.version},
            "judge": {**judge.describe(None), "distribution": judge_entry.distribution},
            "seed": request.seed,
            "plugins": {name: {"distribution": d, "version": v} for name, (d, v) in plugins.loaded.items()},
            "packages": package_versions(),
            "git": git_commit(),
            "hardware": hardware(),
            "resumed": (previous.get("resumed", 0) + 1) if previous else 0,
        }
        done = {(r["benchmark"], r["id"]) for r in folder.read_records()}  # refuses a corrupt file untouched
        if request.reuse is not None:
            manifest["reused_from"] = _reuse(Path(request.reuse), identity, out)
        folder.write_manifest(manifest)

        # 3. model
        t0 = time.time()
        loaded = load_model(
            request.model,
            presets={n: e.obj for n, e in plugins.models.items.items()},
            device=request.device,
            trust_remote_code=request.trust_remote_code,
            chat_template=request.chat_template,
        )
        timings["load_model_s"] = time.time() - t0
        manifest["model"] = loaded.info

        # 4. defense
        t0 = time.time()
        defended = apply_defense(defense_cls(config), loaded, plugins, out / "defense", resolver, request.seed,
                                 request.progress)
        model_key = model_identity(loaded)
        timings["defense_s"] = time.time() - t0
        manifest["defense"]["info"] = defended.info
        folder.write_manifest(manifest)  # keep what training found, even if evaluation is interrupted
        backend.check(defended)  # e.g. vllm refuses activation hooks

        # 4b. contamination: what the defense trained on against what the suite evaluates
        suite_samples = {b.name: stratified_subset(b.samples(resolver), limit, suite.seed) for b, limit in benchmarks}
        excluded = _contamination(defended, suite_samples, request.contamination, manifest)
        excluded |= set(request.exclude)

        # 5. generate (or reuse cached responses) and judge, appending records per batch
        cache = None
        if request.use_cache:
            cache = ResponseCache(cache_dir() / "responses.sqlite", {
                "model": model_key, "defense": request.defense, "config": asdict(config), "seed": request.seed,
                "generation": suite.generation.record(),
                **({"backend": request.backend} if request.backend != DEFAULT_BACKEND else {})})
        reused = 0
        for bench, limit in benchmarks:
            samples = [s for s in suite_samples[bench.name] if (bench.name, s.id) not in excluded]
            if not samples:
                raise HarnessError(
                    f"benchmark {bench.name!r} has no items after filtering (suite limit {limit}, "
                    f"{len(suite_samples[bench.name])} selected before leaving out items that overlap the "
                    "defense's training data or are excluded). "
                    "Raise its limit in the suite, or remove the benchmark from the suite."
                )
            todo = [s for s in samples if (bench.name, s.id) not in done]
            if not todo:
                continue
            t0 = time.time()
            prompts = [render_prompt(defended, list(s.messages), s.prefill) for s in todo]
            judge_info = judge.describe(bench)

            def record(batch: list[tuple[int, str]], cached: bool) -> None:
                items = [todo[i] for i, _ in batch]
                responses = [text for _, text in batch]
                verdicts = judge.judge(bench, [s.prompt for s in items], responses)
                folder.append_records(
                    {"benchmark": bench.name, "id": s.id, "category": s.category, "harmful": s.harmful,
                     "messages": list(s.messages), "prefill": s.prefill, "response": response, "label": v.label,
                     "reason": v.reason, "judge": judge_info, "generation": suite.generation.record(),
                     "cached": cached}
                    for s, response, v in zip(items, responses, verdicts)
                )
                faults.checkpoint("generate.batch")

            hits = cache.get_many(prompts) if cache else {}
            if hits:
                record(sorted(hits.items()), cached=True)
                reused += len(hits)
            missing = [i for i in range(len(prompts)) if i not in hits]
            for batch in backend.generate(defended, [prompts[i] for i in missing], suite.generation, desc=bench.name,
                                          progress=request.progress):
                batch = [(missing[j], text) for j, text in batch]
                if cache:
                    cache.put_many([(prompts[i], text) for i, text in batch])
                record(batch, cached=False)
            timings[f"generate_{bench.name}_s"] = time.time() - t0
        if cache:
            cache.close()
        backend.close()
        manifest["cached_responses"] = reused

        # 5b. capability through lm-eval, on the defended model (adapters merged, hooks and system prompt on)
        capability = None
        if suite.capability.get("tasks"):
            t0 = time.time()
            capability = _capability(folder, defended, suite, resolver, request.seed)
            timings["capability_s"] = time.time() - t0

        # 6. score
        records = folder.read_records()
        metrics: dict[str, Any] = {"run_id": run_id, "benchmarks": {}}
        for bench, limit in benchmarks:
            rows = [r for r in records if r["benchmark"] == bench.name and (bench.name, r["id"]) not in excluded]
            metrics["benchmarks"][bench.name] = {
                "category": bench.category,
                "metric": bench.metric,
                **summarize(rows, harmful=bench.category in HARMFUL_CATEGORIES),
            }
        if capability is not None:
            metrics["capability"] = {task: {name: m["value"] for name, m in r["metrics"].items()} | {"n": r["n"]}
                                     for task, r in capability["tasks"].items()}
        folder.write_metrics(metrics)
        faults.checkpoint("score.metrics")
        manifest["data_files"] = dict(sorted(resolver.used.items()))
        timings["total_s"] = time.time() - started
        manifest["timings"] = timings
        manifest["status"] = "complete"
        folder.write_manifest(manifest)
    return out


def _contamination(defended, suite_samples, policy: str, manifest: dict[str, Any]) -> set[tuple[str, str]]:
    """Check the defense's training prompts against the suite; refuse, or drop the overlapping items."""
    from harness import contamination

    if not defended.training_texts:
        manifest["contamination"] = {"checked": False, "reason": "the defense trains on nothing"}
        return set()
    evals = {name: [(s.id, s.prompt) for s in samples] for name, samples in suite_samples.items()}
    report = contamination.check(defended.training_texts, evals)
    found = {(e, i) for per_eval in report.values() for e, o in per_eval.items() for i in o.eval_ids}
    manifest["contamination"] = {"checked": True, "policy": policy, "overlaps": contamination.summary(report),
                                 "excluded_items": len(found) if policy == "drop-eval" else 0}
    if found and policy == "refuse":
        worst = ", ".join(f"{t} vs {e}" for t, per in report.items() for e in per)
        raise HarnessError(
            f"the defense's training data overlaps {len(found)} evaluation item(s) of this suite ({worst}); "
            "the scores would be inflated. Fix the training data, or pass --contamination drop-eval to "
            "leave those items out of scoring (recorded in the manifest)."
        )
    return found if policy == "drop-eval" else set()


def _capability(folder: RunFolder, defended, suite: Suite, resolver: DataResolver, seed: int) -> dict[str, Any]:
    """Score (or reload, when a killed run already finished it) the suite's lm-eval tasks."""
    from harness.capability import capability_data_files, run_capability
    from harness.data import DataFile
    from harness.runstore import write_json_atomic

    spec = {"tasks": list(suite.capability["tasks"]), "limit": suite.capability.get("limit"),
            "batch_size": suite.capability.get("batch_size", 8), "seed": seed}
    path = folder.path / "capability.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        if saved.get("spec") == spec:
            return saved
    for task, files in capability_data_files(spec["tasks"]).items():
        for rel in files:  # verify and record the files through the same resolver as the benchmarks
            resolver.path(DataFile(task, rel, ""))
    data_dir = resolver.data_dir or resolver.cache
    with defended.hooks():
        result = run_capability(defended.model, defended.tokenizer, spec["tasks"], data_dir, limit=spec["limit"],
                                batch_size=spec["batch_size"], system_prompt=defended.system_prompt(), seed=seed)
    result["spec"] = spec
    faults.checkpoint("capability.scored")
    write_json_atomic(path, result)
    return result
