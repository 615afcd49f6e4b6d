"""JailbreakBench's JBB-Behaviors: 100 harmful behaviors and their 100 topic-matched benign twins."""

from harness import hookimpl
from harness.benchmark import Benchmark, table_loader
from harness.data import DataFile

CITATION = "Chao et al., JailbreakBench, NeurIPS 2024 Datasets and Benchmarks"
# JailbreakBench scores refusals with its StringClassifier: case-sensitive substrings of its list
JUDGE_HINTS = {"refusal_convention": "jailbreakbench_StringClassifier"}

HARMFUL = DataFile(
    "jbb_behaviors",
    "jbb_behaviors/behaviors.csv",
    "45e9a8923b28f547bb372fbaa9af7df8b38c818a80ae50c3bab97704197ff516",
    "https://raw.githubusercontent.com/JailbreakBench/jailbreakbench/main/src/jailbreakbench/data/behaviors.csv",
)
BENIGN = DataFile(
    "jbb_behaviors",
    "jbb_behaviors/benign-behaviors.csv",
    "c0958ac974fb6629527aeff6c81c88154a877190d07313ac377d36951fde5d3e",
)


@hookimpl
def register_benchmarks(register):
    register(
        Benchmark(
            name="jbb-harmful",
            category="safety",
            description="JBB-Behaviors harmful requests (10 categories x 10), asked directly.",
            files=(HARMFUL,),
            load=table_loader(HARMFUL, prompt="Goal", id="", category="Category", harmful=True),
            size=100,
            judge_hints=JUDGE_HINTS,
            citation=CITATION,
        )
    )
    register(
        Benchmark(
            name="jbb-benign",
            category="over_refusal",
            description="JBB-Behaviors benign twins of the harmful requests (over-refusal).",
            files=(BENIGN,),
            load=table_loader(BENIGN, prompt="goal", id="index", category="category", harmful=False),
            size=100,
            judge_hints=JUDGE_HINTS,
            citation=CITATION,
        )
    )
