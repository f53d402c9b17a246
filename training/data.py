"""Local JSONL/Parquet data sets: plain text (pretraining), chat messages (SFT), preference pairs (DPO)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from training.config import ConfigError, RunConfig

if TYPE_CHECKING:
    from datasets import Dataset
    from transformers import PreTrainedTokenizerBase


def load_files(files: Sequence[str], key: str, source: str | None = None) -> Dataset:
    """Rows of every file, in order; all files of one list must share a format (JSON lines or Parquet)."""
    from datasets import load_dataset

    builders = {"json" if f.endswith((".jsonl", ".json")) else "parquet" for f in files}
    if len(builders) != 1:
        raise ConfigError(key, "mixes JSON and Parquet files; use one format per list", source)
    try:
        dataset = load_dataset(builders.pop(), data_files=list(files), split="train")
    except Exception as exc:  # datasets raises many types for a malformed file
        raise ConfigError(
            key, f"cannot read {', '.join(files)}: {type(exc).__name__}: {exc}", source
        ) from exc
    if len(dataset) == 0:
        raise ConfigError(key, "holds no rows", source)
    return dataset


def require_columns(
    dataset: Dataset, alternatives: Sequence[Sequence[str]], key: str, source: str | None
) -> None:
    columns = set(dataset.column_names)
    if any(set(option) <= columns for option in alternatives):
        return
    wanted = " or ".join("+".join(option) for option in alternatives)
    raise ConfigError(
        key, f"rows need the field(s) {wanted}; found {', '.join(sorted(columns)) or 'none'}", source
    )


def load_splits(cfg: RunConfig, alternatives: Sequence[Sequence[str]]) -> tuple[Dataset, Dataset | None]:
    train = load_files(cfg.data.train_files, "data.train_files", cfg.source)
    require_columns(train, alternatives, "data.train_files", cfg.source)
    if cfg.data.max_samples is not None and cfg.data.max_samples < len(train):
        train = train.select(range(cfg.data.max_samples))
    evaluation = None
    if cfg.data.eval_files:
        evaluation = load_files(cfg.data.eval_files, "data.eval_files", cfg.source)
        require_columns(evaluation, alternatives, "data.eval_files", cfg.source)
    return train, evaluation


def tokenize_text(
    dataset: Dataset, tokenizer: PreTrainedTokenizerBase, text_field: str, max_length: int, packing: bool
) -> Dataset:
    """Causal-LM examples: each document ends with EOS; packed into max_length blocks or truncated."""
    eos = tokenizer.eos_token_id
    bos = tokenizer.bos_token_id

    def encode(batch: dict[str, list[Any]]) -> dict[str, list[list[int]]]:
        ids = tokenizer(batch[text_field], add_special_tokens=False)["input_ids"]
        prefix = [bos] if bos is not None and bos != eos else []
        docs = [prefix + list(x) + ([eos] if eos is not None else []) for x in ids]
        if not packing:
            return {"input_ids": [d[:max_length] for d in docs]}
        flat = [t for d in docs for t in d]
        blocks = [flat[i : i + max_length] for i in range(0, len(flat), max_length)]
        return {"input_ids": [b for b in blocks if len(b) > 1]}

    return dataset.map(encode, batched=True, remove_columns=dataset.column_names, desc="Tokenizing")


class CausalLMCollator:
    """Right-pads input_ids; labels are the inputs with padding set to -100 (so an EOS used as pad still counts)."""

    def __init__(self, pad_token_id: int) -> None:
        self.pad_token_id = pad_token_id

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        longest = max(len(f["input_ids"]) for f in features)
        input_ids = torch.full((len(features), longest), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(features), longest), dtype=torch.long)
        for i, f in enumerate(features):
            n = len(f["input_ids"])
            input_ids[i, :n] = torch.tensor(f["input_ids"], dtype=torch.long)
            mask[i, :n] = 1
        labels = input_ids.masked_fill(mask == 0, -100)
        return {"input_ids": input_ids, "attention_mask": mask, "labels": labels}
