"""Generation speed: the harness's batched generation against one ``model.generate`` per prompt.

Both variants get the same XSTest safe prompts, rendered the same way (``render_prompt``, the
chat template of the undefended model), and the same settings (greedy, ``--max-new-tokens``, the
model's own EOS, ``inference_mode``):

batched  ``harness.generation.generate_texts``: prompts sorted by length, left-padded batches of
         ``--batch-size`` (the harness default, 16) with a KV cache.
plain    a loop of ``model.generate`` calls, one unpadded prompt each.

To keep a busy, shared machine's noise out of the ratio, the two variants are interleaved: the
length-sorted prompts are cut into the harness's own batches, and each batch is generated both
ways back to back (alternating which goes first). Prompts/s and tokens/s are totals over all
prompts; the per-batch ratios' median is printed beside them. Generated tokens are counted exactly
from the ``generate`` outputs (up to and including EOS). Then the harness's throughput is measured
at each ``--batch-sizes`` value over the same prompts.

    python bench/eval_speed.py                              # default model, 64 prompts, 64 tokens
    python bench/eval_speed.py --quick --model tiny-random-llama
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

TARGET_SPEEDUP = 8.0
TARGET_IDENTICAL = 0.95


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


class GenerateRecorder:
    """Wraps ``model.generate`` (an instance attribute, nothing else changes) to count new tokens."""

    def __init__(self, model: Any, eos: Any):
        self.model = model
        self.inner = model.generate
        eos = eos if isinstance(eos, (list, tuple)) else [eos]
        self.eos = {int(e) for e in eos if e is not None}
        self.tokens = 0  # useful generated tokens (up to and including EOS)
        self.slots = 0  # generated row-steps computed (rows that already ended keep being computed)
        self.prompt_tokens = 0  # real prompt tokens
        self.prompt_slots = 0  # prompt positions computed, padding included
        model.generate = self  # shadows the class method for this instance only

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        out = self.inner(*args, **kwargs)
        ids = kwargs.get("input_ids") if "input_ids" in kwargs else args[0]
        width = ids.shape[1]
        self.tokens += count_new_tokens(out[:, width:].tolist(), self.eos)
        self.slots += out[:, width:].numel()
        attn = kwargs.get("attention_mask")
        self.prompt_tokens += int(attn.sum()) if attn is not None else ids.numel()
        self.prompt_slots += ids.numel()
        return out

    def snapshot(self) -> tuple[int, int, int, int]:
        return self.tokens, self.slots, self.prompt_tokens, self.prompt_slots

    def close(self) -> None:
        del self.model.generate


def count_new_tokens(rows: list[list[int]], eos: set[int]) -> int:
    """Generated tokens per row up to and including the first EOS (padding after it not counted)."""
    total = 0
    for row in rows:
        n = len(row)
        for i, t in enumerate(row):
            if t in eos:
                n = i + 1
                break
        total += n
    return total


def plain_generate(defended: Any, prompts: list[str], max_new_tokens: int) -> list[str]:
    """The plain approach: one ``model.generate`` per prompt, no padding, same greedy settings."""
    import torch

    tok, model = defended.tokenizer, defended.model
    device = next(model.parameters()).device
    texts = []
    with defended.hooks(), torch.inference_mode():
        for p in prompts:
            enc = tok(p, return_tensors="pt", add_special_tokens=False).to(device)
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False,
                                 pad_token_id=tok.pad_token_id, temperature=None, top_p=None, top_k=None)
            texts.append(tok.decode(out[0, enc["input_ids"].shape[1]:], skip_special_tokens=True))
    return texts


def batched_generate(defended: Any, prompts: list[str], max_new_tokens: int, batch_size: int) -> list[str]:
    """The harness's path, ``generate_texts``; responses back in prompt order."""
    from harness.generation import GenerationSettings, generate_texts

    settings = GenerationSettings(max_new_tokens=max_new_tokens, batch_size=batch_size)
    texts = [""] * len(prompts)
    for batch in generate_texts(defended, prompts, settings, progress=False):
        for i, text in batch:
            texts[i] = text
    return texts


def harness_batches(tok: Any, prompts: list[str], batch_size: int) -> list[list[int]]:
    """The batches ``generate_texts`` forms: indices sorted by (prompt length, index), cut every ``batch_size``."""
    lengths = [len(tok(p, add_special_tokens=False).input_ids) for p in prompts]
    order = sorted(range(len(prompts)), key=lambda i: (lengths[i], i))
    return [order[i:i + batch_size] for i in range(0, len(order), batch_size)]


def timed(recorder: GenerateRecorder, fn, *args) -> tuple[Any, float, int]:
    before = recorder.snapshot()
    t0 = time.perf_counter()
    out = fn(*args)
    secs = time.perf_counter() - t0
    recorder.last = [a - b for a, b in zip(recorder.snapshot(), before)]
    return out, secs, recorder.last[0]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="smollm2-135m-instruct", help="a model preset, folder or hub id")
    p.add_argument("--data-dir", default=os.environ.get("HARNESS_DATA_DIR") or str(REPO.parent / "shared" / "data"))
    p.add_argument("--n", type=int, default=64, help="XSTest safe prompts")
    p.add_argument("--select", choices=["first", "seeded"], default="first",
                   help="the first N prompts, or a seeded random N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--max-new-tokens", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=None,
                   help="the harness batch size compared with the plain loop (default: GenerationSettings')")
    p.add_argument("--batch-sizes", default="1,4,8,16,32,64", help="comma-separated sizes for the throughput sweep")
    p.add_argument("--device", default=None)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--quick", action="store_true", help="a small smoke run: 8 prompts, 8 tokens, sizes 1,4,8")
    p.add_argument("--out", type=Path, help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    if args.quick:
        args.n, args.max_new_tokens = min(args.n, 8), min(args.max_new_tokens, 8)
        args.batch_sizes = "1,4,8"

    import torch

    from harness.data import DataResolver
    from harness.defense import DefendedModel
    from harness.generation import GenerationSettings, render_prompt
    from harness.models import load_model
    from harness.plugins import plugins

    if args.threads:
        torch.set_num_threads(args.threads)
    batch_size = args.batch_size or GenerationSettings().batch_size
    if args.quick:
        batch_size = min(batch_size, 4)
    sizes = [int(x) for x in args.batch_sizes.split(",") if x.strip()]
    load_before = load_average()

    reg = plugins()
    samples = reg.benchmarks.get("xstest-safe").samples(DataResolver(args.data_dir))
    if args.select == "seeded":
        samples = random.Random(args.seed).sample(samples, min(args.n, len(samples)))
    else:
        samples = samples[: args.n]
    t0 = time.time()
    loaded = load_model(args.model, presets={n: e.obj for n, e in reg.models.items.items()}, device=args.device)
    defended = DefendedModel(loaded.model, loaded.tokenizer)
    prompts = [render_prompt(defended, s.messages, s.prefill) for s in samples]
    tok = loaded.tokenizer
    eos = loaded.model.generation_config.eos_token_id
    if eos is None:
        eos = tok.eos_token_id
    recorder = GenerateRecorder(loaded.model, eos)
    prompt_tokens = [len(tok(p, add_special_tokens=False).input_ids) for p in prompts]
    print(f"eval_speed: model {args.model} ({loaded.info.get('parameters', 0) / 1e6:.1f}M parameters, "
          f"{loaded.info.get('dtype')}, {loaded.info.get('device')}, torch threads {torch.get_num_threads()}); "
          f"loaded in {time.time() - t0:.1f} s")
    print(f"prompts: {len(prompts)} XSTest safe ({args.select}), {min(prompt_tokens)}-{max(prompt_tokens)} tokens "
          f"(median {statistics.median(prompt_tokens):g}); greedy, {args.max_new_tokens} new tokens; harness batch "
          f"size {batch_size}")

    plain_generate(defended, prompts[:1], 2)  # warm-up (first-call allocations), both paths
    batched_generate(defended, prompts[:2], 2, 2)

    # 1. interleaved: each harness batch both ways, alternating the order
    batches = harness_batches(tok, prompts, batch_size)
    plain_texts: list[str] = [""] * len(prompts)
    batch_texts: list[str] = [""] * len(prompts)
    totals = {"plain": [0.0, 0], "batched": [0.0, 0]}
    work = {"plain": [0, 0, 0, 0], "batched": [0, 0, 0, 0]}  # tokens, slots, prompt tokens, prompt slots
    ratios = []
    for k, idx in enumerate(batches):
        chunk = [prompts[i] for i in idx]
        spent = {}
        for variant in (("batched", "plain") if k % 2 == 0 else ("plain", "batched")):
            if variant == "plain":
                texts, secs, toks = timed(recorder, plain_generate, defended, chunk, args.max_new_tokens)
                for i, t in zip(idx, texts):
                    plain_texts[i] = t
            else:
                texts, secs, toks = timed(recorder, batched_generate, defended, chunk, args.max_new_tokens,
                                          batch_size)
                for i, t in zip(idx, texts):
                    batch_texts[i] = t
            totals[variant][0] += secs
            totals[variant][1] += toks
            work[variant] = [a + b for a, b in zip(work[variant], recorder.last)]
            spent[variant] = secs
        ratios.append(spent["plain"] / spent["batched"])
        print(f"  batch {k + 1}/{len(batches)} ({len(idx)} prompts): plain {spent['plain']:.1f} s, "
              f"batched {spent['batched']:.1f} s, ratio {ratios[-1]:.2f}x", flush=True)
    n = len(prompts)
    fig: dict[str, Any] = {}
    for variant, (secs, toks) in totals.items():
        w = work[variant]
        fig[variant] = {"seconds": secs, "prompts_per_s": n / secs, "tokens": toks, "tokens_per_s": toks / secs,
                        "decode_slots": w[1], "useful_decode_share": w[0] / max(w[1], 1),
                        "prompt_padding_share": 1 - w[2] / max(w[3], 1)}
    speedup = totals["plain"][0] / totals["batched"][0]
    same = sum(a == b for a, b in zip(plain_texts, batch_texts))
    print(f"plain (one model.generate per prompt): {fig['plain']['prompts_per_s']:.3f} prompts/s, "
          f"{fig['plain']['tokens_per_s']:.1f} tokens/s ({fig['plain']['tokens']} tokens in {totals['plain'][0]:.1f} s)")
    print(f"batched (harness generate_texts, batch {batch_size}): {fig['batched']['prompts_per_s']:.3f} prompts/s, "
          f"{fig['batched']['tokens_per_s']:.1f} tokens/s ({fig['batched']['tokens']} tokens in "
          f"{totals['batched'][0]:.1f} s)")
    print(f"batched work: {fig['batched']['useful_decode_share']:.1%} of the {fig['batched']['decode_slots']} "
          f"generated row-steps are useful tokens (rows that ended wait for the longest), "
          f"{fig['batched']['prompt_padding_share']:.1%} of prompt positions are padding")
    print(f"speed-up batched/plain: {speedup:.2f}x (median of per-batch ratios {statistics.median(ratios):.2f}x); "
          f"target >= {TARGET_SPEEDUP:g}x: {'met' if speedup >= TARGET_SPEEDUP else 'NOT met'}")
    print(f"identical responses: {same}/{n} ({same / n:.1%}); target >= {TARGET_IDENTICAL:.0%}: "
          f"{'met' if same / n >= TARGET_IDENTICAL else 'NOT met'}")
    diffs = [i for i in range(n) if plain_texts[i] != batch_texts[i]]
    for i in diffs[:3]:
        a, b = plain_texts[i], batch_texts[i]
        j = next((j for j in range(min(len(a), len(b))) if a[j] != b[j]), min(len(a), len(b)))
        print(f"  differs at prompt {i} from character {j}: plain {a[j:j + 40]!r} / batched {b[j:j + 40]!r}")

    # 2. the harness's throughput against batch size (all prompts at each size)
    print("throughput vs batch size (harness generate_texts, all prompts; one pass, not interleaved: 'vs plain' "
          "divides by the plain rate above, so a change in machine load between them shows up in it)")
    print(f"  {'batch':>5} {'seconds':>8} {'prompts/s':>10} {'tokens/s':>9} {'vs plain':>9} {'identical':>10} "
          f"{'useful':>7}  load average")
    sweep = []
    plain_rate = fig["plain"]["prompts_per_s"]
    for size in sizes:
        texts, secs, toks = timed(recorder, batched_generate, defended, prompts, args.max_new_tokens, size)
        same_b = sum(a == b for a, b in zip(plain_texts, texts))
        row = {"batch_size": size, "seconds": secs, "prompts_per_s": n / secs, "tokens": toks,
               "tokens_per_s": toks / secs, "vs_plain": n / secs / plain_rate, "identical": same_b / n,
               "useful_decode_share": recorder.last[0] / max(recorder.last[1], 1), "load_average": load_average()}
        sweep.append(row)
        print(f"  {size:>5} {secs:>8.1f} {row['prompts_per_s']:>10.3f} {row['tokens_per_s']:>9.1f} "
              f"{row['vs_plain']:>8.2f}x {same_b:>5}/{n:<4} {row['useful_decode_share']:>7.1%}  {row['load_average']}",
              flush=True)
    recorder.close()
    load_after = load_average()
    print(f"load average (1/5/15 min): before {load_before}, after {load_after}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({
            "model": args.model, "n": n, "max_new_tokens": args.max_new_tokens, "batch_size": batch_size,
            **fig, "speedup": speedup, "speedup_per_batch_median": statistics.median(ratios),
            "speedup_target_met": speedup >= TARGET_SPEEDUP, "identical": same / n,
            "identical_target_met": same / n >= TARGET_IDENTICAL, "sweep": sweep,
            "load_average": [load_before, load_after]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
