"""What a manifest records about the environment: versions, git commit, hardware."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import harness

PACKAGES = ("torch", "transformers", "peft", "lm_eval", "accelerate", "pluggy", "numpy", "gguf", "defense-harness")


def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


def git_commit() -> dict[str, Any] | None:
    """The harness checkout's commit and whether it had uncommitted changes, if it is a checkout."""
    root = Path(harness.__file__).resolve().parents[1]
    if not (root / ".git").exists():
        return None
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True, text=True, timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        return None
    return {"commit": commit or None, "dirty": bool(dirty)}


def hardware() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        info["memory_gb"] = round(pages / 2**30, 1)
    except (ValueError, OSError):
        pass
    if torch.cuda.is_available():
        info["cuda"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return info


def fingerprint(data: Any) -> str:
    """A stable hash of JSON-able data, used to tell runs (and cache entries) apart."""
    blob = json.dumps(data, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()


def source_digest(cls: type, extra_folders: tuple[Path, ...] = ()) -> str:
    """A sha256 over the source files that define ``cls``: its module and those of its bases (a defense's own code
    and the kit it builds on), plus every .py file of ``extra_folders``. Caches of a plugin's outputs are keyed by
    it, so changed code never reuses answers the old code gave; run ids leave it out, so editing code does not
    rename published runs."""
    import inspect

    files = set()
    for klass in cls.__mro__:
        try:
            files.add(Path(inspect.getsourcefile(klass)).resolve())
        except (TypeError, OSError):  # built-in classes have no source file
            continue
    for folder in extra_folders:
        files.update(p.resolve() for p in Path(folder).glob("*.py"))
    digest = hashlib.sha256()
    for path in sorted(files):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()
