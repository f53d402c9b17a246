"""Write a real W&B offline run the way transformers' WandbCallback logs (run as a separate process:
`python -m tests.metrics.make_run <dir> <run id> <steps> [<spike step> [<NaN step>]]`)."""

from __future__ import annotations

import math
import os
import sys


def main(directory: str, run_id: str, steps: int, spike_at: int | None, nan_at: int | None = None) -> None:
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_DISABLE_GIT", "true")
    import wandb

    run = wandb.init(mode="offline", dir=directory, id=run_id, project="tanuki-test", config={"lr": 1e-4})
    tokens = 0
    for step in range(1, steps + 1):
        tokens += 4096
        loss = 3.0 * math.exp(-step / 200) + 1.2 + 0.01 * math.sin(step)
        if step == spike_at:
            loss = 42.0
        if nan_at is not None and step >= nan_at:
            loss = math.nan  # diverged: every later loss is NaN, as a real run's would be
        run.log(
            {
                "train/loss": loss,
                "train/learning_rate": 1e-4 * min(1.0, step / 20),
                "train/grad_norm": 0.5 + 0.1 * math.cos(step),
                "train/epoch": step / steps,
                "train/global_step": step,
                "train/num_input_tokens_seen": tokens,
            }
        )
    run.summary["eval/score"] = 7.03
    run.finish()


if __name__ == "__main__":
    spike = int(sys.argv[4]) if len(sys.argv) > 4 and sys.argv[4] != "-" else None
    nan = int(sys.argv[5]) if len(sys.argv) > 5 else None
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), spike, nan)
