"""The training loop every training-time defense shares.

A defense hands over named streams of examples (e.g. ``harmful`` and ``retain``), the layers
its losses read, and a loss function. The loop fixes the batches once (seeded), computes the
frozen model's hidden states for them once (adapters off, only up to the highest layer), then
steps AdamW with gradient accumulation under accelerate (one process, or DDP under
``accelerate launch``). It logs every step as jsonlines, checkpoints adapters (safetensors)
and optimizer state atomically, resumes from the last checkpoint, and stops on NaN/inf.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from tqdm.auto import tqdm

from harness import faults
from harness.errors import HarnessError
from harness.training.examples import ChatExample, Tokenized, collate, tokenize
from harness.training.repmodel import RepresentationModel


@dataclass
class TrainSettings:
    """The optimisation fields: what the loop reads, and the base of every LoRA defense's config.

    The seed is not a field: it is the run's (``train(seed=...)``), so a defense config carries
    no second one.
    """

    steps: int = 60
    lr: float = 1e-3
    batch_size: int = 4  # examples of each stream per micro-batch
    grad_accum: int = 1
    max_length: int = 128  # tokens per example (longer ones are truncated)
    checkpoint_every: int = 20
    gradient_checkpointing: bool = False


# AdamW without weight decay (torch's default is 0.01): no defense uses any. Checkpoints still record it, so
# those written when it was a setting resume.
WEIGHT_DECAY = 0.0


def _settings_record(settings: TrainSettings, seed: int) -> dict[str, Any]:
    """What a checkpoint must have been written with to be resumed: the optimisation fields and the seed."""
    return {**{f.name: getattr(settings, f.name) for f in fields(TrainSettings)}, "weight_decay": WEIGHT_DECAY,
            "seed": seed}


@dataclass
class Batch:
    tensors: dict[str, torch.Tensor]  # input_ids, attention_mask, mask, ce_mask (on device)
    ref: dict[int, torch.Tensor]  # frozen-model hidden states at the loss layers
    index: torch.Tensor  # positions of the examples in their stream (for per-sample weights)


# loss_fn(step, total_steps, forward, batches) -> (loss, {component: value})
# forward(batch, logits=False) runs the adapted model and returns {"hidden": ..., "logits": ...}
# It may also return a third element, {term: its weighted tensor} (the terms that add up to the loss): the loop then
# logs each term's gradient norm on the adapter as ``grad_<term>`` every ``grad_every`` steps.
LossFn = Callable[[int, int, Callable[..., dict[str, Any]], dict[str, Batch]], tuple[torch.Tensor, dict[str, float]]]


class NonFiniteLoss(HarnessError):
    pass


def _order(n: int, count: int, seed: int) -> list[int]:
    """``count`` example indices: seeded shuffles of 0..n-1, epoch after epoch."""
    rng = random.Random(seed)
    order: list[int] = []
    while len(order) < count:
        epoch = list(range(n))
        rng.shuffle(epoch)
        order.extend(epoch)
    return order[:count]


def _pad_stack(tensors: list[torch.Tensor], width: int) -> torch.Tensor:
    out = tensors[0].new_zeros((len(tensors), width, tensors[0].shape[-1]))
    for row, t in enumerate(tensors):
        out[row, : t.shape[0]] = t
    return out


def _atomic_dir_write(target: Path, write: Callable[[Path], None]) -> None:
    tmp = target.with_name(target.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir(parents=True)
    write(tmp)
    old = target.with_name(target.name + ".old")
    if target.exists():
        os.replace(target, old)
    faults.checkpoint("train.swap")
    os.replace(tmp, target)
    if old.exists():
        shutil.rmtree(old)


def _recover_swap(target: Path) -> None:
    """Finish a checkpoint swap that a kill interrupted (between the two renames of ``_atomic_dir_write``).

    With ``target`` gone, ``target.tmp`` was complete (it is renamed only after it is written) and is newer
    than ``target.old``.
    """
    tmp, old = target.with_name(target.name + ".tmp"), target.with_name(target.name + ".old")
    if not target.exists() and old.exists():
        os.replace(tmp if tmp.exists() else old, target)
    if old.exists():
        shutil.rmtree(old)


# The frozen model's states of the last base model trained in this process: {base fingerprint: {stream key:
# states}}. A tuning study trains the same base model on the same streams once per trial; on Qwen2.5-0.5B on a
# CPU these states took 4-5 minutes of each trial. Only the latest base model is kept, to bound memory.
_REFERENCE_CACHE: dict[str, dict[str, list[dict[int, torch.Tensor]]]] = {}


def _base_fingerprint(model: torch.nn.Module) -> str:
    """A digest of the frozen weights (the trainable adapters left out): per tensor its shape, sum and abs sum."""
    digest = hashlib.sha256()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.requires_grad:
                continue
            values = param.detach()
            digest.update(f"{name}{tuple(param.shape)}{values.sum(dtype=torch.float64).item():.17g}"
                          f"{values.abs().sum(dtype=torch.float64).item():.17g}{param.dtype}".encode())
    return digest.hexdigest()


def _stream_key(items: list[Tokenized], layers: list[int], batch_size: int, where: str) -> str:
    digest = hashlib.sha256(f"{layers}|{batch_size}|{where}".encode())
    for item in items:
        digest.update(str(item.input_ids).encode())
    return digest.hexdigest()


def train(
    model: torch.nn.Module,
    tokenizer: Any,
    streams: dict[str, Sequence[ChatExample]],
    layers: Sequence[int],
    loss_fn: LossFn,
    settings: TrainSettings,
    work_dir: Path,
    *,
    seed: int = 0,
    progress: bool = True,
    reference: bool | Sequence[str] = True,
    probe: Callable[[int, int, torch.nn.Module, Any], Any] | None = None,
    grad_every: int = 0,
) -> dict[str, Any]:
    """Train the trainable parameters of ``model`` (a PeftModel); returns a summary.

    ``settings`` may be any ``TrainSettings`` (a defense passes its config, which extends it).
    ``seed`` orders the batches and seeds torch. ``reference``: which streams get frozen-model
    states (True: all, False: none, or their names). ``probe(step, total, model, tokenizer)`` is
    called after every step (``harness.training.probe.BehaviourProbe`` decides when to look);
    ``grad_every``: how often each loss term's gradient norm is logged (0: never; it costs one
    backward pass per term on those steps).
    """
    from accelerate import Accelerator, DistributedDataParallelKwargs
    from safetensors.torch import load_file, save_file

    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available()
    accelerator = Accelerator(
        cpu=not cuda,
        mixed_precision="bf16" if cuda else "no",
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=True)],
    )
    rank, world = accelerator.process_index, accelerator.num_processes
    torch.manual_seed(seed)
    if settings.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    layers = sorted(set(layers))
    total_micro = settings.steps * settings.grad_accum
    device = accelerator.device

    # 1. tokenise each stream once; this process takes every world-th micro-batch of a seeded order
    rep = RepresentationModel(model)
    tokenized: dict[str, list[Tokenized]] = {}
    orders: dict[str, list[int]] = {}
    for s_index, (name, examples) in enumerate(streams.items()):
        if not examples:
            raise HarnessError(f"training stream {name!r} has no examples.")
        tokenized[name] = [tokenize(e, tokenizer, settings.max_length) for e in examples]
        _check_reachable(name, examples, tokenized[name], settings.max_length)
        order = _order(len(examples), total_micro * world * settings.batch_size, seed * 1000 + s_index)
        chunks = [order[i : i + settings.batch_size] for i in range(0, len(order), settings.batch_size)]
        orders[name] = [i for chunk in chunks[rank::world] for i in chunk]

    # 2. the frozen model's states, once per example (adapters off, only up to the highest layer).
    # Right padding under a causal mask leaves real tokens' states unchanged, so they are sliced out.
    refs: dict[str, list[dict[int, torch.Tensor]]] = {name: [] for name in streams}
    ref_streams = set(streams) if reference is True else set(reference or ())
    reused: list[str] = []
    if ref_streams:
        # one process only: under DDP each process would need the same decision, and memory is the GPU's
        cached: dict[str, list[dict[int, torch.Tensor]]] | None = None
        if world == 1:
            fingerprint = _base_fingerprint(model)
            cached = _REFERENCE_CACHE.pop(fingerprint, {})
            _REFERENCE_CACHE.clear()
            _REFERENCE_CACHE[fingerprint] = cached
        where = f"{device}|{accelerator.mixed_precision}"
        with torch.no_grad(), model.disable_adapter():
            for name, items in tokenized.items():
                if name not in ref_streams:
                    continue
                key = _stream_key(items, layers, settings.batch_size, where)
                if cached is not None and key in cached:
                    refs[name] = cached[key]
                    reused.append(name)
                    continue
                chunks = range(0, len(items), settings.batch_size)
                for i in tqdm(chunks, desc=f"reference states: {name}", disable=not progress or rank > 0,
                              leave=False):
                    group = items[i : i + settings.batch_size]
                    t = {k: v.to(device) for k, v in collate(group, tokenizer.pad_token_id).items()}
                    with accelerator.autocast():
                        hidden = rep(t["input_ids"], t["attention_mask"], layers)["hidden"]
                    for row, item in enumerate(group):
                        n = len(item.input_ids)
                        refs[name].append({l: h[row, :n].detach() for l, h in hidden.items()})
                if cached is not None:
                    cached[key] = refs[name]

    def micro_batch(name: str, k: int) -> Batch:
        idx = orders[name][k * settings.batch_size : (k + 1) * settings.batch_size]
        tensors = {key: v.to(device) for key, v in collate([tokenized[name][i] for i in idx],
                                                             tokenizer.pad_token_id).items()}
        width = tensors["input_ids"].shape[1]
        ref = {l: _pad_stack([refs[name][i][l] for i in idx], width) for l in layers} if name in ref_streams else {}
        return Batch(tensors, ref, torch.tensor(idx, device=device))

    # 3. optimiser, resume
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=settings.lr, weight_decay=WEIGHT_DECAY)
    rep, optimizer = accelerator.prepare(rep, optimizer)
    ckpt = work_dir / "checkpoint"
    log_path = work_dir / "loss_log.jsonl"
    start = 0
    if accelerator.is_main_process:
        _recover_swap(ckpt)
    accelerator.wait_for_everyone()
    if (ckpt / "state.json").is_file():
        try:
            state = json.loads((ckpt / "state.json").read_text())
            adapter = load_file(str(ckpt / "adapter.safetensors"))
            optim_state = torch.load(ckpt / "optimizer.pt", weights_only=True, map_location=device)
        except Exception as err:  # checkpoints are written atomically: this one was damaged afterwards
            raise HarnessError(
                f"{ckpt} is damaged ({type(err).__name__}: {err}). Remove that folder to train from the start."
            ) from None
        if state["settings"] != json.loads(json.dumps(_settings_record(settings, seed))):
            raise HarnessError(f"{ckpt} was written with other training settings; remove it to start over.")
        named = dict(model.named_parameters())
        with torch.no_grad():
            for n, t in adapter.items():
                named[n].copy_(t.to(named[n].device, named[n].dtype))
        optimizer.load_state_dict(optim_state)
        start = state["step"]
    if accelerator.is_main_process:  # drop logged steps after the checkpoint, and a torn line
        for path in (log_path, work_dir / "probe_log.jsonl"):
            if path.is_file():
                lines = path.read_text().splitlines(keepends=True)
                path.write_text("".join(l for l in lines if l.endswith("\n") and json.loads(l)["step"] < start))

    def forward(batch: Batch, logits: bool = False) -> dict[str, Any]:
        with accelerator.autocast():
            return rep(batch.tensors["input_ids"], batch.tensors["attention_mask"], layers, logits=logits)

    def save(step: int) -> None:
        if not accelerator.is_main_process:
            return

        def write(folder: Path) -> None:
            save_file({n: p.detach().cpu().contiguous() for n, p in model.named_parameters() if p.requires_grad},
                      str(folder / "adapter.safetensors"))
            torch.save(optimizer.state_dict(), folder / "optimizer.pt")
            record = {"step": step, "settings": _settings_record(settings, seed)}
            (folder / "state.json").write_text(json.dumps(record))

        _atomic_dir_write(ckpt, write)

    # 4. the loop
    model.train()
    bar = tqdm(total=settings.steps, initial=start, desc="training", disable=not progress or rank > 0)
    started = time.time()
    last: dict[str, float] = {}
    for step in range(start, settings.steps):
        optimizer.zero_grad(set_to_none=True)
        parts: dict[str, float] = {}
        for micro in range(settings.grad_accum):
            k = step * settings.grad_accum + micro
            current = {name: micro_batch(name, k) for name in streams}
            loss, comps, *terms = loss_fn(step, settings.steps, forward, current)
            if terms and grad_every > 0 and step % grad_every == 0:
                comps = {**comps, **_grad_norms(terms[0], params)}
            if not torch.isfinite(loss):
                raise NonFiniteLoss(
                    f"training stopped at step {step}: the loss is {loss.item()} ({comps}). The last good "
                    f"checkpoint is kept in {ckpt}. Lower the learning rate or the loss coefficients."
                )
            accelerator.backward(loss / settings.grad_accum)
            for c, v in comps.items():
                parts[c] = parts.get(c, 0.0) + v / settings.grad_accum
        optimizer.step()
        last = {"step": step, **parts, "elapsed_s": round(time.time() - started, 3)}
        if accelerator.is_main_process:
            with open(log_path, "a") as fh:
                fh.write(json.dumps(last) + "\n")
        bar.set_postfix({c: f"{v:.3f}" for c, v in parts.items()})
        bar.update(1)
        if probe is not None and accelerator.is_main_process:
            probe(step, settings.steps, model, tokenizer)
        faults.checkpoint("train.step")
        if (step + 1) % settings.checkpoint_every == 0 or step + 1 == settings.steps:
            save(step + 1)
            faults.checkpoint("train.checkpoint")
    bar.close()
    accelerator.wait_for_everyone()
    model.eval()
    if settings.gradient_checkpointing:
        model.gradient_checkpointing_disable()
    return {"steps": settings.steps, "resumed_from": start, "last": last,
            "train_s": time.time() - started, "world_size": world, "reference_reused": sorted(reused)}


def _check_reachable(name: str, examples: Sequence[ChatExample], items: list[Tokenized], max_length: int) -> None:
    """Refuse a stream whose every example lost, to the ``max_length`` cut, all the tokens its loss reads (a
    cross-entropy example its response, any other its loss mask): it would train at loss 0 and learn nothing."""
    def reads(example: ChatExample, item: Tokenized) -> bool:
        return bool(item.ce_mask.any()) if example.ce else bool(item.mask.any())

    if not any(reads(e, t) for e, t in zip(examples, items)):
        longest = max(len(t.input_ids) for t in items)
        raise HarnessError(
            f"training stream {name!r}: cut to max_length={max_length} tokens, none of its {len(items)} examples "
            f"keeps a token its loss reads (the chat template and the request fill the length; {longest} tokens "
            "kept of the longest). Raise max_length."
        )


def _grad_norms(terms: dict[str, torch.Tensor], params: list[torch.nn.Parameter]) -> dict[str, float]:
    """Each weighted loss term's gradient norm on the trainable parameters (the graph is kept for the step)."""
    out = {}
    for name, term in terms.items():
        if not (isinstance(term, torch.Tensor) and term.requires_grad):
            continue
        grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
        out[f"grad_{name}"] = float(torch.sqrt(sum((g.float() ** 2).sum() for g in grads if g is not None)))
    return out


def save_adapter(model: torch.nn.Module, work_dir: Path, summary: dict[str, Any]) -> None:
    """Save the trained adapter (safetensors) and mark training finished."""
    folder = Path(work_dir) / "adapter"
    model.save_pretrained(folder, safe_serialization=True)
    (Path(work_dir) / "trained.json").write_text(json.dumps(summary, default=str))


def load_finished(model: torch.nn.Module, work_dir: Path) -> dict[str, Any] | None:
    """Load a finished adapter into ``model`` (a PeftModel); None when training has not finished."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    marker = Path(work_dir) / "trained.json"
    weights = Path(work_dir) / "adapter" / "adapter_model.safetensors"
    if not (marker.is_file() and weights.is_file()):
        return None
    set_peft_model_state_dict(model, load_file(str(weights)))
    return json.loads(marker.read_text())
