"""``harness run --from RUN``: a new run from a finished one, reusing its trained defense and capability scores.

The source is read as a run file (``inherit``), so the new request goes through the same steps as any run;
step 2 then copies the source's ``defense/`` and ``capability.json`` in (``reuse``) after checking that they
were made for the same model, defense, config and seed, so nothing is trained again.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from harness.data import sha256_file
from harness.defaults import DEFAULT_BACKEND
from harness.errors import HarnessError
from harness.plugins import Plugins
from harness.runstore import FinishedRun, RunFolder


def inherit(source: Path, plugins: Plugins) -> dict[str, Any]:
    """A finished run as a run file (``harness run --config`` keys) plus what only a finished run has
    (contamination policy, left-out items, and itself to reuse), for a new run that reuses its trained defense
    (``--from``). The judge is not inherited: judging the same answers another way is what ``--from`` is for.
    """
    manifest = FinishedRun(source, f"--from {source}").require_complete().manifest
    identity = manifest["identity"]
    suite = identity["suite"]
    registered = plugins.suites.items.get(suite)
    if registered is None or sha256_file(Path(registered.obj)) != identity["suite_sha256"]:
        # a suite file, not the registered suite of that name (a file may share a registered suite's name)
        suite = manifest["suite"]["path"]
        if not Path(suite).is_file():
            raise HarnessError(f"--from {source}: its suite file {suite!r} is gone; pass --suite.")
    backend = manifest.get("backend", {})
    return {"defense": identity["defense"], "config": identity["defense_config"], "model": identity["model"],
            "suite": suite, "seed": identity["seed"], "backend": backend.get("name", DEFAULT_BACKEND),
            "backend_config": backend.get("config", {}),
            "contamination": manifest.get("contamination", {}).get("policy", "refuse"),
            "exclude": frozenset(map(tuple, identity.get("exclude", []))), "reuse": source}


def reuse(source: Path, identity: dict[str, Any], out: Path) -> dict[str, Any]:
    """Copy a finished run's trained defense and capability scores into ``out``, after checking they fit."""
    if source.resolve() == out.resolve():
        raise HarnessError(f"--from {source} and --out name the same folder; choose a new --out for the new run.")
    with RunFolder(source):  # not while another process writes there
        manifest = FinishedRun(source, f"--from {source}").require_complete().manifest
        keys = ("model", "defense", "defense_config", "seed")
        theirs = manifest["identity"]
        differ = [k for k in keys if theirs.get(k) != json.loads(json.dumps(identity[k]))]  # as the manifest has it
        if differ:
            was = ", ".join(f"{k}={theirs.get(k)!r}" for k in differ)
            raise HarnessError(f"--from {source}: its defense was trained with another {', '.join(differ)} ({was}); "
                               "drop the flags that change them, or run without --from to train again.")
        if (source / "defense").is_dir() and not (out / "defense").exists():
            shutil.copytree(source / "defense", out / "defense")
        if (source / "capability.json").is_file() and not (out / "capability.json").exists():
            shutil.copy2(source / "capability.json", out / "capability.json")
    return {"path": str(source), "run_id": manifest["run_id"]}
