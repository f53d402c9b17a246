"""Direct preference optimisation with TRL's DPOTrainer: ``python -m training.dpo --config run.yaml``.

Rows hold ``prompt``, ``chosen`` and ``rejected`` (strings, or message lists for chat data). Without
LoRA the reference model is a second copy loaded from ``model.name_or_path``; with LoRA the base model
with the adapter disabled is the reference.
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
    from trl import DPOConfig, DPOTrainer

    from training.data import load_splits
    from training.modeling import load_model, load_tokenizer, lora_config

    tokenizer = load_tokenizer(cfg)
    train, evaluation = load_splits(cfg, [["prompt", "chosen", "rejected"]])
    args = DPOConfig(
        **training_arguments(cfg, report_to, evaluation is not None),
        max_length=cfg.training.max_length,
        beta=cfg.dpo.beta,
        loss_type=[cfg.dpo.loss_type],
    )
    peft = lora_config(cfg)
    return DPOTrainer(
        model=load_model(cfg),
        ref_model=None if peft is not None else load_model(cfg),
        args=args,
        train_dataset=train,
        eval_dataset=evaluation,
        processing_class=tokenizer,
        peft_config=peft,
    )


def run(cfg: RunConfig) -> RunResult:
    return run_training(cfg, build_trainer)


def main(argv: Sequence[str] | None = None) -> int:
    return cli("dpo", run, argv)


if __name__ == "__main__":
    sys.exit(main())
