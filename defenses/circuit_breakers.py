"""Circuit Breakers: representation rerouting (RR; Zou et al. 2024), scaled to the model.

LoRA adapters on the lower layers are trained so that, at the target layers, hidden states of
harmful examples (request + harmful completion) turn orthogonal to where the frozen model had
them (mean ReLU(cos)), while hidden states of benign examples stay close (L2 distance). The
coefficients follow RR's schedule, c_s = a(1 - t/2T) and c_r = a t/2T. The objective is the
training kit's (``harness.training.rerouting``), which MOSR builds on too.

The reference recipe (a = 10, layers 10 and 20 of 32, LoRA r 16 on layers 0-20, lr 1e-4) does
nothing on the default 135M model: its rerouting cosine stayed at 1.000 and the answers were
unchanged, because adapters start as the identity (at step 0 the adapted and frozen states are
bit-identical in float32, so ReLU(cos) has exactly zero gradient), and absolute L2 on
massive-activation positions (a first-token norm of about 25,000 against a median of about 220
at layer 20) appears to dominate the retain term: with it the cosine stayed at 1.000 even at lr 1e-3. So three departures are config fields here:
``b_init_std`` breaks the zero-gradient symmetry, ``retain_distance = "relative"`` divides by
the reference norm, and ``exclude_massive_dims`` leaves the massive-activation dimensions out of
both terms. Layer numbers are given for a ``reference_depth``-layer model and scaled.

Why the studies found no operating point, measured on the trajectories (leaderboards/operating-points): the
paper's retain term is a norm, whose gradient has the same size however small the change, while ReLU(cos) is
flat at the unchanged model (at step 0 their gradient norms on the adapter were 1.77 and 0.0014), so a retain
weight from step 1 pins the model; with RR's schedule the retain weight starts at 0 and the rerouting escapes on
every input. ``retain_power = 2`` (the squared distance) puts both terms at second order; with the retain weight
from step 1 only harmful-specific changes grow. The ``squared-retain`` preset is that recipe; ``reference`` is
the paper's.
"""

from harness import hookimpl
from harness.training.rerouting import RR_SEARCH_SPACE, ReroutingDefense


# The paper's recipe as its code runs it (Llama-3-8B-Instruct; layer numbers for 32 layers, scaled to the model):
# LoRA r 16 / alpha 16 on blocks 0-20, rerouting at hidden states 10 and 20, retain over every hidden state up to
# the top target (embeddings included), absolute L2, no dimension left out, every masked token of a batch weighted
# alike, peft's zero-initialised B, a = 10 with c_r = a t/300 and c_s = a (1 - t/300) (RR's schedule at 150
# steps), lr 1e-4, 150 steps of 16. Where this harness still differs: the masks leave out the chat template's
# tokens (the code's cover every non-pad token, and its retain mean counts pad positions as zero distance), the
# schedule counts steps from 0 (the code from 1), and sequences are cut at max_length tokens.
REFERENCE = {
    "lora_layers": (0, 20), "target_layers": (10, 20), "reference_depth": 32, "lora_r": 16, "lora_alpha": 16,
    "alpha": 10.0, "schedule": "rr", "retain_coef": 1.0, "retain_distance": "absolute", "retain_power": 1,
    "retain_layers": "all_with_embeddings", "exclude_massive_dims": False, "b_init_std": 0.0, "loss_pooling": "token",
    "retain_ce_weight": 0.0, "lr": 1e-4, "steps": 150, "batch_size": 16,
}


# The recipe that reaches an operating point on the default model (leaderboards/operating-points): a squared
# retain distance in force from step 1, so an input-independent change costs the benign states what it gains on
# the harmful ones and only the harmful-specific part grows. Validation ASR 0.949 -> 0.333 (exact McNemar
# p < 1e-6) at harmless compliance 0.906.
SQUARED_RETAIN = {"retain_power": 2, "schedule": "constant", "retain_coef": 1.0, "lr": 1e-3, "steps": 150}


class CircuitBreakers(ReroutingDefense):
    name = "circuit-breakers"
    description = "Representation rerouting (Zou et al. 2024): LoRA pushes harmful states orthogonal, keeps benign ones."
    search_space = RR_SEARCH_SPACE
    presets = {"reference": REFERENCE, "squared-retain": SQUARED_RETAIN}


@hookimpl
def register_defenses(register):
    register(CircuitBreakers)
