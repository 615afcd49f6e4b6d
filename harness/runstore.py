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

from harness.data import read_jsonl, read_jsonl_prefix
from harness.errors import HarnessError

RUN_FORMAT = 1  # bump when the folder layout changes incompatibly
CORRUPT_RECORDS = "The file was edited or corrupted. Restore it or use a new --out."


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


def read_manifest(folder: Path) -> dict[str, Any] | None:
    """A run folder's manifest (None when there is none), refused when another run format wrote it."""
    path = Path(folder) / "manifest.json"
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise HarnessError(f"{path}: unreadable manifest ({err}).") from None
    fmt = manifest.get("run_format")
    if fmt != RUN_FORMAT:
        raise HarnessError(
            f"{folder} was written by an incompatible harness version (run format {fmt}, "
            f"this harness reads {RUN_FORMAT}). Use a new --out folder, or the harness "
            f"version named in its manifest ({manifest.get('harness_version', '?')})."
        )
    return manifest


def read_and_trim(path: Path, fix: str) -> list[Any]:
    """The values of a JSONL file this process appends to; a torn last line (a kill mid-write) is cut off, so
    the next append starts on a clean line instead of gluing onto the fragment."""
    path = Path(path)
    if not path.is_file():
        return []
    out, good_bytes = read_jsonl_prefix(path, torn_tail=True, fix=fix)
    if good_bytes != path.stat().st_size:
        with open(path, "r+b") as fh:
            fh.truncate(good_bytes)
    return out


def append_jsonl(path: Path, rows: Iterable[Any]) -> None:
    """Append one JSON line per row and make it durable before returning (a kill loses at most a torn line)."""
    with open(path, "a", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        fh.flush()
        os.fsync(fh.fileno())


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
        return read_manifest(self.path)

    def write_manifest(self, manifest: dict[str, Any]) -> None:
        write_json_atomic(self.manifest_path, {"run_format": RUN_FORMAT, **manifest})

    def read_records(self) -> list[dict[str, Any]]:
        """Records written so far (a torn last line is cut off). Only the process that holds the folder may
        call this."""
        return read_and_trim(self.records_path, CORRUPT_RECORDS)

    def append_records(self, records: Iterable[dict[str, Any]]) -> None:
        append_jsonl(self.records_path, records)

    def write_metrics(self, metrics: dict[str, Any]) -> None:
        write_json_atomic(self.metrics_path, metrics)


class FinishedRun:
    """A read-only view of a run folder, for everything that reads runs without writing them: ``--from``,
    the leaderboard, re-judging, the analysis and tuning. It never takes the lock and never truncates:
    a torn last record (a run killed mid-write, or still writing) is skipped.
    """

    def __init__(self, path: Path, what: str = ""):
        self.path = Path(path)
        self.what = what or str(self.path)  # how errors name the folder, e.g. "--from runs/x"
        manifest = read_manifest(self.path)
        if manifest is None:
            raise HarnessError(f"{self.what}: not a run folder (no manifest.json).")
        self.manifest: dict[str, Any] = manifest

    @property
    def complete(self) -> bool:
        return self.manifest.get("status") == "complete"

    def require_complete(self) -> "FinishedRun":
        if not self.complete:
            raise HarnessError(f"{self.what}: the run is not finished (status {self.manifest.get('status')!r}); "
                               "finish it first by running its command again.")
        return self

    @property
    def run_id(self) -> str | None:
        return self.manifest.get("run_id")

    def metrics(self) -> dict[str, Any]:
        path = self.path / "metrics.json"
        if not path.is_file():
            raise HarnessError(f"{self.what}: no metrics.json; finish the run first by running its command again.")
        try:
            return json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise HarnessError(f"{path}: unreadable metrics ({err}). Re-run the run's command to rewrite it.") from None

    def records(self) -> list[dict[str, Any]]:
        return read_run_records(self.path)


def read_run_records(folder: Path) -> list[dict[str, Any]]:
    """A run folder's records, read only (no lock, no truncation): a torn last line is skipped."""
    path = Path(folder) / "records.jsonl"
    if not path.is_file():
        return []
    return read_jsonl(path, torn_tail=True, fix=CORRUPT_RECORDS)
