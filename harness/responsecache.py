"""A cache of generated responses, shared by every run on this machine.

A response is fully determined by the model's weights, the defense and its resolved config,
the seed, the generation settings and the exact prompt text the model sees. Keyed by a hash
of all of these, responses are reused across runs and suites (the quick suite's items are a
subset of the standard suite's). SQLite keeps concurrent runs safe.
"""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

from harness.provenance import fingerprint


class ResponseCache:
    def __init__(self, path: Path, context: dict[str, Any]):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.scope = fingerprint(context)
        self.db = sqlite3.connect(self.path, timeout=60)
        self.db.execute("CREATE TABLE IF NOT EXISTS responses (key TEXT PRIMARY KEY, response TEXT NOT NULL)")
        self.db.commit()

    def _key(self, prompt: str) -> str:
        return hashlib.sha256(f"{self.scope}\x00{prompt}".encode()).hexdigest()

    def get_many(self, prompts: list[str]) -> dict[int, str]:
        """Cached responses by prompt position."""
        found = {}
        for i, p in enumerate(prompts):
            row = self.db.execute("SELECT response FROM responses WHERE key = ?", (self._key(p),)).fetchone()
            if row is not None:
                found[i] = row[0]
        return found

    def put_many(self, pairs: list[tuple[str, str]]) -> None:
        self.db.executemany("INSERT OR REPLACE INTO responses (key, response) VALUES (?, ?)",
                            [(self._key(p), r) for p, r in pairs])
        self.db.commit()

    def close(self) -> None:
        self.db.close()
