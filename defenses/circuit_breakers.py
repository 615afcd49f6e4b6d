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
"""

from harness import hookimpl
from harness.training.rerouting import RR_SEARCH_SPACE, ReroutingDefense


class CircuitBreakers(ReroutingDefense):
    name = "circuit-breakers"
    description = "Representation rerouting (Zou et al. 2024): LoRA pushes harmful states orthogonal, keeps benign ones."
    search_space = RR_SEARCH_SPACE


@hookimpl
def register_defenses(register):
    register(CircuitBreakers)
