"""A training run logs its whole course: loss terms, per-layer cosines, gradient norms, and a behaviour probe."""

from __future__ import annotations

import json

import pytest
from safetensors.torch import load_file

from harness.cli import main
from harness.pipeline import RunRequest, run
from harness.plugins import plugins
from harness.training.probe import TrajectorySettings

SMALL = {"steps": "4", "n_harmful_self": "8", "n_many_shot": "8", "n_retain": "8", "n_borderline": "8",
         "completion_tokens": "8", "batch_size": "2", "checkpoint_every": "2"}


def _lines(path):
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def observed(tiny_dir, data_dir, tmp_path_factory):
    suite = tmp_path_factory.mktemp("suite") / "tiny.toml"
    suite.write_text('name = "tiny"\nseed = 0\n[generation]\nmax_new_tokens = 4\nbatch_size = 4\n'
                     '[[benchmarks]]\nname = "jbb-harmful"\nlimit = 3\n')
    runs = {}
    for name, traj in (("observed", TrajectorySettings(probe_every=2, probe_prompts=3, probe_tokens=6,
                                                       grad_every=1)),
                       ("blind", TrajectorySettings(probe_every=0, grad_every=0))):
        runs[name] = run(RunRequest(defense="circuit-breakers", defense_config=dict(SMALL), model=str(tiny_dir),
                                    suite=str(suite), data_dir=data_dir, out=tmp_path_factory.mktemp(name) / "r",
                                    progress=False, trajectory=traj), plugins())
    return runs


def test_every_step_logs_each_term_its_gradient_norm_and_the_per_layer_cosines(observed):
    log = _lines(observed["observed"] / "defense" / "loss_log.jsonl")
    manifest = json.loads((observed["observed"] / "manifest.json").read_text())
    targets = manifest["defense"]["info"]["layers"]["targets"]
    assert [r["step"] for r in log] == [0, 1, 2, 3]
    for row in log:
        assert {f"cos_L{l}" for l in targets} <= set(row)
        assert row["grad_reroute"] >= 0 and row["grad_retain"] >= 0
        assert 0 <= row["retain_rel"]
        # the mean cosine is the mean of the per-layer ones
        assert row["cos"] == pytest.approx(sum(row[f"cos_L{l}"] for l in targets) / len(targets), abs=1e-6)
    # RR's schedule: the retain weight starts at exactly 0, so its term has no gradient at step 0
    assert log[0]["grad_retain"] == 0.0 and log[-1]["grad_retain"] > 0
    assert manifest["trajectory"]["probe_every"] == 2


def test_the_probe_judges_harmful_and_benign_answers_on_its_steps(observed):
    probe = _lines(observed["observed"] / "defense" / "probe_log.jsonl")
    assert [p["step"] for p in probe] == [0, 1, 3]  # the first step, every second one, the last
    for p in probe:
        for side in ("harmful", "benign"):
            assert set(p[side]) == {"refusal", "compliance", "incoherent"}
            assert sum(p[side].values()) == pytest.approx(1.0)
            assert len(p[f"{side}_examples"]) == 2


def test_observing_does_not_change_what_is_trained(observed):
    a = load_file(str(observed["observed"] / "defense" / "adapter" / "adapter_model.safetensors"))
    b = load_file(str(observed["blind"] / "defense" / "adapter" / "adapter_model.safetensors"))
    assert a.keys() == b.keys() and all((a[k] == b[k]).all() for k in a)
    assert not (observed["blind"] / "defense" / "probe_log.jsonl").exists()
    blind = _lines(observed["blind"] / "defense" / "loss_log.jsonl")
    assert "grad_reroute" not in blind[0]


def test_harness_trajectory_draws_a_figure(observed, tmp_path, capsys):
    out = tmp_path / "t.png"
    assert main(["trajectory", str(observed["observed"]), str(observed["blind"]), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and "wrote" in capsys.readouterr().out


def test_trajectory_of_a_run_without_training_is_a_clear_error(tmp_path):
    from harness.errors import HarnessError
    from harness.trajectory import read_trajectory

    with pytest.raises(HarnessError, match="only a training defense's run has a trajectory"):
        read_trajectory(tmp_path)
