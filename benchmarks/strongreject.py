"""StrongREJECT forbidden prompts (Souly et al. 2024): 313 harmful requests in 6 categories."""

from harness import hookimpl
from harness.benchmark import Benchmark, table_loader
from harness.data import DataFile

CITATION = "Souly et al., A StrongREJECT for Empty Jailbreaks, arXiv 2402.10260"

DATASET = DataFile(
    "strongreject",
    "strongreject/strongreject_dataset.csv",
    "4dd70357e4ff8b5d0ba5ebafecab5d6dd5633ce8046e3dd1c8bd93e64de44381",
    "https://raw.githubusercontent.com/alexandrasouly/strongreject/main/strongreject_dataset/"
    "strongreject_dataset.csv",
)


@hookimpl
def register_benchmarks(register):
    register(
        Benchmark(
            name="strongreject",
            category="safety",
            description="StrongREJECT's 313 forbidden prompts, asked directly (its rubric judge needs an LLM; "
            "here the keyword judge). Ids are row numbers; the prompt's source is kept in meta.",
            files=(DATASET,),
            load=table_loader(DATASET, prompt="forbidden_prompt", id=None, category="category",
                              harmful=True, meta=("source",)),
            size=313,
            judge_hints={"refusal_convention": "refusal_direction_substring"},
            citation=CITATION,
        )
    )
