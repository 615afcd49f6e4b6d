"""One Circuit-Breakers (RR) training step: a plain reference-style step against the project's step.

plain    what the reference implementation does each step: a full forward of the adapted model with
         ``output_hidden_states`` (every layer, the unembedding too), a second full forward with the
         adapters disabled (peft ``disable_adapter()``) for the frozen states, then the RR loss.
project  the harness kit (``harness.training``): the frozen states are computed once per example
         (adapters off, only up to the highest layer, as ``trainer.train`` does) and reused; each step
         runs only the decoder layers up to the highest loss layer through ``RepresentationModel``.

Both use the same batch (a harmful and a retain stream, ``--batch`` x ``--seq`` tokens each, random
token ids, right-padded rows of different lengths), the same LoRA settings (``RRConfig``'s defaults
scaled to the model's depth, as ``defenses.circuit_breakers`` scales them) and the same loss (the
rerouting + relative retain objective of ``defenses/circuit_breakers.py`` with its massive-dimension
exclusion, at the middle of the coefficient schedule so both terms count). The script first checks
that the two give the same loss (and gradients) on the same batch and adapter weights, then times
steps (forward + backward + AdamW), alternating the two variants step by step, and reports medians.

    python bench/train_step.py                      # the default model, 4 x 128, CPU
    python bench/train_step.py --model tiny-random-llama --steps 2 --seq 32
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from harness.training import losses  # noqa: E402
from harness.training.layers import scale_layers  # noqa: E402
from harness.training.lora import attach_lora  # noqa: E402
from harness.training.repmodel import RepresentationModel  # noqa: E402
from harness.training.trainer import _pad_stack  # noqa: E402

TARGET_RATIO = 1.8


# --------------------------------------------------------------------------------------------
# the RR setup, as harness/training/rerouting.py derives it from RRConfig


@dataclass
class RRPlan:
    depth: int
    targets: list[int]
    retain_layers: list[int]
    layers: list[int]  # every layer a loss reads (targets | retain layers)
    lora_blocks: list[int]
    lora_r: int
    lora_alpha: int
    b_init_std: float
    lr: float
    relative: bool
    exclude_massive_dims: bool
    c_s: float
    c_r: float


def rr_plan(depth: int, *, total_steps: int | None = None) -> RRPlan:
    """``RRConfig()``'s defaults scaled to a ``depth``-layer model, exactly as ``ReroutingDefense`` does.

    The coefficients are taken at the middle of the schedule (step T/2 of T: c_s = 0.75a, c_r =
    0.25a) so that both the rerouting and the retain term count in the loss and its gradient.
    """
    from harness.training.rerouting import RRConfig

    cfg = RRConfig()
    targets = scale_layers(cfg.target_layers, depth, cfg.reference_depth)
    first, last = (min(scale_layers([v], depth, cfg.reference_depth)[0], depth - 1) for v in cfg.lora_layers)
    retain_layers = targets if cfg.retain_layers == "target" else list(range(1, max(targets) + 1))
    total = total_steps or cfg.steps
    c_s, c_r = losses.rr_schedule(total // 2, total, cfg.alpha)
    c_r *= cfg.retain_coef
    return RRPlan(depth=depth, targets=list(targets), retain_layers=list(retain_layers),
                  layers=sorted(set(targets) | set(retain_layers)), lora_blocks=list(range(first, last + 1)),
                  lora_r=cfg.lora_r, lora_alpha=cfg.lora_alpha, b_init_std=cfg.b_init_std, lr=cfg.lr,
                  relative=cfg.retain_distance == "relative", exclude_massive_dims=cfg.exclude_massive_dims,
                  c_s=c_s, c_r=c_r)


def attach(model: torch.nn.Module, plan: RRPlan, seed: int = 0) -> torch.nn.Module:
    """The PeftModel Circuit Breakers trains (LoRA on ``plan.lora_blocks``, B matrices seeded)."""
    return attach_lora(model, layers=plan.lora_blocks, r=plan.lora_r, alpha=plan.lora_alpha,
                       b_init_std=plan.b_init_std, seed=seed)


# --------------------------------------------------------------------------------------------
# data: two streams of random token ids, right-padded like trainer's collate


@dataclass
class Stream:
    input_ids: torch.Tensor  # [B, T]
    attention_mask: torch.Tensor  # [B, T]
    mask: torch.Tensor  # [B, T] bool: tokens the loss sees
    lengths: list[int] = field(default_factory=list)


@dataclass
class Data:
    harmful: Stream
    retain: Stream

    def to(self, device: str) -> "Data":
        return Data(*(Stream(s.input_ids.to(device), s.attention_mask.to(device), s.mask.to(device), s.lengths)
                      for s in (self.harmful, self.retain)))


def random_stream(vocab: int, batch: int, seq: int, pad_id: int, seed: int) -> Stream:
    """``batch`` rows of random ids; the first row is ``seq`` long, later ones up to a quarter shorter.

    The first ``seq // 8`` tokens of each row stand for the shared system prompt and are left out
    of the loss mask, as ``examples.tokenize`` leaves the template's system prompt out.
    """
    gen = torch.Generator().manual_seed(seed)
    low = min(16, vocab // 2)
    lengths = [max(2, seq - (row * seq) // (4 * max(batch - 1, 1))) if row else seq for row in range(batch)]
    ids = torch.full((batch, seq), pad_id, dtype=torch.long)
    attn = torch.zeros((batch, seq), dtype=torch.long)
    mask = torch.zeros((batch, seq), dtype=torch.bool)
    skip = seq // 8
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(low, vocab, (n,), generator=gen)
        attn[row, :n] = 1
        mask[row, min(skip, n - 1):n] = True
    return Stream(ids, attn, mask, lengths)


def random_data(vocab: int, batch: int, seq: int, pad_id: int, seed: int = 0) -> Data:
    return Data(random_stream(vocab, batch, seq, pad_id, seed), random_stream(vocab, batch, seq, pad_id, seed + 1))


# --------------------------------------------------------------------------------------------
# the loss (defenses/circuit_breakers.py's loss_fn, without its logging)


def rr_loss(plan: RRPlan, h: dict[int, torch.Tensor], ref: dict[int, torch.Tensor], mask: torch.Tensor,
            r: dict[int, torch.Tensor], rref: dict[int, torch.Tensor], rmask: torch.Tensor) -> torch.Tensor:
    dims = losses.massive_dims({l: ref[l] for l in plan.layers}, mask) if plan.exclude_massive_dims else None
    h_t = {l: h[l] for l in plan.targets}
    ref_t = {l: ref[l] for l in plan.targets}
    reroute = losses.rerouting(h_t, ref_t, mask, None, dims)
    keep = losses.retain({l: r[l] for l in plan.retain_layers}, {l: rref[l] for l in plan.retain_layers}, rmask,
                         relative=plan.relative, dims=dims)
    return plan.c_s * reroute + plan.c_r * keep


def autocast_for(device: str) -> Callable[[], contextlib.AbstractContextManager]:
    """What ``trainer.train`` runs forwards under: bf16 autocast on CUDA, nothing on CPU."""
    if device.startswith("cuda"):
        return lambda: torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext


# --------------------------------------------------------------------------------------------
# the two variants


def plain_states(model: torch.nn.Module, s: Stream, layers: list[int], amp) -> tuple[dict, dict]:
    """Reference style: full adapted forward (all hidden states) + full frozen forward."""
    with amp():
        out = model(input_ids=s.input_ids, attention_mask=s.attention_mask, output_hidden_states=True,
                    use_cache=False)
        with torch.no_grad(), model.disable_adapter():
            frozen = model(input_ids=s.input_ids, attention_mask=s.attention_mask, output_hidden_states=True,
                           use_cache=False)
    return {l: out.hidden_states[l] for l in layers}, {l: frozen.hidden_states[l].detach() for l in layers}


def plain_loss(model: torch.nn.Module, plan: RRPlan, data: Data, amp) -> torch.Tensor:
    h, ref = plain_states(model, data.harmful, plan.layers, amp)
    r, rref = plain_states(model, data.retain, plan.layers, amp)
    return rr_loss(plan, h, ref, data.harmful.mask, r, rref, data.retain.mask)


class Project:
    """The kit's path: frozen states once per example (as ``trainer.train`` step 2), truncated forwards."""

    def __init__(self, model: torch.nn.Module, plan: RRPlan, data: Data, amp):
        self.model, self.plan, self.data, self.amp = model, plan, data, amp
        self.rep = RepresentationModel(model)
        self.refs = {name: self._reference(getattr(data, name)) for name in ("harmful", "retain")}

    def _reference(self, s: Stream) -> list[dict[int, torch.Tensor]]:
        with torch.no_grad(), self.model.disable_adapter(), self.amp():
            hidden = self.rep(s.input_ids, s.attention_mask, self.plan.layers)["hidden"]
        return [{l: h[row, :n].detach() for l, h in hidden.items()} for row, n in enumerate(s.lengths)]

    def _batch_ref(self, name: str, width: int) -> dict[int, torch.Tensor]:
        # trainer.micro_batch: the stored per-example states, right-padded back to the batch width
        refs = self.refs[name]
        return {l: _pad_stack([item[l] for item in refs], width) for l in self.plan.layers}

    def loss(self) -> torch.Tensor:
        hs, rs = self.data.harmful, self.data.retain
        with self.amp():
            h = self.rep(hs.input_ids, hs.attention_mask, self.plan.layers)["hidden"]
            r = self.rep(rs.input_ids, rs.attention_mask, self.plan.layers)["hidden"]
        ref = self._batch_ref("harmful", hs.input_ids.shape[1])
        rref = self._batch_ref("retain", rs.input_ids.shape[1])
        return rr_loss(self.plan, h, ref, hs.mask, r, rref, rs.mask)


def make_steps(model: torch.nn.Module, plan: RRPlan, data: Data, device: str) -> tuple[dict[str, Callable[[], float]], Project]:
    """``{"plain": step, "project": step}``: each one forward + backward + AdamW step, returning the loss."""
    amp = autocast_for(device)
    project = Project(model, plan, data, amp)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=plan.lr)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def step(loss_of: Callable[[], torch.Tensor]) -> Callable[[], float]:
        def run() -> float:
            optimizer.zero_grad(set_to_none=True)
            loss = loss_of()
            loss.backward()
            optimizer.step()
            value = loss.item()  # the trainer logs it every step (a device sync)
            sync()
            return value

        return run

    return {"plain": step(lambda: plain_loss(model, plan, data, amp)), "project": step(project.loss)}, project


# --------------------------------------------------------------------------------------------
# the equality check


class LossMismatch(AssertionError):
    pass


def tolerance(dtype: torch.dtype) -> float:
    """Relative tolerance for the two variants' losses: float32 rounding, or bf16 autocast's."""
    return 1e-5 if dtype == torch.float32 else 2e-2


def losses_match(a: float, b: float, dtype: torch.dtype = torch.float32) -> bool:
    return math.isfinite(a) and math.isfinite(b) and math.isclose(a, b, rel_tol=tolerance(dtype), abs_tol=1e-7)


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: (p.grad.detach().float().clone() if p.grad is not None else torch.zeros_like(p, dtype=torch.float32))
            for n, p in model.named_parameters() if p.requires_grad}


def check_same_loss(model: torch.nn.Module, plan: RRPlan, data: Data, device: str, *, perturb: float = 0.0,
                    project: Project | None = None) -> dict[str, Any]:
    """Both variants' loss and gradients on the same batch and adapter weights; raises LossMismatch.

    ``perturb`` > 0 adds noise of that relative size to the project variant's stored frozen
    states (a test that the check can fail).
    """
    amp = autocast_for(device)
    project = project or Project(model, plan, data, amp)
    if perturb:
        gen = torch.Generator().manual_seed(1)
        saved = project.refs
        project.refs = {name: [{l: t + perturb * t.float().std().item() *
                                torch.randn(t.shape, generator=gen).to(t.device, t.dtype)
                                for l, t in item.items()} for item in items] for name, items in saved.items()}
    try:
        model.zero_grad(set_to_none=True)
        a = plain_loss(model, plan, data, amp)
        a.backward()
        ga = _grads(model)
        model.zero_grad(set_to_none=True)
        b = project.loss()
        b.backward()
        gb = _grads(model)
        model.zero_grad(set_to_none=True)
    finally:
        if perturb:
            project.refs = saved
    dtype = next(model.parameters()).dtype if not device.startswith("cuda") else torch.bfloat16
    diff = sum(float((ga[n] - gb[n]).pow(2).sum()) for n in ga) ** 0.5
    norm = sum(float(gb[n].pow(2).sum()) for n in gb) ** 0.5
    out = {"plain_loss": a.item(), "project_loss": b.item(),
           "rel_diff": abs(a.item() - b.item()) / max(abs(a.item()), 1e-12),
           "grad_rel_diff": diff / max(norm, 1e-30), "grad_norm": norm, "rtol": tolerance(dtype)}
    out["match"] = losses_match(a.item(), b.item(), dtype)
    if not out["match"]:
        raise LossMismatch(f"the two variants' losses differ: plain {a.item():.8g}, project {b.item():.8g} "
                           f"(relative difference {out['rel_diff']:.3g}, tolerance {tolerance(dtype):g})")
    if dtype == torch.float32 and out["grad_rel_diff"] > 1e-3:
        raise LossMismatch(f"the two variants' gradients differ: relative difference {out['grad_rel_diff']:.3g}")
    return out


# --------------------------------------------------------------------------------------------
# timing and memory


def time_alternating(steps: dict[str, Callable[[], float]], n: int, warmup: int = 1) -> dict[str, list[float]]:
    """``n`` timed steps of each variant, alternating (ABBA...: the order flips every round)."""
    names = list(steps)
    for _ in range(warmup):
        for name in names:
            steps[name]()
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(n):
        for name in (names if i % 2 == 0 else names[::-1]):
            t0 = time.perf_counter()
            steps[name]()
            times[name].append(time.perf_counter() - t0)
    return times


def summarize_times(times: dict[str, list[float]], target: float = TARGET_RATIO) -> dict[str, Any]:
    med = {name: statistics.median(t) for name, t in times.items()}
    pairs = [p / q for p, q in zip(times["plain"], times["project"])]
    ratio = med["plain"] / med["project"]
    return {
        "plain_step_s": med["plain"], "project_step_s": med["project"],
        "plain_steps_per_s": 1 / med["plain"], "project_steps_per_s": 1 / med["project"],
        "speedup": ratio, "speedup_pairwise_median": statistics.median(pairs),
        "target": target, "target_met": ratio >= target,
        "times_s": {name: [round(x, 4) for x in t] for name, t in times.items()},
    }


def rss_mib() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def cuda_peak_step_mib(step: Callable[[], float], n: int = 2) -> dict[str, float]:
    """Peak CUDA memory allocated during ``n`` steps, and above what was allocated before them."""
    torch.cuda.synchronize()
    torch.cuda.empty_cache()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    for _ in range(n):
        step()
    peak = torch.cuda.max_memory_allocated()
    return {"peak_allocated_mib": peak / 2**20, "step_peak_over_resident_mib": (peak - before) / 2**20}


def profile_steps(steps: dict[str, Callable[[], float]], device: str, top: int = 12) -> dict[str, Any]:
    """One profiled step of each variant (torch.profiler): operator calls, kernels, the costliest ops."""
    from torch.autograd import DeviceType
    from torch.profiler import ProfilerActivity, profile

    cuda = device.startswith("cuda")
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    out: dict[str, Any] = {}
    for name, step in steps.items():
        step()
        with profile(activities=activities) as prof:
            t0 = time.perf_counter()
            step()
            wall = time.perf_counter() - t0
        events = prof.key_averages()
        sort = "self_cuda_time_total" if cuda else "self_cpu_time_total"
        entry = {"wall_s": wall, "aten_calls": sum(e.count for e in events if e.key.startswith("aten::")),
                 "table": events.table(sort_by=sort, row_limit=top)}
        if cuda:
            kernels = [e for e in prof.events() if e.device_type == DeviceType.CUDA]
            entry["cuda_kernels"] = len(kernels)
            entry["cuda_kernel_time_s"] = sum(e.device_time for e in kernels) / 1e6
        out[name] = entry
    return out


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


# --------------------------------------------------------------------------------------------
# the script


def _setup(args: argparse.Namespace):
    from harness.models import load_model
    from harness.plugins import plugins

    presets = {n: e.obj for n, e in plugins().models.items.items()}
    loaded = load_model(args.model, presets=presets, device=args.device)
    model = loaded.model
    torch.manual_seed(args.seed)
    plan = rr_plan(model.config.num_hidden_layers)
    peft_model = attach(model, plan, seed=args.seed)
    pad = loaded.tokenizer.pad_token_id if loaded.tokenizer.pad_token_id is not None else 0
    data = random_data(model.config.vocab_size, args.batch, args.seq, pad, seed=args.seed).to(args.device)
    return loaded, peft_model, plan, data


def _memory_child(args: argparse.Namespace) -> None:
    """Run in a fresh process: set up, run a few steps of one variant, print its peak RSS."""
    loaded, model, plan, data = _setup(args)
    steps, _ = make_steps(model, plan, data, args.device)
    step = steps[args.memory_of]
    resident, peak_before = rss_mib(), peak_rss_mib()
    for _ in range(3):
        step()
    peak = peak_rss_mib()
    print("MEMORY " + json.dumps({"variant": args.memory_of, "rss_before_steps_mib": resident,
                                  "peak_before_steps_mib": peak_before, "peak_rss_mib": peak,
                                  "step_peak_over_resident_mib": peak - resident}))


def cpu_memory(args: argparse.Namespace) -> dict[str, Any]:
    """Each variant's peak RSS, measured in its own fresh process (RSS peaks are per process).

    The two processes run at the same time: that changes their speed, not their peak memory.
    """
    procs = {}
    for variant in ("plain", "project"):
        cmd = [sys.executable, __file__, "--model", args.model, "--batch", str(args.batch), "--seq", str(args.seq),
               "--device", args.device, "--seed", str(args.seed), "--memory-of", variant]
        if args.threads:
            cmd += ["--threads", str(args.threads)]
        procs[variant] = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out: dict[str, Any] = {}
    for variant, proc in procs.items():
        stdout, stderr = proc.communicate()
        lines = [l for l in stdout.splitlines() if l.startswith("MEMORY ")]
        if proc.returncode != 0 or not lines:
            out[variant] = {"error": (stderr or stdout)[-2000:]}
        else:
            out[variant] = json.loads(lines[-1][len("MEMORY "):])
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct", help="a model preset, folder or hub id")
    p.add_argument("--batch", type=int, default=4, help="examples per stream (harmful and retain)")
    p.add_argument("--seq", type=int, default=128, help="tokens per example (the longest row)")
    p.add_argument("--steps", type=int, default=10, help="timed steps per variant (after one warm-up step each)")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when present)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory measurement")
    p.add_argument("--profile", action="store_true",
                   help="also profile one step of each variant (torch.profiler) and print the costliest ops")
    p.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    p.add_argument("--memory-of", choices=["plain", "project"], help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    args.device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_of:
        _memory_child(args)
        return 0

    load_before = load_average()
    t0 = time.time()
    loaded, model, plan, data = _setup(args)
    dtype = next(model.parameters()).dtype
    n_params = loaded.info.get("parameters", 0)
    print(f"train_step: model {args.model} ({plan.depth} layers, {n_params / 1e6:.1f}M parameters), "
          f"device {args.device}, {str(dtype).removeprefix('torch.')}"
          f"{' + bf16 autocast' if args.device.startswith('cuda') else ''}, torch threads {torch.get_num_threads()}")
    print(f"batch: harmful + retain streams, {args.batch} x {args.seq} tokens each (rows {data.harmful.lengths})")
    print(f"RR setup (RRConfig defaults scaled to {plan.depth} layers): LoRA r {plan.lora_r} on blocks "
          f"{plan.lora_blocks[0]}-{plan.lora_blocks[-1]}, targets {plan.targets}, retain layers {plan.retain_layers}, "
          f"c_s {plan.c_s:g}, c_r {plan.c_r:g}, lr {plan.lr:g}; setup {time.time() - t0:.1f} s")

    steps, project = make_steps(model, plan, data, args.device)
    check = check_same_loss(model, plan, data, args.device, project=project)
    print(f"loss check: plain {check['plain_loss']:.8g}, project {check['project_loss']:.8g}, relative difference "
          f"{check['rel_diff']:.2g} (tolerance {check['rtol']:g}); gradient relative difference "
          f"{check['grad_rel_diff']:.2g} -> {'match' if check['match'] else 'MISMATCH'}")

    times = time_alternating(steps, args.steps)
    result = summarize_times(times)
    load_after = load_average()
    for name in ("plain", "project"):
        t = times[name]
        print(f"{name} step: median {statistics.median(t):.3f} s -> {1 / statistics.median(t):.3f} steps/s "
              f"(min {min(t):.3f}, max {max(t):.3f}, n {len(t)})")
    print(f"speed-up project/plain: {result['speedup']:.2f}x (median of pairwise ratios "
          f"{result['speedup_pairwise_median']:.2f}x); target >= {TARGET_RATIO}x: "
          f"{'met' if result['target_met'] else 'NOT met'}")

    profiles: dict[str, Any] = {}
    if args.profile:
        profiles = profile_steps(steps, args.device)
        for name, prof in profiles.items():
            extra = (f", {prof['cuda_kernels']} CUDA kernels taking {prof['cuda_kernel_time_s'] * 1e3:.1f} ms"
                     if "cuda_kernels" in prof else "")
            print(f"profile {name} step: {prof['wall_s']:.3f} s under the profiler, {prof['aten_calls']} aten calls"
                  f"{extra}\n{prof['table']}")

    memory: dict[str, Any] = {}
    if not args.no_memory:
        if args.device.startswith("cuda"):
            memory = {name: cuda_peak_step_mib(steps[name]) for name in ("plain", "project")}
            for name, m in memory.items():
                print(f"peak memory {name}: {m['peak_allocated_mib']:.0f} MiB CUDA allocated "
                      f"({m['step_peak_over_resident_mib']:.0f} MiB above the resident weights and states)")
        else:
            memory = cpu_memory(args)
            for name, m in memory.items():
                if "error" in m:
                    print(f"peak memory {name}: measurement failed: {m['error'][-300:]}")
                else:
                    print(f"peak memory {name}: {m['peak_rss_mib']:.0f} MiB peak RSS of a fresh process "
                          f"({m['step_peak_over_resident_mib']:.0f} MiB above its RSS before the steps)")
    print(f"load average (1/5/15 min): before {load_before}, after {load_after}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"model": args.model, "device": args.device, "dtype": str(dtype),
                                        "batch": args.batch, "seq": args.seq, "plan": asdict(plan), "check": check,
                                        **result, "memory": memory, "load_average": [load_before, load_after],
                                        "profile": {k: {kk: vv for kk, vv in v.items() if kk != "table"}
                                                    for k, v in profiles.items()}},
                                       indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
