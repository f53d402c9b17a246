"""Clusters: their status, partitions and nodes as the worker last saw them; admins check and pin host keys.

The page also lists the nodes' incidents (drained or down, with the jobs that were there:
`scheduler.drains`), says who jobs run as there (the cluster's auth mode: members' own users, or the
unsafe shared account) and, for admins, the members' cluster accounts and the Slurm associations that failed.

Checking a host key is the one web request that opens a connection (an explicit admin action, and
it reads only the key the server presents: nothing is authenticated or run).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.db.models import Count, Prefetch, QuerySet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from portal.access import member_of, require
from portal.http import HtmxHttpRequest
from scheduler import access, drains, identity, services, ssh
from scheduler.forms import TrustHostKeyForm
from scheduler.models import Association, Cluster, Job, Node, Partition


def _clusters() -> QuerySet[Cluster]:
    return Cluster.objects.prefetch_related(
        Prefetch("nodes", queryset=Node.objects.order_by("name")),
        Prefetch("partitions", queryset=Partition.objects.order_by("name")),
    )


@dataclass(frozen=True)
class ClusterSummary:
    """A cluster with its nodes, the GPU totals and the nodes that are out."""

    cluster: Cluster
    nodes: list[Node]
    gpus_total: int
    gpus_alloc: int
    gpus_free: int
    nodes_out: int

    @property
    def gpu_percent(self) -> int:
        return round(100 * self.gpus_alloc / self.gpus_total) if self.gpus_total else 0


def _summarise(cluster: Cluster) -> ClusterSummary:
    """From the prefetched inventory (no further queries)."""
    nodes = list(cluster.nodes.all())
    return ClusterSummary(
        cluster=cluster,
        nodes=nodes,
        gpus_total=sum(n.gpus_total for n in nodes),
        gpus_alloc=sum(n.gpus_alloc for n in nodes),
        gpus_free=sum(n.gpus_free for n in nodes),
        nodes_out=sum(1 for n in nodes if n.unavailable),
    )


def pinned_fingerprint(cluster: Cluster) -> str:
    """The SHA256 fingerprint of the pinned key (computed here, no connection); empty when none is."""
    if not cluster.host_key.strip():
        return ""
    try:
        return ssh.fingerprint(ssh.parse_host_key(cluster.host_key))
    except ssh.SlurmError:
        return _("unreadable")


def _access_context(request: HtmxHttpRequest, cluster: Cluster) -> dict[str, Any]:
    """Who jobs run as: the CA's state in the certificate mode; members' accounts for admins."""
    certificate = cluster.auth_mode == Cluster.AuthMode.CERTIFICATE
    context: dict[str, Any] = {"ca_problem": identity.ca_problem() if certificate else ""}
    if access.can_manage_clusters(request.user) and not cluster.is_shared:
        context["accounts"] = list(cluster.accounts.select_related("member__user").order_by("username"))
        context["failed_associations"] = list(
            cluster.associations.filter(state=Association.State.FAILED).select_related("member__user")
        )
        context["can_test_login"] = access.can_test_login(request.user)
    return context


@require_GET
def cluster_list(request: HtmxHttpRequest) -> HttpResponse:
    clusters = [_summarise(c) for c in _clusters()]
    return render(
        request,
        "scheduler/clusters/list.html",
        {"clusters": clusters, "can_manage": access.can_manage_clusters(request.user)},
    )


@require_GET
def cluster_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    summary = _summarise(get_object_or_404(_clusters(), pk=pk))
    cluster = summary.cluster
    counts = dict(
        services.live_jobs(cluster)
        .order_by()
        .values("state")
        .annotate(n=Count("pk"))
        .values_list("state", "n")
    )
    context: dict[str, Any] = {
        "cluster": cluster,
        "summary": summary,
        "partitions": list(cluster.partitions.all()),
        "fingerprint": pinned_fingerprint(cluster),
        "live_counts": [
            (state, label, counts.get(state, 0))
            for state, label in Job.State.choices
            if state in (Job.State.SUBMITTING, Job.State.PENDING, Job.State.RUNNING)
        ],
        "can_manage": access.can_manage_clusters(request.user),
        "incidents": drains.for_cluster(cluster),
        "incident_window": settings.NODE_INCIDENT_WINDOW_MINUTES,
        **_access_context(request, cluster),
    }
    return render(request, "scheduler/clusters/detail.html", context)


@require_POST
def cluster_check_host_key(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Fetch the key the login node presents now and show it beside the pinned one, to confirm."""
    require(access.can_manage_clusters(request.user))
    cluster = get_object_or_404(Cluster, pk=pk)
    try:
        key_line, fingerprint = services.fetch_host_key(cluster)
    except ssh.SlurmError as error:
        messages.error(request, _("Could not read the host key: %(error)s") % {"error": error})
        return redirect(cluster)
    context = {
        "cluster": cluster,
        "key_line": key_line,
        "fingerprint": fingerprint,
        "pinned_fingerprint": pinned_fingerprint(cluster),
        "same": key_line == " ".join(cluster.host_key.split()[:2]),  # a pinned line may carry a comment
    }
    return render(request, "scheduler/clusters/host_key.html", context)


@require_POST
def cluster_trust_host_key(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """Pin the key an admin has compared (it replaces any earlier pin)."""
    require(access.can_manage_clusters(request.user))
    cluster = get_object_or_404(Cluster, pk=pk)
    form = TrustHostKeyForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("No host key was sent."))
        return redirect(cluster)
    try:
        services.trust_host_key(member_of(request.user), cluster, form.cleaned_data["key_line"])
    except ssh.SlurmError as error:
        messages.error(request, _("That host key was not pinned: %(error)s") % {"error": error})
        return redirect(cluster)
    messages.success(
        request,
        _("Host key %(fingerprint)s is now trusted for %(cluster)s.")
        % {"fingerprint": pinned_fingerprint(cluster), "cluster": cluster.name},
    )
    return redirect(cluster)
