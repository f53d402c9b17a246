"""The drain guard: a node that goes drained or down is linked to the portal's jobs that ran there.

The team's rule is that no job may cause a node to drain. Slurm drains a node for a reason it writes
down ("Kill task failed", "Not responding", …) but says nothing of which job was there; this module
does, and says in words what the reason means and how a job avoids causing it.

`CAUSES` is the one table: Slurm's drain reasons (matched case-insensitively in its reason text) →
what happened and how to avoid it. The first row that matches wins; a reason no row matches is shown
verbatim and labelled unknown. Adding a reason the team meets is one more row.

`watch_nodes` is a step of the worker's cycle, right after the inventory (`SCHEDULER_STEPS`). It sends
no command: it reads the Node rows `refresh_inventory` keeps current and the Job rows.
1. Open incidents whose node is available again (or gone from the inventory) are resolved.
2. Each unavailable node without an open incident gets one (`record_incident`): its state and reason
   as seen, when it started (the time Slurm wrote beside the reason, else now), and the jobs running
   on it or ended on it within `NODE_INCIDENT_WINDOW_MINUTES` before, at most `MAX_JOBS`. The
   incident and its jobs are one transaction; a unique constraint allows one open incident per node,
   so a second worker's insert fails and is skipped.
The management channel and the implicated jobs' subteam channels are told by `slackbot.outbox`,
which reads the incidents as it reads the other event tables.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Prefetch, Q
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from scheduler import slurm
from scheduler.models import Cluster, Job, Node, NodeIncident

if TYPE_CHECKING:
    from scheduler.steps import Poll

log = logging.getLogger("scheduler.worker")

# Jobs linked to one incident at most (a node that held many short jobs stays one bounded row).
MAX_JOBS = 50
# Resolved incidents a cluster's page and API show besides the open ones.
RECENT_RESOLVED = 20


@dataclass(frozen=True)
class Cause:
    code: str
    pattern: re.Pattern[str]  # searched in Slurm's reason, case-insensitively
    what: Promise  # what happened, for the member
    avoid: Promise  # how a job avoids it (or that no job can)


def _cause(code: str, pattern: str, what: Promise, avoid: Promise) -> Cause:
    return Cause(code, re.compile(pattern, re.IGNORECASE), what, avoid)


_HARDWARE = gettext_lazy("Nothing in a job causes this: the admins check the node's hardware or slurm.conf.")
_GPU = gettext_lazy(
    "Usually hardware: the admins reset or replace the GPU. If a job's log shows GPU errors (Xid) before "
    "it, tell them what the job ran."
)

CAUSES: tuple[Cause, ...] = (
    _cause(
        "kill_task_failed",
        r"kill task failed",
        gettext_lazy(
            "Processes of a job did not exit within Slurm's UnkillableStepTimeout after the job ended or "
            "was cancelled, so Slurm drained the node. Usually a process stuck in I/O on shared storage "
            "(a hung NFS mount) or one that ignores SIGTERM."
        ),
        gettext_lazy(
            "Handle SIGTERM: save quickly and exit. Do not write to shared storage that hangs. Start "
            "workers through the launcher (srun, torchrun) so that Slurm can kill every child process."
        ),
    ),
    _cause(
        "not_responding",
        r"not responding",
        gettext_lazy(
            "The node stopped answering Slurm's controller: it crashed, ran out of memory as a whole "
            "(not only the job), or lost its network."
        ),
        gettext_lazy(
            "Ask for the memory the job needs (--mem) and stay within it; do not fill the node's /dev/shm "
            "or /tmp. If it happens again on one node, tell the admins."
        ),
    ),
    _cause(
        "batch_job_complete_failure",
        r"batch job complete failure",
        gettext_lazy(
            "Slurm could not finish a batch job cleanly on the node: its processes or the node's slurmd "
            "failed as the job ended."
        ),
        gettext_lazy(
            "Let the job's processes end with its script: wait for background processes instead of "
            "leaving them running. Tell the admins if it happens again."
        ),
    ),
    _cause(
        "epilog_error",
        r"epilog error",
        gettext_lazy(
            "The cluster's epilog (the script that cleans the node after each job) failed, often because "
            "a job left processes, mounts or files behind that it could not remove."
        ),
        gettext_lazy(
            "Leave nothing running when the script ends, and keep files in the run directory, not in the "
            "node's /tmp or /dev/shm."
        ),
    ),
    _cause(
        "prolog_error",
        r"prolog error",
        gettext_lazy(
            "The cluster's prolog (the script that prepares the node before each job) failed: usually a "
            "problem of the node, not of the job."
        ),
        gettext_lazy("Nothing in the job; the admins check the node. Resubmitting is safe."),
    ),
    _cause(
        "low_memory",
        r"low\s+realmemory",
        gettext_lazy(
            "The node reports less memory than the cluster's configuration says (a failed memory module or "
            "a wrong configuration)."
        ),
        _HARDWARE,
    ),
    _cause(
        "low_cpus",
        r"low\s+(socket\*core\*thread count|cpus)",
        gettext_lazy("The node reports fewer CPUs than configured (CPUs offline or a wrong configuration)."),
        _HARDWARE,
    ),
    _cause(
        "gpu_count",
        r"gres/gpu\S*\s+count|gres/gpu.*reported lower",
        gettext_lazy(
            "The node sees fewer GPUs than configured: a GPU fell off the bus or its driver failed (often "
            "after a GPU error or overheating)."
        ),
        _GPU,
    ),
    _cause(
        "nvml",
        r"\bnvml\b",
        gettext_lazy(
            "The GPU driver's management library (NVML) failed on the node: a GPU or driver problem."
        ),
        _GPU,
    ),
    _cause(
        "ecc_errors",
        r"\becc\b",
        gettext_lazy("A GPU reported uncorrectable memory (ECC) errors: it is faulty or needs a reset."),
        gettext_lazy(
            "Hardware: the admins reset or replace the GPU. Resubmit, excluding this node while it is out."
        ),
    ),
    _cause(
        "rebooted",
        r"unexpectedly rebooted",
        gettext_lazy("The node restarted while Slurm counted it in use: a crash, a kernel or power problem."),
        gettext_lazy(
            "Usually not a job. If it follows one kind of job (say, memory-heavy ones), tell the admins."
        ),
    ),
)

# Slurm writes who set a reason and when after it: `Kill task failed [root@2026-11-28T11:13:49]`.
_SET_BY = re.compile(r"\s*\[([^\]@\s]+)@(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\]\s*$")


@dataclass(frozen=True)
class Explanation:
    code: str  # the table's code; "unknown" when no row matches, "" when Slurm gave no reason
    known: bool
    reason: str  # Slurm's words, without the `[user@time]` it adds
    set_by: str  # who set the reason: "slurm" for Slurm itself, else the admin's (or operator's) user
    what: str
    avoid: str


def split_reason(reason: str) -> tuple[str, str, str]:
    """`Kill task failed [root@2026-11-28T11:13:49]` → ("Kill task failed", "root", "2026-11-28T11:13:49")."""
    match = _SET_BY.search(reason)
    if match is None:
        return reason.strip(), "", ""
    return reason[: match.start()].strip(), match.group(1), match.group(2)


def explain(reason: str) -> Explanation:
    """What a drain reason means and how to avoid it, in the active language (the table alone: no query)."""
    words, who, _when = split_reason(reason)
    if not words:
        return Explanation("", False, "", who, _("Slurm gave no reason."), "")
    for cause in CAUSES:
        if cause.pattern.search(words):
            return Explanation(cause.code, True, words, who, str(cause.what), str(cause.avoid))
    return Explanation(
        "unknown",
        False,
        words,
        who,
        _("Slurm's reason: %(reason)s (one this portal does not explain yet).") % {"reason": words},
        "",
    )


def reason_time(reason: str, tz: dt.tzinfo) -> dt.datetime | None:
    """When Slurm set the reason (its `[user@time]`, in the cluster's time zone), or None."""
    when = split_reason(reason)[2]
    if not when:
        return None
    try:
        return dt.datetime.strptime(when, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=tz)
    except ValueError:
        return None


# --- the worker step ---------------------------------------------------------------------------------------


def watch_nodes(poll: Poll) -> None:
    """Resolve the incidents of nodes that are back; record one for each node newly out."""
    cluster = poll.cluster
    out = list(Node.objects.filter(cluster=cluster, unavailable=True).only("name", "state", "reason"))
    opened = dict(
        NodeIncident.objects.filter(cluster=cluster, resolved_at__isnull=True).values_list("node_name", "pk")
    )
    out_names = {node.name for node in out}
    back = [pk for name, pk in opened.items() if name not in out_names]
    if back:
        resolved = NodeIncident.objects.filter(pk__in=back, resolved_at__isnull=True).update(
            resolved_at=timezone.now()
        )
        if resolved:
            log.info("%s: %d node incident(s) resolved", cluster.name, resolved)
    new = [node for node in out if node.name not in opened]
    if not new:
        return
    now = timezone.now()
    starts = {node.name: min(now, reason_time(node.reason, cluster.tz) or now) for node in new}
    candidates = _candidates(cluster, min(starts.values()) - _window())
    for node in new:
        record_incident(cluster, node, starts[node.name], candidates, now)


def _window() -> dt.timedelta:
    return dt.timedelta(minutes=settings.NODE_INCIDENT_WINDOW_MINUTES)


@dataclass(frozen=True)
class Candidate:
    """A job that may have been on a node when it went out: running, or ended recently."""

    pk: uuid.UUID
    nodes: frozenset[str]
    running: bool
    ended_at: dt.datetime | None


def _candidates(cluster: Cluster, since: dt.datetime) -> list[Candidate]:
    """The cluster's jobs running now or ended since `since` that ran somewhere, running ones first, then
    the latest to end (one query)."""
    rows = (
        Job.objects.filter(cluster=cluster)
        .exclude(node_list="")
        .filter(Q(state=Job.State.RUNNING) | Q(ended_at__gte=since))
        .values_list("pk", "node_list", "state", "ended_at")
    )
    found = []
    for pk, node_list, state, ended_at in rows:
        try:
            nodes = frozenset(slurm.expand_hostlist(node_list))
        except ValueError:
            log.warning("job %s: unreadable node list %r", pk, node_list)
            continue
        found.append(Candidate(pk, nodes, state == Job.State.RUNNING, ended_at))
    oldest = dt.datetime.min.replace(tzinfo=dt.UTC)
    found.sort(key=lambda c: (not c.running, -(c.ended_at or oldest).timestamp()))
    return found


def implicated(node: str, started_at: dt.datetime, candidates: list[Candidate]) -> list[uuid.UUID]:
    """The jobs on `node` running now, or ended there within the window before `started_at` (or since)."""
    since = started_at - _window()
    return [
        c.pk
        for c in candidates
        if node in c.nodes and (c.running or (c.ended_at is not None and c.ended_at >= since))
    ]


def record_incident(
    cluster: Cluster,
    node: Node,
    started_at: dt.datetime,
    candidates: list[Candidate],
    now: dt.datetime | None = None,
) -> NodeIncident | None:
    """The node's open incident and its jobs, in one transaction; None when the node already has one
    (another worker recorded it first)."""
    jobs = implicated(node.name, started_at, candidates)
    try:
        with transaction.atomic():
            incident = NodeIncident.objects.create(
                cluster=cluster,
                node_name=node.name,
                state=node.state[:64],
                reason=node.reason[:500],
                started_at=started_at,
                seen_at=now or timezone.now(),
                jobs_left_out=max(0, len(jobs) - MAX_JOBS),
            )
            through = NodeIncident.jobs.through
            through.objects.bulk_create([through(nodeincident=incident, job_id=pk) for pk in jobs[:MAX_JOBS]])
    except IntegrityError:
        return None
    log.warning(
        "%s: node %s is %s (%s); %d portal job(s) implicated",
        cluster.name,
        node.name,
        node.state,
        node.reason or "no reason",
        len(jobs),
    )
    return incident


# --- what the pages and the API show -------------------------------------------------------------------------


@dataclass(frozen=True)
class Shown:
    """An incident with its reason in words (for the pages)."""

    incident: NodeIncident
    explanation: Explanation


def recent(cluster: Cluster) -> list[NodeIncident]:
    """The cluster's open incidents, then its last `RECENT_RESOLVED` resolved ones, newest first, with
    their jobs and their owners (two queries)."""
    resolved = NodeIncident.objects.filter(cluster=cluster, resolved_at__isnull=False).values("pk")
    jobs = Job.objects.select_related("owner__user", "subteam").order_by("-created_at")
    incidents = (
        NodeIncident.objects.filter(cluster=cluster)
        .filter(Q(resolved_at__isnull=True) | Q(pk__in=resolved[:RECENT_RESOLVED]))
        .prefetch_related(Prefetch("jobs", queryset=jobs))
    )
    return sorted(incidents, key=lambda incident: not incident.is_open)  # stable: newest first in each


def for_cluster(cluster: Cluster) -> list[Shown]:
    return [Shown(incident, explain(incident.reason)) for incident in recent(cluster)]


def for_job(job: Job) -> list[Shown]:
    """The incidents this job is implicated in, newest first (one query)."""
    incidents = NodeIncident.objects.filter(jobs=job)[:10]
    return [Shown(incident, explain(incident.reason)) for incident in incidents]
