"""``harness analyze probe|logitlens``: the representation analysis the paper starts from (its Figure 3).

Both commands read the hidden state at the **last prompt position** (the last token of the
rendered chat prompt, i.e. the end of the assistant header, where the model decides how to
answer) at every layer, on the model as a defense leaves it: the defense's chat transform is
applied through ``harness.generation.render_prompt`` and its activation hooks are active.
Layers follow ``output_hidden_states`` numbering (0 = embedding output, L = output of the last
decoder block, before the final norm); they are captured with ``harness.training.layers``.

- ``probe``: a linear probe per layer, harmful against harmless, applied to over-refusal prompts;
- ``logitlens``: each layer decoded through the final norm and unembedding, refusal-like against
  compliance-like first tokens.

The prompt sets: refusal_direction's ``harmful_train`` / ``harmless_train`` (the probe's training
sets), its held-out ``*_test`` (or ``*_val``) split, ``n`` prompts per set, balanced, and the
over-refusal benchmarks (``harness.defaults.ANALYSIS_OVER_REFUSAL``, loaded through the benchmark
plugins). Prompts that also occur (normalised text) in the probe's training prompts are dropped from
the held-out and over-refusal sets, and counted.

A trained defense is applied from a run folder (``--run``): its manifest gives the defense, its
resolved config, the model and the seed, and the defense's own ``apply`` reloads the finished
adapter from ``<run>/defense`` (it is never retrained: an unfinished defense is refused).

Each analysis writes a json of everything it found and a page and figures drawn from that json
alone (``write_probe``, ``write_logitlens``), so a published page rebuilds from its json.
"""

from harness.analysis.common import AnalysisRequest
from harness.analysis.logitlens import run_logitlens
from harness.analysis.probe import run_probe

__all__ = ["AnalysisRequest", "run_logitlens", "run_probe"]
