"""Serializers of /api/v1/jobs/ and /api/v1/clusters/.

Subteams are named by slug, members by username, clusters by id. A job request is checked by
`scheduler.services.validate_spec` (the same check as the web form); its errors come back as field
errors, `time_limit_minutes` renamed `time_limit`, and a later step's under `then[i]`.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.utils.translation import gettext_lazy as _
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from portal import access
from portal.api.serializers import SubteamSlugField, UsernameField
from scheduler import drains, fixes, pending, services, training_jobs, triage
from scheduler.forms import COMMAND_TEXT, GPUS_REQUIRED, default_name, spec_errors, step_name
from scheduler.models import Cluster, Job, JobEvent, JobTemplate, Node, NodeIncident, Partition, Pipeline
from scheduler.services import MIN_GPUS_PER_NODE
from scheduler.triage import Fix

SPEC_FIELDS = {"time_limit_minutes": "time_limit"}
# The kinds a pipeline step may be (the schema names their enum after this list: config.settings).
STEP_KINDS = [kind.value for kind in Job.Kind.training_kinds()]

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


class NodeIncidentCauseSerializer(serializers.Serializer[dict[str, Any]]):
    """Slurm's reason in words (in the request's language), from the table in `scheduler.drains`."""

    code = serializers.CharField(
        help_text="e.g. kill_task_failed, not_responding, epilog_error, ecc_errors; `unknown` for a reason "
        "the portal does not explain, empty when Slurm gave none."
    )
    known = serializers.BooleanField()
    reason = serializers.CharField(help_text="Slurm's reason without the `[user@time]` it adds.")
    set_by = serializers.CharField(help_text="Who set the reason: `slurm` for Slurm itself, else a user.")
    what = serializers.CharField(help_text="What happened.")
    avoid = serializers.CharField(help_text="How a job avoids it (empty when unknown).")


class NodeIncidentSerializer(serializers.ModelSerializer[NodeIncident]):
    """A node seen drained or down, while or shortly after portal jobs ran there."""

    node = serializers.CharField(source="node_name", read_only=True)
    cause = serializers.SerializerMethodField()

    class Meta:
        model = NodeIncident
        fields = ["id", "node", "state", "reason", "cause", "started_at", "seen_at", "resolved_at"]
        read_only_fields = fields

    @extend_schema_field(NodeIncidentCauseSerializer)
    def get_cause(self, incident: NodeIncident) -> dict[str, Any]:
        return asdict(drains.explain(incident.reason))


class IncidentJobSerializer(serializers.ModelSerializer[Job]):
    owner = UsernameField(read_only=True)
    subteam = SubteamSlugField(read_only=True)

    class Meta:
        model = Job
        fields = ["id", "name", "owner", "subteam", "state"]
        read_only_fields = fields


class ClusterIncidentSerializer(NodeIncidentSerializer):
    """An incident with the portal's jobs implicated (at most 50; `jobs_left_out` counts the rest)."""

    jobs = IncidentJobSerializer(many=True, read_only=True)

    class Meta(NodeIncidentSerializer.Meta):
        fields = [*NodeIncidentSerializer.Meta.fields, "jobs", "jobs_left_out"]
        read_only_fields = fields


class ClusterDetailSerializer(ClusterSerializer):
    """One cluster, with its nodes' incidents: the open ones, then the last 20 resolved."""

    incidents = serializers.SerializerMethodField()

    class Meta(ClusterSerializer.Meta):
        fields = [*ClusterSerializer.Meta.fields, "incidents"]
        read_only_fields = fields

    @extend_schema_field(ClusterIncidentSerializer(many=True))
    def get_incidents(self, cluster: Cluster) -> Any:
        return ClusterIncidentSerializer(drains.recent(cluster), many=True, context=self.context).data


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


class FixSerializer(serializers.Serializer[dict[str, Any]]):
    action = serializers.CharField(help_text="What `POST /api/v1/jobs/{id}/fix/` takes as `action`.")
    # The metaclass takes declared fields out of the class: this does not replace Field.label.
    label = serializers.CharField()  # type: ignore[assignment]


class EvidenceSerializer(serializers.Serializer[dict[str, Any]]):
    stream = serializers.CharField()
    line = serializers.IntegerField(help_text="Line number within the log's last 64 KiB.")
    text = serializers.CharField()


class DiagnosisSerializer(serializers.Serializer[dict[str, Any]]):
    """Why a job ended badly (null while it runs, when it succeeded, or before its log is read)."""

    code = serializers.CharField(
        help_text="e.g. cuda_oom, nccl, loss_nan, node_failure, time_limit, unknown."
    )
    title = serializers.CharField()
    explanation = serializers.CharField()
    evidence = EvidenceSerializer(many=True, help_text="The log lines that prove it.")
    node = serializers.CharField(help_text="The node to blame, when the log or Slurm names one.")
    last_frame = serializers.CharField(help_text="A traceback's last frame: file:line in function.")
    error = serializers.CharField(help_text="The exception line under it.")
    fixes = FixSerializer(many=True)


class WaitingSerializer(serializers.Serializer[dict[str, Any]]):
    """Why a job is not running yet (null once it runs or ended)."""

    code = serializers.CharField(help_text="squeue's reason code, e.g. Resources, Priority, Dependency.")
    known = serializers.BooleanField(help_text="False: a code the portal does not explain; `text` quotes it.")
    text = serializers.CharField(help_text="The reason in words (in the request's language).")
    detail = serializers.CharField(
        help_text="What the portal adds (one job's answer only): the booking, the step."
    )
    never = serializers.BooleanField(help_text="It can never start as asked.")
    expected_start = serializers.DateTimeField(allow_null=True, help_text="Slurm's estimate.")
    link = serializers.CharField(help_text="Page the detail is about.")


class FixRequestSerializer(serializers.Serializer[dict[str, Any]]):
    action = serializers.ChoiceField(
        choices=[Fix.RESUME, Fix.EXCLUDE_NODE, Fix.HALVE_MICRO_BATCH, Fix.EXTEND_TIME]
    )


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
    waiting = serializers.SerializerMethodField(
        help_text="Why it is not running yet, in words, and Slurm's start estimate (null once it runs)."
    )
    diagnosis = serializers.SerializerMethodField(
        help_text="Why it ended badly, the log lines that prove it, and the fixes (null otherwise)."
    )

    class Meta:
        model = Job
        fields = [
            "id",
            "name",
            "kind",
            "subteam",
            "owner",
            "cluster",
            "cluster_user",
            "command",
            "partition",
            "account",
            "nodes",
            "gpus_per_node",
            "time_limit",
            "depends_on",
            "resubmitted_from",
            "pipeline",
            "pipeline_step",
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
            "diagnosis",
            "waiting",
            "expected_start_at",
            "reservation",
            "exclude_nodes",
            "restarts",
            "running_since",
            "last_checkpoint_step",
            "last_checkpoint_at",
        ]
        read_only_fields = fields

    @extend_schema_field(WaitingSerializer(allow_null=True))
    def get_waiting(self, job: Job) -> dict[str, Any] | None:
        view = self.context.get("view")
        waiting = pending.explain(job, enrich=bool(view) and getattr(view, "action", "") != "list")
        return waiting.as_dict() if waiting else None

    @extend_schema_field(DiagnosisSerializer(allow_null=True))
    def get_diagnosis(self, job: Job) -> dict[str, Any] | None:
        # One job: only the fixes that apply to it; a list: the diagnosis's fixes (no query per row).
        if (
            job.diagnosis
            and self.context.get("view")
            and getattr(self.context["view"], "action", "") != "list"
        ):
            return triage.summary(job, fixes.offered(job))
        return triage.summary(job)


class JobDetailSerializer(JobSerializer):
    """One job, with its sbatch script, its timeline and the node incidents it is implicated in."""

    events = JobEventSerializer(many=True, read_only=True)
    incidents = NodeIncidentSerializer(source="node_incidents", many=True, read_only=True)

    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "script", "config_yaml", "parameters", "events", "incidents"]
        read_only_fields = fields


class JobCreatedSerializer(JobSerializer):
    """The job just submitted; `then` holds the jobs of the later steps of a chain, in order."""

    # The later steps come in the context (`then`): they are not an attribute of the first job.
    then = serializers.SerializerMethodField()

    class Meta(JobSerializer.Meta):
        fields = [*JobSerializer.Meta.fields, "then"]
        read_only_fields = fields

    @extend_schema_field(JobSerializer(many=True))
    def get_then(self, job: Job) -> Any:
        return JobSerializer(self.context["then"], many=True, context=self.context).data


def _gpus_field(**kwargs: Any) -> serializers.IntegerField:
    return serializers.IntegerField(
        min_value=MIN_GPUS_PER_NODE, error_messages={"min_value": GPUS_REQUIRED}, **kwargs
    )


def training_serializer_field(declared: training_jobs.DeclaredField) -> serializers.Field[Any, Any, Any, Any]:
    """The API field of a declared training field: a value with a default of its own defaults to it;
    one without may be left out (a list: empty, a number: null)."""
    how, default = declared.how, declared.default
    common: dict[str, Any] = {"help_text": how.api_help} if how.api_help else {}
    if how.choices:
        return serializers.ChoiceField(
            choices=tuple(value for value, _label in how.choices), default=default, **common
        )
    if declared.base is bool:
        return serializers.BooleanField(default=default, **common)
    if declared.base is list:
        return serializers.ListField(child=serializers.CharField(), required=False, default=list, **common)
    if declared.base in (int, float):
        number = serializers.IntegerField if declared.base is int else serializers.FloatField
        if declared.nullable:
            return number(required=False, allow_null=True, **common)
        return number(default=default, **common)
    if not how.strip:
        common["trim_whitespace"] = False
    if default:
        return serializers.CharField(default=default, **common)
    return serializers.CharField(required=False, allow_blank=True, **common)


class TrainingSerializer(serializers.Serializer[dict[str, Any]]):
    """The fields of a pretraining, SFT, DPO or evaluation run (the web form's, by the same names).

    They become the run's `run.yaml`, checked by `training.config` before anything reaches Slurm."""

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        # Built from the declarations of training_jobs.TrainingRequest, as the web form's are.
        return {d.name: training_serializer_field(d) for d in training_jobs.declared_fields()}

    def request_for(self, kind: str, data: dict[str, Any]) -> training_jobs.TrainingRequest:
        values = {key: value for key, value in data.items() if value is not None}
        return training_jobs.TrainingRequest.from_dict({**values, "kind": kind})


def _training_errors(error: DjangoValidationError) -> dict[str, Any]:
    """validate_spec's errors with the training fields under `training`."""
    found = spec_errors(error, SPEC_FIELDS)
    training_names = {d.name for d in training_jobs.declared_fields()}
    nested = {k: v for k, v in found.items() if k in training_names}
    rest: dict[str, Any] = {k: v for k, v in found.items() if k not in training_names}
    if nested:
        rest["training"] = nested
    return rest


def pipeline_errors(error: DjangoValidationError) -> dict[str, Any]:
    """submit_pipeline's `steps[n].field` errors as `{"steps": [{...}, ...]}` (training fields nested)."""
    if not hasattr(error, "error_dict"):
        return {"non_field_errors": list(error.messages)}
    steps: dict[int, dict[str, Any]] = {}
    rest: dict[str, Any] = {}
    for key, messages in error.message_dict.items():
        if key.startswith("steps[") and "]." in key:
            number, field = key[len("steps[") :].split("].", 1)
            nested = _training_errors(DjangoValidationError({field: messages}))
            for name, value in nested.items():
                steps.setdefault(int(number), {})[name] = value
        else:
            rest[key] = messages
    if steps:
        rest["steps"] = [steps.get(n, {}) for n in range(1, max(steps) + 1)]
    return rest


class StepSerializer(serializers.Serializer[dict[str, Any]]):
    """A later step of a chain; what it leaves out is taken from the first job."""

    command = serializers.CharField(trim_whitespace=False, validators=[COMMAND_TEXT])
    name = serializers.CharField(required=False, allow_blank=True, max_length=64)
    nodes = serializers.IntegerField(required=False)
    gpus_per_node = _gpus_field(required=False)
    time_limit = serializers.IntegerField(required=False, help_text="Minutes.")


def chosen_cluster(attrs: dict[str, Any]) -> Cluster:
    """The cluster asked for, or the only active one (a job or pipeline request may leave it out)."""
    cluster: Cluster | None = attrs.get("cluster")
    if cluster is not None:
        return cluster
    active = list(Cluster.objects.filter(is_active=True)[:2])
    if len(active) == 1:
        return active[0]
    message = (
        _("No cluster is configured.") if not active else _("Say which cluster: more than one is active.")
    )
    raise serializers.ValidationError({"cluster": [message]})


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
    command = serializers.CharField(
        trim_whitespace=False,
        required=False,
        allow_blank=True,
        validators=[COMMAND_TEXT],
        help_text="Shell lines to run (custom jobs).",
    )
    training = TrainingSerializer(
        required=False, help_text="The run's fields, for pretrain/sft/dpo/eval jobs."
    )
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

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        cluster = chosen_cluster(attrs)
        name = attrs.get("name") or default_name(attrs["kind"])
        kind = attrs["kind"]
        training = None
        if kind == Job.Kind.CUSTOM:
            if not attrs.get("command", "").strip():
                raise serializers.ValidationError({"command": [_("Say what the job runs.")]})
            if "training" in attrs:
                raise serializers.ValidationError(
                    {"training": [_("Only training kinds take training fields.")]}
                )
        else:
            if "training" not in attrs:
                raise serializers.ValidationError(
                    {"training": [_("A %(kind)s job needs its training fields.") % {"kind": kind}]}
                )
            if attrs.get("then"):
                raise serializers.ValidationError(
                    {"then": [_("Chain training runs with /api/v1/pipelines/.")]}
                )
            training = TrainingSerializer().request_for(kind, attrs["training"])
        first = services.JobSpec(
            subteam=attrs["subteam"],
            cluster=cluster,
            name=name,
            command=attrs.get("command", ""),
            training=training,
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
                found = _training_errors(error)
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


# --- pipelines and templates --------------------------------------------------------------------------------


class PipelineStepSerializer(serializers.Serializer[dict[str, Any]]):
    kind = serializers.ChoiceField(choices=STEP_KINDS)
    name = serializers.CharField(required=False, allow_blank=True, max_length=64)
    nodes = serializers.IntegerField(default=1)
    gpus_per_node = _gpus_field(default=1)
    time_limit = serializers.IntegerField(default=60, help_text="Minutes.")
    partition = serializers.CharField(required=False, allow_blank=True, max_length=64)
    account = serializers.CharField(required=False, allow_blank=True, max_length=64)
    training = TrainingSerializer()


class PipelineRequestSerializer(serializers.Serializer[dict[str, Any]]):
    """Steps (e.g. SFT → DPO → eval) that run one after another, each only if the one before succeeded.
    A step without a model reads the previous step's output (`<run dir>/out`)."""

    subteam = SubteamSlugField()
    name = serializers.CharField(max_length=64)
    cluster = serializers.PrimaryKeyRelatedField(queryset=Cluster.objects.all(), required=False)
    steps = PipelineStepSerializer(many=True)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        cluster = chosen_cluster(attrs)
        if not attrs["steps"]:
            raise serializers.ValidationError({"steps": [_("A pipeline needs at least one step.")]})
        specs = []
        for number, step in enumerate(attrs["steps"], start=1):
            specs.append(
                services.JobSpec(
                    subteam=attrs["subteam"],
                    cluster=cluster,
                    name=step.get("name") or step_name(attrs["name"], number),
                    command="",
                    nodes=step["nodes"],
                    gpus_per_node=step["gpus_per_node"],
                    time_limit_minutes=step["time_limit"],
                    partition=step.get("partition", ""),
                    account=step.get("account", ""),
                    kind=step["kind"],
                    training=TrainingSerializer().request_for(step["kind"], step["training"]),
                )
            )
        # Each step is checked once, by services.submit_pipeline; the view turns its errors into
        # `steps[i]` (pipeline_errors).
        attrs["specs"] = specs
        return attrs


class PipelineSerializer(serializers.ModelSerializer[Pipeline]):
    subteam = SubteamSlugField(read_only=True)
    owner = UsernameField(read_only=True)
    state = serializers.SerializerMethodField(help_text="completed, running, waiting or stopped.")
    stopped_at = serializers.SerializerMethodField(help_text="The step it is at, or stopped on (job id).")
    steps = serializers.SerializerMethodField()

    class Meta:
        model = Pipeline
        fields = ["id", "name", "subteam", "owner", "cluster", "created_at", "state", "stopped_at", "steps"]
        read_only_fields = fields

    def _progress(self, pipeline: Pipeline) -> tuple[str, Job | None]:
        return Pipeline.progress(pipeline.steps())

    def get_state(self, pipeline: Pipeline) -> str:
        return self._progress(pipeline)[0]

    def get_stopped_at(self, pipeline: Pipeline) -> str | None:
        job = self._progress(pipeline)[1]
        return str(job.pk) if job else None

    @extend_schema_field(JobSerializer(many=True))
    def get_steps(self, pipeline: Pipeline) -> Any:
        return JobSerializer(pipeline.steps(), many=True, context=self.context).data


class JobTemplateSerializer(serializers.ModelSerializer[JobTemplate]):
    subteam = SubteamSlugField()
    created_by = UsernameField(read_only=True, allow_null=True)
    kind = serializers.ChoiceField(choices=[*Job.Kind.values, "pipeline"])

    class Meta:
        model = JobTemplate
        fields = [
            "id",
            "name",
            "subteam",
            "kind",
            "description",
            "fields",
            "created_by",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_by", "created_at", "updated_at"]
