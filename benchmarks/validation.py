"""Validation sets for tuning (``harness tune``): disjoint from every test benchmark.

A defense's operating point must be chosen without looking at the test benchmarks, so these
come from splits no test benchmark draws on:

- ``val-harmful``: refusal_direction's ``harmful_val`` split (harmful requests; ASR);
- ``val-harmless``: its ``harmless_val`` split (Alpaca-style instructions; benign compliance);
- ``val-borderline``: OR-Bench retain prompts that GPT-4 answered in full and whose
  ``prompt_id`` is a multiple of 5 (borderline-benign; over-refusal). Because they are
  registered benchmarks, the training sets drop them (and their near duplicates) like any
  evaluation item, so the remaining four fifths still serve training.

``harness tune`` re-checks them against every test benchmark before it starts.
"""

from harness import hookimpl
from harness.benchmark import Benchmark, table_loader
from harness.datafiles import HARMFUL_VAL, HARMLESS_VAL, ORBENCH_RETAIN

CITATION = ("Arditi et al., Refusal in Language Models Is Mediated by a Single Direction, 2024 (splits); "
            "Cui et al., OR-Bench, arXiv 2405.20947; Lu et al., X-Boundary, arXiv 2502.09990 (retain set)")

HOLD_OUT_EVERY = 5  # val-borderline: OR-Bench retain prompt ids divisible by this


@hookimpl
def register_benchmarks(register):
    register(Benchmark(
        name="val-harmful", category="safety", split="validation",
        description="Validation only: refusal_direction's harmful_val requests (ASR).",
        files=(HARMFUL_VAL,),
        load=table_loader(HARMFUL_VAL, prompt="instruction", id=None, category="category", harmful=True),
        size=39, citation=CITATION,
    ))
    register(Benchmark(
        name="val-harmless", category="over_refusal", split="validation",
        description="Validation only: refusal_direction's harmless_val instructions (benign compliance).",
        files=(HARMLESS_VAL,),
        load=table_loader(HARMLESS_VAL, prompt="instruction", id=None, harmful=False),
        size=6264, citation=CITATION,
    ))
    register(Benchmark(
        name="val-borderline", category="over_refusal", split="validation",
        description="Validation only: OR-Bench retain prompts (GPT-4 complied) with prompt_id % 5 == 0, "
        "held out of training (borderline-benign over-refusal).",
        files=(ORBENCH_RETAIN,),
        load=table_loader(ORBENCH_RETAIN, prompt="prompt", id="prompt_id", harmful=False,
                          where=lambda r: r["status"] == "1_full_compliance" and r["prompt_id"] % HOLD_OUT_EVERY == 0),
        size=107, citation=CITATION,
    ))
