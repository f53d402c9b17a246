"""Causal-LM pretraining (or continued pretraining) on plain text: ``python -m training.pretrain --config run.yaml``.

Rows need a text field (``data.text_field``, default ``text``). Each document ends with EOS; with
``data.packing`` documents are concatenated into ``training.max_length`` blocks, else each is truncated.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from training.config import RunConfig
from training.runner import RunResult, cli, run_training, training_arguments

if TYPE_CHECKING:
    from transformers import Trainer


def build_trainer(cfg: RunConfig, report_to: list[str]) -> Trainer:
    from transformers import Trainer, TrainingArguments

    from training.data import CausalLMCollator, load_splits, tokenize_text
    from training.modeling import load_model, load_tokenizer, lora_config

    tokenizer = load_tokenizer(cfg)
    train, evaluation = load_splits(cfg, [[cfg.data.text_field]])
    tokenize = [cfg.data.text_field, cfg.training.max_length, cfg.data.packing]
    train = tokenize_text(train, tokenizer, *tokenize)  # type: ignore[arg-type]  # (str, int, bool) as listed
    if evaluation is not None:
        evaluation = tokenize_text(evaluation, tokenizer, *tokenize)  # type: ignore[arg-type]  # as above
    model = load_model(cfg)
    peft = lora_config(cfg)
    if peft is not None:
        from peft import get_peft_model

        model = get_peft_model(model, peft)  # type: ignore[assignment]  # a PeftModel wraps and forwards to it
    args = TrainingArguments(**training_arguments(cfg, report_to, evaluation is not None))
    return Trainer(
        model=model,
        args=args,
        train_dataset=train,
        eval_dataset=evaluation,
        data_collator=CausalLMCollator(tokenizer.pad_token_id),
        processing_class=tokenizer,
    )


def run(cfg: RunConfig) -> RunResult:
    return run_training(cfg, build_trainer)


def main(argv: Sequence[str] | None = None) -> int:
    return cli("pretrain", run, argv)


if __name__ == "__main__":
    sys.exit(main())
