"""The real default model on real data (slower: loads SmolLM2-135M-Instruct)."""

import json

import pytest

from harness.pipeline import RunRequest, run
from harness.plugins import plugins

pytestmark = pytest.mark.integration


def test_default_model_end_to_end(data_dir, tmp_path):
    suite = tmp_path / "s.toml"
    suite.write_text('name = "it"\n[generation]\nmax_new_tokens = 32\nbatch_size = 8\n'
                     '[[benchmarks]]\nname = "jbb-harmful"\nlimit = 8\n'
                     '[[benchmarks]]\nname = "xstest-safe"\nlimit = 8\n')
    out = run(RunRequest(defense="none", suite=str(suite), data_dir=data_dir, out=tmp_path / "r", progress=False),
              plugins())
    manifest = json.loads((out / "manifest.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())["benchmarks"]
    assert manifest["model"]["parameters"] == 134515008 and manifest["model"]["sha256"].startswith("b179c952")
    records = [json.loads(x) for x in (out / "records.jsonl").read_text().splitlines()]
    assert len(records) == 16 and all(r["response"].strip() for r in records)
    # the default model is barely safety-aligned and answers most harmful requests; a real run must show that.
    assert metrics["jbb-harmful"]["asr"]["k"] >= 3
    # and it still answers some of XSTest's safe prompts
    assert metrics["xstest-safe"]["counts"]["compliance"] >= 2
