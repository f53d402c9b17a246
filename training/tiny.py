"""A tiny Llama and a byte-level BPE tokenizer made on the spot, and small data sets that it memorises.

Nothing is downloaded: the tokenizer is trained with `tokenizers` on this module's own text and the model
is a randomly initialised LlamaForCausalLM (about 0.1M parameters) built from a LlamaConfig. The tests
train on it, and the portal's dev cluster gets a copy for smoke runs (demo/assets.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

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
        tokenizer_object=tok,
        bos_token="<s>",  # noqa: S106 - special tokens, not passwords
        eos_token="</s>",  # noqa: S106
        pad_token="<pad>",  # noqa: S106
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
        eos_token_id=[tokenizer.eos_token_id, tokenizer.convert_tokens_to_ids("<|end|>")],  # type: ignore[list-item]
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
