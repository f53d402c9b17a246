"""Training job kinds: pretraining, SFT, DPO and MT-Bench evaluation runs of the `training` package.

A member fills in a `TrainingRequest` (the form's and the API's fields). `check` refuses what would fail on
the cluster (batch sizes that do not divide, a learning rate out of range, a LoRA rank of 0, odd paths) and
then hands the whole run.yaml to `training.config`, the same code that reads it on the compute node, so a
config the portal accepts is one the job accepts. `build_config` makes the run.yaml for a job;
`launch_lines` the shell lines that start it (srun, one task per GPU, or torchrun, one task per node).

The worker stages run.yaml in the job's run directory over SFTP just before sbatch (worker._submit).
"""

from __future__ import annotations

import dataclasses
import math
import re
import shlex
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import yaml
from django.utils.translation import gettext as _

if TYPE_CHECKING:
    from scheduler.models import Job

# Job.Kind value -> the training entry point (python -m training.<entry>) and its config kind.
ENTRY_POINTS = {"pretrain": "pretrain", "sft": "sft", "dpo": "dpo", "eval": "evaluate"}
TRAINS = ("pretrain", "sft", "dpo")  # kinds that train (and take hyperparameters)

LR_MIN, LR_MAX = 1e-8, 1e-2
LORA_R_MAX = 1024
LORA_ALPHA_MAX = 4096
MAX_SIGNAL_SECONDS = 3600
LAUNCHERS = ("srun", "torchrun")
DTYPES = ("bf16", "fp16", "fp32")
WANDB_MODES = ("offline", "online", "disabled")
SCHEDULERS = (
    "cosine",
    "linear",
    "constant",
    "constant_with_warmup",
    "cosine_with_min_lr",
    "warmup_stable_decay",
)
# A path or hub name goes into YAML (safe_dump quotes it), never into the shell; still no control chars.
PATH_RE = re.compile(r"^[^\x00-\x1f]{1,1000}\Z")
DATA_SUFFIXES = (".jsonl", ".json", ".parquet")
TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}\Z")
PROJECT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
MASTER_PORT_BASE = 20000


@dataclass
class TrainingRequest:
    """The fields of a training job as a member gives them (form, API, template)."""

    kind: str
    model: str = ""  # a directory on the cluster or a hub name; "" in a pipeline: the previous step's output
    train_files: list[str] = field(default_factory=list)
    eval_files: list[str] = field(default_factory=list)
    learning_rate: float = 2e-5
    num_train_epochs: float = 1.0
    max_steps: int = -1
    micro_batch_size: int = 1
    global_batch_size: int | None = None
    gradient_accumulation_steps: int | None = None
    max_length: int = 2048
    warmup_ratio: float = 0.0
    lr_scheduler_type: str = "cosine"
    save_steps: int = 500
    lora: bool = False
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    dpo_beta: float = 0.1
    dtype: str = "bf16"
    use_cpu: bool = False
    questions: str = ""
    judge_model: str = "gpt-4o"
    judge_base_url: str = ""
    max_new_tokens: int = 1024
    wandb_mode: str = "offline"
    wandb_project: str = ""
    wandb_tags: list[str] = field(default_factory=list)
    launcher: str = "srun"
    checkpoint_signal_seconds: int = 300  # sbatch --signal=USR1@N: save a checkpoint N s before the limit
    requeue: bool = True
    extra_yaml: str = ""  # more run.yaml, merged over what the fields make (the advanced part of the form)

    @property
    def trains(self) -> bool:
        return self.kind in TRAINS

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingRequest:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def data_parallel_size(nodes: int, gpus_per_node: int) -> int:
    return max(1, nodes) * max(1, gpus_per_node)


def accumulation_steps(request: TrainingRequest, nodes: int, gpus_per_node: int) -> int:
    """Gradient accumulation: given, or global batch / (micro batch × data-parallel ranks)."""
    if request.gradient_accumulation_steps:
        return request.gradient_accumulation_steps
    if request.global_batch_size:
        per_step = request.micro_batch_size * data_parallel_size(nodes, gpus_per_node)
        return max(1, request.global_batch_size // per_step)
    return 1


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _extra(request: TrainingRequest) -> dict[str, Any]:
    if not request.extra_yaml.strip():
        return {}
    loaded = yaml.safe_load(request.extra_yaml)
    return loaded if isinstance(loaded, dict) else {}


def build_config(
    request: TrainingRequest,
    *,
    nodes: int,
    gpus_per_node: int,
    model: str | None = None,
    tags: list[str] | None = None,
) -> dict[str, Any]:
    """run.yaml for the request. `model` overrides request.model (a pipeline's previous output)."""
    config: dict[str, Any] = {"kind": ENTRY_POINTS[request.kind]}
    config["model"] = {"name_or_path": model or request.model}
    if request.trains:
        config["data"] = {"train_files": list(request.train_files), "eval_files": list(request.eval_files)}
        config["training"] = {
            "learning_rate": request.learning_rate,
            "num_train_epochs": request.num_train_epochs,
            "max_steps": request.max_steps,
            "micro_batch_size": request.micro_batch_size,
            "gradient_accumulation_steps": accumulation_steps(request, nodes, gpus_per_node),
            "max_length": request.max_length,
            "warmup_ratio": request.warmup_ratio,
            "lr_scheduler_type": request.lr_scheduler_type,
        }
        config["checkpoint"] = {
            "save_steps": request.save_steps,
            "resume": "auto",
            "save_on_signal": request.launcher == "srun" and request.checkpoint_signal_seconds > 0,
            "requeue_on_signal": request.requeue and request.launcher == "srun",
        }
        if request.lora:
            config["lora"] = {
                "enabled": True,
                "r": request.lora_r,
                "alpha": request.lora_alpha,
                "dropout": request.lora_dropout,
            }
        if request.kind == "dpo":
            config["dpo"] = {"beta": request.dpo_beta}
    else:
        judge: dict[str, Any] = {"model": request.judge_model}
        if request.judge_base_url:
            judge["base_url"] = request.judge_base_url
        config["evaluate"] = {
            "questions": request.questions,
            "max_new_tokens": request.max_new_tokens,
            "judge": judge,
        }
    config["precision"] = {"dtype": request.dtype, "use_cpu": request.use_cpu}
    config["output"] = {"dir": "out"}
    wandb: dict[str, Any] = {"mode": request.wandb_mode, "tags": [*(tags or []), *request.wandb_tags]}
    if request.wandb_project:
        wandb["project"] = request.wandb_project
    config["wandb"] = wandb
    return _merge(config, _extra(request))


def to_yaml(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, allow_unicode=True, sort_keys=False)


def _field(errors: dict[str, list[str]], name: str, message: str) -> None:
    errors.setdefault(name, []).append(message)


# run.yaml keys -> the request field that sets them, to put training.config's errors next to that field.
CONFIG_FIELDS = {
    "model.name_or_path": "model",
    "data.train_files": "train_files",
    "data.eval_files": "eval_files",
    "training.learning_rate": "learning_rate",
    "training.num_train_epochs": "num_train_epochs",
    "training.max_steps": "max_steps",
    "training.micro_batch_size": "micro_batch_size",
    "training.gradient_accumulation_steps": "gradient_accumulation_steps",
    "training.max_length": "max_length",
    "training.warmup_ratio": "warmup_ratio",
    "training.lr_scheduler_type": "lr_scheduler_type",
    "checkpoint.save_steps": "save_steps",
    "lora.r": "lora_r",
    "lora.alpha": "lora_alpha",
    "lora.dropout": "lora_dropout",
    "dpo.beta": "dpo_beta",
    "precision.dtype": "dtype",
    "evaluate.questions": "questions",
    "evaluate.max_new_tokens": "max_new_tokens",
    "evaluate.judge.model": "judge_model",
    "evaluate.judge.base_url": "judge_base_url",
    "wandb.mode": "wandb_mode",
}


def check(
    request: TrainingRequest, *, nodes: int, gpus_per_node: int, model_from_previous: bool = False
) -> dict[str, list[str]]:
    """Field errors ({request field: [message]}); empty when the job may be submitted."""
    errors: dict[str, list[str]] = {}
    if request.kind not in ENTRY_POINTS:
        _field(errors, "kind", _("Unknown job kind %(kind)s.") % {"kind": request.kind})
        return errors
    if not request.model.strip():
        if not model_from_previous:
            _field(errors, "model", _("Say which model: a directory on the cluster or a hub name."))
    elif not PATH_RE.match(request.model):
        _field(errors, "model", _("Control characters are not allowed in a path."))
    if request.trains:
        if not request.train_files:
            _field(errors, "train_files", _("Give at least one training data file."))
        for name in ("train_files", "eval_files"):
            for path in getattr(request, name):
                if not PATH_RE.match(path) or not path.startswith("/"):
                    _field(
                        errors, name, _("%(path)s: give an absolute path on the cluster.") % {"path": path}
                    )
                elif not path.endswith(DATA_SUFFIXES):
                    _field(errors, name, _("%(path)s: use .jsonl, .json or .parquet files.") % {"path": path})
        if not LR_MIN <= request.learning_rate <= LR_MAX:
            _field(
                errors,
                "learning_rate",
                _("Between %(min)g and %(max)g.") % {"min": LR_MIN, "max": LR_MAX},
            )
        if request.micro_batch_size < 1:
            _field(errors, "micro_batch_size", _("At least 1."))
        elif request.global_batch_size is not None:
            ranks = data_parallel_size(nodes, gpus_per_node)
            per_step = request.micro_batch_size * ranks
            if request.global_batch_size < 1 or request.global_batch_size % per_step:
                _field(
                    errors,
                    "global_batch_size",
                    _(
                        "The global batch must be a multiple of micro batch %(micro)d × %(ranks)d "
                        "data-parallel ranks (nodes × GPUs per node) = %(per_step)d."
                    )
                    % {"micro": request.micro_batch_size, "ranks": ranks, "per_step": per_step},
                )
            elif (
                request.gradient_accumulation_steps
                and request.gradient_accumulation_steps * per_step != request.global_batch_size
            ):
                _field(
                    errors,
                    "gradient_accumulation_steps",
                    _(
                        "micro batch %(micro)d × %(ranks)d ranks × %(accum)d steps = %(product)d, "
                        "not the global batch %(global)d. Leave one of them empty."
                    )
                    % {
                        "micro": request.micro_batch_size,
                        "ranks": ranks,
                        "accum": request.gradient_accumulation_steps,
                        "product": request.gradient_accumulation_steps * per_step,
                        "global": request.global_batch_size,
                    },
                )
        if request.lora:
            if not 1 <= request.lora_r <= LORA_R_MAX:
                _field(errors, "lora_r", _("A LoRA rank between 1 and %(max)d.") % {"max": LORA_R_MAX})
            if not 1 <= request.lora_alpha <= LORA_ALPHA_MAX:
                _field(
                    errors, "lora_alpha", _("A LoRA alpha between 1 and %(max)d.") % {"max": LORA_ALPHA_MAX}
                )
        if request.kind == "dpo" and not 0 < request.dpo_beta <= 10:
            _field(errors, "dpo_beta", _("β must be above 0 and at most 10."))
        if not 0 <= request.checkpoint_signal_seconds <= MAX_SIGNAL_SECONDS:
            _field(
                errors,
                "checkpoint_signal_seconds",
                _("Between 0 and %(max)d seconds.") % {"max": MAX_SIGNAL_SECONDS},
            )
    else:
        if (
            not request.questions
            or not request.questions.startswith("/")
            or not PATH_RE.match(request.questions)
        ):
            _field(errors, "questions", _("Give the absolute path of a question.jsonl on the cluster."))
    if request.launcher not in LAUNCHERS:
        _field(errors, "launcher", _("Use srun or torchrun."))
    if request.dtype not in DTYPES:
        _field(errors, "dtype", _("Use bf16, fp16 or fp32."))
    if request.wandb_mode not in WANDB_MODES:
        _field(errors, "wandb_mode", _("Use offline, online or disabled."))
    if request.wandb_project and not PROJECT_RE.match(request.wandb_project):
        _field(errors, "wandb_project", _("Letters, digits, dots, dashes and underscores."))
    for tag in request.wandb_tags:
        if not TAG_RE.match(tag):
            _field(errors, "wandb_tags", _("%(tag)s: letters, digits and . _ : / - only.") % {"tag": tag})
    try:
        extra = yaml.safe_load(request.extra_yaml) if request.extra_yaml.strip() else {}
    except yaml.YAMLError as error:
        _field(errors, "extra_yaml", _("Not valid YAML: %(error)s") % {"error": error})
        extra = {}
    if extra is not None and not isinstance(extra, dict):
        _field(errors, "extra_yaml", _("Give a mapping of run.yaml sections, e.g. training: {seed: 1}."))
    elif isinstance(extra, dict) and ("output" in extra or "kind" in extra):
        _field(errors, "extra_yaml", _("output and kind are set by the portal."))
    if errors:
        return errors
    return _check_with_training(request, nodes, gpus_per_node, model_from_previous)


def _check_with_training(
    request: TrainingRequest, nodes: int, gpus_per_node: int, model_from_previous: bool
) -> dict[str, list[str]]:
    """The run.yaml through training.config (types, unknown keys, ranges); file existence is the job's."""
    from training.config import ConfigError, config_from_dict

    placeholder = "/previous-step/out" if model_from_previous and not request.model else None
    config = build_config(request, nodes=nodes, gpus_per_node=gpus_per_node, model=placeholder)
    try:
        config_from_dict(config, kind=ENTRY_POINTS[request.kind], check_files=False)
    except ConfigError as error:
        target = next(
            (
                name
                for key, name in CONFIG_FIELDS.items()
                if error.key == key or error.key.startswith(key + "[")
            ),
            "extra_yaml",
        )
        return {target: [f"{error.key}: {error.message}"]}
    return {}


def launch_lines(job: Job, request: TrainingRequest) -> list[str]:
    """The shell lines after `cd <run dir>` that start the run on every node."""
    module = f"training.{ENTRY_POINTS[request.kind]}"
    lines = [
        "# W&B: the run id is this job's UUID; the run file is flushed every second for the portal to read.",
        f"export WANDB_RUN_ID={shlex.quote(str(job.id))}",
        f"export WANDB_MODE={shlex.quote(request.wandb_mode)}",
    ]
    if request.wandb_project:
        lines.append(f"export WANDB_PROJECT={shlex.quote(request.wandb_project)}")
    lines += [
        "export WANDB__TRANSACTION_LOG_FLUSH_INTERVAL=1",
        "# Rendezvous on the first node of the allocation.",
        'MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)',
        f"export MASTER_ADDR MASTER_PORT=$(({MASTER_PORT_BASE} + SLURM_JOB_ID % 20000))",
    ]
    config = "--config run.yaml"
    if not request.trains:
        lines.append(f"srun --ntasks=1 --kill-on-bad-exit=1 python -m {module} {config}")
    elif request.launcher == "torchrun":
        lines.append(
            "srun --ntasks-per-node=1 --kill-on-bad-exit=1 torchrun"
            ' --nnodes="$SLURM_NNODES"'
            f" --nproc-per-node={int(job.gpus_per_node)}"
            ' --rdzv-id="$SLURM_JOB_ID" --rdzv-backend=c10d --rdzv-endpoint="$MASTER_ADDR:$MASTER_PORT"'
            f" -m {module} {config}"
        )
    else:
        lines.append(f"srun --kill-on-bad-exit=1 python -m {module} {config}")
    return lines


def sbatch_options(job: Job, request: TrainingRequest) -> list[str]:
    """#SBATCH lines a training kind adds: tasks per node, the checkpoint signal, requeue."""
    if not request.trains:
        return ["#SBATCH --ntasks-per-node=1"]
    tasks = 1 if request.launcher == "torchrun" else int(job.gpus_per_node) or 1
    options = [f"#SBATCH --ntasks-per-node={tasks}"]
    if request.launcher == "srun" and request.checkpoint_signal_seconds > 0:
        options.append(f"#SBATCH --signal=USR1@{int(request.checkpoint_signal_seconds)}")
    if request.requeue:
        options.append("#SBATCH --requeue")
    return options


def estimated_tokens(request: TrainingRequest, nodes: int, gpus_per_node: int) -> int | None:
    """Upper bound of tokens one run sees (max_steps × global batch × max_length), for the form."""
    if not request.trains or request.max_steps < 1:
        return None
    batch = request.micro_batch_size * data_parallel_size(nodes, gpus_per_node)
    batch *= accumulation_steps(request, nodes, gpus_per_node)
    return int(math.prod((request.max_steps, batch, request.max_length)))
