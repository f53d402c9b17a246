"""The job submission form. What a job may ask for is decided by `services.validate_spec`; the form only
parses the fields and shows the service's errors next to them (see `views.jobs`)."""

from __future__ import annotations

import dataclasses
from typing import Any

from django import forms
from django.core.exceptions import ValidationError
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from portal import access
from portal.forms import model_choice, preselect_only_subteam
from portal.models import Subteam
from scheduler import inputs, services
from scheduler.models import Cluster, Job
from scheduler.services import MAX_COMMAND_BYTES, MIN_GPUS_PER_NODE

# The portal submits GPU jobs: every step asks for at least one GPU per node (the API says the same).
GPUS_REQUIRED = _("Ask for at least one GPU per node.")
# Shell lines: tabs and newlines, no other control characters or direction overrides (the API's too).
COMMAND_TEXT = inputs.bounded_text(MAX_COMMAND_BYTES, multiline=True)


def default_name(kind: str = Job.Kind.CUSTOM) -> str:
    """A name for a job submitted without one, e.g. `custom-20250301-142500`."""
    return f"{kind}-{timezone.localtime():%Y%m%d-%H%M%S}"


def step_name(base: str, step: int) -> str:
    """The name of a chain's later step: the first job's name with `-2`, `-3`, … (still a valid name)."""
    suffix = f"-{step}"
    return base[: 64 - len(suffix)] + suffix


def spec_errors(error: ValidationError, rename: dict[str, str] | None = None) -> dict[str, list[str]]:
    """`{field: [message, …]}` from `validate_spec`'s ValidationError, fields renamed for the caller."""
    rename = rename or {}
    if not hasattr(error, "error_dict"):
        return {"__all__": list(error.messages)}
    return {rename.get(field, field): list(messages) for field, messages in error.message_dict.items()}


class JobForm(forms.Form):
    """Submit one job, or two (the second runs only if the first succeeds)."""

    subteam = forms.ModelChoiceField(queryset=Subteam.objects.none(), label=_("Subteam"))
    cluster = forms.ModelChoiceField(queryset=Cluster.objects.none(), label=_("Cluster"))
    name = forms.CharField(
        label=_("Name"),
        max_length=64,
        required=False,
        help_text=_("Letters, digits, dots, dashes and underscores. Empty: a name is made up."),
        widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}),
    )
    command = forms.CharField(
        label=_("Command"),
        strip=False,
        validators=[COMMAND_TEXT],
        help_text=_("Shell lines run in the job's own directory on the cluster."),
        widget=forms.Textarea(attrs={"rows": 6, "spellcheck": "false", "class": "mono"}),
    )
    nodes = forms.IntegerField(label=_("Nodes"), initial=1)
    gpus_per_node = forms.IntegerField(
        label=_("GPUs per node"),
        initial=1,
        min_value=MIN_GPUS_PER_NODE,
        error_messages={"min_value": GPUS_REQUIRED},
    )
    time_limit_minutes = forms.IntegerField(label=_("Time limit (minutes)"), initial=60)
    partition = forms.CharField(
        label=_("Partition"),
        max_length=64,
        required=False,
        help_text=_("Empty: the cluster's default partition."),
    )
    account = forms.CharField(
        label=_("Account"),
        max_length=64,
        required=False,
        help_text=_("Empty: the cluster's default account."),
    )
    then_command = forms.CharField(
        label=_("Then run (optional)"),
        required=False,
        strip=False,
        validators=[COMMAND_TEXT],
        help_text=_("A second job with the same resources, started only if the first one succeeds."),
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "class": "mono"}),
    )

    def __init__(self, *args: Any, user: Any, chain: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.user = user
        model_choice(self, "subteam").queryset = access.subteams_for(user)
        preselect_only_subteam(self, user)
        model_choice(self, "cluster").queryset = Cluster.objects.filter(is_active=True)
        if not chain:
            del self.fields["then_command"]

    def specs(self) -> list[services.JobSpec]:
        """The job (and its follow-up) as asked for; validated by `check`, not here."""
        data = self.cleaned_data
        name = data["name"] or default_name()
        first = services.JobSpec(
            subteam=data["subteam"],
            cluster=data["cluster"],
            name=name,
            command=data["command"],
            nodes=data["nodes"],
            gpus_per_node=data["gpus_per_node"],
            time_limit_minutes=data["time_limit_minutes"],
            partition=data["partition"],
            account=data["account"],
        )
        specs = [first]
        then = data.get("then_command") or ""
        if then.strip():
            specs.append(dataclasses.replace(first, name=step_name(name, 2), command=then))
        return specs

    def check(self) -> list[services.JobSpec] | None:
        """The validated specs, or None with `validate_spec`'s errors put on this form's fields."""
        specs = self.specs()
        seen: set[tuple[str | None, str]] = set()
        for index, spec in enumerate(specs):
            try:
                services.validate_spec(spec)
            except ValidationError as error:
                rename = {"command": "then_command"} if index else {}
                for field, messages in spec_errors(error, rename).items():
                    target = field if field in self.fields else None
                    for message in messages:
                        if (target, message) not in seen:  # a second step repeats the first's resource errors
                            seen.add((target, message))
                            self.add_error(target, message)
        return None if seen else specs

    def changes(self) -> dict[str, Any]:
        """The fields as `services.resubmit_job` takes them."""
        data = self.cleaned_data
        return {
            "subteam": data["subteam"],
            "cluster": data["cluster"],
            "name": data["name"] or default_name(),
            "command": data["command"],
            "nodes": data["nodes"],
            "gpus_per_node": data["gpus_per_node"],
            "time_limit_minutes": data["time_limit_minutes"],
            "partition": data["partition"],
            "account": data["account"],
        }


def initial_from(job: Job) -> dict[str, Any]:
    """The form prefilled with a job's request (for resubmitting it)."""
    return {
        "subteam": job.subteam_id,
        "cluster": job.cluster_id,
        "name": job.name,
        "command": job.command,
        "nodes": job.nodes,
        "gpus_per_node": job.gpus_per_node,
        "time_limit_minutes": job.time_limit_minutes,
        "partition": job.partition,
        "account": job.account,
    }


class TrustHostKeyForm(forms.Form):
    key_line = forms.CharField(label=_("Host key"), max_length=20000)


class SecretTextarea(forms.Textarea):
    """A textarea that never shows its value again, not even beside an error (a private key)."""

    def format_value(self, value: Any) -> str | None:
        return None


class MemberKeyForm(forms.Form):
    """A member's private key for a cluster that logs in with members' own keys. Checked and kept
    encrypted by `services.upload_member_key`; the page only ever shows its fingerprint."""

    private_key = forms.CharField(
        label=_("Private key"),
        strip=False,
        max_length=20000,
        widget=SecretTextarea(
            attrs={"rows": 8, "spellcheck": "false", "autocomplete": "off", "class": "mono"}
        ),
        help_text=_(
            "The whole OpenSSH private key file (-----BEGIN OPENSSH PRIVATE KEY----- …), without a "
            "passphrase. Make a key for the portal alone, and add its public half to ~/.ssh/authorized_keys "
            "on the cluster."
        ),
    )
