"""A GPU check in a few minutes, with no network and no real weights.

Randomly initialised Llama models of the *real* shapes (SmolLM2-135M and Llama-3-8B, configs
written below), no tokenizer (random token ids, a pad id), bf16 on CUDA:

1. the environment: torch / CUDA / transformers / peft versions, the device's name and memory;
2. generation: ``model.generate`` on left-padded batches of random prompts (greedy, a fixed number
   of new tokens), prompts/s and tokens/s at a few batch sizes (median of ``--gen-repeats`` calls
   after an untimed first call at each size), and the ratio against batch 1;
3. training: a few LoRA RR steps with the harness kit, the project step against the plain
   reference-style step as in ``bench/train_step.py`` (same functions: the loss-equality check,
   alternating timing, peak memory per variant);
4. peak memory.

It also runs on a CPU in a minute with tiny shapes: ``--device cpu --small``. Results go to stdout
and, with ``--out``, to a JSON file (rewritten after every section, so a run cut short keeps what
it measured).

    python bench/gpu_check.py --out gpu_check.json
    python bench/gpu_check.py --device cpu --small --out /tmp/gpu_check.json
"""

from __future__ import annotations

import argparse
import gc
import inspect
import json
import platform
import statistics
import sys
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import torch  # noqa: E402

from bench import train_step as ts  # noqa: E402

# the real shapes (from the models' config.json files)
SHAPES: dict[str, dict[str, Any]] = {
    "smollm2-135m": dict(hidden_size=576, intermediate_size=1536, num_hidden_layers=30, num_attention_heads=9,
                         num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True, rope_theta=100000.0,
                         max_position_embeddings=8192, rms_norm_eps=1e-5),
    "llama-3-8b": dict(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32,
                       num_key_value_heads=8, vocab_size=128256, tie_word_embeddings=False, rope_theta=500000.0,
                       max_position_embeddings=8192, rms_norm_eps=1e-5),
}
# tiny stand-ins with the same structure (GQA, tied / untied embeddings) for --small
SMALL_SHAPES: dict[str, dict[str, Any]] = {
    "smollm2-small": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=4, num_attention_heads=4,
                          num_key_value_heads=2, vocab_size=512, tie_word_embeddings=True, rope_theta=100000.0,
                          max_position_embeddings=512, rms_norm_eps=1e-5),
    "llama3-small": dict(hidden_size=128, intermediate_size=256, num_hidden_layers=4, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=1024, tie_word_embeddings=False, rope_theta=500000.0,
                         max_position_embeddings=512, rms_norm_eps=1e-5),
}
PAD_ID = 0


def llama_config(shape: dict[str, Any]):
    from transformers import LlamaConfig

    kwargs = dict(shape)
    theta = kwargs.pop("rope_theta")
    if "rope_parameters" in inspect.signature(LlamaConfig.__init__).parameters:
        kwargs["rope_parameters"] = {"rope_type": "default", "rope_theta": theta}
    else:
        kwargs["rope_theta"] = theta
    return LlamaConfig(pad_token_id=PAD_ID, bos_token_id=1, eos_token_id=2, **kwargs)


def build_model(shape: dict[str, Any], device: str, dtype: torch.dtype, seed: int = 0) -> torch.nn.Module:
    """A random Llama of ``shape``, created directly on ``device`` in ``dtype`` (no float32 copy)."""
    from transformers import LlamaForCausalLM

    torch.manual_seed(seed)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            model = LlamaForCausalLM(llama_config(shape))
    finally:
        torch.set_default_dtype(previous)
    model.to(device=device, dtype=dtype).eval()
    # no EOS: every row generates exactly max_new_tokens, so token counts are exact
    model.generation_config.eos_token_id = None
    model.generation_config.pad_token_id = PAD_ID
    return model


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def random_prompts(vocab: int, batch: int, length: int, seed: int) -> dict[str, torch.Tensor]:
    """Left-padded random prompts: row lengths cycle through length, 7/8, 6/8, 5/8 of it."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.full((batch, length), PAD_ID, dtype=torch.long)
    attn = torch.zeros((batch, length), dtype=torch.long)
    for row in range(batch):
        n = max(1, length - (row % 4) * length // 8)
        ids[row, length - n:] = torch.randint(3, vocab, (n,), generator=gen)
        attn[row, length - n:] = 1
    return {"input_ids": ids, "attention_mask": attn}


def generation(model: torch.nn.Module, device: str, sizes: list[int], prompt_len: int, new_tokens: int,
               repeats: int) -> list[dict[str, Any]]:
    vocab = model.config.vocab_size
    kwargs = dict(max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False, pad_token_id=PAD_ID,
                  temperature=None, top_p=None, top_k=None)
    rows = []
    with torch.inference_mode():
        warm = {k: v.to(device) for k, v in random_prompts(vocab, 2, prompt_len, 99).items()}
        model.generate(**warm, **{**kwargs, "max_new_tokens": 2, "min_new_tokens": 2})
        sync(device)
        for size in sizes:
            batch = {k: v.to(device) for k, v in random_prompts(vocab, size, prompt_len, size).items()}
            # an untimed first call at this shape: the first one pays for kernel selection and allocator
            # growth (seen on an H200: 4.8 s against 1.1 s for the next, batch 1, 135M)
            t0 = time.perf_counter()
            model.generate(**batch, **kwargs)
            sync(device)
            first = time.perf_counter() - t0
            times = []
            for _ in range(repeats):
                t0 = time.perf_counter()
                out = model.generate(**batch, **kwargs)
                sync(device)
                times.append(time.perf_counter() - t0)
            made = out.shape[1] - prompt_len
            secs = statistics.median(times)
            rows.append({"batch_size": size, "seconds": secs, "prompts_per_s": size / secs,
                         "tokens_per_s": size * made / secs, "new_tokens": made, "times_s": times,
                         "first_call_s": first})
    base = rows[0]["prompts_per_s"] if rows and rows[0]["batch_size"] == 1 else None
    for row in rows:
        row["vs_batch_1"] = row["prompts_per_s"] / base if base else None
    return rows


def environment(device: str) -> dict[str, Any]:
    env: dict[str, Any] = {"python": platform.python_version(), "torch": torch.__version__,
                           "cuda": torch.version.cuda, "device": device}
    for name in ("transformers", "peft", "accelerate"):
        try:
            env[name] = __import__(name).__version__
        except Exception as err:  # noqa: BLE001
            env[name] = f"missing ({err})"
    if device.startswith("cuda"):
        props = torch.cuda.get_device_properties(torch.device(device))
        env.update(device_name=props.name, capability=f"{props.major}.{props.minor}",
                   multiprocessors=props.multi_processor_count, memory_gib=round(props.total_memory / 2**30, 1),
                   cudnn=torch.backends.cudnn.version(), bf16_supported=torch.cuda.is_bf16_supported())
    else:
        env.update(device_name=platform.processor() or platform.machine(), threads=torch.get_num_threads())
    return env


def training(model: torch.nn.Module, device: str, batch: int, seq: int, steps: int,
             profile: bool = True) -> dict[str, Any]:
    """LoRA RR steps: the project's step against the plain one (bench/train_step.py's functions)."""
    plan = ts.rr_plan(model.config.num_hidden_layers)
    peft_model = ts.attach(model, plan, seed=0)
    data = ts.random_data(model.config.vocab_size, batch, seq, PAD_ID, seed=0).to(device)
    peft_model.train()
    step_fns, project = ts.make_steps(peft_model, plan, data, device)
    check = ts.check_same_loss(peft_model, plan, data, device, project=project)
    times = ts.time_alternating(step_fns, steps, warmup=1)
    out: dict[str, Any] = {"plan": {"lora_blocks": [plan.lora_blocks[0], plan.lora_blocks[-1]],
                                    "targets": plan.targets, "retain_layers": plan.retain_layers},
                           "batch": batch, "seq": seq, "check": check, **ts.summarize_times(times)}
    if device.startswith("cuda"):
        out["check_and_timing_peak_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
        out["memory"] = {name: ts.cuda_peak_step_mib(fn) for name, fn in step_fns.items()}
    if profile:  # is the step bound by the device's work or by launching it? (kernel time against wall time)
        try:
            out["profile"] = ts.profile_steps(step_fns, device)
        except Exception as err:  # noqa: BLE001 - a profiler problem must not lose the figures above
            out["profile"] = {"error": f"{type(err).__name__}: {err}"}
    out["trainable_parameters"] = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, help="cuda (default when present) or cpu")
    p.add_argument("--small", action="store_true", help="tiny shapes (for a CPU test of the script)")
    p.add_argument("--shapes", default=None, help="comma-separated shape names (default: all of the mode)")
    p.add_argument("--dtype", choices=["bf16", "fp32"], default=None, help="default: bf16 on CUDA, fp32 on CPU")
    p.add_argument("--gen-batch-sizes", default=None, help="default 1,8,32,64 (--small: 1,4)")
    p.add_argument("--prompt-len", type=int, default=None, help="default 96 (--small: 16)")
    p.add_argument("--max-new-tokens", type=int, default=None, help="default 64 (--small: 8)")
    p.add_argument("--gen-repeats", type=int, default=2)
    p.add_argument("--train-batch", type=int, default=4)
    p.add_argument("--train-seq", type=int, default=None, help="default 128 (--small: 32)")
    p.add_argument("--train-steps", type=int, default=None, help="timed steps per variant (default 8, --small: 2)")
    p.add_argument("--no-profile", action="store_true", help="skip the one profiled step of each variant")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--out", type=Path, help="write the results here as JSON too")
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    small = args.small
    shapes = SMALL_SHAPES if small else SHAPES
    names = [s.strip() for s in args.shapes.split(",")] if args.shapes else list(shapes)
    dtype = {"bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype or ("bf16" if device.startswith("cuda")
                                                                            else "fp32")]
    sizes = [int(x) for x in (args.gen_batch_sizes or ("1,4" if small else "1,8,32,64")).split(",")]
    prompt_len = args.prompt_len or (16 if small else 96)
    new_tokens = args.max_new_tokens or (8 if small else 64)
    seq = args.train_seq or (32 if small else 128)
    steps = args.train_steps or (2 if small else 8)

    results: dict[str, Any] = {"settings": {"device": device, "dtype": str(dtype).removeprefix("torch."),
                                            "small": small, "gen_batch_sizes": sizes, "prompt_len": prompt_len,
                                            "max_new_tokens": new_tokens, "train_batch": args.train_batch,
                                            "train_seq": seq, "train_steps": steps},
                               "models": {}}

    def save() -> None:
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2, default=str))

    started = time.time()
    results["environment"] = env = environment(device)
    print("gpu_check: " + ", ".join(f"{k} {v}" for k, v in env.items()), flush=True)
    save()
    for name in names:
        shape = shapes[name]
        entry: dict[str, Any] = {"shape": shape}
        results["models"][name] = entry
        model = None
        try:
            t0 = time.time()
            model = build_model(shape, device, dtype)
            entry["parameters"] = sum(p.numel() for p in model.parameters())
            entry["build_s"] = time.time() - t0
            print(f"[{name}] {entry['parameters'] / 1e6:.1f}M parameters, {shape['num_hidden_layers']} layers, "
                  f"{str(dtype).removeprefix('torch.')} on {device}; built in {entry['build_s']:.1f} s", flush=True)
            if device.startswith("cuda"):
                torch.cuda.reset_peak_memory_stats()
            entry["generation"] = generation(model, device, sizes, prompt_len, new_tokens, args.gen_repeats)
            for row in entry["generation"]:
                vs = f", {row['vs_batch_1']:.2f}x batch 1" if row["vs_batch_1"] else ""
                print(f"[{name}] generate batch {row['batch_size']:>3}: {row['prompts_per_s']:.2f} prompts/s, "
                      f"{row['tokens_per_s']:.0f} tokens/s ({row['seconds']:.2f} s for {row['new_tokens']} new "
                      f"tokens after {prompt_len}-token prompts{vs})", flush=True)
            if device.startswith("cuda"):
                entry["generation_peak_allocated_mib"] = torch.cuda.max_memory_allocated() / 2**20
            save()
        except Exception as err:  # noqa: BLE001 - record and go on to the next section
            entry["generation_error"] = f"{type(err).__name__}: {err}"
            entry["generation_traceback"] = traceback.format_exc()[-3000:]
            print(f"[{name}] generation FAILED: {entry['generation_error']}", flush=True)
            save()
        try:
            if model is None:
                raise RuntimeError("no model (building it failed)")
            tr = training(model, device, args.train_batch, seq, steps, profile=not args.no_profile)
            entry["training"] = tr
            c = tr["check"]
            print(f"[{name}] RR loss check: plain {c['plain_loss']:.6g}, project {c['project_loss']:.6g}, relative "
                  f"difference {c['rel_diff']:.2g} (tolerance {c['rtol']:g}), gradient relative difference "
                  f"{c['grad_rel_diff']:.2g} -> {'match' if c['match'] else 'MISMATCH'}", flush=True)
            print(f"[{name}] train step (batch {args.train_batch} x {seq}, harmful + retain, LoRA blocks "
                  f"{tr['plan']['lora_blocks']}, targets {tr['plan']['targets']}): plain {tr['plain_step_s'] * 1e3:.1f} "
                  f"ms ({tr['plain_steps_per_s']:.2f} steps/s), project {tr['project_step_s'] * 1e3:.1f} ms "
                  f"({tr['project_steps_per_s']:.2f} steps/s), speed-up {tr['speedup']:.2f}x; target >= "
                  f"{ts.TARGET_RATIO}x: {'met' if tr['target_met'] else 'NOT met'}", flush=True)
            for variant, prof in tr.get("profile", {}).items():
                if isinstance(prof, dict) and "wall_s" in prof:
                    extra = (f", {prof['cuda_kernels']} CUDA kernels, {prof['cuda_kernel_time_s'] * 1e3:.1f} ms of "
                             f"kernel time" if "cuda_kernels" in prof else "")
                    print(f"[{name}] profile {variant} step: {prof['wall_s'] * 1e3:.1f} ms wall under the profiler, "
                          f"{prof['aten_calls']} aten calls{extra}", flush=True)
            for variant, m in tr.get("memory", {}).items():
                print(f"[{name}] peak memory {variant} step: {m['peak_allocated_mib']:.0f} MiB allocated "
                      f"({m['step_peak_over_resident_mib']:.0f} MiB above resident)", flush=True)
        except Exception as err:  # noqa: BLE001
            entry["training_error"] = f"{type(err).__name__}: {err}"
            entry["training_traceback"] = traceback.format_exc()[-3000:]
            print(f"[{name}] training FAILED: {entry['training_error']}", flush=True)
        finally:
            del model
            gc.collect()
            if device.startswith("cuda"):
                tr = entry.get("training", {})
                peaks = [entry.get("generation_peak_allocated_mib", 0.0), tr.get("check_and_timing_peak_allocated_mib", 0.0),
                         *(m["peak_allocated_mib"] for m in tr.get("memory", {}).values()),
                         torch.cuda.max_memory_allocated() / 2**20]
                entry["peak_allocated_mib"] = max(peaks)
                print(f"[{name}] peak CUDA memory allocated: {entry['peak_allocated_mib']:.0f} MiB", flush=True)
                torch.cuda.empty_cache()
                torch.cuda.reset_peak_memory_stats()
            else:
                entry["process_peak_rss_mib"] = ts.peak_rss_mib()
            save()
    results["total_s"] = time.time() - started
    if device.startswith("cuda"):
        results["peak_allocated_mib"] = max([e.get("peak_allocated_mib", 0.0) for e in results["models"].values()] or [0.0])
    else:
        results["process_peak_rss_mib"] = ts.peak_rss_mib()
    failed = [n for n, e in results["models"].items() if "generation_error" in e or "training_error" in e]
    results["ok"] = not failed
    save()
    print(f"gpu_check: done in {results['total_s']:.0f} s; " + (f"FAILED sections in {failed}" if failed else "all sections ran"),
          flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
