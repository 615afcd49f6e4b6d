"""``harness run``: the numbered steps from a request to a scored run folder, one function each.

1. resolve      plugins, the defense's typed config, the suite, the judge, the backend; the run's identity
2. folder       create or resume the run folder (same request -> same folder -> resume), the first manifest
3. model        load the model (cached conversion)
4. defense      apply the defense (training defenses write their artifacts into the folder)
5. contamination  the defense's training prompts against the suite: refuse, or leave the overlaps out
6. generate     generate (or reuse cached responses) and judge every item, appending records per batch (answers.py)
7. capability   the suite's lm-eval tasks on the defended model
8. score        metrics.json from the records, the final manifest with timings

``run`` calls them in this order; ``harness analyze`` reuses steps 3 and 4 (``load``, ``apply_defense``).
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import harness
from harness.benchmark import Benchmark, stratified_subset
from harness.config import build_config
from harness.data import DataResolver, sha256_file
from harness.defaults import (DEFAULT_BACKEND, DEFAULT_DEFENSE, DEFAULT_JUDGE, DEFAULT_MODEL, DEFAULT_SUITE,
                              TRAINING_JUDGE, TRAINING_JUDGE_CONFIG)
from harness.defense import DefenseContext
from harness import contamination, faults
from harness.capability import score_capability
from harness.errors import HarnessError
from harness.metrics import score_run
from harness.models import LoadedModel, load_model
from harness.plugins import Plugins, Registered
from harness.provenance import fingerprint, git_commit, hardware, package_versions, source_digest
from harness.answers import generate, response_cache
from harness.runstore import RunFolder, safe_name
from harness.inherit import reuse
from harness.suite import Suite, load_suite_file
from harness.training.probe import TrajectorySettings


@dataclass
class RunRequest:
    defense: str = DEFAULT_DEFENSE
    defense_config: dict[str, Any] = field(default_factory=dict)
    preset: str | None = None  # a named set of the defense's config values, under defense_config
    model: str = DEFAULT_MODEL
    suite: str = DEFAULT_SUITE
    judge: str = DEFAULT_JUDGE
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
    limit: int | None = None  # at most this many items per benchmark and capability task (part of the identity)
    # what a training defense logs about its own course (behaviour probe, gradient norms); not in the identity
    trajectory: TrajectorySettings = field(default_factory=TrajectorySettings)


# --- 1. resolve -------------------------------------------------------------------------------


@dataclass
class Resolved:
    """Every plugin a request names, built and validated before anything slow starts."""

    defense: Registered
    config: Any  # the defense's typed config
    backend_entry: Registered
    backend: Any
    suite: Suite
    benchmarks: list[tuple[Benchmark, int | None]]  # with each one's suite limit
    judge_entry: Registered
    judge: Any
    resolver: DataResolver
    identity: dict[str, Any]
    run_id: str
    defense_source: str  # sha256 of the defense's source (harness.provenance.source_digest)


def resolve_defense(plugins: Plugins, name: str, settings: dict[str, Any], preset: str | None = None
                    ) -> tuple[Registered, Any]:
    """The defense's registry entry and its typed config: a preset's values (if named), then ``settings`` over
    them (unknown keys are an error naming the valid ones)."""
    entry = plugins.defenses.entry(name)
    if preset is not None:
        presets = entry.obj.presets
        if preset not in presets:
            raise HarnessError(f"defense {name!r} has no preset {preset!r}; its presets: "
                               f"{', '.join(sorted(presets)) or '(none)'}.")
        settings = {**presets[preset], **settings}
    return entry, build_config(entry.obj.Config, settings, f"defense {name!r}")


def check_model(plugins: Plugins, spec: str) -> None:
    """A model that is neither a preset, a folder nor a hub id is an unknown-preset error with suggestions."""
    if spec not in plugins.models.items and not Path(spec).exists() and "/" not in spec:
        plugins.models.get(spec)


def suite_by_name(plugins: Plugins, name: str) -> Suite:
    """A registered suite by name, or a suite TOML file by path."""
    if name.endswith(".toml") or "/" in name:
        return load_suite_file(Path(name))
    return load_suite_file(Path(plugins.suites.get(name)))


def limited(suite: Suite, n: int | None) -> Suite:
    """The suite with at most ``n`` items per benchmark and capability task (``harness run --limit``)."""
    if n is None:
        return suite
    if n < 1:
        raise HarnessError(f"--limit {n}: give at least 1 item per benchmark.")
    cap = dict(suite.capability)
    if cap.get("tasks"):
        cap["limit"] = min(cap.get("limit") or n, n)
    entries = tuple(dataclasses.replace(e, limit=min(e.limit or n, n)) for e in suite.benchmarks)
    return dataclasses.replace(suite, benchmarks=entries, capability=cap)


def resolve(request: RunRequest, plugins: Plugins) -> Resolved:
    defense, config = resolve_defense(plugins, request.defense, request.defense_config, request.preset)
    backend_entry = plugins.backends.entry(request.backend)
    backend = plugins.backends.construct(request.backend, request.backend_config)
    backend.require()  # a missing engine is reported before the model loads and the defense trains
    suite = limited(suite_by_name(plugins, request.suite), request.limit)
    benchmarks = [(plugins.benchmarks.get(e.name), e.limit) for e in suite.benchmarks]
    judge_entry = plugins.judges.entry(request.judge)
    resolver = DataResolver(request.data_dir)
    judge = plugins.judges.construct(request.judge, request.judge_config, resolver)
    check_model(plugins, request.model)
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
    if request.limit is not None:
        identity["limit"] = request.limit
    if request.backend != DEFAULT_BACKEND:  # outputs can differ slightly; the default keeps published run ids
        identity["backend"] = request.backend
    if request.chat_template:  # another template renders other prompts: another run (the default keeps run ids)
        if not Path(request.chat_template).is_file():
            raise HarnessError(f"--chat-template {request.chat_template!r}: no such file.")
        identity["chat_template_sha256"] = sha256_file(Path(request.chat_template))
    return Resolved(defense, config, backend_entry, backend, suite, benchmarks, judge_entry, judge, resolver,
                    identity, fingerprint(identity)[:10], defense_source(defense.obj))


def defense_source(cls: type) -> str:
    """The digest of a defense's code (with the training kit's, for a training defense): part of the response
    cache's key and the manifest, never of the run id."""
    kit = (Path(__file__).parent / "training",) if cls.kind == "training" else ()
    return source_digest(cls, kit)


# --- 2. folder --------------------------------------------------------------------------------


def run_folder(request: RunRequest, r: Resolved) -> Path:
    return request.out or request.runs_dir / safe_name(f"{request.model}__{request.defense}__{r.suite.name}__{r.run_id}")


def start_manifest(request: RunRequest, r: Resolved, plugins: Plugins, folder: RunFolder,
                   previous: dict[str, Any] | None) -> dict[str, Any]:
    """The manifest of a new or resumed run (a folder that holds another run is refused, its results kept)."""
    if previous and previous.get("run_id") != r.run_id:
        raise HarnessError(
            f"{folder.path} holds a different run (model {previous.get('model', {}).get('spec')!r}, defense "
            f"{previous.get('defense', {}).get('name')!r}, another config or suite). Its results are "
            "kept; choose another --out to start this run."
        )
    d = r.defense
    return {
        "run_id": r.run_id,
        "harness_version": harness.__version__,
        "created": previous.get("created") if previous else time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "status": "running",
        "identity": r.identity,
        "defense": {"name": request.defense, "kind": d.obj.kind, "config": asdict(r.config), "preset": request.preset,
                    "plugin": d.plugin, "distribution": d.distribution, "version": d.version,
                    "source_sha256": r.defense_source},
        "suite": {"name": r.suite.name, "path": r.suite.path, "sha256": r.suite.sha256,
                  "benchmarks": [asdict(e) for e in r.suite.benchmarks]},
        "generation": r.suite.generation.record(),
        "backend": {**r.backend.describe(), "plugin": r.backend_entry.plugin,
                    "distribution": r.backend_entry.distribution, "version": r.backend_entry.version},
        "judge": {**r.judge.describe(None), "distribution": r.judge_entry.distribution},
        "seed": request.seed,
        "plugins": {name: {"distribution": dist, "version": v} for name, (dist, v) in plugins.loaded.items()},
        "packages": package_versions(),
        "git": git_commit(),
        "hardware": hardware(),
        "resumed": (previous.get("resumed", 0) + 1) if previous else 0,
    }


# --- 3. model, 4. defense ---------------------------------------------------------------------


def load(plugins: Plugins, spec: str, *, device: str | None = None, trust_remote_code: bool = False,
         chat_template: str | None = None) -> LoadedModel:
    return load_model(spec, presets={n: e.obj for n, e in plugins.models.items.items()}, device=device,
                      trust_remote_code=trust_remote_code, chat_template=chat_template)


def model_identity(loaded) -> str:
    """What identifies a model's weights, for caches of its outputs."""
    return loaded.info.get("sha256") or loaded.info.get("revision") or loaded.info["location"]


def training_judge(plugins: Plugins, resolver: DataResolver):
    """The judge a training defense's data is filtered with (``DefenseContext.training_judge``)."""
    return plugins.judges.construct(TRAINING_JUDGE, TRAINING_JUDGE_CONFIG, resolver)


def apply_defense(defense, loaded, plugins: Plugins, work_dir: Path, resolver: DataResolver, seed: int,
                  progress: bool, trajectory: TrajectorySettings | None = None):
    """Seed and apply a defense; a training defense reloads a finished adapter from ``work_dir``."""
    import torch

    torch.manual_seed(seed)
    ctx = DefenseContext(work_dir=work_dir, resolver=resolver, seed=seed, progress=progress,
                         model_key=model_identity(loaded),
                         benchmarks={n: e.obj for n, e in plugins.benchmarks.items.items()},
                         training_judge=training_judge(plugins, resolver), trajectory=trajectory)
    return defense.apply(loaded, ctx)


# --- the run ----------------------------------------------------------------------------------


def run(request: RunRequest, plugins: Plugins) -> Path:
    """Run (or resume) one defense on one model over one suite; returns the run folder.

    A failure after the folder exists is recorded in its manifest (status ``failed`` or ``interrupted``, the
    step, the error and the end of its traceback) before it propagates; whatever was written is kept, and the
    same command resumes.
    """
    started = time.time()
    r = resolve(request, plugins)  # 1
    out = run_folder(request, r)
    with RunFolder(out, wait=request.wait_for_folder) as folder:  # 2
        previous = folder.read_manifest()
        manifest = start_manifest(request, r, plugins, folder, previous)  # refuses a folder holding another run
        reused = reuse(Path(request.reuse), r.identity, out) if request.reuse is not None else None
        done = {(rec["benchmark"], rec["id"]) for rec in folder.read_records()}  # refuses a corrupt file untouched
        if previous and previous.get("status") == "complete" and folder.metrics_path.is_file():
            return out  # a finished run is left exactly as it was (its manifest keeps the timings it had)
        if reused is not None:
            manifest["reused_from"] = reused
        folder.write_manifest(manifest)
        step = ["model"]
        try:
            _steps(request, r, plugins, folder, manifest, done, step)
        except BaseException as err:
            _record_failure(folder, manifest, step[0], err)
            raise
        manifest["timings"]["total_s"] = time.time() - started
        manifest["status"] = "complete"
        folder.write_manifest(manifest)
    return out


def _record_failure(folder: RunFolder, manifest: dict[str, Any], step: str, err: BaseException) -> None:
    import traceback

    manifest["status"] = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
    manifest["error"] = {"step": step, "type": type(err).__name__, "message": str(err),
                         "traceback": traceback.format_exception(err)[-12:]}
    folder.write_manifest(manifest)


def _steps(request: RunRequest, r: Resolved, plugins: Plugins, folder: RunFolder, manifest: dict[str, Any],
           done: set[tuple[str, str]], step: list[str]) -> None:
    """Steps 3 to 8 of a run; ``step[0]`` names the one under way, for the failure record."""
    timings: dict[str, float] = manifest.setdefault("timings", {})
    t0 = time.time()  # 3
    loaded = load(plugins, request.model, device=request.device, trust_remote_code=request.trust_remote_code,
                  chat_template=request.chat_template)
    timings["load_model_s"] = time.time() - t0
    manifest["model"] = loaded.info

    step[0], t0 = "defense", time.time()  # 4
    manifest["trajectory"] = asdict(request.trajectory)
    defended = _apply_named(r, loaded, plugins, folder.path / "defense", request)
    timings["defense_s"] = time.time() - t0
    manifest["defense"]["info"] = defended.info
    folder.write_manifest(manifest)  # keep what training found, even if evaluation is interrupted
    r.backend.check(defended)  # e.g. vllm refuses activation hooks

    step[0] = "contamination"  # 5
    suite_samples = {b.name: stratified_subset(b.samples(r.resolver), limit, r.suite.seed) for b, limit in r.benchmarks}
    excluded, manifest["contamination"] = contamination.check_suite(defended.training_texts, suite_samples,
                                                                    request.contamination, r.defense.obj.kind)
    excluded |= set(request.exclude)

    step[0] = "generate"  # 6
    cache = response_cache(request, r, model_identity(loaded)) if request.use_cache else None
    manifest["cached_responses"] = generate(request, r, folder, defended, suite_samples, excluded, done, cache,
                                            timings)

    capability = None  # 7
    if r.suite.capability.get("tasks"):
        step[0], t0 = "capability", time.time()
        capability = score_capability(folder.path / "capability.json", defended, r.suite.capability,
                                      r.resolver, request.seed)
        timings["capability_s"] = time.time() - t0

    step[0] = "score"  # 8
    folder.write_metrics(score_run(r.run_id, [b for b, _ in r.benchmarks], folder.read_records(), excluded,
                                   capability))
    faults.checkpoint("score.metrics")
    manifest["data_files"] = dict(sorted(r.resolver.used.items()))


def _apply_named(r: Resolved, loaded, plugins: Plugins, work_dir: Path, request: RunRequest):
    """Step 4; an error inside a plugin's ``apply`` says which plugin (and distribution) raised it."""
    d = r.defense
    try:
        return apply_defense(d.obj(r.config), loaded, plugins, work_dir, r.resolver, request.seed, request.progress,
                             request.trajectory)
    except (HarnessError, KeyboardInterrupt):
        raise
    except Exception as err:
        raise HarnessError(
            f"defense {request.defense!r} (plugin {d.plugin!r} from {d.distribution} {d.version}) failed while "
            f"applying: {type(err).__name__}: {err}. The run folder keeps what was written, with the traceback in "
            "its manifest; fix the plugin and run the same command to resume."
        ) from err
