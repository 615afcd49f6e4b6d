"""Step 6 of a run: generate (or take from the response cache) and judge every item, appending records per batch.

The response cache is keyed by everything that changes an answer: the model's weights, the defense, its resolved
config, its plugin's distribution, version and source digest, the seed, the generation settings, a non-default
backend, and the exact rendered prompt (which carries the chat template and the defense's transform).
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import TYPE_CHECKING

from harness import faults
from harness.data import cache_dir
from harness.defaults import DEFAULT_BACKEND
from harness.errors import HarnessError
from harness.generation import render_prompt
from harness.responsecache import ResponseCache
from harness.runstore import RunFolder

if TYPE_CHECKING:
    from harness.pipeline import Resolved, RunRequest


def response_cache(request: RunRequest, r: Resolved, model_key: str) -> ResponseCache:
    return ResponseCache(cache_dir() / "responses.sqlite", {
        "model": model_key, "defense": request.defense, "config": asdict(r.config), "seed": request.seed,
        "plugin": {"distribution": r.defense.distribution, "version": r.defense.version, "source": r.defense_source},
        "generation": r.suite.generation.record(),
        **({"backend": request.backend} if request.backend != DEFAULT_BACKEND else {})})


def _filtered(defended, prompt: str, response: str) -> str:
    """The response after the defense's output filter (unchanged without one); a filter must return text."""
    if defended.output_filter is None:
        return response
    out = defended.output_filter(prompt, response)
    if not isinstance(out, str):
        raise HarnessError(f"the defense's output_filter returned {type(out).__name__}, not the response text; "
                           "it must map (request, response) to a string.")
    return out


def generate(request: RunRequest, r: Resolved, folder: RunFolder, defended, suite_samples: dict[str, list],
             excluded: set[tuple[str, str]], done: set[tuple[str, str]], cache: ResponseCache | None,
             timings: dict[str, float]) -> int:
    """Generate (or take from the cache) and judge every item not yet recorded, appending records per batch;
    returns how many responses came from the cache."""
    reused = 0
    generation = r.suite.generation
    for bench, limit in r.benchmarks:
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
        judge_info = r.judge.describe(bench)

        def record(batch: list[tuple[int, str]], cached: bool) -> None:
            items = [todo[i] for i, _ in batch]
            raw = [text for _, text in batch]
            responses = [_filtered(defended, s.prompt, text) for s, text in zip(items, raw)]
            verdicts = r.judge.judge(bench, [s.prompt for s in items], responses)
            folder.append_records(
                {"benchmark": bench.name, "id": s.id, "category": s.category, "harmful": s.harmful,
                 "messages": list(s.messages), "prefill": s.prefill, "response": response, "label": v.label,
                 "reason": v.reason, "judge": judge_info, "generation": generation.record(), "cached": cached,
                 **({"raw_response": text} if defended.output_filter is not None else {})}
                for s, response, text, v in zip(items, responses, raw, verdicts)
            )
            faults.checkpoint("generate.batch")

        hits = cache.get_many(prompts) if cache else {}
        if hits:
            record(sorted(hits.items()), cached=True)
            reused += len(hits)
        missing = [i for i in range(len(prompts)) if i not in hits]
        for batch in r.backend.generate(defended, [prompts[i] for i in missing], generation, desc=bench.name,
                                        progress=request.progress):
            batch = [(missing[j], text) for j, text in batch]
            if cache:
                cache.put_many([(prompts[i], text) for i, text in batch])
            record(batch, cached=False)
        timings[f"generate_{bench.name}_s"] = time.time() - t0
    if cache:
        cache.close()
    r.backend.close()
    return reused
