"""Clusters and jobs in the portal's admin (management team only; see `portal.admin.ManagementOnly`).

Clusters are configured here. What the worker reads from a cluster (nodes, partitions, status) and
everything about a job is shown read-only: jobs are submitted and cancelled through
`scheduler.services` (the Jobs pages, the API), and a host key is pinned on the cluster's page after
its fingerprint was checked.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from portal import access
from portal.admin import ManagementOnly, ReadOnlyAdmin, ReadOnlyInline, admin_site
from scheduler import services
from scheduler.models import (
    AccessEvent,
    Association,
    Cluster,
    ClusterAccount,
    Job,
    JobEvent,
    JudgeEndpoint,
    Node,
    NodeIncident,
    Partition,
    SubteamAccount,
)

PARTITION_FIELDS = ("name", "state", "total_nodes", "max_time_minutes", "default_time_minutes", "updated_at")
NODE_FIELDS = (
    "name",
    "state",
    "reason",
    "gpus_alloc",
    "gpus_total",
    "cpus_alloc",
    "cpus_total",
    "unavailable",
)
EVENT_FIELDS = ("at", "kind", "actor", "from_state", "to_state", "message")


class PartitionInline(ReadOnlyInline, admin.TabularInline[Partition, Cluster]):
    model = Partition
    fields = PARTITION_FIELDS
    readonly_fields = PARTITION_FIELDS


class NodeInline(ReadOnlyInline, admin.TabularInline[Node, Cluster]):
    model = Node
    fields = NODE_FIELDS
    readonly_fields = NODE_FIELDS


@admin.register(Cluster, site=admin_site)
class ClusterAdmin(ManagementOnly, admin.ModelAdmin[Cluster]):
    list_display = ["name", "host", "port", "username", "status", "is_active", "last_contact_at"]
    list_filter = ["status", "is_active"]
    search_fields = ["name", "host"]
    readonly_fields = [
        "host_key",
        "status",
        "last_error",
        "last_contact_at",
        "inventory_at",
        "poll_claimed_until",
        "poll_claimed_by",
    ]
    fieldsets = [
        (None, {"fields": ["name", "is_active", "auth_mode"]}),
        ("SSH", {"fields": ["host", "port", "username", "key_path", "key_path_env", "host_key"]}),
        (
            "Slurm",
            {
                "fields": [
                    "default_partition",
                    "default_account",
                    "work_dir",
                    "env_preamble",
                    "time_zone",
                    "allow_trust_remote_code",
                ]
            },
        ),
        (
            _("Status"),
            {
                "fields": [
                    "status",
                    "last_error",
                    "last_contact_at",
                    "inventory_at",
                    "poll_claimed_until",
                    "poll_claimed_by",
                ]
            },
        ),
    ]
    inlines = [PartitionInline, NodeInline]


@admin.register(ClusterAccount, site=admin_site)
class ClusterAccountAdmin(ManagementOnly, admin.ModelAdmin[ClusterAccount]):
    """Members' cluster usernames: set by admins only (a member must not claim someone else's user)."""

    list_display = ["member", "cluster", "username", "verified_at", "key_fingerprint", "last_error"]
    list_filter = ["cluster"]
    search_fields = ["username", "member__display_name", "member__user__username"]
    fields = ["member", "cluster", "username", "verified_at", "key_fingerprint", "last_error"]

    def get_readonly_fields(self, request: HttpRequest, obj: ClusterAccount | None = None) -> list[str]:
        fixed = ["verified_at", "key_fingerprint", "last_error"]
        return fixed if obj is None else ["member", "cluster", *fixed]

    def save_model(self, request: HttpRequest, obj: ClusterAccount, form: Any, change: bool) -> None:
        actor = access.member_of(request.user)
        saved = services.set_cluster_account(actor, obj.member, obj.cluster, obj.username)
        obj.pk = saved.pk

    def delete_model(self, request: HttpRequest, obj: ClusterAccount) -> None:
        services.remove_cluster_account(access.member_of(request.user), obj)


@admin.register(SubteamAccount, site=admin_site)
class SubteamAccountAdmin(ManagementOnly, admin.ModelAdmin[SubteamAccount]):
    """A subteam's Slurm account: its jobs run with --account=it, its bookings admit it, its members'
    associations are kept to it."""

    list_display = ["subteam", "cluster", "account"]
    list_filter = ["cluster"]


@admin.register(JudgeEndpoint, site=admin_site)
class JudgeEndpointAdmin(ManagementOnly, admin.ModelAdmin[JudgeEndpoint]):
    list_display = ["name", "base_url", "key_env", "is_active"]


@admin.register(Association, site=admin_site)
class AssociationAdmin(ReadOnlyAdmin, admin.ModelAdmin[Association]):
    list_display = [
        "username",
        "account",
        "cluster",
        "state",
        "wanted",
        "attempts",
        "last_error",
        "updated_at",
    ]
    list_filter = ["cluster", "state"]


@admin.register(AccessEvent, site=admin_site)
class AccessEventAdmin(ReadOnlyAdmin, admin.ModelAdmin[AccessEvent]):
    list_display = ["at", "kind", "cluster", "member", "actor", "message"]
    list_filter = ["kind", "cluster"]


class JobEventInline(ReadOnlyInline, admin.TabularInline[JobEvent, Job]):
    model = JobEvent
    fields = EVENT_FIELDS
    readonly_fields = EVENT_FIELDS


@admin.register(Job, site=admin_site)
class JobAdmin(ManagementOnly, admin.ModelAdmin[Job]):
    list_display = [
        "name",
        "state",
        "subteam",
        "owner",
        "cluster",
        "slurm_job_id",
        "gpus",
        "exit_code",
        "created_at",
    ]
    list_filter = ["state", "kind", "cluster", "subteam"]
    list_select_related = ["subteam", "owner", "cluster"]
    search_fields = ["name", "slurm_job_id", "owner__display_name", "owner__user__username"]
    date_hierarchy = "created_at"
    inlines = [JobEventInline]

    def get_readonly_fields(self, request: HttpRequest, obj: Job | None = None) -> list[str]:
        return [field.name for field in Job._meta.fields]

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False  # jobs are submitted through scheduler.services (the Jobs pages, the API)


@admin.register(NodeIncident, site=admin_site)
class NodeIncidentAdmin(ReadOnlyAdmin, admin.ModelAdmin[NodeIncident]):
    list_display = ["started_at", "cluster", "node_name", "state", "reason", "resolved_at"]
    list_filter = ["cluster", "state"]
