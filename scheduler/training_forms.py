"""Forms for the training kinds (pretrain, SFT, DPO, eval) and for pipelines of them.

The fields are those of `training_jobs.TrainingRequest` (the API's `training` object has the same names);
what may be submitted is decided by `services.validate_spec`, whose errors land next to these fields.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from portal import access
from portal.models import Subteam
from scheduler import services, training_jobs
from scheduler.forms import GPUS_REQUIRED, default_name, spec_errors
from scheduler.models import Cluster, Job
from scheduler.services import MIN_GPUS_PER_NODE

KIND_LABELS = dict(Job.Kind.choices)
TRAINING_KINDS = [k for k in Job.Kind.values if k != Job.Kind.CUSTOM]

# Which request fields each kind shows (the rest keep their defaults).
COMMON = ["model", "dtype", "use_cpu", "wandb_mode", "wandb_project", "wandb_tags", "extra_yaml"]
TRAINING = [
    "train_files",
    "eval_files",
    "learning_rate",
    "lr_scheduler_type",
    "warmup_ratio",
    "num_train_epochs",
    "max_steps",
    "micro_batch_size",
    "global_batch_size",
    "gradient_accumulation_steps",
    "max_length",
    "save_steps",
    "lora",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "launcher",
    "checkpoint_signal_seconds",
    "requeue",
]
KIND_FIELDS = {
    "pretrain": [*COMMON, *TRAINING],
    "sft": [*COMMON, *TRAINING],
    "dpo": [*COMMON, *TRAINING, "dpo_beta"],
    "eval": [*COMMON, "questions", "judge_model", "judge_base_url", "max_new_tokens"],
}
# Fieldsets of the form page, in order: (legend, fields).
SECTIONS = [
    (_("Model and data"), ["model", "train_files", "eval_files", "questions"]),
    (
        _("Hyperparameters"),
        [
            "learning_rate",
            "lr_scheduler_type",
            "warmup_ratio",
            "num_train_epochs",
            "max_steps",
            "micro_batch_size",
            "global_batch_size",
            "gradient_accumulation_steps",
            "max_length",
            "dpo_beta",
        ],
    ),
    (_("LoRA"), ["lora", "lora_r", "lora_alpha", "lora_dropout"]),
    (_("Judge"), ["judge_model", "judge_base_url", "max_new_tokens"]),
    (
        _("Precision and launch"),
        ["dtype", "use_cpu", "launcher", "save_steps", "checkpoint_signal_seconds", "requeue"],
    ),
    (_("Weights & Biases"), ["wandb_mode", "wandb_project", "wandb_tags"]),
    (_("Advanced"), ["extra_yaml"]),
]

D = training_jobs.TrainingRequest(kind="sft")
MONO = {"class": "mono", "spellcheck": "false", "autocomplete": "off"}


def _lines(value: str) -> list[str]:
    return [line.strip() for line in (value or "").splitlines() if line.strip()]


def training_fields() -> dict[str, forms.Field]:
    """Every training field (a kind's form keeps its own)."""
    return {
        "model": forms.CharField(
            label=_("Model"),
            required=False,
            max_length=1000,
            help_text=_("A model directory on the cluster (or a saved LoRA adapter), or a hub name."),
            widget=forms.TextInput(attrs=MONO),
        ),
        "train_files": forms.CharField(
            label=_("Training data"),
            required=False,
            help_text=_("Absolute paths of .jsonl/.json/.parquet files on the cluster, one per line."),
            widget=forms.Textarea(attrs={"rows": 2, **MONO}),
        ),
        "eval_files": forms.CharField(
            label=_("Validation data"),
            required=False,
            help_text=_("Optional, one per line."),
            widget=forms.Textarea(attrs={"rows": 1, **MONO}),
        ),
        "learning_rate": forms.FloatField(label=_("Learning rate"), initial=D.learning_rate),
        "lr_scheduler_type": forms.ChoiceField(
            label=_("LR schedule"),
            choices=[(s, s) for s in training_jobs.SCHEDULERS],
            initial=D.lr_scheduler_type,
        ),
        "warmup_ratio": forms.FloatField(label=_("Warm-up ratio"), initial=D.warmup_ratio),
        "num_train_epochs": forms.FloatField(label=_("Epochs"), initial=D.num_train_epochs),
        "max_steps": forms.IntegerField(
            label=_("Max steps"),
            initial=D.max_steps,
            help_text=_("-1: run the epochs; above 0: overrides them."),
        ),
        "micro_batch_size": forms.IntegerField(label=_("Micro batch (per GPU)"), initial=D.micro_batch_size),
        "global_batch_size": forms.IntegerField(
            label=_("Global batch"),
            required=False,
            help_text=_("micro batch × accumulation × nodes × GPUs per node; accumulation follows from it."),
        ),
        "gradient_accumulation_steps": forms.IntegerField(
            label=_("Gradient accumulation"),
            required=False,
            help_text=_("Or give this instead of the global batch."),
        ),
        "max_length": forms.IntegerField(label=_("Max sequence length"), initial=D.max_length),
        "save_steps": forms.IntegerField(label=_("Checkpoint every (steps)"), initial=D.save_steps),
        "lora": forms.BooleanField(label=_("Train a LoRA adapter"), required=False),
        "lora_r": forms.IntegerField(label=_("LoRA rank"), initial=D.lora_r),
        "lora_alpha": forms.IntegerField(label=_("LoRA alpha"), initial=D.lora_alpha),
        "lora_dropout": forms.FloatField(label=_("LoRA dropout"), initial=D.lora_dropout),
        "dpo_beta": forms.FloatField(label=_("DPO β"), initial=D.dpo_beta),
        "dtype": forms.ChoiceField(
            label=_("Precision"), choices=[(d, d) for d in training_jobs.DTYPES], initial=D.dtype
        ),
        "use_cpu": forms.BooleanField(
            label=_("Run on CPU"), required=False, help_text=_("For smoke tests on nodes without GPUs.")
        ),
        "launcher": forms.ChoiceField(
            label=_("Launcher"),
            choices=[
                ("srun", _("srun: one task per GPU (saves a checkpoint on Slurm's signal)")),
                ("torchrun", _("torchrun: one task per node, rendezvous on the first node")),
            ],
            initial=D.launcher,
        ),
        "checkpoint_signal_seconds": forms.IntegerField(
            label=_("Save before the time limit (seconds)"),
            initial=D.checkpoint_signal_seconds,
            help_text=_(
                "Slurm signals the run this long before its limit; it saves and stops (srun only). 0: off."
            ),
        ),
        "requeue": forms.BooleanField(
            label=_("Requeue after a checkpoint or node failure"), required=False, initial=True
        ),
        "questions": forms.CharField(
            label=_("Questions"),
            required=False,
            max_length=1000,
            help_text=_("Absolute path of a FastChat question.jsonl on the cluster."),
            widget=forms.TextInput(attrs=MONO),
        ),
        "judge_model": forms.CharField(label=_("Judge model"), initial=D.judge_model, max_length=200),
        "judge_base_url": forms.CharField(
            label=_("Judge endpoint"),
            required=False,
            max_length=500,
            help_text=_(
                "An OpenAI-compatible /v1 URL (empty: OpenAI). The key is read on the cluster from OPENAI_API_KEY."
            ),
            widget=forms.TextInput(attrs=MONO),
        ),
        "max_new_tokens": forms.IntegerField(label=_("Max new tokens"), initial=D.max_new_tokens),
        "wandb_mode": forms.ChoiceField(
            label=_("W&B mode"), choices=[(m, m) for m in training_jobs.WANDB_MODES], initial=D.wandb_mode
        ),
        "wandb_project": forms.CharField(label=_("W&B project"), required=False, max_length=128),
        "wandb_tags": forms.CharField(
            label=_("W&B tags"), required=False, help_text=_("Separated by spaces or commas.")
        ),
        "extra_yaml": forms.CharField(
            label=_("More run.yaml"),
            required=False,
            strip=False,
            help_text=_("Merged over the fields above, e.g. training: {seed: 1, logging_steps: 1}."),
            widget=forms.Textarea(attrs={"rows": 3, **MONO}),
        ),
    }


def resource_fields() -> dict[str, forms.Field]:
    return {
        "nodes": forms.IntegerField(label=_("Nodes"), initial=1),
        "gpus_per_node": forms.IntegerField(
            label=_("GPUs per node"),
            initial=1,
            min_value=MIN_GPUS_PER_NODE,
            error_messages={"min_value": GPUS_REQUIRED},
        ),
        "time_limit_minutes": forms.IntegerField(label=_("Time limit (minutes)"), initial=60),
        "partition": forms.CharField(label=_("Partition"), max_length=64, required=False),
        "account": forms.CharField(label=_("Account"), max_length=64, required=False),
    }


class TrainingStepForm(forms.Form):
    """One training run's fields (and its resources), without where it goes: a job's or a pipeline step's."""

    def __init__(self, *args: Any, kind: str, model_from_previous: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kind = kind
        self.model_from_previous = model_from_previous
        every = training_fields()
        for name, field in resource_fields().items():
            self.fields[name] = field
        for name in KIND_FIELDS[kind]:
            self.fields[name] = every[name]
        if model_from_previous:
            self.fields["model"].help_text = _("Empty: the previous step's output.")

    def sections(self) -> list[tuple[str, list[forms.BoundField]]]:
        found = []
        for legend, names in SECTIONS:
            bound = [self[name] for name in names if name in self.fields]
            if bound:
                found.append((str(legend), bound))
        return found

    def resources(self) -> list[forms.BoundField]:
        return [self[name] for name in resource_fields()]

    def request(self) -> training_jobs.TrainingRequest:
        data = self.cleaned_data
        values: dict[str, Any] = {"kind": self.kind}
        for name in KIND_FIELDS[self.kind]:
            value = data.get(name)
            if name in ("train_files", "eval_files"):
                value = _lines(value or "")
            elif name == "wandb_tags":
                value = [t for t in (value or "").replace(",", " ").split() if t]
            elif value is None:
                continue
            values[name] = value
        return training_jobs.TrainingRequest.from_dict(values)

    def spec(self, subteam: Subteam, cluster: Cluster, name: str) -> services.JobSpec:
        data = self.cleaned_data
        return services.JobSpec(
            subteam=subteam,
            cluster=cluster,
            name=name,
            command="",
            nodes=data["nodes"],
            gpus_per_node=data["gpus_per_node"],
            time_limit_minutes=data["time_limit_minutes"],
            partition=data.get("partition") or "",
            account=data.get("account") or "",
            kind=self.kind,
            training=self.request(),
            model_from_previous=self.model_from_previous,
        )

    def put_errors(self, error: ValidationError) -> None:
        for field, messages in spec_errors(error).items():
            target = field if field in self.fields else None
            for message in messages:
                self.add_error(target, message)


class TrainingJobForm(TrainingStepForm):
    """A pretraining, SFT, DPO or evaluation job."""

    def __init__(self, *args: Any, user: Any, kind: str, **kwargs: Any) -> None:
        super().__init__(*args, kind=kind, **kwargs)
        head: dict[str, forms.Field] = {
            "subteam": forms.ModelChoiceField(queryset=access.subteams_for(user), label=_("Subteam")),
            "cluster": forms.ModelChoiceField(
                queryset=Cluster.objects.filter(is_active=True), label=_("Cluster")
            ),
            "name": forms.CharField(
                label=_("Name"),
                max_length=64,
                required=False,
                help_text=_("Letters, digits, dots, dashes and underscores. Empty: a name is made up."),
                widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
            ),
        }
        self.fields = {**head, **self.fields}
        self.user = user

    def head(self) -> list[forms.BoundField]:
        return [self["subteam"], self["cluster"], self["name"]]

    def job_spec(self) -> services.JobSpec:
        data = self.cleaned_data
        return self.spec(data["subteam"], data["cluster"], data["name"] or default_name(self.kind))

    def check(self) -> services.JobSpec | None:
        spec = self.job_spec()
        try:
            services.validate_spec(spec)
        except ValidationError as error:
            self.put_errors(error)
            return None
        return spec


PIPELINE_STEPS = ("sft", "dpo", "eval")


class PipelineForm(forms.Form):
    """SFT → DPO → eval: where it goes, then one step form each (DPO and eval may be left out)."""

    name = forms.CharField(label=_("Pipeline name"), max_length=64)
    include_dpo = forms.BooleanField(label=_("Then DPO"), required=False, initial=True)
    include_eval = forms.BooleanField(label=_("Then MT-Bench evaluation"), required=False, initial=True)

    def __init__(self, *args: Any, user: Any, **kwargs: Any) -> None:
        data = args[0] if args else kwargs.get("data")
        initial = kwargs.get("initial") or {}
        super().__init__(*args, **kwargs)
        self.fields["subteam"] = forms.ModelChoiceField(
            queryset=access.subteams_for(user), label=_("Subteam")
        )
        self.fields["cluster"] = forms.ModelChoiceField(
            queryset=Cluster.objects.filter(is_active=True), label=_("Cluster")
        )
        self.steps = {
            kind: TrainingStepForm(
                data,
                kind=kind,
                prefix=kind,
                model_from_previous=index > 0,
                initial={k[len(kind) + 1 :]: v for k, v in initial.items() if k.startswith(kind + "-")},
            )
            for index, kind in enumerate(PIPELINE_STEPS)
        }

    def chosen_steps(self) -> list[TrainingStepForm]:
        data = self.cleaned_data
        chosen = [self.steps["sft"]]
        if data.get("include_dpo"):
            chosen.append(self.steps["dpo"])
        if data.get("include_eval"):
            chosen.append(self.steps["eval"])
        return chosen

    def is_valid(self) -> bool:
        valid = super().is_valid()
        if not valid:
            return False
        return all([step.is_valid() for step in self.chosen_steps()])

    def specs(self) -> list[services.JobSpec]:
        data = self.cleaned_data
        specs = []
        for number, step in enumerate(self.chosen_steps(), start=1):
            spec = step.spec(data["subteam"], data["cluster"], f"{data['name'][:60]}-{step.kind}")
            spec.model_from_previous = number > 1
            specs.append(spec)
        return specs

    def put_errors(self, error: ValidationError) -> None:
        chosen = self.chosen_steps()
        for key, messages in spec_errors(error).items():
            if key.startswith("steps[") and "]." in key:
                number, field = key[len("steps[") :].split("].", 1)
                step = chosen[int(number) - 1]
                for message in messages:
                    step.add_error(field if field in step.fields else None, message)
            else:
                for message in messages:
                    self.add_error(key if key in self.fields else None, message)
