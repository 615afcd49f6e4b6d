"""Loading causal LMs: presets by name, Hugging Face ids, local folders and GGUF files.

GGUF weights are de-quantised to float32 by transformers, which takes ~20 s for the default
model; the result is cached as safetensors keyed by the GGUF file's sha256, so later loads
take well under a second.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from harness.data import cache_dir, sha256_file
from harness.defaults import DEFAULT_MODEL
from harness.errors import HarnessError


@dataclass(frozen=True)
class ModelPreset:
    """A named model. ``resolve`` returns a local folder or a hub id, fetching or converting once."""

    name: str
    description: str
    resolve: Callable[[Path], str]
    source: str = ""  # where the weights come from, for humans
    gpu_only: bool = False


@dataclass
class LoadedModel:
    model: Any
    tokenizer: Any
    name: str
    info: dict[str, Any] = field(default_factory=dict)  # id, revision or file hash: manifest


def pick_device() -> tuple[str, Any]:
    """CUDA in bf16 when present (half of float32's memory), else CPU in float32."""
    import torch

    if torch.cuda.is_available():
        return "cuda", torch.bfloat16
    return "cpu", torch.float32


def convert_gguf(folder: str | Path, gguf_file: str, name: str) -> Path:
    """De-quantise a GGUF file once and cache it as a safetensors folder; returns the folder."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = Path(folder) / gguf_file
    if not source.is_file():
        raise HarnessError(f"model {name!r}: GGUF file {str(source)!r} not found.")
    digest = sha256_file(source)
    target = cache_dir() / "models" / f"{name}-{digest[:12]}"
    if (target / "harness_source.json").is_file():
        return target
    tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=gguf_file)
    model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=gguf_file)
    # The de-quantised weights are plain float32; drop the GGUF marker so they can be saved.
    model.config.quantization_config = None
    del model.config.quantization_config
    model.hf_quantizer = None
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{name}-"))
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "harness_source.json").write_text(
        json.dumps({"gguf_file": gguf_file, "sha256": digest, "source": str(source)})
    )
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)
    return target


def load_model(
    spec: str,
    *,
    presets: dict[str, ModelPreset] | None = None,
    device: str | None = None,
    trust_remote_code: bool = False,
    chat_template: str | None = None,
) -> LoadedModel:
    """Load a preset name, a local folder or a hub id, with its tokenizer, ready to generate."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    presets = presets or {}
    auto_device, dtype = pick_device()
    device = device or auto_device
    if spec in presets:
        preset = presets[spec]
        if preset.gpu_only and device == "cpu":
            raise HarnessError(
                f"model preset {spec!r} needs a GPU (it is too large for a CPU run); "
                f"use the default {DEFAULT_MODEL} or run on a CUDA machine."
            )
        location = preset.resolve(cache_dir())
    else:
        location = spec
    try:
        tokenizer = AutoTokenizer.from_pretrained(location, trust_remote_code=trust_remote_code)
        model = AutoModelForCausalLM.from_pretrained(
            location, dtype=dtype, trust_remote_code=trust_remote_code, use_safetensors=True
        )
    except OSError as err:
        known = ", ".join(sorted(presets)) or "(none)"
        raise HarnessError(
            f"could not load model {spec!r}: {err}. Give a model preset ({known}), a local "
            "folder with safetensors weights, or a Hugging Face id that is in the local cache."
        ) from None
    model.to(device).eval()
    check_tokenizer_matches(model, tokenizer, spec)
    if chat_template:
        tokenizer.chat_template = Path(chat_template).read_text()
    if not tokenizer.chat_template:
        raise HarnessError(
            f"model {spec!r} has no chat template, so its prompts cannot be formatted as chats. "
            "Use an instruction-tuned model, or pass --chat-template FILE (a Jinja template)."
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    info = {"spec": spec, "location": str(location)}
    source = Path(location) / "harness_source.json"
    if source.is_file():
        info.update(json.loads(source.read_text()))
    revision = getattr(model.config, "_commit_hash", None)
    if revision:
        info["revision"] = revision
    info["parameters"] = sum(p.numel() for p in model.parameters())
    info["dtype"] = str(dtype).removeprefix("torch.")
    info["device"] = device
    return LoadedModel(model=model, tokenizer=tokenizer, name=spec, info=info)


def check_tokenizer_matches(model: Any, tokenizer: Any, spec: str) -> None:
    """A tokenizer with ids beyond the embedding table would index garbage or crash later."""
    rows = model.get_input_embeddings().weight.shape[0]
    if len(tokenizer) > rows:
        raise HarnessError(
            f"model {spec!r}: the tokenizer has {len(tokenizer)} tokens but the model's embedding "
            f"table has {rows} rows; they do not belong together. Load the tokenizer saved with "
            "the model."
        )
