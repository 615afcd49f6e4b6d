"""One error type for everything a user can fix, so the CLI prints it without a traceback."""

from __future__ import annotations

import difflib


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
