"""General capability of an in-memory model, scored by lm-eval on local data files.

Why this shape:

* Scoring goes through ``lm_eval.models.huggingface.HFLM(pretrained=model, ...)`` wrapping the
  caller's already-built model object, so whatever it carries (a PEFT adapter, forward hooks,
  steering vectors) is in force while it is scored. Nothing is reloaded from disk.
* The hub is unreachable, so the tasks are lm-eval YAMLs that plugins register
  (``register_capability_tasks``, one ``CapabilityTask`` each: its name and its include folder).
  Data paths: each YAML lists its files *relative to the data folder*
  (``dataset_kwargs.data_files``) and loads them with a small ``custom_dataset`` function;
  lm-eval 0.4.13 calls that function with the TaskManager ``metadata`` plus the task's
  ``dataset_kwargs``, so the folder is simply ``TaskManager(metadata={"data_dir": ...})``.
  This uses only lm-eval's public API, writes no temporary YAMLs, and the same YAMLs work from
  the lm-eval CLI (``--include_path FOLDER --metadata '{"data_dir": ...}'``).
* Prompt format, one rule (``PROMPT_RULE``, also recorded in every result): multiple-choice tasks
  are scored as plain text without the chat template (lm-eval's usual zero-shot convention;
  the option letters/texts are continuations of a plain prompt). Tasks that score an assistant
  turn (``generate_until``: GSM8K; ``loglikelihood``: the benign reference answers) go through
  the tokenizer's chat template. ``system_prompt`` goes in through lm-eval's
  ``system_instruction`` either way: as the system message under the chat template, or as a
  plain paragraph before the prompt otherwise. A tokenizer without a chat template gets plain
  text everywhere.
* ``limit`` picks ``limit`` documents per task with ``random.Random(f"{seed}:{task}")`` and hands
  them to lm-eval as ``samples`` (lm-eval's own ``limit`` would take the first N, e.g. only
  abstract algebra for MMLU). Same seed, same documents.
* Errors a user can fix are ``HarnessError`` (the CLI prints them without a traceback) and also
  ``ValueError`` / ``FileNotFoundError``, so plain callers can catch the usual types.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import random
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import yaml

from harness.errors import HarnessError, halve_batch, unknown_name

PROMPT_RULE = (
    "multiple_choice: plain text, no chat template, system_prompt as a leading paragraph; "
    "generate_until and loglikelihood: tokenizer chat template, system_prompt as the system "
    "message; no chat template on the tokenizer: plain text for all tasks"
)


class CapabilityError(HarnessError, ValueError):
    """Bad arguments: an unknown task (the message lists the known ones), no tasks, a bad limit."""


class MissingDataFileError(HarnessError, FileNotFoundError):
    """A data file a task reads is not under data_dir (the message names it)."""


class _Loader(yaml.SafeLoader):
    """Reads task YAMLs without importing the ``!function`` helpers they name."""


_Loader.add_constructor("!function", lambda loader, node: loader.construct_scalar(node))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass(frozen=True)
class CapabilityTask:
    """One lm-eval task a plugin provides (``register_capability_tasks``).

    ``folder`` is an lm-eval include folder holding ``<name>.yaml`` and any YAML that one
    ``include``s. The task's data files are its YAML's ``dataset_kwargs.data_files`` (relative to
    the data folder, checked and hashed before scoring). ``support_files`` are the other files of
    the folder that define the task (the module its ``!function`` entries name); with the YAMLs
    they make up its ``config_sha256``, recorded with every score.
    """

    name: str
    folder: Path
    support_files: tuple[str, ...] = ()

    def yamls(self) -> list[Path]:
        """The task's YAML followed by the YAMLs it includes (they define its config)."""
        paths, path = [], self.folder / f"{self.name}.yaml"
        while path is not None:
            paths.append(path)
            inc = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader).get("include")
            path = self.folder / inc if inc else None
        return paths

    def setting(self, key: str) -> Any:
        """``key`` as the task's config has it (the task's own YAML first, then what it includes)."""
        for path in self.yamls():
            cfg = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)
            if key in cfg:
                return cfg[key]
        return None

    def data_files(self) -> tuple[str, ...]:
        """Data files the task reads, relative to the data folder (for hashing into manifests)."""
        kwargs = self.setting("dataset_kwargs")
        if not kwargs or "data_files" not in kwargs:
            raise ValueError(f"{self.name}: no dataset_kwargs.data_files in its YAML")
        return tuple(f for v in kwargs["data_files"].values() for f in ([v] if isinstance(v, str) else v))

    def config_sha256(self) -> str:
        """Fingerprint of what defines the task: its YAML(s) and its support files."""
        parts = [p.read_bytes() for p in self.yamls()] + [(self.folder / f).read_bytes() for f in self.support_files]
        return _sha256(b"\0".join(parts))


def _registered():
    from harness.plugins import plugins

    return plugins().capability_tasks


def capability_task(name: str) -> CapabilityTask:
    registry = _registered()
    if name not in registry.items:
        raise CapabilityError(str(unknown_name("capability task", name, registry.names())))
    return registry.get(name)


def task_data_files(task: str) -> tuple[str, ...]:
    """Data files ``task`` reads, relative to the data folder (for hashing into manifests)."""
    return capability_task(task).data_files()


def capability_data_files(tasks: Iterable[str] | None = None) -> dict[str, tuple[str, ...]]:
    """``{task: data files relative to the data folder}`` for ``tasks`` (default: every registered task)."""
    return {t: task_data_files(t) for t in (_registered().names() if tasks is None else tasks)}


class _QuietCustomDatasetHint(logging.Filter):
    """lm-eval logs a generic '--metadata' hint for every custom_dataset task; we pass it already."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "Custom kwargs can be passed" not in record.getMessage()


@contextlib.contextmanager
def _preserved(model):
    """lm-eval seeds the global RNGs and calls model.eval(); undo both for the caller."""
    import numpy as np
    import torch

    task_log, hint = logging.getLogger("lm_eval.api.task"), _QuietCustomDatasetHint()
    task_log.addFilter(hint)
    states = random.getstate(), np.random.get_state(), torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    training = model.training
    try:
        yield
    finally:
        random.setstate(states[0])
        np.random.set_state(states[1])
        torch.set_rng_state(states[2])
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        model.train(training)
        task_log.removeFilter(hint)


def _metrics(task_results: dict, higher: dict) -> tuple[dict, str]:
    """Turn lm-eval's ``{"acc,none": v, "acc_stderr,none": s}`` into ``{"acc": {...}}``."""
    out, filters = {}, set()
    for key, value in task_results.items():
        if "," not in key or "_stderr," in key:
            continue
        name, filt = key.split(",", 1)
        filters.add(filt)
        stderr = task_results.get(f"{name}_stderr,{filt}")
        out[name] = {
            "value": float(value),
            "stderr": float(stderr) if isinstance(stderr, (int, float)) else None,
            "higher_is_better": higher.get(name),
        }
    if len(filters) != 1:
        raise RuntimeError(f"expected one lm-eval filter per task, got {sorted(filters)}")
    return out, filters.pop()


def run_capability(
    model,
    tokenizer,
    tasks: list[str],
    data_dir: Path,
    *,
    limit: int | None,
    batch_size: int = 8,
    system_prompt: str | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Score ``model`` (a PreTrainedModel or PeftModel, as it is) on capability ``tasks``.

    ``limit`` documents per task (seeded subset; ``None`` = all). Returns
    ``{"tasks": {task: {"metrics": {name: {value, stderr, higher_is_better}}, "n", ...}}, ...}``
    with the lm-eval version, prompt rule, data-file sha256s and config fingerprint per task.
    """
    import lm_eval
    import torch
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    tasks = list(tasks)
    if not tasks:
        raise CapabilityError(f"no capability tasks given; known tasks: {', '.join(_registered().names())}")
    specs = {task: capability_task(task) for task in tasks}
    if limit is not None and limit < 1:
        raise CapabilityError(f"limit must be a positive number of documents or None, got {limit}")
    data_dir = Path(data_dir)
    hashes = {}
    for task in tasks:
        hashes[task] = {}
        for rel in specs[task].data_files():
            path = data_dir / rel
            if not path.is_file():
                raise MissingDataFileError(
                    f"capability task {task} needs data file {path}, which does not exist; point "
                    f"data_dir (HARNESS_DATA_DIR) at the offline data folder that holds {rel}"
                )
            hashes[task][rel] = _sha256(path.read_bytes())

    version = lm_eval.__version__
    has_chat = bool(getattr(tokenizer, "chat_template", None))
    folders = sorted({str(spec.folder) for spec in specs.values()})
    manager = TaskManager(include_path=folders, include_defaults=False, metadata={"data_dir": str(data_dir)})
    report: dict[str, Any] = {
        "lm_eval_version": version,
        "limit": limit,
        "seed": seed,
        "batch_size": batch_size,
        "system_prompt": system_prompt,
        "prompt_rule": PROMPT_RULE,
        "tokenizer_has_chat_template": has_chat,
        "data_dir": str(data_dir),
        "tasks": {},
    }
    with _preserved(model):
        lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
        for task in tasks:
            start = time.perf_counter()
            task_obj = manager.load([task])["tasks"][task]
            n_total = len(task_obj.eval_docs)
            doc_ids = None
            if limit is not None:
                doc_ids = sorted(random.Random(f"{seed}:{task}").sample(range(n_total), min(limit, n_total)))
            output_type = task_obj.config.output_type
            chat = has_chat and output_type != "multiple_choice"
            if system_prompt is None:
                instruction, mode = None, None
            elif chat:
                instruction, mode = system_prompt, "chat_system_message"
            else:  # lm-eval joins the system text to the prompt with no separator
                instruction, mode = system_prompt.rstrip() + "\n\n", "plain_text_prefix"
            while True:
                try:
                    out = lm_eval.simple_evaluate(
                        model=lm,
                        tasks=[task_obj],
                        task_manager=manager,
                        samples={task: doc_ids} if doc_ids is not None else None,
                        system_instruction=instruction,
                        apply_chat_template=chat,
                        fewshot_as_multiturn=chat,
                        log_samples=False,
                        bootstrap_iters=1000,
                        random_seed=seed,
                        numpy_random_seed=seed,
                        torch_random_seed=seed,
                        fewshot_random_seed=seed,
                    )
                    break
                except torch.OutOfMemoryError:  # a smaller batch fits: keep going rather than lose the run
                    batch_size = halve_batch(batch_size, f"lm-eval scoring of {task}", "Lower [capability] "
                                             "batch_size or limit in the suite, or run on a device with more memory.")
                    lm = HFLM(pretrained=model, tokenizer=tokenizer, batch_size=batch_size)
            metrics, filt = _metrics(out["results"][task], out["higher_is_better"].get(task, {}))
            report["tasks"][task] = {
                "metrics": metrics,
                "filter": filt,
                "batch_size": batch_size,
                "n": int(out["n-samples"][task]["effective"]),
                "n_available": n_total,
                "doc_ids": doc_ids,
                "output_type": output_type,
                "chat_template": chat,
                "system_prompt_mode": mode,
                "lm_eval_version": version,
                "config_sha256": specs[task].config_sha256(),
                "data_files_sha256": hashes[task],
                "wall_s": round(time.perf_counter() - start, 3),
            }
    return report


def score_capability(path: Path, defended, spec_in: dict[str, Any], resolver, seed: int) -> dict[str, Any]:
    """Step 7 of a run: score the suite's capability tasks on the defended model (adapters merged, hooks on,
    system prompt passed), or reload ``path`` when a killed run already scored the same spec."""
    import json

    from harness import faults
    from harness.data import DataFile
    from harness.runstore import write_json_atomic

    spec = {"tasks": list(spec_in["tasks"]), "limit": spec_in.get("limit"),
            "batch_size": spec_in.get("batch_size", 8), "seed": seed}
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
