"""The default backend: ``harness.generation.generate_texts`` on the defended transformers model.

Batched, length-sorted and left-padded, greedy unless the suite samples; the defense's
activation hooks are active while it generates. Needs nothing beyond the harness itself.
"""

from __future__ import annotations

from typing import Iterator

from harness import hookimpl
from harness.backend import Backend
from harness.generation import generate_texts


class TransformersBackend(Backend):
    name = "transformers"
    description = ("transformers generate() in length-sorted, left-padded batches (suite batch_size), with the "
                   "defense's hooks active; the default")

    def generate(self, defended, prompts, settings, *, desc="generating", progress=True) -> Iterator[list[tuple[int, str]]]:
        yield from generate_texts(defended, prompts, settings, desc=desc, progress=progress)


@hookimpl
def register_backends(register):
    register(TransformersBackend)
