"""Named crash points, so tests can prove that a run killed anywhere resumes without loss.

A run must survive SIGKILL (the OOM killer, a pre-empted node, a closed laptop) at any moment:
no ``finally`` block or signal handler runs then, so the only evidence that resume works is to
kill real processes at the moments that matter. ``HARNESS_FAULT=point:k`` makes the k-th
``checkpoint(point)`` call of the process SIGKILL itself (``k`` defaults to 1); unset, a call
costs one environment lookup. ``tests/test_faults.py`` kills runs at every point and checks the
resumed results against an uninterrupted run. Points: ``train.step`` (a step was logged, no
checkpoint yet), ``train.checkpoint`` (a checkpoint was saved), ``train.swap`` (mid-way through
replacing the previous checkpoint), ``generate.batch`` (a batch of records was appended),
``capability.scored`` (lm-eval finished, ``capability.json`` not yet written), ``score.metrics``
(``metrics.json`` written, the final manifest not yet).
"""

from __future__ import annotations

import os
import signal

_hits: dict[str, int] = {}


def checkpoint(point: str) -> None:
    """SIGKILL this process if ``HARNESS_FAULT`` names ``point`` and this is its k-th hit."""
    spec = os.environ.get("HARNESS_FAULT")
    if not spec:
        return
    name, _, k = spec.partition(":")
    if name == point:
        _hits[point] = _hits.get(point, 0) + 1
        if _hits[point] == int(k or 1):
            os.kill(os.getpid(), signal.SIGKILL)
