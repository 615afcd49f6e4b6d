"""Built-in suites: TOML files beside this module, registered like any plugin's."""

from pathlib import Path

from harness import hookimpl


@hookimpl
def register_suites(register):
    for path in sorted(Path(__file__).parent.glob("*.toml")):
        register(path)
