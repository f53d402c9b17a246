"""Forms for the training kinds (pretrain, SFT, DPO, eval) and for pipelines of them.

The fields are built from the declarations of `training_jobs.TrainingRequest` (the API's `training`
object is built from the same ones, by the same names); what may be submitted is decided by
`services.validate_spec`, whose errors land next to these fields.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from portal import access, hooks
from portal.models import Subteam
from scheduler import services, training_jobs
from scheduler.forms import GPUS_REQUIRED, default_name, spec_errors
from scheduler.models import Cluster, Job
from scheduler.services import MIN_GPUS_PER_NODE
from scheduler.training_jobs import DeclaredField, Section

if TYPE_CHECKING:
    from django_stubs_ext import StrOrPromise

KIND_LABELS = dict(Job.Kind.choices)

# The fieldsets of the form page, in order; a field says which one it sits in (TrainingField.section).
SECTIONS: dict[Section, StrOrPromise] = {
    "model": _("Model and data"),
    "hyperparameters": _("Hyperparameters"),
    "lora": _("LoRA"),
    "judge": _("Judge"),
    "launch": _("Precision and launch"),
    "wandb": _("Weights & Biases"),
    "advanced": _("Advanced"),
}

MONO = {"class": "mono", "spellcheck": "false", "autocomplete": "off"}


def _lines(value: str | None) -> list[str]:
    return [line.strip() for line in (value or "").splitlines() if line.strip()]


def _words(value: str | None) -> list[str]:
    return [word for word in (value or "").replace(",", " ").split() if word]


def _widget(declared: DeclaredField) -> forms.Widget | None:
    how = declared.how
    if how.rows:
        return forms.Textarea(attrs={"rows": how.rows, **MONO} if how.mono else {"rows": how.rows})
    return forms.TextInput(attrs=MONO) if how.mono else None


def _setting_choices(name: str) -> list[tuple[str, str]]:
    """The choices the setting `name` names a function for (none when it is not set)."""
    choices = hooks.setting_function(name)
    found: list[tuple[str, str]] = choices() if choices is not None else []
    return found


def form_field(declared: DeclaredField) -> forms.Field:
    """The form field of a declared training field: a value with a default of its own is asked for
    (and starts at it); one without may be left empty."""
    how, default = declared.how, declared.default
    common: dict[str, Any] = {"label": how.label}
    if how.help:
        common["help_text"] = how.help
    if how.choices:
        return forms.ChoiceField(choices=list(how.choices), initial=default, **common)
    if declared.base is bool:
        return forms.BooleanField(required=False, initial=default or None, **common)
    if declared.base in (int, float):
        number = forms.IntegerField if declared.base is int else forms.FloatField
        if declared.nullable:
            return number(required=False, **common)
        return number(initial=default, **common)
    if declared.base is list and how.choices_setting:
        return forms.MultipleChoiceField(
            required=False,
            choices=functools.partial(_setting_choices, how.choices_setting),
            widget=forms.SelectMultiple(attrs={"size": 4}),
            **common,
        )
    widget = _widget(declared)
    if widget is not None:
        common["widget"] = widget
    if declared.base is list:
        return forms.CharField(required=False, **common)
    if how.max_length is not None:
        common["max_length"] = how.max_length
    if not how.strip:
        common["strip"] = False
    if default:
        return forms.CharField(initial=default, **common)
    return forms.CharField(required=False, **common)


def training_fields() -> dict[str, forms.Field]:
    """Every training field (a kind's form keeps its own)."""
    return {declared.name: form_field(declared) for declared in training_jobs.declared_fields()}


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
        for name, field in resource_fields().items():
            self.fields[name] = field
        for declared in training_jobs.declared_fields(kind):
            self.fields[declared.name] = form_field(declared)
        if model_from_previous:
            self.fields["model"].help_text = _("Empty: the previous step's output.")

    def sections(self) -> list[tuple[str, list[forms.BoundField]]]:
        declared = training_jobs.declared_fields(self.kind)
        found = []
        for section, legend in SECTIONS.items():
            bound = [self[d.name] for d in declared if d.how.section == section]
            if bound:
                found.append((str(legend), bound))
        return found

    def resources(self) -> list[forms.BoundField]:
        return [self[name] for name in resource_fields()]

    def request(self) -> training_jobs.TrainingRequest:
        data = self.cleaned_data
        values: dict[str, Any] = {"kind": self.kind}
        for declared in training_jobs.declared_fields(self.kind):
            value = data.get(declared.name)
            if declared.base is list:
                if not isinstance(value, list):
                    value = _lines(value) if declared.how.rows else _words(value)
            elif value is None:
                continue  # left empty: the request's default
            values[declared.name] = value
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
