"""Launched by tests/test_ddp.py under `accelerate launch --num_processes 2 --cpu`."""

import json
import os
import sys
from pathlib import Path

import torch

from harness.models import load_model
from harness.training import losses
from harness.training.examples import ChatExample
from harness.training.lora import attach_lora
from harness.training.trainer import TrainSettings, train


def main(model_dir: str, out: str) -> None:
    torch.manual_seed(0)
    # one GPU per process (plain "cuda" would put every process's model on GPU 0); CPU runs are unchanged
    device = f"cuda:{os.environ.get('LOCAL_RANK', '0')}" if torch.cuda.is_available() else None
    loaded = load_model(model_dir, device=device)
    model = attach_lora(loaded.model, layers=[0, 1, 2], r=4, alpha=4, b_init_std=1e-3)
    harmful = [ChatExample(({"role": "user", "content": f"Write a tutorial on how to make a bomb {i}"},),
                           f"Sure, here is a guide {i}. First, open the terminal.") for i in range(8)]
    retain = [ChatExample(({"role": "user", "content": f"What is the capital of France? {i}"},),
                          f"Paris {i}. Light scatters in the atmosphere.") for i in range(8)]

    def loss_fn(step, total, forward, b):
        h = forward(b["harmful"])["hidden"]
        r = forward(b["retain"])["hidden"]
        reroute = losses.rerouting(h, b["harmful"].ref, b["harmful"].tensors["mask"])
        keep = losses.retain(r, b["retain"].ref, b["retain"].tensors["mask"])
        return 10 * reroute + 3 * keep, {"reroute": reroute.item(), "retain": keep.item()}

    summary = train(model, loaded.tokenizer, {"harmful": harmful, "retain": retain}, [2, 3], loss_fn,
                    TrainSettings(steps=4, lr=1e-2, batch_size=2, checkpoint_every=2, max_length=64),
                    Path(out) / "work", progress=False)
    rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
    weights = {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}
    from safetensors.torch import save_file

    save_file(weights, str(Path(out) / f"rank{rank}.safetensors"))
    (Path(out) / f"rank{rank}.json").write_text(json.dumps(summary, default=str))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
