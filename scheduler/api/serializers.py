"""Serializers of /api/v1/jobs/ and /api/v1/clusters/.

Subteams are named by slug, members by username, clusters by id. A job request is checked by
`scheduler.services.validate_spec` (the same check as the web form); its errors come back as field
errors, `time_limit_minutes` renamed `time_limit`, and a later step's under `then[i]`.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext_lazy as _
from rest_framework import serializers

from portal import access
from portal.api.serializers import SubteamSlugField, UsernameField
from scheduler import services
from scheduler.forms import GPUS_REQUIRED, MIN_GPUS_PER_NODE, default_name, spec_errors, step_name
from scheduler.models import Cluster, Job, JobEvent, Node, Partition

SPEC_FIELDS = {"time_limit_minutes": "time_limit"}

# --- clusters ---------------------------------------------------------------------------------------------


class PartitionSerializer(serializers.ModelSerializer[Partition]):
    class Meta:
        model = Partition
        fields = [
            "name",
            "state",
            "is_default",
            "max_time_minutes",
            "default_time_minutes",
            "total_nodes",
            "nodes",
        ]
        read_only_fields = fields


class NodeSerializer(serializers.ModelSerializer[Node]):
    gpus_free = serializers.IntegerField(read_only=True, help_text="0 when the node is drained or down.")

    class Meta:
        model = Node
        fields = [
            "name",
            "state",
            "reason",
            "partitions",
            "unavailable",
            "gpus_total",
            "gpus_alloc",
            "gpus_free",
            "cpus_total",
            "cpus_alloc",
            "memory_mb",
            "updated_at",
        ]
        read_only_fields = fields


class ClusterSerializer(serializers.ModelSerializer[Cluster]):
    partitions = PartitionSerializer(many=True, read_only=True)
    nodes = NodeSerializer(many=True, read_only=True)

    class Meta:
        model = Cluster
        fields = [
            "id",
            "name",
            "host",
            "port",
            "is_active",
            "status",
            "last_error",
            "last_contact_at",
            "inventory_at",
            "default_partition",
            "default_account",
            "time_zone",
            "partitions",
            "nodes",
        ]
        read_only_fields = fields


# --- jobs -------------------------------------------------------------------------------------------------


class JobEventSerializer(serializers.ModelSerializer[JobEvent]):
    actor = UsernameField(read_only=True, allow_null=True)
    # A plain string in the schema: an enum here would collide with the job's `kind` enum.
    kind = serializers.CharField(
        read_only=True, help_text="One of: " + ", ".join(f"`{value}`" for value in JobEvent.Kind.values) + "."
    )

    class Meta:
        model = JobEvent
        fields = ["at", "kind", "actor", "from_state", "to_state", "message"]
        read_only_fields = fields


class JobSerializer(serializers.ModelSerializer[Job]):
    """A job as stored: what was asked for, and what the worker has seen of it on the cluster."""

    subteam = SubteamSlugField(read_only=True)
    owner = UsernameField(read_only=True)
    cluster: serializers.PrimaryKeyRelatedField[Cluster] = serializers.PrimaryKeyRelatedField(read_only=True)
    time_limit = serializers.IntegerField(source="time_limit_minutes", read_only=True, help_text="Minutes.")
    runtime = serializers.FloatField(
        read_only=True, allow_null=True, help_text="Seconds run so far (in all, once ended)."
    )
    is_terminal = serializers.BooleanField(read_only=True)

    class Meta:
        model = Job
        fields = [
            "id",
            "name",
            "kind",
            "subteam",
            "owner",
            "cluster",
            "command",
            "partition",
            "account",
            "nodes",
            "gpus_per_node",
            "time_limit",
            "depends_on",
            "resubmitted_from",
            "state",
            "is_terminal",
            "reason",
            "slurm_job_id",
            "exit_code",
            "exit_signal",
            "node_list",
            "gpus",
            "gpu_hours",
            "runtime",
            "created_at",
            "submitted_at",
            "started_at",
            "ended_at",
            "updated_at",
            "cancel_requested_at",
        ]
        read_only_fields = fields


class JobDetailSerializer(JobSerializer):
    """One job, with its sbatch script and its timeline."""

    events = JobEventSerializer(many=True, read_only=True)

    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "script", "events"]
        read_only_fields = fields


class JobCreatedSerializer(JobSerializer):
    """The job just submitted; `then` holds the jobs of the later steps of a chain, in order."""

    then = JobSerializer(many=True, read_only=True)

    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "then"]
        read_only_fields = fields


def _gpus_field(**kwargs: Any) -> serializers.IntegerField:
    return serializers.IntegerField(
        min_value=MIN_GPUS_PER_NODE, error_messages={"min_value": GPUS_REQUIRED}, **kwargs
    )


class StepSerializer(serializers.Serializer[dict[str, Any]]):
    """A later step of a chain; what it leaves out is taken from the first job."""

    command = serializers.CharField(trim_whitespace=False)
    name = serializers.CharField(required=False, allow_blank=True, max_length=64)
    nodes = serializers.IntegerField(required=False)
    gpus_per_node = _gpus_field(required=False)
    time_limit = serializers.IntegerField(required=False, help_text="Minutes.")


class JobRequestSerializer(serializers.Serializer[dict[str, Any]]):
    """A job to submit (or a chain: `then` lists steps that each run only if the one before succeeded).

    `save()` submits through `services.submit_chain` and returns the list of jobs.
    """

    subteam = SubteamSlugField(help_text="Slug of the subteam the job is for, e.g. `sft`.")
    kind = serializers.ChoiceField(choices=Job.Kind.choices, default=Job.Kind.CUSTOM)
    name = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=64,
        help_text="Letters, digits, dots, dashes, underscores; made up when left out.",
    )
    command = serializers.CharField(trim_whitespace=False, help_text="Shell lines to run.")
    nodes = serializers.IntegerField(default=1)
    gpus_per_node = _gpus_field(default=1)
    time_limit = serializers.IntegerField(default=60, help_text="Minutes.")
    cluster = serializers.PrimaryKeyRelatedField(
        queryset=Cluster.objects.all(),
        required=False,
        help_text="Cluster id; may be left out when exactly one cluster is active.",
    )
    partition = serializers.CharField(
        required=False, allow_blank=True, max_length=64, help_text="Empty: the cluster's default."
    )
    account = serializers.CharField(
        required=False, allow_blank=True, max_length=64, help_text="Empty: the cluster's default."
    )
    then = StepSerializer(many=True, required=False, help_text="Further steps, run one after another.")

    default_error_messages = {
        "no_cluster": _("No cluster is configured."),
        "which_cluster": _("Say which cluster: more than one is active."),
    }

    def _cluster(self, attrs: dict[str, Any]) -> Cluster:
        cluster: Cluster | None = attrs.get("cluster")
        if cluster is not None:
            return cluster
        active = list(Cluster.objects.filter(is_active=True)[:2])
        if len(active) == 1:
            return active[0]
        raise serializers.ValidationError(
            {"cluster": [self.error_messages["no_cluster" if not active else "which_cluster"]]}
        )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        cluster = self._cluster(attrs)
        name = attrs.get("name") or default_name(attrs["kind"])
        first = services.JobSpec(
            subteam=attrs["subteam"],
            cluster=cluster,
            name=name,
            command=attrs["command"],
            nodes=attrs["nodes"],
            gpus_per_node=attrs["gpus_per_node"],
            time_limit_minutes=attrs["time_limit"],
            partition=attrs.get("partition", ""),
            account=attrs.get("account", ""),
            kind=attrs["kind"],
        )
        specs = [first]
        for number, step in enumerate(attrs.get("then", []), start=2):
            specs.append(
                services.JobSpec(
                    subteam=first.subteam,
                    cluster=cluster,
                    name=step.get("name") or step_name(name, number),
                    command=step["command"],
                    nodes=step.get("nodes", first.nodes),
                    gpus_per_node=step.get("gpus_per_node", first.gpus_per_node),
                    time_limit_minutes=step.get("time_limit", first.time_limit_minutes),
                    partition=first.partition,
                    account=first.account,
                    kind=first.kind,
                )
            )
        errors: dict[str, Any] = {}
        step_errors: list[dict[str, list[str]]] = [{} for _ in specs[1:]]
        for index, spec in enumerate(specs):
            try:
                services.validate_spec(spec)
            except DjangoValidationError as error:
                found = spec_errors(error, SPEC_FIELDS)
                if index == 0:
                    errors.update(found)
                else:
                    step_errors[index - 1] = found
        if any(step_errors):
            errors["then"] = step_errors
        if errors:
            raise serializers.ValidationError(errors)
        attrs["specs"] = specs
        return attrs

    def create(self, validated_data: dict[str, Any]) -> list[Job]:  # type: ignore[override]
        request = self.context["request"]
        owner = access.member_of(request.user)
        assert owner is not None  # the view refuses users without a member profile
        try:
            return services.submit_chain(owner, validated_data["specs"])
        except DjangoValidationError as error:  # the cluster's partitions changed since validate()
            raise serializers.ValidationError(spec_errors(error, SPEC_FIELDS)) from error


class JobLogSerializer(serializers.Serializer[dict[str, Any]]):
    stream = serializers.ChoiceField(choices=["stdout", "stderr"])
    offset = serializers.IntegerField(help_text="The byte offset this text starts at.")
    text = serializers.CharField(help_text="The stored log from `offset` (up to 1 MiB).")
    next_offset = serializers.IntegerField(help_text="Ask again from here for what follows.")
    final = serializers.BooleanField(help_text="True once the job ended and its logs were read in full.")
