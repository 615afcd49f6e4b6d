"""OR-Bench (Cui et al. 2024) over-refusal prompts: the 300-prompt subset X-Boundary evaluates on.

Only this subset is in the data mirror (which OR-Bench config it was drawn from is not stated upstream);
the full or-bench-hard-1k is not. Sample.category is OR-Bench's category (the file's ``behavior``).
"""

from harness import hookimpl
from harness.benchmark import Benchmark, last_user_message, table_loader
from harness.data import DataFile

CITATION = (
    "Cui et al., OR-Bench: An Over-Refusal Benchmark for Large Language Models, arXiv 2405.20947; "
    "subset from Lu et al., X-Boundary, arXiv 2502.09990"
)

ORBENCH_300 = DataFile(
    "x_boundary",
    "x_boundary/test/ORbench_test_300.json",
    "1e73ca99ab55703ef2ffb71fb510488efa008c4c53fe1b08568bc3416c86cfc0",
    "https://raw.githubusercontent.com/AI45Lab/X-Boundary/af6c4b6fc4159c556ca4e1e2181791e8a3bf3083/"
    "data/test/ORbench_test_300.json",
)


@hookimpl
def register_benchmarks(register):
    register(
        Benchmark(
            name="orbench",
            category="over_refusal",
            description="OR-Bench seemingly-toxic benign prompts, X-Boundary's 300-prompt subset "
            "(9 OR-Bench categories); ids are row numbers.",
            files=(ORBENCH_300,),
            load=table_loader(ORBENCH_300, rows=lambda doc: doc["data"], prompt=last_user_message, id=None,
                              category="behavior", harmful=False),
            size=300,
            judge_hints={"refusal_convention": "refusal_direction_substring"},
            citation=CITATION,
        )
    )
