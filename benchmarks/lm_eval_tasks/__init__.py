"""The harness's own lm-eval capability tasks, registered like any plugin's (``register_capability_tasks``).

Each task is ``<name>.yaml`` in this folder. Their ``!function utils.*`` entries are loaded by lm-eval
by file path from this folder (``utils.py`` is never imported as part of the package), so ``utils.py``
is part of every task's fingerprint. The same YAMLs run from the lm-eval CLI:
``lm_eval --include_path benchmarks/lm_eval_tasks --metadata '{"data_dir": "/path/to/data"}' ...``.
"""

from pathlib import Path

from harness import hookimpl
from harness.capability import CapabilityTask

FOLDER = Path(__file__).resolve().parent
TASKS = (
    "harness_mmlu",
    "harness_arc_challenge",
    "harness_gsm8k",
    "harness_truthfulqa_mc1",
    "harness_truthfulqa_mc2",
    "harness_benign_loglik",
)


@hookimpl
def register_capability_tasks(register):
    for name in TASKS:
        register(CapabilityTask(name, FOLDER, support_files=("utils.py",)))
