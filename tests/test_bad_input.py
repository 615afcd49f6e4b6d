"""Bad input that other test files do not cover: each error names the problem and the fix.

Covered elsewhere: unknown defense (test_pipeline, test_cli), unknown model preset and a model
without a chat template or with a foreign tokenizer (test_models), config keys and values
(test_config), missing and corrupt data files, malformed CSV/JSON lines (test_data), a run folder
from an incompatible version (test_pipeline), damaged records and checkpoints (test_faults).
"""

import pytest

from harness.errors import HarnessError
from harness.pipeline import RunRequest, run
from harness.plugins import plugins


@pytest.mark.parametrize("kind, typo, closest", [
    ("benchmarks", "xstest-saf", "xstest-safe"),
    ("judges", "keywords", "keyword"),
    ("defenses", "circuit-breaker", "circuit-breakers"),
    ("suites", "quik", "quick"),
])
def test_unknown_plugin_name_suggests_the_closest(kind, typo, closest):
    with pytest.raises(HarnessError) as err:
        getattr(plugins(), kind).get(typo)
    msg = str(err.value)
    assert f"{typo!r}" in msg and f"Did you mean {closest!r}" in msg and "`harness list` shows them all" in msg


def _suite(tmp_path, benchmark, limit):
    path = tmp_path / "s.toml"
    path.write_text(f'name = "s"\n[generation]\nmax_new_tokens = 2\n[[benchmarks]]\nname = "{benchmark}"\n'
                    f"limit = {limit}\n")
    return path


def test_unknown_benchmark_in_a_suite_fails_before_any_work(tiny_dir, data_dir, tmp_path):
    request = RunRequest(model=str(tiny_dir), suite=str(_suite(tmp_path, "jbb-harmfull", 2)), data_dir=data_dir,
                         out=tmp_path / "r", progress=False)
    with pytest.raises(HarnessError, match="unknown benchmark 'jbb-harmfull'. Did you mean 'jbb-harmful'"):
        run(request, plugins())
    assert not (tmp_path / "r").exists()


def test_unknown_judge_in_a_run_suggests_the_closest(tiny_dir, tiny_suite, data_dir, tmp_path):
    request = RunRequest(model=str(tiny_dir), suite=str(tiny_suite), data_dir=data_dir, judge="keywrd",
                         out=tmp_path / "r", progress=False)
    with pytest.raises(HarnessError, match="unknown judge 'keywrd'. Did you mean 'keyword'"):
        run(request, plugins())


def test_an_empty_benchmark_after_filtering_names_the_fix(tiny_dir, data_dir, tmp_path):
    request = RunRequest(model=str(tiny_dir), suite=str(_suite(tmp_path, "jbb-harmful", 0)), data_dir=data_dir,
                         out=tmp_path / "r", progress=False, use_cache=False)
    with pytest.raises(HarnessError, match=r"benchmark 'jbb-harmful' has no items after filtering \(suite limit 0.*"
                                           r"Raise its limit in the suite, or remove the benchmark"):
        run(request, plugins())
