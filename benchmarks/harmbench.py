"""HarmBench text behaviors, test split: the 159 standard and 81 contextual behaviors.

Copyright behaviors (80 in the test split) are left out: they are scored by HarmBench's
hash-based copyright classifier, not by refusal. A contextual behavior's prompt is its context
and the behavior joined as HarmBench's own baselines do (``context + "\\n\\n---\\n\\n" + behavior``);
the context is also kept in ``meta["context"]``.
"""

from harness import hookimpl
from harness.benchmark import Benchmark, table_loader
from harness.data import DataFile

CITATION = (
    "Mazeika et al., HarmBench: A Standardized Evaluation Framework for Automated Red Teaming "
    "and Robust Refusal, ICML 2024"
)

TEST = DataFile(
    "harmbench",
    "harmbench/harmbench_behaviors_text_test.csv",
    "75d257b3e7428c52eb7b0154318f455af3e01b09a3794b5e2f3d36054f3c0e29",
    "https://raw.githubusercontent.com/centerforaisafety/HarmBench/main/data/behavior_datasets/"
    "harmbench_behaviors_text_test.csv",
)

CONTEXT_SEPARATOR = "\n\n---\n\n"  # HarmBench baselines' join of ContextString and Behavior


def _prompt(row: dict) -> str:
    context = row["ContextString"]
    return f"{context}{CONTEXT_SEPARATOR}{row['Behavior']}" if context else row["Behavior"]


def _meta(row: dict) -> dict:
    out = {"functional_category": row["FunctionalCategory"], "behavior": row["Behavior"]}
    if row["ContextString"]:
        out["context"] = row["ContextString"]
    if row["Tags"]:
        out["tags"] = row["Tags"]
    return out


@hookimpl
def register_benchmarks(register):
    register(
        Benchmark(
            name="harmbench",
            category="safety",
            description="HarmBench text test behaviors, standard (159) + contextual (81, context then "
            "behavior in the user turn); no copyright. Category = SemanticCategory, id = BehaviorID.",
            files=(TEST,),
            load=table_loader(
                TEST,
                prompt=_prompt,
                id="BehaviorID",
                category="SemanticCategory",
                harmful=True,
                where=lambda row: row["FunctionalCategory"] in ("standard", "contextual"),
                meta=_meta,
            ),
            size=240,
            judge_hints={"refusal_convention": "refusal_direction_substring"},
            citation=CITATION,
        )
    )
