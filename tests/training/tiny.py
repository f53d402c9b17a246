"""A tiny Llama and a byte-level BPE tokenizer made on the spot, and the small data sets the tests train on.

Nothing is downloaded: the tokenizer is trained with `tokenizers` on this module's own text, the model
is a randomly initialised LlamaForCausalLM (about 0.1M parameters) built from a LlamaConfig.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]

# The template marks assistant turns with {% generation %} so SFT's assistant_only_loss can find them.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}<|system|>{{ m['content'] }}<|end|>"
    "{% elif m['role'] == 'user' %}<|user|>{{ m['content'] }}<|end|>"
    "{% else %}<|assistant|>{% generation %}{{ m['content'] }}<|end|>{% endgeneration %}{% endif %}"
    "{% endfor %}{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
SPECIAL = ["<pad>", "<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"]

PRETRAIN_TEXTS = [
    "the quick brown fox jumps over the lazy dog.",
    "吾輩は猫である。名前はまだ無い。",
    "tanuki portal trains small models on the cluster.",
    "one two three four five six seven eight nine ten.",
]
SFT_PAIRS = [
    ("日本の首都は?", "東京です。"),
    ("what is two plus two?", "four."),
    ("say hello.", "hello there!"),
    ("好きな動物は?", "たぬきです。"),
]
DPO_ROWS = [
    {
        "prompt": "<|user|>greet me<|end|><|assistant|>",
        "chosen": "hello friend<|end|>",
        "rejected": "go away<|end|>",
    },
    {
        "prompt": "<|user|>日本の首都は?<|end|><|assistant|>",
        "chosen": "東京です。<|end|>",
        "rejected": "知らない。<|end|>",
    },
]


def make_tiny_model(directory: Path) -> Path:
    """Write a tokenizer and a random tiny Llama into ``directory`` and return it."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    corpus = PRETRAIN_TEXTS + [t for pair in SFT_PAIRS for t in pair] + [r[k] for r in DPO_ROWS for k in r]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=384, special_tokens=SPECIAL, initial_alphabet=pre_tokenizers.ByteLevel.alphabet()
    )
    tok.train_from_iterator(corpus * 4, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(directory)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=256,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=[tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|end|>")],
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    import torch

    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(directory)
    return directory


def write_jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def pretrain_rows(copies: int = 8) -> list[dict[str, Any]]:
    return [{"text": t} for t in PRETRAIN_TEXTS] * copies


def sft_rows(copies: int = 4) -> list[dict[str, Any]]:
    return [
        {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}
        for q, a in SFT_PAIRS
    ] * copies


def dpo_rows(copies: int = 4) -> list[dict[str, Any]]:
    return DPO_ROWS * copies


def base_config(
    model_dir: Path, out_dir: Path, train_file: Path, **sections: dict[str, Any]
) -> dict[str, Any]:
    """A CPU/fp32 config for the tiny model; ``sections`` update (one level deep) the defaults."""
    cfg: dict[str, Any] = {
        "model": {"name_or_path": str(model_dir)},
        "data": {"train_files": [str(train_file)]},
        "training": {
            "learning_rate": 5e-3,
            "max_steps": 12,
            "micro_batch_size": 8,
            "logging_steps": 1,
            "max_length": 64,
            "seed": 0,
        },
        "precision": {"dtype": "fp32", "use_cpu": True},
        "output": {"dir": str(out_dir)},
        "checkpoint": {"save_steps": 1000},
        "wandb": {"mode": "disabled"},
    }
    for name, values in sections.items():
        cfg.setdefault(name, {}).update(values)
    return cfg


def write_config(path: Path, cfg: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path


def offline_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    for var in (
        "WANDB_RUN_ID",
        "WANDB_MODE",
        "WANDB_PROJECT",
        "WANDB_DIR",
        "SLURM_JOB_ID",
        "WANDB_RUN_GROUP",
    ):
        env.pop(var, None)
    env.update(
        {
            "HF_HUB_OFFLINE": "1",
            "HF_DATASETS_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
        }
    )
    env.update(extra)
    return env


def run_entry_point(
    module: str, config: Path, env: dict[str, str] | None = None, timeout: float = 240
) -> subprocess.CompletedProcess[str]:
    """``python -m training.<module> --config <config>`` in a fresh process, as on a compute node."""
    return subprocess.run(
        [sys.executable, "-m", f"training.{module}", "--config", str(config)],
        cwd=REPO,
        env=env or offline_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def log_history(checkpoint_dir: Path) -> list[dict[str, Any]]:
    state = json.loads((checkpoint_dir / "trainer_state.json").read_text())
    history: list[dict[str, Any]] = state["log_history"]
    return history
