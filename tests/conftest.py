"""Shared fixtures: the real data folder, an isolated cache, the tiny model and a tiny suite."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _data_dir() -> Path:
    return Path(os.environ.get("HARNESS_DATA_DIR") or REPO.parent / "shared" / "data")


# One cache for the whole test session, kept between sessions so the default model's
# GGUF conversion (about 25 s) happens once per machine.
os.environ.setdefault("HARNESS_CACHE_DIR", str(Path.home() / ".cache" / "harness-tests"))


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """The test models are tiny: on a shared 2-core machine a second torch thread only adds contention
    (measured several times slower under load)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    path = _data_dir()
    if not path.is_dir():
        pytest.fail(f"data folder {path} not found; set HARNESS_DATA_DIR to the dataset mirror")
    return path


@pytest.fixture(scope="session")
def tiny_dir() -> Path:
    from harness.data import cache_dir
    from harness.tiny import tiny_model_dir

    return tiny_model_dir(cache_dir())


@pytest.fixture(scope="session")
def tiny(tiny_dir):
    """The tiny model as a DefendedModel with no defense."""
    from harness.defense import DefendedModel
    from harness.models import load_model

    loaded = load_model(str(tiny_dir))
    return DefendedModel(model=loaded.model, tokenizer=loaded.tokenizer)


@pytest.fixture
def tiny_suite(tmp_path) -> Path:
    path = tmp_path / "tiny-suite.toml"
    path.write_text(
        'name = "tiny"\nseed = 0\n[generation]\nmax_new_tokens = 6\nbatch_size = 4\n'
        '[[benchmarks]]\nname = "jbb-harmful"\nlimit = 6\n'
        '[[benchmarks]]\nname = "xstest-safe"\nlimit = 5\n'
    )
    return path


@pytest.fixture
def templateless_tiny(tiny_dir, tmp_path) -> Path:
    """A copy of the tiny model with its chat template removed (a model that needs --chat-template)."""
    import json
    import shutil

    bare = tmp_path / "no-template"
    shutil.copytree(tiny_dir, bare)
    (bare / "chat_template.jinja").unlink(missing_ok=True)
    cfg = json.loads((bare / "tokenizer_config.json").read_text())
    cfg.pop("chat_template", None)
    (bare / "tokenizer_config.json").write_text(json.dumps(cfg))
    return bare
