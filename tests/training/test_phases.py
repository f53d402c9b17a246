"""Each training phase on a tiny Llama on CPU: the loss falls, DPO's margin grows, adapters reload, runs resume.

Each entry point runs once in its own process (``python -m training.<phase> --config ...``), one job per
process as on the cluster; the rest call the functions directly.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest
from transformers import TrainerCallback

from tests.training.tiny import (
    base_config,
    dpo_rows,
    log_history,
    offline_env,
    pretrain_rows,
    run_entry_point,
    sft_rows,
    write_config,
    write_jsonl,
)
from training import signals
from training.config import config_from_dict
from training.runner import EXIT_INTERRUPTED, RunResult, run_training


def losses(history: list[dict[str, Any]], key: str = "loss") -> list[float]:
    return [h[key] for h in history if key in h]


def test_pretrain_entry_point_loss_falls(tiny_model: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "train.jsonl", pretrain_rows())
    cfg = base_config(
        tiny_model, tmp_path / "run" / "out", data, checkpoint={"save_steps": 12}, data={"packing": True}
    )
    proc = run_entry_point("pretrain", write_config(tmp_path / "run.yaml", cfg))
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "run" / "out"
    summary = json.loads((out / "run_summary.json").read_text())
    assert summary["status"] == "completed" and summary["global_step"] == 12
    # Announced on stderr for the portal (the job page's "last checkpoint").
    assert f"checkpoint saved: step 12 {out / 'checkpoint-12'}" in proc.stderr
    history = losses(log_history(out / "checkpoint-12"))
    assert len(history) >= 10
    assert history[-1] < history[0] - 1.0, history
    assert (out / "model.safetensors").is_file() and (out / "tokenizer.json").is_file()


def test_sft_entry_point_loss_falls_and_writes_an_offline_wandb_run(tiny_model: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "chat.jsonl", sft_rows())
    run_id = str(uuid.uuid4())
    job_dir = tmp_path / "job"
    cfg = base_config(
        tiny_model,
        job_dir / "out",
        data,
        data={"assistant_only_loss": True},
        checkpoint={"save_steps": 12},
        wandb={"mode": "offline", "project": "tanuki-test", "run_id": run_id},
    )
    env = offline_env(SLURM_JOB_ID="31337", WANDB_MODE="online")  # the config's offline wins; no network used
    proc = run_entry_point("sft", write_config(tmp_path / "run.yaml", cfg), env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    history = losses(log_history(job_dir / "out" / "checkpoint-12"))
    assert history[-1] < history[0] - 1.0, history
    # W&B's offline run lies under the configured dir (default: output.dir's parent), named by the run id.
    run_files = list((job_dir / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb"))
    assert len(run_files) == 1, sorted(p.name for p in (job_dir / "wandb").glob("*"))
    assert run_files[0].stat().st_size > 0
    meta = next((job_dir / "wandb").glob(f"offline-run-*-{run_id}/files/wandb-metadata.json"), None)
    assert meta is None or meta.is_file()


def test_sft_lora_adapter_reloads_with_the_same_logits(tiny_model: Path, tmp_path: Path) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    data = write_jsonl(tmp_path / "chat.jsonl", sft_rows())
    out = tmp_path / "lora"
    cfg = config_from_dict(
        base_config(
            tiny_model,
            out,
            data,
            lora={
                "enabled": True,
                "r": 4,
                "alpha": 8,
                "dropout": 0.0,
                "target_modules": ["q_proj", "v_proj"],
            },
        ),
        kind="sft",
    )
    from training import sft

    result = sft.run(cfg)
    assert result.status == "completed"
    assert losses(result.log_history)[-1] < losses(result.log_history)[0]
    assert (out / "adapter_model.safetensors").is_file() and (out / "adapter_config.json").is_file()
    assert not (out / "model.safetensors").exists()  # only the adapter is saved

    trained = result.trainer.model.eval()
    reloaded = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model), out).eval()
    ids = torch.tensor([[1, 40, 41, 42, 43, 44, 45]])
    with torch.no_grad():
        expected = trained(input_ids=ids).logits
        got = reloaded(input_ids=ids).logits
        base = AutoModelForCausalLM.from_pretrained(tiny_model).eval()(input_ids=ids).logits
    torch.testing.assert_close(got, expected)
    assert not torch.allclose(base, expected)  # the adapter changed the model

    # The adapter directory also serves as a model for a later phase (loaded onto its base and merged).
    from training.modeling import load_model

    merged_cfg = config_from_dict(base_config(out, tmp_path / "next", data), kind="sft")
    with torch.no_grad():
        merged = load_model(merged_cfg).eval()(input_ids=ids).logits
    torch.testing.assert_close(merged, expected, atol=1e-4, rtol=1e-4)


def test_dpo_entry_point_reward_margin_grows(tiny_model: Path, tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "pairs.jsonl", dpo_rows())
    cfg = base_config(
        tiny_model, tmp_path / "dpo", data, training={"learning_rate": 1e-2}, checkpoint={"save_steps": 12}
    )
    proc = run_entry_point("dpo", write_config(tmp_path / "run.yaml", cfg))
    assert proc.returncode == 0, proc.stderr[-3000:]
    margins = losses(log_history(tmp_path / "dpo" / "checkpoint-12"), "rewards/margins")
    assert len(margins) >= 10
    assert margins[0] == pytest.approx(0.0, abs=1e-6)  # policy == reference at the first step
    assert margins[-1] > margins[0] + 1.0, margins


class SignalAtStep(TrainerCallback):
    """Delivers a real SIGUSR1 to this process at the end of one step, as Slurm's --signal would."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if state.global_step == self.step:
            os.kill(os.getpid(), signal.SIGUSR1)
        return control


def test_sigusr1_saves_a_checkpoint_and_the_next_run_resumes_from_it(
    tiny_model: Path, tmp_path: Path
) -> None:
    from training import pretrain

    data = write_jsonl(tmp_path / "train.jsonl", pretrain_rows())
    out = tmp_path / "out"
    cfg = config_from_dict(base_config(tiny_model, out, data, training={"max_steps": 8}), kind="pretrain")

    def build_with_signal(c: Any, report_to: list[str]) -> Any:
        trainer = pretrain.build_trainer(c, report_to)
        trainer.add_callback(SignalAtStep(3))
        return trainer

    previous = signal.getsignal(signal.SIGUSR1)
    try:
        first: RunResult = run_training(cfg, build_with_signal)
    finally:
        signal.signal(signal.SIGUSR1, previous)
        signals._installed.discard(signal.SIGUSR1)
    assert not signals.received()  # consumed by the run it stopped
    assert first.status == "interrupted" and first.global_step == 3
    assert (out / "checkpoint-3" / "trainer_state.json").is_file()
    assert not (out / "model.safetensors").exists()  # no final model for an unfinished run
    assert json.loads((out / "run_summary.json").read_text())["status"] == "interrupted"
    assert EXIT_INTERRUPTED == 75

    second = pretrain.run(
        config_from_dict(base_config(tiny_model, out, data, training={"max_steps": 8}), kind="pretrain")
    )
    assert second.status == "completed"
    assert second.resumed_from == str(out / "checkpoint-3")
    assert second.global_step == 8
    steps = [h["step"] for h in second.log_history if "loss" in h]
    assert steps == sorted(set(steps)) and steps[-1] == 8  # continued from step 3, not restarted
    new_steps = [h["step"] for h in second.log_history if "loss" in h and h["step"] > 3]
    assert new_steps[0] == 4

    # With nothing left to do a rerun (a requeue after the end) resumes and stops at once.
    third = pretrain.run(
        config_from_dict(base_config(tiny_model, out, data, training={"max_steps": 8}), kind="pretrain")
    )
    assert third.global_step == 8 and third.resumed_from == str(out / "checkpoint-8")
