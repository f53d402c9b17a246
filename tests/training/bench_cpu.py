"""CPU timings of each phase on tiny Llamas: ``python -m tests.training.bench_cpu [--steps N] > table.md``.

Not a test (pytest does not collect it). Each phase runs in its own process, as on the cluster, so the
table shows the process's wall time (imports and model loading included) next to the training time
that Trainer reports. The judge is a local stand-in server, so the evaluation's time is generation
plus plumbing, not a real judge's latency.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.training.test_evaluate import API_KEY, JudgeServer, eval_config
from tests.training.tiny import (
    base_config,
    dpo_rows,
    log_history,
    make_tiny_model,
    offline_env,
    pretrain_rows,
    run_entry_point,
    sft_rows,
    write_config,
    write_jsonl,
)

SIZES = {
    "0.1M (hidden 64, 2 layers)": {},
    "1M (hidden 128, 4 layers)": {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 4},
}


def resize(model_dir: Path, overrides: dict[str, Any]) -> None:
    if not overrides:
        return
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig.from_pretrained(model_dir)
    for k, v in overrides.items():
        setattr(config, k, v)
    LlamaForCausalLM(config).save_pretrained(model_dir)


def phase(
    name: str, module: str, cfg: dict[str, Any], root: Path, env: dict[str, str] | None = None
) -> dict[str, Any]:
    path = write_config(root / f"{name}.yaml", cfg)
    started = time.monotonic()
    proc = run_entry_point(module, path, env, timeout=600)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"{name} failed:\n{proc.stderr[-3000:]}")
    out = Path(cfg["output"]["dir"])
    if module == "evaluate":
        summary = json.loads((out / "summary.json").read_text())
        return {
            "phase": name,
            "steps": f"{summary['counts']['turns']} answers ({summary['generation']['max_new_tokens']} new tokens max) + {summary['counts']['judgments']} judgments",
            "train_s": summary["seconds"]["generation"] + summary["seconds"]["judging"],
            "wall_s": wall,
        }
    run = json.loads((out / "run_summary.json").read_text())
    history = log_history(out / f"checkpoint-{run['global_step']}")
    key = "rewards/margins" if module == "dpo" else "loss"
    values = [h[key] for h in history if key in h]
    return {
        "phase": name,
        "steps": run["global_step"],
        "train_s": run["seconds"],
        "wall_s": wall,
        "first": values[0],
        "last": values[-1],
        "metric": key,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    os.environ.update(offline_env())
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp, JudgeServer() as server:
        for size, overrides in SIZES.items():
            root = Path(tmp) / str(len(rows))
            root.mkdir()
            model = make_tiny_model(root / "model")
            resize(model, overrides)
            pt = write_jsonl(root / "pt.jsonl", pretrain_rows())
            chat = write_jsonl(root / "chat.jsonl", sft_rows())
            pairs = write_jsonl(root / "pairs.jsonl", dpo_rows())
            common = {"max_steps": args.steps}
            save = {"save_steps": args.steps}
            for name, module, cfg in (
                (
                    "pretrain",
                    "pretrain",
                    base_config(
                        model, root / "pt", pt, training=common, checkpoint=save, data={"packing": True}
                    ),
                ),
                ("SFT", "sft", base_config(model, root / "sft", chat, training=common, checkpoint=save)),
                (
                    "SFT-LoRA",
                    "sft",
                    base_config(
                        model,
                        root / "lora",
                        chat,
                        training={**common, "learning_rate": 2e-2},
                        checkpoint=save,
                        lora={"enabled": True},
                    ),
                ),
                (
                    "DPO",
                    "dpo",
                    base_config(
                        model,
                        root / "dpo",
                        pairs,
                        training={**common, "learning_rate": 1e-2},
                        checkpoint=save,
                    ),
                ),
            ):
                rows.append({"size": size, **phase(name, module, cfg, root)})
            ev = eval_config(model, root, server.base_url, max_new_tokens=32)
            rows.append(
                {
                    "size": size,
                    **phase(
                        "eval (MT-Bench, 6 questions)",
                        "evaluate",
                        ev,
                        root,
                        offline_env(OPENAI_API_KEY=API_KEY),
                    ),
                }
            )

    print(
        f"CPU: {os.cpu_count()} cores, {platform.processor() or platform.machine()}; python {platform.python_version()}"
    )
    import torch
    import transformers
    import trl

    print(
        f"torch {torch.__version__}, transformers {transformers.__version__}, trl {trl.__version__}; {args.steps} steps per phase, micro batch 8, max_length 64, fp32\n"
    )
    print("| model | phase | steps | train/gen s | process wall s | first → last |")
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        change = f"{r['metric']} {r['first']:.3f} → {r['last']:.3f}" if "metric" in r else "—"
        print(
            f"| {r['size']} | {r['phase']} | {r['steps']} | {r['train_s']:.2f} | {r['wall_s']:.1f} | {change} |"
        )


if __name__ == "__main__":
    main()
