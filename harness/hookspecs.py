"""The plugin hooks. Each receives a ``register`` callback so the core validates what it gets.

A plugin module implements any of these with ``@harness.hookimpl`` and is announced through
an entry point in the ``harness`` group, exactly like the built-ins in this distribution.
"""

from harness import hookspec


@hookspec
def register_defenses(register):
    """Call ``register(DefenseClass)`` for each defense (a subclass of ``harness.defense.Defense``)."""


@hookspec
def register_benchmarks(register):
    """Call ``register(Benchmark(...))`` for each benchmark (a ``harness.benchmark.Benchmark``)."""


@hookspec
def register_judges(register):
    """Call ``register(JudgeClass)`` for each judge (a subclass of ``harness.judge.Judge``)."""


@hookspec
def register_models(register):
    """Call ``register(ModelPreset(...))`` for each model preset (a ``harness.models.ModelPreset``)."""


@hookspec
def register_suites(register):
    """Call ``register(path)`` for each suite file (TOML, see ``harness.suite``)."""


@hookspec
def register_backends(register):
    """Call ``register(BackendClass)`` for each generation backend (a subclass of ``harness.backend.Backend``)."""


@hookspec
def register_capability_tasks(register):
    """Call ``register(CapabilityTask(...))`` for each lm-eval task (a ``harness.capability.CapabilityTask``)."""
