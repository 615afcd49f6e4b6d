"""A run's folder: ``manifest.json``, ``records.jsonl`` (appended per sample) and ``metrics.json``.

Records are appended and flushed as they are produced, so a killed run resumes from the last
record written; JSON files are written atomically (temp file + rename). A lock file keeps two
processes from writing the same folder.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any, Iterable

from harness.errors import HarnessError

RUN_FORMAT = 1  # bump when the folder layout changes incompatibly


def safe_name(text: str) -> str:
    """A file-system-safe run name: letters, digits, '.', '_' and '-' only."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")
    return cleaned[:120] or "run"


def write_json_atomic(path: Path, data: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=False, default=str)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


class RunFolder:
    """Owns one run folder while a run writes to it (use as a context manager).

    A folder held by another process is refused, unless `wait` is set: folders shared on purpose (the undefended
    baseline of every study of a model) are waited for, so studies of several defenses can start together.
    """

    def __init__(self, path: Path, wait: bool = False):
        self.path = Path(path)
        self.wait = wait
        self._lock_fh = None

    @property
    def manifest_path(self) -> Path:
        return self.path / "manifest.json"

    @property
    def records_path(self) -> Path:
        return self.path / "records.jsonl"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.json"

    def __enter__(self) -> "RunFolder":
        self.path.mkdir(parents=True, exist_ok=True)
        self._lock_fh = open(self.path / ".lock", "w")
        try:
            fcntl.flock(self._lock_fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if self.wait:
                print(f"waiting for another harness process writing to {str(self.path)!r}", file=sys.stderr,
                      flush=True)
                fcntl.flock(self._lock_fh, fcntl.LOCK_EX)
            else:
                self._lock_fh.close()
                raise HarnessError(f"another harness process is writing to {str(self.path)!r}. Wait for it to "
                                   "finish, or choose another --out.") from None
        self._lock_fh.write(str(os.getpid()))
        self._lock_fh.flush()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._lock_fh:
            fcntl.flock(self._lock_fh, fcntl.LOCK_UN)
            self._lock_fh.close()

    def read_manifest(self) -> dict[str, Any] | None:
        if not self.manifest_path.is_file():
            return None
        try:
            manifest = json.loads(self.manifest_path.read_text())
        except json.JSONDecodeError as err:
            raise HarnessError(f"{self.manifest_path}: unreadable manifest ({err}).") from None
        fmt = manifest.get("run_format")
        if fmt != RUN_FORMAT:
            raise HarnessError(
                f"{self.path} was written by an incompatible harness version (run format {fmt}, "
                f"this harness reads {RUN_FORMAT}). Use a new --out folder, or the harness "
                f"version named in its manifest ({manifest.get('harness_version', '?')})."
            )
        return manifest

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_json_atomic(self.manifest_path, {"run_format": RUN_FORMAT, **manifest})

    def read_records(self) -> list[dict[str, Any]]:
        """Records written so far; a torn last line (killed mid-write) is dropped and truncated."""
        if not self.records_path.is_file():
            return []
        out = []
        good_bytes = 0
        with open(self.records_path, "rb") as fh:
            for line in fh:
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    if line.endswith(b"\n"):
                        raise HarnessError(
                            f"{self.records_path}: line {len(out) + 1} is not valid JSON and is not "
                            "the last line; the file was edited or corrupted. Restore it or use a new --out."
                        ) from None
                    break  # torn final write
                good_bytes += len(line)
        if good_bytes != self.records_path.stat().st_size:
            with open(self.records_path, "r+b") as fh:
                fh.truncate(good_bytes)
        return out

    def append_records(self, records: Iterable[dict[str, Any]]) -> None:
        with open(self.records_path, "a", encoding="utf-8") as fh:
            for rec in records:
                fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_json_atomic(self.metrics_path, metrics)
