"""Config parsing and validation: every error names the key. No torch needed for these."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.training.tiny import REPO, offline_env, write_config, write_jsonl
from training import tracking
from training.config import ConfigError, config_from_dict, load_config
from training.judge import parse_score
from training.runner import slurm_distributed_env


@pytest.fixture
def files(tmp_path: Path) -> Path:
    write_jsonl(tmp_path / "train.jsonl", [{"text": "hello"}])
    (tmp_path / "model").mkdir()
    return tmp_path


def minimal(**override: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "model": {"name_or_path": "model"},
        "data": {"train_files": "train.jsonl"},
        "output": {"dir": "runs/out"},
    }
    cfg.update(override)
    return cfg


def error_for(files: Path, cfg: dict[str, Any], kind: str = "pretrain") -> ConfigError:
    path = write_config(files / "run.yaml", cfg)
    with pytest.raises(ConfigError) as caught:
        load_config(path, kind)
    return caught.value


def test_minimal_config_resolves_paths_against_the_yaml_file(files: Path) -> None:
    cfg = load_config(
        write_config(files / "run.yaml", minimal(training={"learning_rate": "2e-5"})), "pretrain"
    )
    assert cfg.kind == "pretrain"
    assert cfg.model.name_or_path == str(files / "model")
    assert cfg.data.train_files == [str(files / "train.jsonl")]
    assert cfg.output.dir == str(files / "runs/out")
    assert cfg.training.learning_rate == 2e-5  # YAML 1.1 reads 2e-5 as a string; accepted as a number
    assert cfg.precision.dtype == "bf16" and cfg.checkpoint.resume == "auto"


def test_a_hub_model_name_is_kept_as_given(files: Path) -> None:
    cfg = load_config(
        write_config(files / "run.yaml", minimal(model={"name_or_path": "llm-jp/llm-jp-3-1.8b"})), "sft"
    )
    assert cfg.model.name_or_path == "llm-jp/llm-jp-3-1.8b"


@pytest.mark.parametrize(
    ("override", "key", "words"),
    [
        ({"training": {"lr": 0.1}}, "training.lr", "did you mean 'learning_rate'"),
        ({"trainer": {}}, "trainer", "did you mean 'training'"),
        ({"training": {"max_steps": "ten"}}, "training.max_steps", "must be an integer"),
        ({"training": {"learning_rate": -0.1}}, "training.learning_rate", "must be > 0"),
        ({"training": {"micro_batch_size": 0}}, "training.micro_batch_size", "must be > 0"),
        ({"training": {"warmup_steps": 10, "warmup_ratio": 0.1}}, "training.warmup_steps", "not both"),
        ({"training": {"max_steps": 0}}, "training.max_steps", "-1 for epochs"),
        ({"training": {"learning_rate": "fast"}}, "training.learning_rate", "must be a number"),
        ({"lora": {"enabled": "yes"}}, "lora.enabled", "true or false"),
        ({"lora": {"dropout": 1.5}}, "lora.dropout", "[0, 1)"),
        ({"precision": {"dtype": "fp8"}}, "precision.dtype", "one of bf16, fp16, fp32"),
        ({"precision": {"dtype": "fp16", "use_cpu": True}}, "precision.dtype", "needs a GPU"),
        ({"wandb": {"mode": "sometimes"}}, "wandb.mode", "one of online, offline, disabled"),
        ({"data": {"train_files": ["missing.jsonl"]}}, "data.train_files[0]", "file not found"),
        ({"data": {"train_files": []}}, "data.train_files", "is required"),
        (
            {"data": {"train_files": "train.jsonl", "eval_files": ["run.yaml"]}},
            "data.eval_files[0]",
            ".jsonl",
        ),
        ({"output": {"dir": ""}}, "output.dir", "is required"),
        ({"model": {"name_or_path": ""}}, "model.name_or_path", "is required"),
        ({"checkpoint": {"resume": "nowhere"}}, "checkpoint.resume", "not found"),
        ({"kind": "dpo"}, "kind", "given to training.pretrain"),
        ({"evaluate": {"judge": {"parallel": 0}}}, "", ""),  # not checked for a training run
    ],
)
def test_bad_values_name_the_key(files: Path, override: dict[str, Any], key: str, words: str) -> None:
    cfg = minimal()
    for section, values in override.items():
        cfg[section] = {**cfg[section], **values} if isinstance(cfg.get(section), dict) else values
    if not key:
        load_config(write_config(files / "run.yaml", cfg), "pretrain")
        return
    err = error_for(files, cfg)
    assert err.key == key
    assert str(err).startswith(f"{files / 'run.yaml'}: {key}: ")
    assert words in str(err)


def test_packing_is_refused_for_dpo(files: Path) -> None:
    err = error_for(files, minimal(data={"train_files": "train.jsonl", "packing": True}), "dpo")
    assert err.key == "data.packing"


def test_top_level_must_be_a_mapping_and_yaml_valid(files: Path) -> None:
    (files / "run.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(files / "run.yaml", "sft")
    (files / "run.yaml").write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(files / "run.yaml", "sft")


def test_evaluate_needs_a_question_file(files: Path) -> None:
    cfg = {"model": {"name_or_path": "model"}, "output": {"dir": "eval"}, "evaluate": {}}
    assert error_for(files, cfg, "evaluate").key == "evaluate.questions"
    cfg["evaluate"] = {"questions": "q.jsonl", "judge": {"base_url": "ftp://x"}}
    (files / "q.jsonl").write_text("")
    assert error_for(files, cfg, "evaluate").key == "evaluate.judge.base_url"


def test_config_from_dict_needs_a_kind() -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict({"model": {"name_or_path": "m"}, "output": {"dir": "o"}})
    assert caught.value.key == "kind"


def test_entry_point_exits_2_with_the_key_in_its_message(files: Path) -> None:
    cfg = minimal(training={"learning_rate": -1})
    path = write_config(files / "run.yaml", cfg)
    proc = subprocess.run(
        [sys.executable, "-m", "training.sft", "--config", str(path)],
        cwd=REPO,
        env=offline_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stderr
    assert "training.learning_rate: must be > 0" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_wandb_settings_take_the_run_id_and_slurm_job_from_the_environment(files: Path) -> None:
    cfg = load_config(
        write_config(files / "run.yaml", minimal(wandb={"project": "tanuki", "tags": ["exp1"]})), "sft"
    )
    env = {
        "WANDB_RUN_ID": "0b7e0c3e-1111-4222-8333-444455556666",
        "SLURM_JOB_ID": "4242",
        "WANDB_MODE": "offline",
    }
    s = tracking.resolve(cfg, env)
    assert (s.mode, s.project, s.run_id) == ("offline", "tanuki", env["WANDB_RUN_ID"])
    assert s.group == "slurm-4242"
    assert s.tags == ["exp1", "slurm-4242", "sft"]
    assert s.dir == str(files / "runs")  # output.dir's parent: the job's run directory
    assert s.job_type == "sft"
    # The config wins over the environment.
    cfg.wandb.run_id, cfg.wandb.mode, cfg.wandb.group = "from-config", "disabled", "my-group"
    s = tracking.resolve(cfg, env)
    assert (s.run_id, s.mode, s.enabled, s.group) == ("from-config", "disabled", False, "my-group")


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("良い回答です。Rating: [[7]]", 7.0),
        ("[[8.5]] then [[3]]", 8.5),
        ("Rating: [6]", 6.0),
        ("no rating here", -1.0),
        ("[[ten]]", -1.0),
    ],
)
def test_parse_score(text: str, score: float) -> None:
    assert parse_score(text) == score


def test_srun_tasks_become_torch_distributed_ranks() -> None:
    env = {"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1", "SLURM_NTASKS_PER_NODE": "4(x2)"}
    assert slurm_distributed_env(env) == {
        "RANK": "5",
        "WORLD_SIZE": "8",
        "LOCAL_RANK": "1",
        "LOCAL_WORLD_SIZE": "4",
    }
    assert slurm_distributed_env({**env, "RANK": "0"}) == {}  # torchrun set them already
    assert slurm_distributed_env({"SLURM_PROCID": "0", "SLURM_NTASKS": "1"}) == {}


def test_resume_may_name_an_earlier_runs_output_directory(files: Path) -> None:
    """A resubmission "from the last checkpoint" names the failed run's output directory: its latest
    complete checkpoint is taken (a half-written later one is not), and none there means a fresh start."""
    from training.checkpointing import resume_from

    tmp_path = files
    old = tmp_path / "old" / "out"
    for step, complete in ((100, True), (200, True), (300, False)):
        path = old / f"checkpoint-{step}"
        path.mkdir(parents=True)
        (path / "model.safetensors").write_bytes(b"w")
        if complete:
            (path / "trainer_state.json").write_text("{}")
    cfg = load_config(write_config(files / "run.yaml", minimal(checkpoint={"resume": str(old)})), "sft")
    assert resume_from(cfg) == str(old / "checkpoint-200")
    cfg.checkpoint.resume = str(old / "checkpoint-100")
    assert resume_from(cfg) == str(old / "checkpoint-100")
    empty = tmp_path / "empty"
    empty.mkdir()
    cfg.checkpoint.resume = str(empty)
    assert resume_from(cfg) is None
