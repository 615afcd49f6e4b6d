"""The defense benchmark harness: train jailbreak defenses and score safety, over-refusal and capability.

Plugins import the one marker pair from here: ``from harness import hookimpl``.
"""

import pluggy

__version__ = "0.1.0"

hookspec = pluggy.HookspecMarker("harness")
hookimpl = pluggy.HookimplMarker("harness")

__all__ = ["__version__", "hookimpl", "hookspec"]
