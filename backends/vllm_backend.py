"""The vLLM backend: hand generation to a vLLM engine (for large runs on a GPU machine).

vLLM is not a dependency of the harness and is imported only when this backend is used
(``pip install vllm``). vLLM loads weights from disk, so the defended model (a training
defense's adapters already merged) is saved as safetensors into a temporary folder under the
cache (``$HARNESS_CACHE_DIR/vllm``, removed when the backend closes or the process exits), and
the engine loads that. The transformers copy stays loaded for lm-eval's capability step, hence
the modest default ``gpu_memory_utilization``.

What vLLM cannot reproduce is refused: defenses that act through activation hooks while the
model generates (``DefendedModel.hooks``, or forward hooks left on the model's modules) and
unmerged adapters. The prompts are the harness's own rendered text, passed as token ids
(tokenised without added special tokens, as the transformers backend does). Greedy decoding
is ``SamplingParams(temperature=0)``; outputs can differ slightly from transformers' (other
kernels and batching), so the response cache keeps them apart.
"""

from __future__ import annotations

import contextlib
import gc
import shutil
import tempfile
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from tqdm.auto import tqdm

from harness import hookimpl
from harness.backend import Backend
from harness.errors import HarnessError

INSTALL = "pip install vllm"


def import_vllm() -> Any:
    """The vllm module, or a HarnessError that names the install command."""
    try:
        import vllm
    except ImportError as err:
        raise HarnessError(
            f"the vllm backend needs the vllm package, which could not be imported ({err}). Install it with "
            f"`{INSTALL}` (a CUDA machine; see https://docs.vllm.ai), or use --backend transformers."
        ) from None
    return vllm


def hooks_reason(defended) -> str | None:
    """Why ``defended`` acts through activation hooks at generation time, or None when it does not."""
    if defended.hooks is not contextlib.nullcontext:
        return "it supplies DefendedModel.hooks (activation hooks entered while generating)"
    for name, module in defended.model.named_modules():
        if module._forward_hooks or module._forward_pre_hooks:
            return f"forward hooks are registered on the model (module {name or '<root>'!r})"
    return None


@dataclass
class VLLMConfig:
    tensor_parallel_size: int = 1  # GPUs the engine shards the model over
    gpu_memory_utilization: float = 0.5  # share of GPU memory for vLLM; the transformers copy stays loaded
    max_model_len: int = 0  # context length cap (0: the model's own)
    chunk_size: int = 256  # prompts per engine call; records are appended after each
    dtype: str = "auto"  # weights dtype in vLLM (auto: the saved model's)
    enforce_eager: bool = False  # skip CUDA graph capture (faster start, slower decoding)
    seed: int = 0  # the engine's sampling seed (greedy suites do not sample)


class VLLMBackend(Backend):
    name = "vllm"
    description = ("a vLLM engine on the defended model saved to disk (needs `pip install vllm` and a GPU); "
                   "refuses defenses with activation hooks")
    install = INSTALL
    Config = VLLMConfig

    def __init__(self, config: Any = None):
        super().__init__(config)
        self._llm: Any = None
        self._model: Any = None  # the defended model the engine was built from
        self._cleanup: weakref.finalize | None = None

    def require(self) -> None:
        import_vllm()

    def check(self, defended) -> None:
        reason = hooks_reason(defended)
        if reason:
            raise HarnessError(
                f"the vllm backend cannot run this defense: {reason}, and a vLLM engine only sees the weights "
                "saved to disk. Use --backend transformers for defenses that steer activations while generating."
            )
        if hasattr(defended.model, "peft_config"):
            raise HarnessError(
                "the vllm backend needs plain weights, but the defended model still carries adapters; the "
                "defense should merge them (model.merge_and_unload()), or use --backend transformers."
            )

    def _engine(self, defended) -> Any:
        if self._llm is not None and self._model is defended.model:
            return self._llm
        self.check(defended)
        vllm = import_vllm()
        self.close()
        from harness.data import cache_dir

        root = cache_dir() / "vllm"
        root.mkdir(parents=True, exist_ok=True)
        folder = Path(tempfile.mkdtemp(prefix="defended-", dir=root))
        self._cleanup = weakref.finalize(self, shutil.rmtree, str(folder), True)
        defended.model.save_pretrained(folder, safe_serialization=True)
        defended.tokenizer.save_pretrained(folder)
        cfg = self.config
        kwargs: dict[str, Any] = dict(model=str(folder), tokenizer=str(folder), dtype=cfg.dtype, seed=cfg.seed,
                                      tensor_parallel_size=cfg.tensor_parallel_size,
                                      gpu_memory_utilization=cfg.gpu_memory_utilization,
                                      enforce_eager=cfg.enforce_eager)
        if cfg.max_model_len:
            kwargs["max_model_len"] = cfg.max_model_len
        self._llm = vllm.LLM(**kwargs)
        self._model = defended.model
        return self._llm

    def sampling_params(self, settings) -> Any:
        vllm = import_vllm()
        if settings.do_sample:
            return vllm.SamplingParams(temperature=settings.temperature, top_p=settings.top_p,
                                       max_tokens=settings.max_new_tokens)
        return vllm.SamplingParams(temperature=0, max_tokens=settings.max_new_tokens)

    def generate(self, defended, prompts, settings, *, desc="generating", progress=True) -> Iterator[list[tuple[int, str]]]:
        llm = self._engine(defended)
        params = self.sampling_params(settings)
        tok = defended.tokenizer
        step = max(1, self.config.chunk_size)
        bar = tqdm(total=len(prompts), desc=desc, disable=not progress, unit="prompt")
        for start in range(0, len(prompts), step):
            idx = list(range(start, min(start + step, len(prompts))))
            inputs = [{"prompt_token_ids": tok(prompts[i], add_special_tokens=False).input_ids} for i in idx]
            outputs = llm.generate(inputs, params, use_tqdm=False)
            bar.update(len(idx))
            yield [(i, out.outputs[0].text) for i, out in zip(idx, outputs)]
        bar.close()

    def close(self) -> None:
        if self._llm is not None:
            self._llm = None
            self._model = None
            gc.collect()
            with contextlib.suppress(Exception):
                import torch

                torch.cuda.empty_cache()
        if self._cleanup is not None:
            self._cleanup()  # removes the saved weights
            self._cleanup = None


@hookimpl
def register_backends(register):
    register(VLLMBackend)
