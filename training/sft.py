"""Supervised fine-tuning on chat data with TRL's SFTTrainer: ``python -m training.sft --config run.yaml``.

Rows hold ``messages`` (a list of {role, content}) rendered with the tokenizer's chat template (or
``tokenizer.chat_template``), or ``prompt``/``completion``. ``lora.enabled`` trains a LoRA adapter
(the output directory then holds the adapter); ``data.assistant_only_loss`` needs a template with
``{% generation %}`` markers.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from training.config import ConfigError, RunConfig
from training.runner import RunResult, cli, run_training, training_arguments

if TYPE_CHECKING:
    from transformers import Trainer


def build_trainer(cfg: RunConfig, report_to: list[str]) -> Trainer:
    from trl import SFTConfig, SFTTrainer

    from training.data import load_splits
    from training.modeling import load_model, load_tokenizer, lora_config

    tokenizer = load_tokenizer(cfg)
    train, evaluation = load_splits(cfg, [["messages"], ["prompt", "completion"]])
    if "messages" in train.column_names and not tokenizer.chat_template:
        raise ConfigError(
            "tokenizer.chat_template",
            "the tokenizer has no chat template to render `messages`; set one",
            cfg.source,
        )
    if cfg.data.assistant_only_loss and "{% generation %}" not in (tokenizer.chat_template or "").replace(
        "{%- generation %}", "{% generation %}"
    ):
        raise ConfigError(
            "data.assistant_only_loss", "needs a chat template with {% generation %} markers", cfg.source
        )
    args = SFTConfig(
        **training_arguments(cfg, report_to, evaluation is not None),
        max_length=cfg.training.max_length,
        packing=cfg.data.packing,
        assistant_only_loss=cfg.data.assistant_only_loss,
    )
    return SFTTrainer(
        model=load_model(cfg),
        args=args,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        peft_config=lora_config(cfg),
    )


def run(cfg: RunConfig) -> RunResult:
    return run_training(cfg, build_trainer)


def main(argv: Sequence[str] | None = None) -> int:
    return cli("sft", run, argv)


if __name__ == "__main__":
    sys.exit(main())
