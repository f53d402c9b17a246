"""Training job kinds: pretraining, SFT, DPO and MT-Bench evaluation runs of the `training` package.

A member fills in a `TrainingRequest` (the form's and the API's fields). Each of its fields is declared
once, there: its type and default, and in `TrainingField` its label, help texts, the kinds that use it and
the section of the form it sits in. The web form (`training_forms`) and the API serializer
(`api.serializers.TrainingSerializer`) are built from those declarations (`declared_fields`).

`check` refuses what would fail on the cluster (batch sizes that do not divide, a learning rate out of
range, a LoRA rank of 0, odd paths) and then hands the whole run.yaml to `training.config`, the same code
that reads it on the compute node, so a config the portal accepts is one the job accepts. `build_config`
makes the run.yaml for a job; `launch_lines` the shell lines that start it (srun, one task per GPU, or
torchrun, one task per node).

The worker stages run.yaml in the job's run directory over SFTP just before sbatch (worker._submit).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import re
import shlex
import types
import typing
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

import yaml
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from portal import hooks
from scheduler import inputs
from scheduler.models import Cluster, Job, JudgeEndpoint

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

# Job.Kind value -> the training entry point (python -m training.<entry>) and its config kind.
ENTRY_POINTS: dict[str, str] = {
    Job.Kind.PRETRAIN: "pretrain",
    Job.Kind.SFT: "sft",
    Job.Kind.DPO: "dpo",
    Job.Kind.EVAL: "evaluate",
}

LR_MIN, LR_MAX = 1e-8, 1e-2
LORA_R_MAX = 1024
LORA_ALPHA_MAX = 4096
MAX_SIGNAL_SECONDS = 3600
LAUNCHER_CHOICES = (
    ("srun", gettext_lazy("srun: one task per GPU (saves a checkpoint on Slurm's signal)")),
    ("torchrun", gettext_lazy("torchrun: one task per node, rendezvous on the first node")),
)
LAUNCHERS = tuple(value for value, _label in LAUNCHER_CHOICES)
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
DATA_SUFFIXES = (".jsonl", ".json", ".parquet")
TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}\Z")
PROJECT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")
MASTER_PORT_BASE = 20000
MAX_LIST_ITEMS = 64  # data files, W&B tags

# --- the fields, declared once ----------------------------------------------------------------------------

# The form's fieldsets, in the order the page shows them (their legends are the form's: training_forms).
Section = Literal["model", "hyperparameters", "lora", "judge", "launch", "wandb", "advanced"]


@dataclass(frozen=True)
class TrainingField:
    """How a member is asked for one `TrainingRequest` field, on the form and in the API.

    The field's name, type and default are the dataclass field's. A `str` field with choices is a choice;
    a `list[str]` is one item per line when it has `rows` (a textarea), else separated by spaces or
    commas; `int | None` may be left empty. A field without a default value of its own ("", None, an empty
    list, a false flag) may be left out."""

    label: StrOrPromise
    kinds: tuple[str, ...]  # the Job.Kind values whose form and run.yaml use it
    section: Section
    help: StrOrPromise = ""  # the form's help text
    api_help: str = ""  # the API schema's description (the API takes lists as lists, not lines)
    choices: tuple[tuple[str, StrOrPromise], ...] = ()
    max_length: int | None = None  # the form's limit, and `check`'s (default: inputs.MAX_LINE)
    rows: int = 0  # a textarea of this many rows
    mono: bool = False  # a path, a name or YAML: monospace, no spellcheck
    strip: bool = True  # surrounding whitespace is dropped
    # A list picked from choices that the setting of this name gives (a function () -> [(value, label)]).
    choices_setting: str = ""


@dataclass(frozen=True)
class DeclaredField:
    """A `TrainingRequest` field with its declaration, its type resolved."""

    name: str
    base: type  # str, int, float, bool or list (of str)
    nullable: bool
    default: Any
    how: TrainingField


_T = TypeVar("_T")
TRAINING_FIELD = "training_field"  # the key of the declaration in a dataclass field's metadata


def declare(default: _T, how: TrainingField) -> _T:
    """A `TrainingRequest` field with this default, asked for as `how` says."""
    found: _T = field(default=default, metadata={TRAINING_FIELD: how})
    return found


def declare_list(how: TrainingField) -> list[str]:
    """A `TrainingRequest` list of strings, empty by default."""
    found: list[str] = field(default_factory=list, metadata={TRAINING_FIELD: how})
    return found


def _choices(values: tuple[str, ...]) -> tuple[tuple[str, StrOrPromise], ...]:
    return tuple((value, value) for value in values)


# Who uses a field (TrainingField.kinds).
_EVERY = Job.Kind.training_kinds()
_TRAINING = Job.Kind.kinds_that_train()
_EVAL = (Job.Kind.EVAL,)
_DPO = (Job.Kind.DPO,)


@dataclass
class TrainingRequest:
    """The fields of a training job as a member gives them (form, API, template)."""

    kind: str
    # A directory on the cluster or a hub name; "" in a pipeline: the previous step's output.
    model: str = declare(
        "",
        TrainingField(
            gettext_lazy("Model"),
            _EVERY,
            "model",
            help=gettext_lazy("A model directory on the cluster (or a saved LoRA adapter), or a hub name."),
            api_help="A model directory on the cluster or a hub name. In a pipeline, empty: the previous "
            "step's output.",
            max_length=1000,
            mono=True,
        ),
    )
    train_files: list[str] = declare_list(  # noqa: RUF009 - a dataclasses.field: a new list each time
        TrainingField(
            gettext_lazy("Training data"),
            _TRAINING,
            "model",
            help=gettext_lazy("Absolute paths of .jsonl/.json/.parquet files on the cluster, one per line."),
            rows=2,
            mono=True,
        )
    )
    # Registered data sets (`name@version`): their paths join the training data; the job records which
    # versions it read. Resolved by the TRAINING_DATASETS setting's function (the experiments app).
    datasets: list[str] = declare_list(  # noqa: RUF009 - a dataclasses.field: a new list each time
        TrainingField(
            gettext_lazy("Data sets"),
            _TRAINING,
            "model",
            help=gettext_lazy(
                "Registered data sets (name@version): their files are added to the training data."
            ),
            api_help="Registered data sets as name@version; their files are added to train_files.",
            choices_setting="TRAINING_DATASET_CHOICES",
        )
    )
    eval_files: list[str] = declare_list(  # noqa: RUF009 - a dataclasses.field: a new list each time
        TrainingField(
            gettext_lazy("Validation data"),
            _TRAINING,
            "model",
            help=gettext_lazy("Optional, one per line."),
            rows=1,
            mono=True,
        )
    )
    learning_rate: float = declare(
        2e-5, TrainingField(gettext_lazy("Learning rate"), _TRAINING, "hyperparameters")
    )
    lr_scheduler_type: str = declare(
        "cosine",
        TrainingField(
            gettext_lazy("LR schedule"), _TRAINING, "hyperparameters", choices=_choices(SCHEDULERS)
        ),
    )
    warmup_ratio: float = declare(
        0.0, TrainingField(gettext_lazy("Warm-up ratio"), _TRAINING, "hyperparameters")
    )
    num_train_epochs: float = declare(
        1.0, TrainingField(gettext_lazy("Epochs"), _TRAINING, "hyperparameters")
    )
    max_steps: int = declare(
        -1,
        TrainingField(
            gettext_lazy("Max steps"),
            _TRAINING,
            "hyperparameters",
            help=gettext_lazy("-1: run the epochs; above 0: overrides them."),
            api_help="> 0 overrides epochs.",
        ),
    )
    micro_batch_size: int = declare(
        1,
        TrainingField(
            gettext_lazy("Micro batch (per GPU)"), _TRAINING, "hyperparameters", api_help="Per GPU."
        ),
    )
    global_batch_size: int | None = declare(
        None,
        TrainingField(
            gettext_lazy("Global batch"),
            _TRAINING,
            "hyperparameters",
            help=gettext_lazy(
                "micro batch × accumulation × nodes × GPUs per node; accumulation follows from it."
            ),
            api_help="micro batch × accumulation × nodes × GPUs per node.",
        ),
    )
    gradient_accumulation_steps: int | None = declare(
        None,
        TrainingField(
            gettext_lazy("Gradient accumulation"),
            _TRAINING,
            "hyperparameters",
            help=gettext_lazy("Or give this instead of the global batch."),
        ),
    )
    max_length: int = declare(
        2048, TrainingField(gettext_lazy("Max sequence length"), _TRAINING, "hyperparameters")
    )
    lora: bool = declare(False, TrainingField(gettext_lazy("Train a LoRA adapter"), _TRAINING, "lora"))
    lora_r: int = declare(16, TrainingField(gettext_lazy("LoRA rank"), _TRAINING, "lora"))
    lora_alpha: int = declare(32, TrainingField(gettext_lazy("LoRA alpha"), _TRAINING, "lora"))
    lora_dropout: float = declare(0.05, TrainingField(gettext_lazy("LoRA dropout"), _TRAINING, "lora"))
    dpo_beta: float = declare(0.1, TrainingField(gettext_lazy("DPO β"), _DPO, "hyperparameters"))
    dtype: str = declare(
        "bf16", TrainingField(gettext_lazy("Precision"), _EVERY, "launch", choices=_choices(DTYPES))
    )
    use_cpu: bool = declare(
        False,
        TrainingField(
            gettext_lazy("Run on CPU"),
            _EVERY,
            "launch",
            help=gettext_lazy("For smoke tests on nodes without GPUs."),
        ),
    )
    questions: str = declare(
        "",
        TrainingField(
            gettext_lazy("Questions"),
            _EVAL,
            "model",
            help=gettext_lazy("Absolute path of a FastChat question.jsonl on the cluster."),
            api_help="Eval: question.jsonl path.",
            max_length=1000,
            mono=True,
        ),
    )
    judge_model: str = declare(
        "gpt-4o", TrainingField(gettext_lazy("Judge model"), _EVAL, "judge", max_length=200)
    )
    judge_endpoint: str = declare(
        "",
        TrainingField(
            gettext_lazy("Judge endpoint"),
            _EVAL,
            "judge",
            help=gettext_lazy(
                "One of the judges the admins configured. Its key reaches the job as a file only you can "
                "read, removed when the job ends."
            ),
            api_help="Eval: the name of a judge endpoint (an admin configures them).",
            max_length=64,
        ),
    )
    max_new_tokens: int = declare(1024, TrainingField(gettext_lazy("Max new tokens"), _EVAL, "judge"))
    wandb_mode: str = declare(
        "offline",
        TrainingField(gettext_lazy("W&B mode"), _EVERY, "wandb", choices=_choices(WANDB_MODES)),
    )
    wandb_project: str = declare(
        "", TrainingField(gettext_lazy("W&B project"), _EVERY, "wandb", max_length=128)
    )
    wandb_tags: list[str] = declare_list(  # noqa: RUF009 - a dataclasses.field: a new list each time
        TrainingField(
            gettext_lazy("W&B tags"), _EVERY, "wandb", help=gettext_lazy("Separated by spaces or commas.")
        )
    )
    launcher: str = declare(
        "srun", TrainingField(gettext_lazy("Launcher"), _TRAINING, "launch", choices=LAUNCHER_CHOICES)
    )
    save_steps: int = declare(
        500, TrainingField(gettext_lazy("Checkpoint every (steps)"), _TRAINING, "launch")
    )
    # sbatch --signal=USR1@N: save a checkpoint N s before the limit.
    checkpoint_signal_seconds: int = declare(
        300,
        TrainingField(
            gettext_lazy("Save before the time limit (seconds)"),
            _TRAINING,
            "launch",
            help=gettext_lazy(
                "Slurm signals the run this long before its limit; it saves and stops (srun only). 0: off."
            ),
        ),
    )
    requeue: bool = declare(
        True, TrainingField(gettext_lazy("Requeue after a checkpoint or node failure"), _TRAINING, "launch")
    )
    # More run.yaml, merged over what the fields make (the advanced part of the form).
    extra_yaml: str = declare(
        "",
        TrainingField(
            gettext_lazy("More run.yaml"),
            _EVERY,
            "advanced",
            help=gettext_lazy("Merged over the fields above, e.g. training: {seed: 1, logging_steps: 1}."),
            api_help="More run.yaml, merged over the fields (at most 16 KiB; no anchors or aliases).",
            max_length=inputs.MAX_YAML_BYTES,
            rows=3,
            mono=True,
            strip=False,
        ),
    )

    @property
    def trains(self) -> bool:
        return self.kind in Job.Kind.kinds_that_train()

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainingRequest:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def declared_fields(kind: str | None = None) -> tuple[DeclaredField, ...]:
    """The declared fields of `TrainingRequest` in order (all of them, or those `kind` uses)."""
    every = _declared(TrainingRequest)
    return every if kind is None else tuple(f for f in every if kind in f.how.kinds)


@functools.cache
def _declared(request_class: type[TrainingRequest]) -> tuple[DeclaredField, ...]:
    hints = typing.get_type_hints(request_class)
    found = []
    for spec in dataclasses.fields(request_class):
        how = spec.metadata.get(TRAINING_FIELD)
        if how is None:
            continue  # `kind`: chosen by the page or the request, not a field of the run
        hint = hints[spec.name]
        options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
        nullable = type(None) in options
        (base,) = [option for option in options if option is not type(None)]
        base = typing.get_origin(base) or base
        if base not in (str, int, float, bool, list):
            raise TypeError(f"TrainingRequest.{spec.name}: no form field for {hint}")
        default = [] if spec.default_factory is not dataclasses.MISSING else spec.default
        found.append(DeclaredField(spec.name, base, nullable, default, how))
    return tuple(found)


# --- templates (the form's fields, saved to start new runs from) ---------------------------------------

MAX_TEMPLATE_FIELDS = 200
MAX_TEMPLATE_TEXT = 64 * 1024  # a custom job's command
MAX_TEMPLATE_DESCRIPTION = 2000
TEMPLATE_KEY_RE = re.compile(r"^[A-Za-z0-9_-]{1,100}\Z")  # a form field's name, e.g. sft-learning_rate
MULTILINE_FORM_FIELDS = frozenset({"command", "then_command"})


def _template_value_problem(key: str, value: Any) -> str | None:
    if value is None or isinstance(value, bool | int | float):
        return None
    if not isinstance(value, str):
        return _("Text, a number or true/false.")
    declared = {d.name: d for d in declared_fields()}.get(key.split("-", 1)[-1])
    if declared is not None and declared.base is str and declared.how.max_length:
        multiline, limit = bool(declared.how.rows), declared.how.max_length
    elif declared is not None and declared.base is list:
        multiline, limit = bool(declared.how.rows), MAX_TEMPLATE_TEXT
    elif key in MULTILINE_FORM_FIELDS:
        multiline, limit = True, MAX_TEMPLATE_TEXT
    else:
        multiline, limit = False, inputs.MAX_LINE
    return inputs.text_problem(value, max_length=limit, multiline=multiline)


def template_errors(name: str, description: str, fields: Any) -> dict[str, list[str]]:
    """What `services.save_template` refuses in a template: the text rules (`inputs.text_problem`) on
    its name, description and every saved field, with each training field's own limit."""
    errors: dict[str, list[str]] = {}
    if (problem := inputs.text_problem(name or "", max_length=100)) is not None:
        _field(errors, "name", problem)
    limit = MAX_TEMPLATE_DESCRIPTION
    if (problem := inputs.text_problem(description or "", max_length=limit, multiline=True)) is not None:
        _field(errors, "description", problem)
    if not isinstance(fields, dict):
        _field(errors, "fields", _("A mapping of form fields."))
        return errors
    if len(fields) > MAX_TEMPLATE_FIELDS:
        _field(errors, "fields", _("At most %(max)d fields.") % {"max": MAX_TEMPLATE_FIELDS})
        return errors
    for key, value in fields.items():
        if not isinstance(key, str) or not TEMPLATE_KEY_RE.match(key):
            _field(errors, "fields", _("Field names are letters, digits, - and _ (at most 100)."))
        elif (problem := _template_value_problem(key, value)) is not None:
            _field(errors, "fields", f"{key}: {problem}")
    return errors


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
    loaded = inputs.load_yaml(request.extra_yaml)
    return loaded if isinstance(loaded, dict) else {}


def resolve_datasets(refs: list[str], cluster: Cluster | None) -> tuple[list[dict[str, Any]], list[str]]:
    """The named data sets ({id, ref, path, sha256} each) and what is wrong with the names, as the
    TRAINING_DATASETS setting's function says (without one, no data set can be named)."""
    if not refs:
        return [], []
    resolver = hooks.setting_function("TRAINING_DATASETS")
    if resolver is None:
        return [], [_("Data sets are not available here: give file paths instead.")]
    found: tuple[list[dict[str, Any]], list[str]] = resolver(refs, cluster)
    return found


def build_config(
    request: TrainingRequest,
    *,
    nodes: int,
    gpus_per_node: int,
    model: str | None = None,
    tags: list[str] | None = None,
    dataset_paths: list[str] | None = None,
) -> dict[str, Any]:
    """run.yaml for the request. `model` overrides request.model (a pipeline's previous output);
    `dataset_paths` (the named data sets' files) come before the request's own training files."""
    config: dict[str, Any] = {"kind": ENTRY_POINTS[request.kind]}
    config["model"] = {"name_or_path": model or request.model}
    if request.trains:
        train_files = [
            *(dataset_paths or []),
            *(p for p in request.train_files if p not in (dataset_paths or [])),
        ]
        config["data"] = {"train_files": train_files, "eval_files": list(request.eval_files)}
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
        if request.kind == Job.Kind.DPO:
            config["dpo"] = {"beta": request.dpo_beta}
    else:
        judge: dict[str, Any] = {"model": request.judge_model}
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


def judge_endpoint(request: TrainingRequest) -> JudgeEndpoint | None:
    """The admins' judge the request names; when it names none and there is exactly one, that one."""
    active = JudgeEndpoint.objects.filter(is_active=True)
    if not request.judge_endpoint:
        only = list(active[:2])
        return only[0] if len(only) == 1 else None
    return active.filter(name=request.judge_endpoint).first()


JUDGE_KEY_FILE = "judge_api_key"


def pin_judge(config: dict[str, Any], endpoint: JudgeEndpoint, secrets_dir: str) -> None:
    """The judge's URL and key file come from the admins' endpoint, whatever the extra YAML says: a
    member cannot send the key elsewhere. The key itself is staged as a file (`Job.secrets_dir`)."""
    judge = config.setdefault("evaluate", {}).setdefault("judge", {})
    judge["base_url"] = endpoint.base_url
    judge.pop("api_key_env", None)
    if endpoint.key_env:
        judge["api_key_file"] = f"{secrets_dir}/{JUDGE_KEY_FILE}"
    else:
        judge.pop("api_key_file", None)


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
    "evaluate.judge.base_url": "judge_endpoint",
    "wandb.mode": "wandb_mode",
}


def text_errors(request: TrainingRequest) -> dict[str, list[str]]:
    """The text rules (`inputs.text_problem`) on every text field: its length, no NUL, no control
    characters (a textarea keeps newlines and tabs), no direction overrides; lists at most 64 items."""
    errors: dict[str, list[str]] = {}
    for declared in declared_fields():
        value, how = getattr(request, declared.name), declared.how
        if declared.base is str:
            limit = how.max_length or inputs.MAX_LINE
            problem = inputs.text_problem(str(value), max_length=limit, multiline=bool(how.rows))
        elif declared.base is list:
            problem = _list_problem(value)
        else:
            continue
        if problem is not None:
            _field(errors, declared.name, problem)
    return errors


def _list_problem(values: list[Any]) -> str | None:
    if len(values) > MAX_LIST_ITEMS:
        return _("At most %(max)d items.") % {"max": MAX_LIST_ITEMS}
    for number, value in enumerate(values, start=1):
        problem = inputs.text_problem(str(value))
        if problem is not None:
            return _("Item %(n)d: %(problem)s") % {"n": number, "problem": problem}
    return None


def check(
    request: TrainingRequest,
    *,
    nodes: int,
    gpus_per_node: int,
    model_from_previous: bool = False,
    cluster: Cluster | None = None,
) -> dict[str, list[str]]:
    """Field errors ({request field: [message]}); empty when the job may be submitted. `cluster`: where
    it runs (without one, nothing a cluster must allow is allowed: model.trust_remote_code)."""
    if request.kind not in ENTRY_POINTS:
        return {"kind": [_("Unknown job kind %(kind)s.") % {"kind": request.kind}]}
    errors = text_errors(request)
    if errors:
        return errors  # the rest would quote what was sent
    if not request.model.strip():
        if not model_from_previous:
            _field(errors, "model", _("Say which model: a directory on the cluster or a hub name."))
    elif (problem := inputs.path_problem(request.model)) is not None:
        _field(errors, "model", problem)
    if request.kind == Job.Kind.EVAL and judge_endpoint(request) is None:
        names = ", ".join(JudgeEndpoint.objects.filter(is_active=True).values_list("name", flat=True))
        _field(
            errors,
            "judge_endpoint",
            _("Pick one of the judges the admins configured: %(names)s.") % {"names": names}
            if names
            else _("No judge is configured yet: ask an admin to add one (Admin → Judge endpoints)."),
        )
    dataset_paths: list[str] = []
    if request.trains:
        if not request.train_files and not request.datasets:
            _field(errors, "train_files", _("Give at least one training data file or data set."))
        resolved, problems = resolve_datasets(request.datasets, cluster)
        dataset_paths = [d["path"] for d in resolved]
        for message in problems:
            _field(errors, "datasets", message)
        for name in ("train_files", "eval_files"):
            for path in getattr(request, name):
                if (problem := inputs.path_problem(path, absolute=True)) is not None:
                    _field(errors, name, _("%(path)s: %(problem)s") % {"path": path, "problem": problem})
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
        if request.kind == Job.Kind.DPO and not 0 < request.dpo_beta <= 10:
            _field(errors, "dpo_beta", _("β must be above 0 and at most 10."))
        if not 0 <= request.checkpoint_signal_seconds <= MAX_SIGNAL_SECONDS:
            _field(
                errors,
                "checkpoint_signal_seconds",
                _("Between 0 and %(max)d seconds.") % {"max": MAX_SIGNAL_SECONDS},
            )
    elif not request.questions.startswith("/"):
        _field(errors, "questions", _("Give the absolute path of a question.jsonl on the cluster."))
    elif (problem := inputs.path_problem(request.questions, absolute=True)) is not None:
        _field(errors, "questions", problem)
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
        extra = inputs.load_yaml(request.extra_yaml) if request.extra_yaml.strip() else {}
    except inputs.YAMLRefused as error:
        _field(errors, "extra_yaml", str(error))
        extra = {}
    if extra is not None and not isinstance(extra, dict):
        _field(errors, "extra_yaml", _("Give a mapping of run.yaml sections, e.g. training: {seed: 1}."))
    elif isinstance(extra, dict) and ("output" in extra or "kind" in extra):
        _field(errors, "extra_yaml", _("output and kind are set by the portal."))
    if errors:
        return errors
    allow_code = cluster is not None and cluster.allow_trust_remote_code
    return _check_with_training(request, nodes, gpus_per_node, model_from_previous, allow_code, dataset_paths)


def _config_field(key: str) -> str:
    """The request field that sets a run.yaml key (extra_yaml when no field does)."""
    return next(
        (name for prefix, name in CONFIG_FIELDS.items() if key == prefix or key.startswith(prefix + "[")),
        "extra_yaml",
    )


def _from_extra(extra: Any, key: str) -> bool:
    """Whether the extra YAML sets this run.yaml key (`data.train_files[0]`: data.train_files)."""
    for part in key.split("[", 1)[0].split("."):
        if not isinstance(extra, dict) or part not in extra:
            return False
        extra = extra[part]
    return True


def _check_with_training(
    request: TrainingRequest,
    nodes: int,
    gpus_per_node: int,
    model_from_previous: bool,
    allow_code: bool,
    dataset_paths: list[str] | None = None,
) -> dict[str, list[str]]:
    """The merged run.yaml by the same path and text rules as the fields (`inputs.config_problems`), then
    through training.config (types, unknown keys, ranges); file existence is the job's. A problem in
    what the extra YAML sets is reported on extra_yaml, naming the key."""
    from training.config import ConfigError, config_from_dict

    placeholder = "/previous-step/out" if model_from_previous and not request.model else None
    config = build_config(
        request, nodes=nodes, gpus_per_node=gpus_per_node, model=placeholder, dataset_paths=dataset_paths
    )
    extra = _extra(request)
    errors: dict[str, list[str]] = {}
    for key, problem in inputs.config_problems(config, allow_trust_remote_code=allow_code):
        target = "extra_yaml" if _from_extra(extra, key) else _config_field(key)
        _field(errors, target, f"{key}: {problem}")
    if errors:
        return errors
    try:
        config_from_dict(config, kind=ENTRY_POINTS[request.kind], check_files=False)
    except ConfigError as error:
        return {_config_field(error.key): [inputs.short(f"{error.key}: {error.message}")]}
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
