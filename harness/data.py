"""Finding, verifying and reading dataset files.

Resolution order: an explicit data folder (``--data-dir`` or ``HARNESS_DATA_DIR``),
then the local cache (``$HARNESS_CACHE_DIR/data``), then a download from the canonical URL into
the cache. Every file is checked against its pinned sha256, so a run records exactly what it read.
Readers report the file and line of malformed input.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from harness.errors import HarnessError


def cache_dir() -> Path:
    """Where converted models, downloads and response caches live."""
    return Path(os.environ.get("HARNESS_CACHE_DIR") or Path.home() / ".cache" / "harness")


@dataclass(frozen=True)
class DataFile:
    """One dataset file: where it sits under the data folder, its checksum and where to get it."""

    dataset: str
    path: str  # relative to the data folder, e.g. "xstest/xstest_prompts.csv"
    sha256: str
    url: str = ""


@lru_cache(maxsize=256)
def _sha256(path: Path, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def sha256_file(path: Path) -> str:
    """The file's sha256, memoised on (path, size, mtime) because runs hash the same files often."""
    stat = Path(path).stat()
    return _sha256(Path(path), stat.st_size, stat.st_mtime_ns)


class DataResolver:
    """Turns a ``DataFile`` into a verified local path, following the resolution order."""

    def __init__(self, data_dir: str | Path | None = None, *, allow_download: bool = True):
        chosen = data_dir or os.environ.get("HARNESS_DATA_DIR")
        self.data_dir = Path(chosen).expanduser().resolve() if chosen else None
        if self.data_dir is not None and not self.data_dir.is_dir():
            raise HarnessError(
                f"data folder {str(self.data_dir)!r} does not exist. Pass --data-dir (or set "
                "HARNESS_DATA_DIR) to a folder laid out like the dataset mirror, e.g. ../shared/data."
            )
        self.cache = cache_dir() / "data"
        self.allow_download = allow_download
        self.used: dict[str, str] = {}  # relative path -> sha256, for the run manifest

    def path(self, spec: DataFile) -> Path:
        candidates = [d / spec.path for d in (self.data_dir, self.cache) if d is not None]
        for candidate in candidates:
            if candidate.is_file():
                self._verify(spec, candidate)
                return candidate
        if self.allow_download and spec.url:
            return self._download(spec)
        where = " or ".join(str(c) for c in candidates) or "(no data folder given)"
        raise HarnessError(
            f"dataset {spec.dataset!r}: file {spec.path!r} not found (looked in {where}). "
            "Point --data-dir or HARNESS_DATA_DIR at the data mirror"
            + (f", or download it from {spec.url}" if spec.url else "")
            + "."
        )

    def _verify(self, spec: DataFile, path: Path) -> None:
        actual = sha256_file(path)
        if spec.sha256 and actual != spec.sha256:
            raise HarnessError(
                f"dataset {spec.dataset!r}: file {str(path)!r} has sha256 {actual[:16]}..., expected "
                f"{spec.sha256[:16]}... The file is corrupt or a different version; replace it with "
                f"the published file" + (f" ({spec.url})" if spec.url else "") + "."
            )
        self.used[spec.path] = actual

    def _download(self, spec: DataFile) -> Path:
        target = self.cache / spec.path
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            with urllib.request.urlopen(spec.url, timeout=60) as resp, tempfile.NamedTemporaryFile(
                dir=target.parent, delete=False
            ) as tmp:
                shutil.copyfileobj(resp, tmp)
        except OSError as err:
            raise HarnessError(
                f"dataset {spec.dataset!r}: {spec.path!r} is not local and downloading {spec.url} "
                f"failed ({err}). Point --data-dir or HARNESS_DATA_DIR at a data mirror."
            ) from None
        try:
            self._verify(spec, Path(tmp.name))
        except HarnessError:
            os.unlink(tmp.name)
            raise
        os.replace(tmp.name, target)
        return target


def read_csv(path: Path) -> list[dict[str, str]]:
    """Rows as dicts; a row with the wrong number of fields is an error naming file and line."""
    with open(path, newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise HarnessError(f"{path}: the CSV file is empty; expected a header line.") from None
        except csv.Error as err:
            raise HarnessError(f"{path}:1: malformed CSV ({err}).") from None
        rows = []
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except csv.Error as err:
                raise HarnessError(f"{path}:{reader.line_num}: malformed CSV ({err}). Fix or re-download the file.") from None
            if not row:
                continue
            if len(row) != len(header):
                raise HarnessError(
                    f"{path}:{reader.line_num}: expected {len(header)} fields ({', '.join(header)}), "
                    f"found {len(row)}. Fix or re-download the file."
                )
            rows.append(dict(zip(header, row)))
    return rows


def read_json(path: Path) -> Any:
    """Parsed JSON; a syntax error names the file, line and column."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except json.JSONDecodeError as err:
        raise HarnessError(f"{path}:{err.lineno}:{err.colno}: malformed JSON ({err.msg}). Fix or re-download the file.") from None


def read_jsonl(path: Path, *, torn_tail: bool = False, fix: str = "Fix or re-download the file.") -> list[Any]:
    """One JSON value per non-empty line; a bad line is an error naming file and line number.

    The one rule for a torn write: with ``torn_tail`` (files this harness appends to, which a kill can leave
    half-written), a last line that does not parse *and has no newline after it* is dropped; any other bad line
    is an error that says ``fix``. Dataset files take ``torn_tail=False``: any bad line is an error.
    """
    return read_jsonl_prefix(path, torn_tail=torn_tail, fix=fix)[0]


def read_jsonl_prefix(path: Path, *, torn_tail: bool = False, fix: str = "Fix or re-download the file."
                      ) -> tuple[list[Any], int]:
    """``read_jsonl``'s values and the byte length of the part that parsed (shorter only after a torn tail)."""
    out: list[Any] = []
    good = 0
    with open(path, "rb") as fh:
        for lineno, line in enumerate(fh, 1):
            if line.strip():
                try:
                    out.append(json.loads(line))
                except (json.JSONDecodeError, UnicodeDecodeError) as err:
                    if torn_tail and not line.endswith(b"\n"):
                        break
                    msg = getattr(err, "msg", str(err))
                    raise HarnessError(f"{path}:{lineno}: malformed JSON line ({msg}): line {lineno} is not valid "
                                       f"JSON{' and is not the last line' if torn_tail else ''}. {fix}") from None
            good += len(line)
    return out, good


def require_fields(path: Path, rows: list[dict], fields: list[str]) -> None:
    """Fail clearly when a file lacks the columns its loader reads."""
    if rows:
        missing = [f for f in fields if f not in rows[0]]
        if missing:
            raise HarnessError(
                f"{path}: missing field(s) {', '.join(missing)}; found {', '.join(rows[0])}. "
                "The file is not the expected version."
            )
