"""JailbreakBench attack artifacts: jailbreak prompts found by PAIR, GCG, JBC (AIM), prompt + random
search and DSN against the 100 JBB-Behaviors, replayed as they are (no attacker model needed).

One benchmark per method, ``jbb-artifacts-<method>``, on one default target file per method. The default
target is vicuna-13b-v1.5 for every method, because it is

* the only target every method has an artifact for (DSN and white-box GCG exist only for vicuna and
  llama-2; PAIR on llama-2 has 4 non-null prompts out of 100);
* open-weight, like the models this harness runs, and a target on which every method worked
  (reported ASR PAIR 0.69, GCG 0.80, JBC 0.90, random search 0.89, DSN 0.95; GCG on llama-2: 0.03,
  so its suffixes mostly failed where they were optimised);
* not a loss of coverage: JBC prompts are the same AIM template + goal for all four targets, and
  GCG's transfer artifacts for the GPT models are the vicuna suffixes byte for byte.

Registering all 18 (method, target) files would list near-duplicates and weigh those attacks twice
or four times in a suite; every file is nevertheless pinned in ``ARTIFACTS``, so another target is one
``artifact_benchmark(...)`` call. Null prompts (the attack produced none) are skipped, so sizes are
the non-null counts. Ids are the JBB index (they join with ``jbb-harmful``); Sample.category is the
JBB category; meta records the method, the targeted model and whether the attack succeeded on it.
"""

from harness import hookimpl
from harness.benchmark import Benchmark, table_loader
from harness.data import DataFile

COMMIT = "909e68c01d94222b8ad2e397a017e2e12e2adb73"
BASE_URL = f"https://raw.githubusercontent.com/JailbreakBench/artifacts/{COMMIT}/attack-artifacts"
JBB = "Chao et al., JailbreakBench: An Open Robustness Benchmark for Jailbreaking Large Language Models, NeurIPS 2024 Datasets and Benchmarks"

# (method folder, attack type, target model) -> (sha256, number of non-null prompts)
ARTIFACTS: dict[tuple[str, str, str], tuple[str, int]] = {
    ("DSN", "white_box", "llama-2-7b-chat-hf"): ("9bcdbe88b18e729ca9abf593d3e5141e7958aff0eb3a0e62ae92b8f64acbdcd9", 100),
    ("DSN", "white_box", "vicuna-13b-v1.5"): ("ea0a5f7331baf595fb6e6925423f43367cbce8da9273ce93c6a03e2201e3373d", 100),
    ("GCG", "transfer", "gpt-3.5-turbo-1106"): ("ff185b1dc73732d830e96efdb3f4a92294ee72e9c88a1800b1d11d4ecb3d4cdf", 100),
    ("GCG", "transfer", "gpt-4-0125-preview"): ("af54543a06e3702256315517ee6e6a7b0edf182dd2c6d938216fa58cbea8de23", 100),
    ("GCG", "white_box", "llama-2-7b-chat-hf"): ("f76cbaf899c79ca8eed6a6ed26d6f8789933c5595a9a5ee028e305dec4dd95f7", 100),
    ("GCG", "white_box", "vicuna-13b-v1.5"): ("9eff8b6f78cae002737868ca8cdd886be5afcd1cbbbe4cf51ff837bc688b01b1", 100),
    ("JBC", "manual", "gpt-3.5-turbo-1106"): ("5999b8f2fc5e85fd4f7d6553abaeaa66f2dc10c5354faa41622e511c08eab871", 100),
    ("JBC", "manual", "gpt-4-0125-preview"): ("1785f7cf838522461b5b9af3fa606715ecf55c194581f4c8c5c9f1945b59db05", 100),
    ("JBC", "manual", "llama-2-7b-chat-hf"): ("1607a5a5b9f50abc7f2ff9e07b7257dfde7228b88cfdf73c20f5f56108ffdd23", 100),
    ("JBC", "manual", "vicuna-13b-v1.5"): ("1d5df5aa451c3d1bb8a4c048a7b2e1e6132e72f2970cb9d94ffc77f44e0edb39", 100),
    ("PAIR", "black_box", "gpt-3.5-turbo-1106"): ("49e007ce488e606cede7ffc8b022e35080b7f3870956e4cb2423d9b42749c78f", 87),
    ("PAIR", "black_box", "gpt-4-0125-preview"): ("6dd214eee78184daf048ac8af166641724b49fd25bc831e5d7201469c162004d", 64),
    ("PAIR", "black_box", "llama-2-7b-chat-hf"): ("02819296c5d992568d732d37813b2ce34624068a20f21025c04c04d52820b029", 4),
    ("PAIR", "black_box", "vicuna-13b-v1.5"): ("18b101386419a98fbdf45cb987069f83af3a40d5e0f7f0d32c4e9dc5ecc049b4", 82),
    ("prompt_with_random_search", "black_box", "gpt-3.5-turbo-1106"): ("d4a0691eda37b02dc948b6d6d08460f7d5cd3f15099121b388a58634ffb7bd76", 100),
    ("prompt_with_random_search", "black_box", "gpt-4-0125-preview"): ("4a0573dba6823c676cab99ed54b8191244080883948270fac9b75255b7c69206", 100),
    ("prompt_with_random_search", "black_box", "llama-2-7b-chat-hf"): ("45df98af6e1c0e35747f6b9c80cdc606e96c76a511e09a1a49ad5b00cfb51c0a", 100),
    ("prompt_with_random_search", "black_box", "vicuna-13b-v1.5"): ("9d87a56659f617438feb5770bb2c8e4c2dbbd1bd62964f2c1a8775988017ac5d", 100),
}

DEFAULT_TARGET = "vicuna-13b-v1.5"

# registered name suffix -> (method folder, attack type, what it is, method citation)
METHODS = {
    "pair": ("PAIR", "black_box", "PAIR (attacker-LLM rewrites of the request)",
             "Chao et al., Jailbreaking Black Box Large Language Models in Twenty Queries, arXiv 2310.08419"),
    "gcg": ("GCG", "white_box", "GCG (request + optimised adversarial suffix)",
            "Zou et al., Universal and Transferable Adversarial Attacks on Aligned Language Models, arXiv 2307.15043"),
    "jbc": ("JBC", "manual", "JailbreakChat's AIM template wrapped around the request",
            "Albert, jailbreakchat.com (AIM)"),
    "random-search": ("prompt_with_random_search", "black_box",
                      "Andriushchenko et al.'s rule-following template + random-search suffix",
                      "Andriushchenko et al., Jailbreaking Leading Safety-Aligned LLMs with Simple Adaptive Attacks, "
                      "arXiv 2404.02151"),
    "dsn": ("DSN", "white_box", "DSN (suffix optimised to suppress refusals)",
            "Zhou et al., Don't Say No: Jailbreaking LLM by Suppressing Refusal, arXiv 2404.16369"),
}


def artifact_file(method: str, attack_type: str, target: str) -> DataFile:
    sha256, _ = ARTIFACTS[(method, attack_type, target)]
    rel = f"{method}/{attack_type}/{target}.json"
    return DataFile("jailbreakbench_artifacts", f"jailbreakbench_artifacts/attack-artifacts/{rel}", sha256,
                    f"{BASE_URL}/{rel}")


def artifact_benchmark(name: str, method: str, attack_type: str, target: str, what: str, citation: str) -> Benchmark:
    """A benchmark replaying one artifact file's non-null prompts verbatim (no stripping: suffixes matter)."""
    file = artifact_file(method, attack_type, target)
    _, size = ARTIFACTS[(method, attack_type, target)]

    def meta(row: dict) -> dict:
        return {
            "method": method,
            "attack_type": attack_type,
            "target_model": target,
            "goal": row["goal"],
            "behavior": row["behavior"],
            "jailbroken_on_target": row["jailbroken"],
        }

    return Benchmark(
        name=name,
        category="jailbreak",
        description=f"JailbreakBench artifacts: {what}, as found against {target}; {size} non-null prompts "
        "replayed verbatim. Id = JBB index, category = JBB category.",
        files=(file,),
        load=table_loader(file, rows=lambda doc: doc["jailbreaks"], where=lambda row: row["prompt"] is not None,
                          prompt="prompt", id="index", category="category", harmful=True, meta=meta, strip=False),
        size=size,
        judge_hints={"refusal_convention": "jailbreakbench_StringClassifier"},
        citation=f"{JBB}; {citation}",
    )


@hookimpl
def register_benchmarks(register):
    for suffix, (method, attack_type, what, citation) in METHODS.items():
        register(artifact_benchmark(f"jbb-artifacts-{suffix}", method, attack_type, DEFAULT_TARGET, what, citation))
