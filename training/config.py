"""One YAML file per run, parsed into typed, validated dataclasses.

Every error names the offending key (``training.learning_rate``, ``data.train_files[0]``) so that a person
reading a failed job's log can fix the file without reading this code. Nothing here imports torch or
transformers: a bad config fails in well under a second, before any heavy import.

Relative paths are resolved against the directory that holds the YAML file (the job's run directory when
the portal stages it), not against the process's working directory.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import yaml

Kind = Literal["pretrain", "sft", "dpo", "evaluate"]
KINDS: tuple[str, ...] = get_args(Kind)
TRAINING_KINDS: tuple[str, ...] = ("pretrain", "sft", "dpo")
DATA_SUFFIXES: tuple[str, ...] = (".jsonl", ".json", ".parquet")


class ConfigError(ValueError):
    """A config file that cannot be used; ``key`` is the dotted path of the offending entry."""

    def __init__(self, key: str, message: str, source: str | None = None) -> None:
        self.key = key
        self.message = message
        self.source = source
        where = f"{source}: " if source else ""
        label = key or "(top level)"
        super().__init__(f"{where}{label}: {message}")


@dataclass
class ModelConfig:
    name_or_path: str = ""  # a local directory (checked first, relative to the YAML file) or a hub name
    revision: str | None = None
    trust_remote_code: bool = False
    attn_implementation: str | None = None  # eager | sdpa | flash_attention_2 | ...

    def validate(self, key: str) -> None:
        if not self.name_or_path:
            raise ConfigError(
                f"{key}.name_or_path", "is required (a local model directory or a hub model name)"
            )


@dataclass
class TokenizerConfig:
    name_or_path: str | None = None  # default: model.name_or_path
    chat_template: str | None = None  # a path to a Jinja file, or the template text itself
    pad_token: str | None = None  # default: the tokenizer's own, else its EOS token


@dataclass
class DataConfig:
    train_files: list[str] = field(default_factory=list)
    eval_files: list[str] = field(default_factory=list)
    text_field: str = "text"  # pretraining: the column holding plain text
    max_samples: int | None = None  # keep only the first N training rows (smoke runs)
    packing: bool = False  # pretrain/SFT: concatenate documents into max_length blocks
    assistant_only_loss: bool = (
        False  # SFT: loss on assistant turns only (needs {% generation %} in the template)
    )


@dataclass
class TrainingConfig:
    learning_rate: float = 2e-5
    num_train_epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides num_train_epochs
    micro_batch_size: int = 1  # per device
    gradient_accumulation_steps: int = 1
    warmup_ratio: float = 0.0
    warmup_steps: int = 0
    weight_decay: float = 0.0
    lr_scheduler_type: str = "linear"
    max_grad_norm: float = 1.0
    seed: int = 42
    max_length: int = 1024
    logging_steps: int = 10
    eval_steps: int | None = None  # evaluate every N steps when data.eval_files is set
    gradient_checkpointing: bool = False
    dataloader_num_workers: int = 0

    def validate(self, key: str) -> None:
        _positive(self.learning_rate, f"{key}.learning_rate")
        _positive(self.num_train_epochs, f"{key}.num_train_epochs")
        if self.max_steps == 0 or self.max_steps < -1:
            raise ConfigError(
                f"{key}.max_steps",
                f"must be a positive number of steps, or -1 for epochs (got {self.max_steps})",
            )
        _positive(self.micro_batch_size, f"{key}.micro_batch_size")
        _positive(self.gradient_accumulation_steps, f"{key}.gradient_accumulation_steps")
        if not 0.0 <= self.warmup_ratio < 1.0:
            raise ConfigError(f"{key}.warmup_ratio", f"must be in [0, 1) (got {self.warmup_ratio})")
        _non_negative(self.warmup_steps, f"{key}.warmup_steps")
        if self.warmup_steps and self.warmup_ratio:
            raise ConfigError(f"{key}.warmup_steps", "set warmup_steps or warmup_ratio, not both")
        _non_negative(self.weight_decay, f"{key}.weight_decay")
        _positive(self.max_grad_norm, f"{key}.max_grad_norm")
        _non_negative(self.seed, f"{key}.seed")
        _positive(self.max_length, f"{key}.max_length")
        _positive(self.logging_steps, f"{key}.logging_steps")
        if self.eval_steps is not None:
            _positive(self.eval_steps, f"{key}.eval_steps")
        _non_negative(self.dataloader_num_workers, f"{key}.dataloader_num_workers")
        schedulers = (
            "linear",
            "cosine",
            "cosine_with_restarts",
            "polynomial",
            "constant",
            "constant_with_warmup",
            "inverse_sqrt",
            "reduce_lr_on_plateau",
            "cosine_with_min_lr",
            "warmup_stable_decay",
        )
        if self.lr_scheduler_type not in schedulers:
            raise ConfigError(
                f"{key}.lr_scheduler_type",
                f"must be one of {', '.join(schedulers)} (got {self.lr_scheduler_type!r})",
            )


@dataclass
class DPOOptions:
    beta: float = 0.1
    loss_type: str = "sigmoid"

    def validate(self, key: str) -> None:
        _positive(self.beta, f"{key}.beta")


@dataclass
class LoraOptions:
    enabled: bool = False
    r: int = 8
    alpha: int = 16
    dropout: float = 0.05
    target_modules: list[str] = field(default_factory=lambda: ["all-linear"])
    modules_to_save: list[str] | None = None

    def validate(self, key: str) -> None:
        _positive(self.r, f"{key}.r")
        _positive(self.alpha, f"{key}.alpha")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"{key}.dropout", f"must be in [0, 1) (got {self.dropout})")
        if not self.target_modules:
            raise ConfigError(f"{key}.target_modules", "must name at least one module (or 'all-linear')")


@dataclass
class PrecisionConfig:
    dtype: Literal["bf16", "fp16", "fp32"] = "bf16"
    use_cpu: bool = False

    def validate(self, key: str) -> None:
        if self.use_cpu and self.dtype == "fp16":
            raise ConfigError(
                f"{key}.dtype", "fp16 mixed precision needs a GPU; use fp32 (or bf16) with use_cpu: true"
            )


@dataclass
class OutputConfig:
    dir: str = ""
    save_final_model: bool = True

    def validate(self, key: str) -> None:
        if not self.dir:
            raise ConfigError(f"{key}.dir", "is required")


@dataclass
class CheckpointConfig:
    save_steps: int = 500
    save_total_limit: int | None = 2
    resume: str = "auto"  # auto: the latest complete checkpoint in output.dir; never; or a checkpoint path
    save_on_signal: bool = True  # SIGUSR1 (sbatch --signal=USR1@SECONDS): save a checkpoint and stop
    requeue_on_signal: bool = False  # after that save, `scontrol requeue $SLURM_JOB_ID`

    def validate(self, key: str) -> None:
        _positive(self.save_steps, f"{key}.save_steps")
        if self.save_total_limit is not None:
            _positive(self.save_total_limit, f"{key}.save_total_limit")
        if not self.resume:
            raise ConfigError(f"{key}.resume", "must be 'auto', 'never' or a checkpoint directory")


@dataclass
class WandbConfig:
    mode: Literal["online", "offline", "disabled"] | None = None  # default: env WANDB_MODE, else disabled
    project: str | None = None
    entity: str | None = None
    run_id: str | None = None  # default: env WANDB_RUN_ID (the portal job's UUID)
    name: str | None = None
    group: str | None = None  # default: slurm-$SLURM_JOB_ID when set
    tags: list[str] = field(default_factory=list)  # slurm-$SLURM_JOB_ID is added when set
    dir: str | None = None  # default: output.dir's parent; the run writes <dir>/wandb/...
    job_type: str | None = None  # default: the entry point's kind


@dataclass
class JudgeConfig:
    model: str = "gpt-4o"
    base_url: str | None = None  # default: env OPENAI_BASE_URL, else https://api.openai.com/v1
    api_key_env: str = "OPENAI_API_KEY"  # the key is read from this variable, never from the YAML file
    # ... or from this file (only the job's user can read it; the portal stages it and removes it)
    api_key_file: str | None = None
    prompts_file: str | None = (
        None  # a FastChat-format judge_prompts.jsonl; default: the built-in Japanese prompts
    )
    temperature: float = 0.0
    max_tokens: int = 2048
    timeout: float = 120.0
    max_retries: int = 8
    backoff_initial: float = 2.0
    backoff_max: float = 60.0
    parallel: int = 4

    def validate(self, key: str) -> None:
        if not self.model:
            raise ConfigError(f"{key}.model", "is required")
        _non_negative(self.temperature, f"{key}.temperature")
        _positive(self.max_tokens, f"{key}.max_tokens")
        _positive(self.timeout, f"{key}.timeout")
        _non_negative(self.max_retries, f"{key}.max_retries")
        _non_negative(self.backoff_initial, f"{key}.backoff_initial")
        _non_negative(self.backoff_max, f"{key}.backoff_max")
        _positive(self.parallel, f"{key}.parallel")
        if self.base_url is not None and not self.base_url.startswith(("http://", "https://")):
            raise ConfigError(
                f"{key}.base_url", f"must start with http:// or https:// (got {self.base_url!r})"
            )


@dataclass
class EvaluateConfig:
    questions: str = ""  # FastChat question.jsonl: question_id, category, turns
    question_set: str | None = None  # default: the questions file's parent directory name
    reference_answers: str | None = None  # FastChat reference_answer/<model>.jsonl for math/reasoning/coding
    model_id: str | None = None  # the answer file's name; default: the model directory's name
    temperature: float | None = None  # null: FastChat's per-category temperatures; 0: greedy
    top_p: float = 1.0
    max_new_tokens: int = 1024
    batch_size: int = 8
    system_prompt: str | None = None
    judge: JudgeConfig = field(default_factory=JudgeConfig)

    def validate(self, key: str) -> None:
        if not self.questions:
            raise ConfigError(f"{key}.questions", "is required (a FastChat-format question.jsonl)")
        if self.temperature is not None:
            _non_negative(self.temperature, f"{key}.temperature")
        if not 0.0 < self.top_p <= 1.0:
            raise ConfigError(f"{key}.top_p", f"must be in (0, 1] (got {self.top_p})")
        _positive(self.max_new_tokens, f"{key}.max_new_tokens")
        _positive(self.batch_size, f"{key}.batch_size")
        self.judge.validate(f"{key}.judge")


@dataclass
class RunConfig:
    kind: Kind | None = None  # optional; when given it must match the entry point
    model: ModelConfig = field(default_factory=ModelConfig)
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    data: DataConfig = field(default_factory=DataConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    dpo: DPOOptions = field(default_factory=DPOOptions)
    lora: LoraOptions = field(default_factory=LoraOptions)
    precision: PrecisionConfig = field(default_factory=PrecisionConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    wandb: WandbConfig = field(default_factory=WandbConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    source: str | None = field(default=None, metadata={"internal": True})  # the YAML file it came from

    @property
    def output_dir(self) -> Path:
        return Path(self.output.dir)


def load_config(path: str | Path, kind: str | None = None) -> RunConfig:
    """Read, type-check and validate one run's YAML file; ``kind`` is the entry point that will run it."""
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError("", f"cannot read the config file: {exc.strerror or exc}", source) from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError("", f"not valid YAML: {exc}", source) from exc
    if raw is None:
        raw = {}
    try:
        return config_from_dict(raw, kind=kind, base_dir=path.resolve().parent, source=source)
    except ConfigError as exc:
        raise ConfigError(exc.key, exc.message, source) from None


def config_from_dict(
    raw: Any,
    kind: str | None = None,
    base_dir: Path | None = None,
    source: str | None = None,
    *,
    check_files: bool = True,
) -> RunConfig:
    """Build a validated RunConfig from already-parsed YAML (a dict); paths resolve against ``base_dir``.

    ``check_files=False`` checks everything but the files' existence: the portal validates a config on
    its own host before the file is staged on the cluster, where the paths live.
    """
    if not isinstance(raw, dict):
        raise ConfigError("", f"the file must hold a mapping of sections, got {_type_name(raw)}")
    cfg: RunConfig = _build(RunConfig, raw, "")
    cfg.source = source
    if kind is not None and kind not in KINDS:
        raise ConfigError("kind", f"unknown entry point {kind!r}; one of {', '.join(KINDS)}")
    if cfg.kind is not None and kind is not None and cfg.kind != kind:
        raise ConfigError("kind", f"this file is for {cfg.kind!r} but was given to training.{kind}")
    cfg.kind = typing.cast(Kind, kind or cfg.kind)
    if cfg.kind is None:
        raise ConfigError("kind", f"is required when no entry point is given; one of {', '.join(KINDS)}")
    _resolve_paths(cfg, base_dir or Path.cwd(), check_files)
    _validate(cfg, check_files)
    return cfg


# --- validation of the whole run -----------------------------------------------------------------------


def _validate(cfg: RunConfig, check_files: bool = True) -> None:
    cfg.model.validate("model")
    cfg.precision.validate("precision")
    cfg.output.validate("output")
    if cfg.kind in TRAINING_KINDS:
        cfg.training.validate("training")
        cfg.checkpoint.validate("checkpoint")
        cfg.lora.validate("lora")
        cfg.dpo.validate("dpo")
        if not cfg.data.train_files:
            raise ConfigError("data.train_files", "is required: one or more .jsonl/.json/.parquet files")
        if cfg.data.max_samples is not None:
            _positive(cfg.data.max_samples, "data.max_samples")
        if cfg.data.packing and cfg.kind == "dpo":
            raise ConfigError("data.packing", "is not available for DPO")
        for name in ("train_files", "eval_files"):
            for i, file in enumerate(getattr(cfg.data, name)):
                _check_data_file(file, f"data.{name}[{i}]", check_files)
        resume = cfg.checkpoint.resume
        if check_files and resume not in ("auto", "never") and not Path(resume).is_dir():
            raise ConfigError("checkpoint.resume", f"checkpoint directory not found: {resume}")
    else:
        cfg.evaluate.validate("evaluate")
        if check_files:
            _check_file(cfg.evaluate.questions, "evaluate.questions")
            if cfg.evaluate.reference_answers is not None:
                _check_file(cfg.evaluate.reference_answers, "evaluate.reference_answers")
            if cfg.evaluate.judge.prompts_file is not None:
                _check_file(cfg.evaluate.judge.prompts_file, "evaluate.judge.prompts_file")


def _check_file(path: str, key: str) -> None:
    if not Path(path).is_file():
        raise ConfigError(key, f"file not found: {path}")


def _check_data_file(path: str, key: str, exists: bool = True) -> None:
    if exists:
        _check_file(path, key)
    if not path.endswith(DATA_SUFFIXES):
        raise ConfigError(key, f"must be a {', '.join(DATA_SUFFIXES)} file (got {Path(path).name})")


def _resolve_paths(cfg: RunConfig, base: Path, check_files: bool = True) -> None:
    def local(p: str) -> str:
        return str(p if Path(p).is_absolute() else (base / p))

    def maybe_local(p: str) -> str:
        # A model may be a hub name ("org/name"): keep it as given unless it names a local directory.
        candidate = Path(p).expanduser()
        if not candidate.is_absolute():
            candidate = base / candidate
        return str(candidate) if candidate.exists() or p.startswith((".", "/", "~")) else p

    if cfg.model.name_or_path:
        cfg.model.name_or_path = maybe_local(cfg.model.name_or_path)
    if cfg.tokenizer.name_or_path:
        cfg.tokenizer.name_or_path = maybe_local(cfg.tokenizer.name_or_path)
    template = cfg.tokenizer.chat_template
    if template and "{" not in template:  # a path, not an inline template
        cfg.tokenizer.chat_template = local(template)
        if check_files:
            _check_file(cfg.tokenizer.chat_template, "tokenizer.chat_template")
    cfg.data.train_files = [local(p) for p in cfg.data.train_files]
    cfg.data.eval_files = [local(p) for p in cfg.data.eval_files]
    if cfg.output.dir:
        cfg.output.dir = local(cfg.output.dir)
    if cfg.checkpoint.resume not in ("auto", "never"):
        cfg.checkpoint.resume = local(cfg.checkpoint.resume)
    if cfg.wandb.dir:
        cfg.wandb.dir = local(cfg.wandb.dir)
    ev = cfg.evaluate
    if ev.questions:
        ev.questions = local(ev.questions)
    if ev.reference_answers:
        ev.reference_answers = local(ev.reference_answers)
    if ev.judge.prompts_file:
        ev.judge.prompts_file = local(ev.judge.prompts_file)


# --- typed construction of the dataclasses ---------------------------------------------------------------


# Names other tools use for the same setting, for the "did you mean" hint.
_ALIASES = {
    "lr": "learning_rate",
    "epochs": "num_train_epochs",
    "num_epochs": "num_train_epochs",
    "batch_size": "micro_batch_size",
    "per_device_train_batch_size": "micro_batch_size",
    "grad_accum": "gradient_accumulation_steps",
    "max_seq_length": "max_length",
    "lora_alpha": "alpha",
    "lora_r": "r",
    "lora_dropout": "dropout",
    "output_dir": "dir",
    "path": "name_or_path",
    "name": "name_or_path",
    "bf16": "dtype",
    "fp16": "dtype",
}


def _build(cls: type[Any], raw: Any, key: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(key, f"must be a mapping (a YAML section), got {_type_name(raw)}")
    hints = typing.get_type_hints(cls)
    known = [f.name for f in dataclasses.fields(cls) if not f.metadata.get("internal")]
    values: dict[str, Any] = {}
    for name, value in raw.items():
        sub = f"{key}.{name}" if key else str(name)
        if name not in known:
            alias = _ALIASES.get(str(name))
            close = [alias] if alias in known else difflib.get_close_matches(str(name), known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ConfigError(sub, f"unknown key{hint} (known keys: {', '.join(known)})")
        values[name] = _convert(hints[name], value, sub)
    return cls(**values)


def _convert(tp: Any, value: Any, key: str) -> Any:
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            if len(args) < len(get_args(tp)):
                return None
            raise ConfigError(key, "must not be empty")
        return _convert(args[0], value, key)
    if value is None:
        if dataclasses.is_dataclass(tp):
            return typing.cast(type, tp)()
        raise ConfigError(key, f"must not be empty (expected {_describe(tp)})")
    if dataclasses.is_dataclass(tp):
        return _build(typing.cast(type, tp), value, key)
    if origin is Literal:
        choices = get_args(tp)
        if value not in choices:
            raise ConfigError(key, f"must be one of {', '.join(map(str, choices))} (got {value!r})")
        return value
    if origin is list:
        (item,) = get_args(tp)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list):
            raise ConfigError(key, f"must be a list of {_describe(item)}, got {_type_name(value)}")
        return [_convert(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, f"must be true or false, got {_type_name(value)} {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise ConfigError(key, f"must be an integer, got {_type_name(value)} {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool):
            raise ConfigError(key, f"must be a number, got {_type_name(value)} {value!r}")
        if isinstance(value, str):  # YAML 1.1 reads 2e-5 (no dot) as a string
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(key, f"must be a number, got string {value!r}") from None
        if not isinstance(value, int | float) or not math.isfinite(value):
            raise ConfigError(key, f"must be a finite number, got {_type_name(value)} {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(key, f"must be a string, got {_type_name(value)} {value!r}")
        return value
    raise ConfigError(key, f"unsupported type {tp!r}")  # pragma: no cover - a bug in this module


def _describe(tp: Any) -> str:
    return {bool: "true/false", int: "integers", float: "numbers", str: "strings"}.get(tp, str(tp))


def _type_name(value: Any) -> str:
    return {
        dict: "a mapping",
        list: "a list",
        str: "a string",
        bool: "a boolean",
        int: "an integer",
        float: "a number",
    }.get(type(value), type(value).__name__)


def _positive(value: float, key: str) -> None:
    if not value > 0:
        raise ConfigError(key, f"must be > 0 (got {value})")


def _non_negative(value: float, key: str) -> None:
    if value < 0:
        raise ConfigError(key, f"must be >= 0 (got {value})")


def to_dict(cfg: RunConfig) -> dict[str, Any]:
    """The resolved config as plain data (for W&B's run config and the run summary)."""
    out = dataclasses.asdict(cfg)
    out.pop("source", None)
    return out
