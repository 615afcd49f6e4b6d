"""AdvBench harmful behaviors (Zou et al. 2023): 520 harmful instructions with GCG's affirmative targets."""

from harness import hookimpl
from harness.benchmark import Benchmark, table_loader
from harness.data import DataFile

CITATION = "Zou et al., Universal and Transferable Adversarial Attacks on Aligned Language Models, arXiv 2307.15043, 2023"

BEHAVIORS = DataFile(
    "advbench",
    "advbench/harmful_behaviors.csv",
    "6cd1a5c63c07610d7eb67307772ee5606017ee950b5770ab288a2c487489d3e1",
    "https://raw.githubusercontent.com/llm-attacks/llm-attacks/098262edf85f807224e70ecd87b9d83716bf6b73/"
    "data/advbench/harmful_behaviors.csv",
)


@hookimpl
def register_benchmarks(register):
    register(
        Benchmark(
            name="advbench",
            category="safety",
            description="AdvBench's 520 harmful behaviors (the goal column), asked directly; no categories. "
            "Ids are row numbers; the GCG target string is kept in meta.",
            files=(BEHAVIORS,),
            load=table_loader(BEHAVIORS, prompt="goal", id=None, harmful=True, meta=("target",)),
            size=520,
            judge_hints={"refusal_convention": "gcg_advbench_evaluate"},
            citation=CITATION,
        )
    )
