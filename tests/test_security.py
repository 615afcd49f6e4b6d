"""Security: no pickle loading, no remote code unless asked, safe run names, escaped model outputs."""

import re
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.report import md_escape
from harness.runstore import safe_name

REPO = Path(__file__).resolve().parents[1]
SOURCES = [p for d in ("harness", "defenses", "benchmarks") for p in sorted((REPO / d).rglob("*.py"))]
HOSTILE = ["../../etc/passwd", "..", "/abs/path", "a|b", "<script>alert(1)</script>", "line\nbreak",
           "[link](javascript:alert(1))", "![img](http://x/y.png)", "~/.ssh/id_rsa", "", "-.-", "x" * 500]


def test_no_pickle_loading_in_the_source():
    """Pickle runs arbitrary code on load: weights are safetensors, torch.load only with weights_only=True."""
    pickle_use = re.compile(r"\b(import (c?pickle|dill|joblib)|from (c?pickle|dill|joblib) import|pickle\.loads?\(|"
                            r"joblib\.load\(|read_pickle\(|allow_pickle\s*=\s*True|use_safetensors\s*=\s*False)")
    torch_load = re.compile(r"torch\.load\(((?:[^()]|\([^()]*\))*)\)")
    found = []
    for path in SOURCES:
        text = path.read_text(encoding="utf-8")
        found += [f"{path.relative_to(REPO)}: {m.group(0)}" for m in pickle_use.finditer(text)]
        found += [f"{path.relative_to(REPO)}: {m.group(0)}" for m in torch_load.finditer(text)
                  if not re.search(r"weights_only\s*=\s*True", m.group(1))]
    assert len(SOURCES) > 30 and not found, found


def test_remote_code_is_off_unless_asked(monkeypatch):
    import harness.pipeline
    from harness.cli import main

    seen = []

    def capture(request, _plugins):
        seen.append(request.trust_remote_code)
        raise HarnessError("stop")

    monkeypatch.setattr(harness.pipeline, "run", capture)
    assert main(["run", "--defense", "none"]) == 2
    assert main(["run", "--defense", "none", "--trust-remote-code"]) == 2
    assert seen == [False, True] and harness.pipeline.RunRequest().trust_remote_code is False
    hard_coded = [p.name for p in SOURCES if re.search(r"trust_remote_code\s*=\s*True", p.read_text(encoding="utf-8"))]
    assert not hard_coded


@pytest.mark.parametrize("text", HOSTILE)
def test_run_names_from_user_input_stay_inside_the_runs_folder(text, tmp_path):
    name = safe_name(text)
    assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,119}", name), name
    assert name not in (".", "..") and (tmp_path / name).resolve().parent == tmp_path.resolve()


@pytest.mark.parametrize("text", HOSTILE)
def test_model_outputs_are_inert_in_markdown(text):
    out = md_escape(text)
    assert "\n" not in out and not re.search(r"[|<>\[\]`!]", out.replace("<br>", ""))
    assert md_escape("a\r\nb\u2028c") == "a<br>b\ufffdc"
