"""One error type for everything a user can fix, so the CLI prints it without a traceback."""

from __future__ import annotations

import difflib
import sys


class HarnessError(Exception):
    """A problem with the user's input or environment; the message says what and how to fix it."""


def unknown_name(kind: str, name: str, known: list[str], hint: str = "") -> HarnessError:
    """An error for an unknown plugin name that lists the known ones and suggests the closest."""
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    msg = f"unknown {kind} {name!r}."
    if close:
        msg += f" Did you mean {' or '.join(repr(c) for c in close)}?"
    msg += f" Known {kind}s: {', '.join(sorted(known)) or '(none)'}."
    if hint:
        msg += f" {hint}"
    return HarnessError(msg)


def halve_batch(size: int, where: str, fix: str) -> int:
    """The batch size to retry with after an out-of-memory error (call it inside the ``except``).

    Halving keeps a long run going on a smaller GPU instead of losing it; outputs do not depend on
    the batch size (beyond float rounding). At batch size 1 nothing is left to shrink, so the error says what to change.
    """
    import torch

    if size <= 1:
        raise HarnessError(f"out of memory in {where} even at batch size 1. {fix}")
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    print(f"warning: out of memory in {where} at batch size {size}; continuing at batch size {size // 2}.",
          file=sys.stderr)
    return size // 2
