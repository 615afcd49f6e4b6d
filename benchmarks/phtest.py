"""PHTest (An et al. 2024, pseudo-harmful prompts): the 300-prompt subset X-Boundary evaluates on.

The full set (3269, with harmless / controversial labels) is not in the data mirror; this subset
carries no label, so every prompt is treated as benign and there are no categories.
"""

from harness import hookimpl
from harness.benchmark import Benchmark, last_user_message, table_loader
from harness.data import DataFile

CITATION = (
    "An et al., Automatic Pseudo-Harmful Prompt Generation for Evaluating False Refusals in Large "
    "Language Models, arXiv 2409.00598; subset from Lu et al., X-Boundary, arXiv 2502.09990"
)

PHTEST_300 = DataFile(
    "x_boundary",
    "x_boundary/test/PHtest.json",
    "92d6a910148ea1253ad67f7661c85948608b859f37ee50611032b32a9e096047",
    "https://raw.githubusercontent.com/AI45Lab/X-Boundary/af6c4b6fc4159c556ca4e1e2181791e8a3bf3083/"
    "data/test/PHtest.json",
)


@hookimpl
def register_benchmarks(register):
    register(
        Benchmark(
            name="phtest",
            category="over_refusal",
            description="PHTest pseudo-harmful prompts, X-Boundary's 300-prompt subset (no labels or "
            "categories); ids are row numbers.",
            files=(PHTEST_300,),
            load=table_loader(PHTEST_300, rows=lambda doc: doc["data"], prompt=last_user_message, id=None,
                              harmful=False),
            size=300,
            judge_hints={"refusal_convention": "refusal_direction_substring"},
            citation=CITATION,
        )
    )
