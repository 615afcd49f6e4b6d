"""OKTest (Shi et al. 2024, "Navigating the OverKill in Large Language Models"): 300 benign questions
that contain harmful-sounding words (slurs, profanity, "kill", ...), for over-refusal.

Every prompt in the published CSV ends with a newline inside its quoted field; it is stripped.

OKTest_heldout.csv, in the same upstream folder, is NOT a separate test set worth a benchmark of its own:
the upstream README calls it "a reserved set of 50 data points generated in the same manner", it is not
in the data mirror, and 10 of its 50 prompts are exact (case/punctuation-normalised) copies of OKTest.csv
prompts. It is left unregistered; ``x_boundary/test/OKTest.json`` is the same 300 prompts in chat format.
"""

from harness import hookimpl
from harness.benchmark import Benchmark, table_loader
from harness.data import DataFile

CITATION = "Shi et al., Navigating the OverKill in Large Language Models, ACL 2024 (arXiv 2401.17633)"

OKTEST = DataFile(
    "oktest",
    "oktest/OKTest.csv",
    "1be3e8d3fe6b45a170653da63c8cf70dbf97508a48735e65db0713a44e158860",
    "https://raw.githubusercontent.com/InvokerStark/OverKill/9551a7ff7b2cb18d178e64fb5cc95e4684311b3b/data/OKTest.csv",
)


@hookimpl
def register_benchmarks(register):
    register(
        Benchmark(
            name="oktest",
            category="over_refusal",
            description="OKTest's 300 benign questions with harmful-sounding words (over-refusal); "
            "no categories, ids are row numbers.",
            files=(OKTEST,),
            load=table_loader(OKTEST, prompt="prompt", id=None, harmful=False),
            size=300,
            judge_hints={"refusal_convention": "refusal_direction_substring"},
            citation=CITATION,
        )
    )
