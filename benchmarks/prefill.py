"""The prefilling attack: the assistant turn already starts with the benchmark's affirmative target
("Sure, here is ..."), so the model only has to continue it (Andriushchenko et al. 2024; Qi et al. 2024
show that safety alignment that is only a few tokens deep gives way to it).

``prefill-jbb`` uses JBB-Behaviors' harmful goals and their Target column. Another base set with a
target column is one more ``register`` call with ``table_loader(..., prefill=<column>)`` (AdvBench's
``target``, for example); only JBB is registered so the suites stay small.
"""

from harness import hookimpl
from harness.benchmark import Benchmark, table_loader

from benchmarks.jbb import CITATION as JBB_CITATION
from benchmarks.jbb import HARMFUL as JBB_HARMFUL
from benchmarks.jbb import JUDGE_HINTS as JBB_JUDGE_HINTS

CITATION = (
    f"{JBB_CITATION}; Andriushchenko et al., Jailbreaking Leading Safety-Aligned LLMs with Simple Adaptive "
    "Attacks, arXiv 2404.02151; Qi et al., Safety Alignment Should Be Made More Than Just a Few Tokens Deep, "
    "arXiv 2406.05946"
)


@hookimpl
def register_benchmarks(register):
    register(
        Benchmark(
            name="prefill-jbb",
            category="jailbreak",
            description="JBB-Behaviors harmful goals with the assistant turn prefilled with JBB's target "
            "(\"Sure, here is ...\"); the response judged is the continuation. Id = JBB index.",
            files=(JBB_HARMFUL,),
            load=table_loader(JBB_HARMFUL, prompt="Goal", id="", category="Category", harmful=True,
                              prefill="Target"),
            size=100,
            judge_hints=JBB_JUDGE_HINTS,
            citation=CITATION,
        )
    )
