"""The training loop under `accelerate launch` with two CPU processes (DDP over gloo).

accelerate's `--cpu` always starts one process; `--multi_gpu` goes through torchrun, and without CUDA
the Accelerator inside sets up gloo on the CPU.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

from safetensors.torch import load_file


def test_two_process_training_keeps_replicas_in_sync(tiny_dir, tmp_path):
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", "2", "--num_machines", "1",
           "--multi_gpu", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", "29517",
           str(Path(__file__).with_name("ddp_train.py")), str(tiny_dir), str(tmp_path)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    summaries = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert all(s["world_size"] == 2 for s in summaries)
    a, b = load_file(str(tmp_path / "rank0.safetensors")), load_file(str(tmp_path / "rank1.safetensors"))
    assert a.keys() == b.keys() and a
    moved = 0
    for name in a:
        assert (a[name] - b[name]).abs().max().item() < 1e-6, f"{name} differs between the replicas"
        moved += int("lora_A" in name)
    assert moved  # adapters were trained (lora_A weights exist and match)
    log = [json.loads(x) for x in (tmp_path / "work" / "loss_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [0, 1, 2, 3]  # only the main process writes the log
