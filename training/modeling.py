"""Load the tokenizer and the model named by a run's config, and build its LoRA config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from training.config import ConfigError, RunConfig

if TYPE_CHECKING:
    import torch
    from peft import LoraConfig
    from transformers import PreTrainedModel, PreTrainedTokenizerBase


def load_tokenizer(cfg: RunConfig, padding_side: str | None = None) -> PreTrainedTokenizerBase:
    from transformers import AutoTokenizer

    path = cfg.tokenizer.name_or_path or cfg.model.name_or_path
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            path, revision=cfg.model.revision, trust_remote_code=cfg.model.trust_remote_code
        )
    except (OSError, ValueError) as exc:
        key = "tokenizer.name_or_path" if cfg.tokenizer.name_or_path else "model.name_or_path"
        raise ConfigError(key, f"cannot load a tokenizer from {path}: {exc}", cfg.source) from exc
    template = cfg.tokenizer.chat_template
    if template:
        tokenizer.chat_template = template if "{" in template else Path(template).read_text(encoding="utf-8")
    if cfg.tokenizer.pad_token is not None:
        if cfg.tokenizer.pad_token not in tokenizer.get_vocab():
            raise ConfigError(
                "tokenizer.pad_token", f"{cfg.tokenizer.pad_token!r} is not in the vocabulary", cfg.source
            )
        tokenizer.pad_token = cfg.tokenizer.pad_token
    elif tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if padding_side is not None:
        tokenizer.padding_side = padding_side
    return tokenizer


def load_dtype(cfg: RunConfig) -> torch.dtype:
    """Weights in bf16 for bf16 runs; fp32 master weights for fp16 (AMP's grad scaler needs them) and fp32."""
    import torch

    return torch.bfloat16 if cfg.precision.dtype == "bf16" else torch.float32


def is_adapter_dir(path: str) -> bool:
    return (Path(path) / "adapter_config.json").is_file()


def load_model(cfg: RunConfig) -> PreTrainedModel:
    """The model at ``model.name_or_path``; a saved LoRA adapter directory is loaded onto its base and merged."""
    from transformers import AutoModelForCausalLM

    path = cfg.model.name_or_path
    kwargs: dict[str, Any] = {
        "dtype": load_dtype(cfg),
        "revision": cfg.model.revision,
        "trust_remote_code": cfg.model.trust_remote_code,
    }
    if cfg.model.attn_implementation:
        kwargs["attn_implementation"] = cfg.model.attn_implementation
    try:
        if is_adapter_dir(path):
            from peft import PeftModel

            base_path = json.loads((Path(path) / "adapter_config.json").read_text())[
                "base_model_name_or_path"
            ]
            base = AutoModelForCausalLM.from_pretrained(base_path, **kwargs)
            merged: PreTrainedModel = PeftModel.from_pretrained(base, path).merge_and_unload()
            merged.config._name_or_path = path
            return merged
        model: PreTrainedModel = AutoModelForCausalLM.from_pretrained(path, **kwargs)
        return model
    except (OSError, ValueError, KeyError) as exc:
        raise ConfigError(
            "model.name_or_path", f"cannot load a causal LM from {path}: {exc}", cfg.source
        ) from exc


def lora_config(cfg: RunConfig) -> LoraConfig | None:
    if not cfg.lora.enabled:
        return None
    from peft import LoraConfig

    targets = cfg.lora.target_modules
    return LoraConfig(
        r=cfg.lora.r,
        lora_alpha=cfg.lora.alpha,
        lora_dropout=cfg.lora.dropout,
        target_modules="all-linear" if targets == ["all-linear"] else list(targets),
        modules_to_save=cfg.lora.modules_to_save,
        task_type="CAUSAL_LM",
    )
