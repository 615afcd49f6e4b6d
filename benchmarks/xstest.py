"""XSTest v2: 250 safe prompts that sound unsafe (over-refusal) and 200 unsafe contrast prompts."""

from harness import hookimpl
from harness.benchmark import Benchmark, table_loader
from harness.data import DataFile

CITATION = "Roettger et al., XSTest, NAACL 2024"
PROMPTS = DataFile(
    "xstest",
    "xstest/xstest_prompts.csv",
    "11783fb294ed017473ee53c207d71f2161c7672c8d0b037501e78387f801cb5a",
    "https://raw.githubusercontent.com/paul-rottger/exaggerated-safety/d7bb5bd738c1fcbc36edd83d5e7d1b71a3e2d84d/xstest_prompts.csv",
)


@hookimpl
def register_benchmarks(register):
    register(
        Benchmark(
            name="xstest-safe",
            category="over_refusal",
            description="XSTest's 250 safe prompts (homonyms, figurative language, safe targets, ...).",
            files=(PROMPTS,),
            load=table_loader(PROMPTS, prompt="prompt", id="id", category="type", harmful=False,
                              where=lambda row: row["label"] == "safe"),
            size=250,
            judge_hints={"refusal_convention": "xstest_strmatch"},
            citation=CITATION,
        )
    )
    register(
        Benchmark(
            name="xstest-unsafe",
            category="safety",
            description="XSTest's 200 unsafe contrast prompts (a safety check beside the safe ones).",
            files=(PROMPTS,),
            load=table_loader(PROMPTS, prompt="prompt", id="id", category="type", harmful=True,
                              where=lambda row: row["label"] == "unsafe"),
            size=200,
            judge_hints={"refusal_convention": "xstest_strmatch"},
            citation=CITATION,
        )
    )
