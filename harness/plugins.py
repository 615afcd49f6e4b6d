"""The plugin manager and the registries it fills.

Plugins are modules announced by entry points in the ``harness`` group; the built-ins in this
distribution are announced the same way. ``HARNESS_BLOCK_PLUGINS`` (comma-separated entry-point
names) skips plugins; ``HARNESS_ALLOW_PLUGINS``, when set, loads only the names it lists.
Only installed entry points are loaded: nothing is imported from arbitrary paths.
"""

from __future__ import annotations

import dataclasses
import typing
import os
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, Mapping

import pluggy

from harness import hookspecs
from harness.backend import Backend
from harness.benchmark import Benchmark
from harness.capability import CapabilityTask
from harness.config import build_config
from harness.defense import Defense
from harness.errors import HarnessError, unknown_name
from harness.judge import Judge
from harness.models import ModelPreset

ENTRY_POINT_GROUP = "harness"


@dataclass
class Registered:
    obj: Any
    plugin: str  # entry-point name
    distribution: str
    version: str


def _check_plugin_class(kind: str, base: type) -> Callable[[Any], str]:
    def check(obj: Any) -> str:
        if not (isinstance(obj, type) and issubclass(obj, base)):
            raise HarnessError(f"a {kind} plugin must register a subclass of {base.__name__}, got {obj!r}.")
        for attr in ("name", "Config"):
            if not hasattr(obj, attr):
                raise HarnessError(f"{kind} {obj.__name__} must set the class attribute {attr!r}.")
        if not dataclasses.is_dataclass(obj.Config):
            raise HarnessError(f"{kind} {obj.name!r}: Config must be a dataclass.")
        if issubclass(obj, Defense):
            _check_defense(obj)
        return obj.name

    return check


def _check_defense(cls: type) -> None:
    """A defense's declarations, checked when it registers rather than when a run or a study first reads them."""
    from harness.config import build_config
    from harness.search import check_space

    kinds = typing.get_args(typing.get_type_hints(Defense)["kind"].__args__[0])
    if cls.kind not in kinds:
        raise HarnessError(f"defense {cls.name!r}: kind {cls.kind!r} is not one of {', '.join(kinds)}.")
    check_space(cls.Config, dict(cls.search_space), f"defense {cls.name!r}")
    for preset, values in cls.presets.items():
        build_config(cls.Config, values, f"defense {cls.name!r} preset {preset!r}")


def _check_instance(kind: str, cls: type) -> Callable[[Any], str]:
    def check(obj: Any) -> str:
        if not isinstance(obj, cls):
            raise HarnessError(f"a {kind} plugin must register a {cls.__name__}, got {obj!r}.")
        return obj.name

    return check


def _check_suite(obj: Any) -> str:
    from harness.suite import load_suite_file

    return load_suite_file(Path(obj)).name


@dataclass
class Registry:
    """Named plugin objects of one kind, validated at registration."""

    kind: str
    check: Callable[[Any], str]
    items: dict[str, Registered] = field(default_factory=dict)

    def add(self, obj: Any, plugin: str, dist: tuple[str, str]) -> None:
        name = self.check(obj)
        if not isinstance(name, str) or not name:
            raise HarnessError(f"{self.kind} from plugin {plugin!r} has no name.")
        if name in self.items:
            other = self.items[name]
            raise HarnessError(
                f"{self.kind} {name!r} is registered twice: by plugin {other.plugin!r} "
                f"({other.distribution}) and by {plugin!r} ({dist[0]}). Uninstall or block one "
                "with HARNESS_BLOCK_PLUGINS."
            )
        self.items[name] = Registered(obj, plugin, *dist)

    def get(self, name: str) -> Any:
        return self.entry(name).obj

    def entry(self, name: str) -> Registered:
        if name not in self.items:
            raise unknown_name(self.kind, name, list(self.items), "`harness list` shows them all.")
        return self.items[name]

    def names(self) -> list[str]:
        return sorted(self.items)

    def construct(self, name: str, settings: Mapping[str, Any] | None, *args: Any) -> Any:
        """An instance of the plugin class ``name``, its typed ``Config`` built from ``settings``.

        Unknown keys and mistyped values are errors naming the valid keys; ``args`` follow the config
        (a judge takes the data resolver).
        """
        cls = self.get(name)
        return cls(build_config(cls.Config, dict(settings or {}), f"{self.kind} {name!r}"), *args)


@dataclass
class Plugins:
    manager: pluggy.PluginManager
    defenses: Registry
    benchmarks: Registry
    judges: Registry
    models: Registry
    suites: Registry
    backends: Registry
    capability_tasks: Registry
    loaded: dict[str, tuple[str, str]]  # entry-point name -> (distribution, version)


def _env_names(var: str) -> set[str]:
    return {n.strip() for n in os.environ.get(var, "").split(",") if n.strip()}


BUILTIN_DISTRIBUTION = "defense-harness"  # this distribution: its plugins load unless blocked by name


def _matches(names: set[str], ep_name: str, dist: str) -> bool:
    """Whether an entry point is named by HARNESS_BLOCK_PLUGINS / HARNESS_ALLOW_PLUGINS: by its entry-point name,
    by its distribution's name (every entry point it announces), or as ``distribution:entry-point``."""
    return bool(names & {ep_name, dist, f"{dist}:{ep_name}"})


def _selected_entry_points() -> list[tuple[Any, str, str]]:
    """The entry points to load, as (entry point, distribution, version); a name two distributions both announce
    is an error, since one would otherwise replace the other without a word."""
    blocked = _env_names("HARNESS_BLOCK_PLUGINS")
    allowed = _env_names("HARNESS_ALLOW_PLUGINS")
    chosen: dict[str, tuple[Any, str, str]] = {}
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist, version = (ep.dist.name, ep.dist.version) if ep.dist else ("unknown", "unknown")
        if _matches(blocked, ep.name, dist):
            continue
        # the allow-list narrows the third-party plugins; the harness's own built-ins load unless blocked
        if allowed and dist != BUILTIN_DISTRIBUTION and not _matches(allowed, ep.name, dist):
            continue
        if ep.name in chosen:
            other = chosen[ep.name]
            if other[1] == dist:  # the same distribution seen twice (e.g. installed and editable): one is enough
                continue
            raise HarnessError(
                f"entry point {ep.name!r} is announced by {other[1]} {other[2]} and by {dist} {version}. Entry-point "
                f"names in the {ENTRY_POINT_GROUP!r} group are global, so one would replace the other: rename one "
                f"(e.g. '{dist}-{ep.name}'), or skip one with HARNESS_BLOCK_PLUGINS={dist}:{ep.name}."
            )
        chosen[ep.name] = (ep, dist, version)
    return list(chosen.values())


def load_plugins() -> Plugins:
    """Load every allowed entry point and collect what its hooks register."""
    pm = pluggy.PluginManager("harness")
    pm.add_hookspecs(hookspecs)
    loaded: dict[str, tuple[str, str]] = {}
    for ep, dist, version in _selected_entry_points():
        try:
            module = ep.load()
        except Exception as err:  # a broken third-party plugin must say who it is
            raise HarnessError(
                f"plugin {ep.name!r} (from {dist}) failed to import: {err}. Fix or uninstall it, "
                f"or skip it with HARNESS_BLOCK_PLUGINS={ep.name}."
            ) from err
        pm.register(module, name=ep.name)
        loaded[ep.name] = (dist, version)

    registries = {
        "defenses": Registry("defense", _check_plugin_class("defense", Defense)),
        "benchmarks": Registry("benchmark", _check_instance("benchmark", Benchmark)),
        "judges": Registry("judge", _check_plugin_class("judge", Judge)),
        "models": Registry("model preset", _check_instance("model preset", ModelPreset)),
        "suites": Registry("suite", _check_suite),
        "backends": Registry("backend", _check_plugin_class("backend", Backend)),
        "capability_tasks": Registry("capability task", _check_instance("capability task", CapabilityTask)),
    }
    for hook_name, key in [
        ("register_defenses", "defenses"),
        ("register_benchmarks", "benchmarks"),
        ("register_judges", "judges"),
        ("register_models", "models"),
        ("register_suites", "suites"),
        ("register_backends", "backends"),
        ("register_capability_tasks", "capability_tasks"),
    ]:
        # Call each implementation on its own so every registered object knows its plugin.
        for impl in getattr(pm.hook, hook_name).get_hookimpls():
            dist = loaded.get(impl.plugin_name, ("unknown", "unknown"))
            registry = registries[key]
            impl.function(register=lambda obj, r=registry, p=impl.plugin_name, d=dist: r.add(obj, p, d))
    return Plugins(manager=pm, loaded=loaded, **registries)


@lru_cache(maxsize=1)
def plugins() -> Plugins:
    """The process-wide plugin set (entry points are read once)."""
    return load_plugins()
