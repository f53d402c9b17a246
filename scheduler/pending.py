"""Why a job is waiting, in plain words, and when Slurm expects it to start.

`REASONS` maps squeue's reason codes (Slurm's job_reason_codes) to a sentence and whether the job can
ever start as asked. `explain` adds what the portal knows: the booking the job waits in and the jobs that
hold it, the pipeline step it waits for, the nodes that are drained and why, a request larger than the
partition. A code the table does not know is shown verbatim and labelled unknown, never an error.

The start estimate comes from squeue's start column for pending jobs (what `squeue --start` shows, kept
by tracking in `Job.expected_start_at`) and, on the form, from `sbatch --test-only` (`test_only`).
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import asdict, dataclass, field
from typing import Any

import hostlist
from django.utils import timezone
from django.utils.functional import Promise
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from portal import hooks
from scheduler import identity, preflight, slurm, ssh
from scheduler.models import Job, Node, Partition

# code → (the reason in words, whether the job can never start as asked)
REASONS: dict[str, tuple[Promise, bool]] = {
    "None": (gettext_lazy("Just queued: Slurm has not looked at it yet."), False),
    "Resources": (gettext_lazy("Waiting for GPUs or nodes to free up."), False),
    "Priority": (gettext_lazy("Other jobs with a higher priority are ahead of it."), False),
    "Dependency": (gettext_lazy("Waiting for the job it runs after to finish."), False),
    "DependencyNeverSatisfied": (
        gettext_lazy("The job it runs after did not succeed: this one will never start."),
        True,
    ),
    "ReqNodeNotAvail": (gettext_lazy("Nodes it needs are not available (drained, down or reserved)."), False),
    # Slurm's "waiting for its advanced reservation to become available": not started yet, or full.
    "Reservation": (
        gettext_lazy("Waiting for its booking (Slurm reservation) to start or to have GPUs free."),
        False,
    ),
    "ReservationDeleted": (gettext_lazy("Its booking's reservation was deleted: it will never start."), True),
    "Nodes_required_for_job_are_DOWN,_DRAINED_or_reserved_for_jobs_in_higher_priority_partitions": (
        gettext_lazy("Nodes it needs are down, drained or reserved for other jobs."),
        False,
    ),
    "AssocGrpGRES": (gettext_lazy("The subteam's Slurm account is using all the GPUs it may."), False),
    "AssocGrpGRESMinutes": (gettext_lazy("The subteam's Slurm account used up its GPU-minutes."), False),
    "AssocGrpJobsLimit": (gettext_lazy("The subteam's Slurm account runs as many jobs as it may."), False),
    "AssocMaxJobsLimit": (gettext_lazy("You run as many jobs as your account allows."), False),
    "AssocGrpCpuLimit": (gettext_lazy("The subteam's Slurm account is using all the CPUs it may."), False),
    "QOSMaxGRESPerUser": (gettext_lazy("You are using all the GPUs your QOS allows one user."), False),
    "QOSGrpGRES": (gettext_lazy("The QOS is using all the GPUs it may."), False),
    "QOSMaxJobsPerUserLimit": (gettext_lazy("You run as many jobs as your QOS allows."), False),
    "QOSMaxWallDurationPerJobLimit": (
        gettext_lazy("Its time limit is longer than the QOS allows: it will never start."),
        True,
    ),
    "PartitionTimeLimit": (
        gettext_lazy("Its time limit is longer than the partition allows: it will never start."),
        True,
    ),
    "PartitionNodeLimit": (
        gettext_lazy("It asks for more nodes than the partition allows: it will never start."),
        True,
    ),
    "PartitionDown": (gettext_lazy("The partition is down."), False),
    "PartitionInactive": (gettext_lazy("The partition is inactive."), False),
    "JobHeldUser": (gettext_lazy("Held by its owner (scontrol release to let it run)."), False),
    "JobHeldAdmin": (gettext_lazy("Held by an administrator."), False),
    "BeginTime": (gettext_lazy("Asked not to start before a given time."), False),
    "BadConstraints": (gettext_lazy("No node matches what it asks for: it will never start."), True),
    "InvalidAccount": (gettext_lazy("Its Slurm account is not valid for its user."), True),
    "InvalidQOS": (gettext_lazy("Its QOS is not valid."), True),
    "NodeDown": (gettext_lazy("A node it was given is down."), False),
    "launch_failed_requeued_held": (
        gettext_lazy("Its launch failed; Slurm requeued and held it (an admin must release it)."),
        False,
    ),
}
_UNAVAILABLE_RE = re.compile(r"UnavailableNodes:(\S+)")


@dataclass
class Waiting:
    code: str  # squeue's reason code, as Slurm wrote it ("" while not yet queued)
    known: bool  # whether the table knows the code
    text: str  # the reason in words (the raw reason when unknown)
    detail: str  # what the portal adds: the booking and who holds it, the step waited for, the nodes
    never: bool  # it can never start as asked
    expected_start: dt.datetime | None  # Slurm's estimate, when it gives one
    link: str = ""  # the page the detail is about (a booking, the job waited for)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["expected_start"] = self.expected_start.isoformat() if self.expected_start else None
        return data


def code_of(reason: str) -> str:
    """The reason code: squeue's first word ("ReqNodeNotAvail, UnavailableNodes:node3" → ReqNodeNotAvail)."""
    return reason.strip().strip("()").split(",", 1)[0].strip()


def words(reason: str) -> tuple[str, bool, bool]:
    """(the reason in words, known, never) from the table alone: for lists, no query."""
    code = code_of(reason)
    found = REASONS.get(code)
    if found is None:
        return (
            _("Slurm says: %(reason)s (a reason this portal does not explain yet).") % {"reason": reason},
            False,
            False,
        )
    return str(found[0]), True, found[1]


def explain(job: Job, *, enrich: bool = True) -> Waiting | None:
    """Why the job is not running yet (None once it runs or ended). With `enrich`, what the portal
    knows is added (a few queries: for one job's page, not for every row of a list)."""
    if job.state == Job.State.SUBMITTING:
        return Waiting("", True, _("Being sent to the cluster."), "", False, None)
    if job.state != Job.State.PENDING:
        return None
    text, known, never = words(job.reason or "None")
    waiting = Waiting(code_of(job.reason or "None"), known, text, "", never, job.expected_start_at)
    if not enrich:
        return waiting
    for add in (_too_big, _dependency, _booking, _nodes):
        if add(job, waiting):
            break
    return waiting


def _too_big(job: Job, waiting: Waiting) -> bool:
    """A request the partition can never hold, whatever Slurm's reason says today."""
    partition = Partition.objects.filter(cluster_id=job.cluster_id, name=job.partition).first()
    if partition is None:
        return False
    if partition.total_nodes and job.nodes > partition.total_nodes:
        waiting.never = True
        waiting.detail = _("It asks for %(asked)d nodes; partition %(partition)s has %(has)d.") % {
            "asked": job.nodes,
            "partition": partition.name,
            "has": partition.total_nodes,
        }
        return True
    if partition.max_time_minutes and job.time_limit_minutes > partition.max_time_minutes:
        waiting.never = True
        waiting.detail = _("Its time limit is %(asked)d min; partition %(partition)s allows %(has)d.") % {
            "asked": job.time_limit_minutes,
            "partition": partition.name,
            "has": partition.max_time_minutes,
        }
        return True
    return False


def _dependency(job: Job, waiting: Waiting) -> bool:
    if waiting.code not in ("Dependency", "DependencyNeverSatisfied") or job.depends_on_id is None:
        return False
    before = Job.objects.only("id", "name", "state", "pipeline_step").get(pk=job.depends_on_id)
    values: dict[str, object] = {"name": before.name, "state": before.get_state_display().lower()}
    if before.pipeline_step:
        values["step"] = before.pipeline_step
        waiting.detail = (
            _("It runs after step %(step)d of the pipeline, %(name)s, which is %(state)s.") % values
        )
    else:
        waiting.detail = _("It runs after %(name)s, which is %(state)s.") % values
    if before.is_terminal and not before.succeeded:
        waiting.never = True
    waiting.link = before.get_absolute_url()
    return True


def _booking(job: Job, waiting: Waiting) -> bool:
    """Inside a booking: which one, and which of the subteam's jobs hold its GPUs until when."""
    if not job.reservation or waiting.code not in ("Resources", "Priority", "Reservation", "None"):
        return False
    label, link = describe_reservation(job)
    holders = list(
        Job.objects.filter(cluster_id=job.cluster_id, reservation=job.reservation, state=Job.State.RUNNING)
        .exclude(pk=job.pk)
        .only("id", "name", "gpus", "started_at", "time_limit_minutes")
        .order_by("started_at")[:5]
    )
    waiting.link = link
    if not holders and waiting.code == "Reservation":
        waiting.detail = _("It will run in %(booking)s once the booking has started and has GPUs free.") % {
            "booking": label
        }
        return True
    if not holders:
        waiting.detail = _("It runs inside %(booking)s.") % {"booking": label}
        return True
    ends = [h.started_at + dt.timedelta(minutes=h.time_limit_minutes) for h in holders if h.started_at]
    first_free = min(ends) if ends else None
    values = {
        "booking": label,
        "jobs": ", ".join(h.name for h in holders),
        "gpus": sum(h.gpus for h in holders),
        "until": timezone.localtime(first_free).strftime("%H:%M") if first_free else "?",
    }
    waiting.detail = (
        _(
            "Waiting inside %(booking)s, whose GPUs your subteam's jobs %(jobs)s hold (%(gpus)d GPUs), the first until ~%(until)s at the latest."
        )
        % values
    )
    return True


def _nodes(job: Job, waiting: Waiting) -> bool:
    match = _UNAVAILABLE_RE.search(job.reason)
    if waiting.code != "ReqNodeNotAvail" or not match:
        return False
    try:
        names = hostlist.expand_hostlist(match[1])
    except hostlist.BadHostlist:
        names = []
    nodes = Node.objects.filter(cluster_id=job.cluster_id, name__in=names[:64]).only(
        "name", "state", "reason"
    )
    parts = [f"{n.name}: {n.state.lower()}{f' ({n.reason})' if n.reason else ''}" for n in nodes]
    waiting.detail = _("Unavailable: %(nodes)s.") % {"nodes": "; ".join(parts) or match[1]}
    return True


def describe_reservation(job: Job) -> tuple[str, str]:
    """(label, link) of the booking behind the job's reservation, by the JOB_RESERVATION_LABEL setting's
    function (the lending app knows bookings); the reservation's name when none is set or it knows none."""
    describer = hooks.setting_function("JOB_RESERVATION_LABEL")
    if describer is not None:
        found = describer(job.cluster_id, job.reservation)
        if found:
            return str(found[0]), str(found[1])
    return _("reservation %(name)s") % {"name": job.reservation}, ""


# --- before submitting: sbatch --test-only ----------------------------------------------------------------


@dataclass
class Estimate:
    start: dt.datetime | None = None
    nodes: str = ""
    partition: str = ""
    error: str = ""  # why there is no estimate: Slurm refused the job, no login, cluster unreachable
    problems: list[str] = field(default_factory=list)  # preflight: paths the member cannot read

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["start"] = self.start.isoformat() if self.start else None
        return data


def estimate_start(job: Job, pool: ssh.Pool | None = None) -> Estimate:
    """Slurm's estimate for an unsaved job (`services.build_job`), asked as its member with `sbatch
    --test-only` (nothing is queued), and the preflight's problems (paths the member cannot read).
    Never raises: a failure becomes `error`, in words."""
    pool = pool or ssh.pool
    try:
        conn = identity.connect_user(job.cluster, job.cluster_user, pool)
        problems = [str(p) for p in preflight.check(job, conn)]
        result = conn.run(slurm.test_only_command(), stdin=job.script.encode(), timeout=30)
    except identity.AccountError as error:
        return Estimate(error=str(error))
    except ssh.SlurmError as error:
        return Estimate(error=_("The cluster did not answer: %(error)s") % {"error": str(error)[:300]})
    output = f"{result.stderr}\n{result.stdout}"
    found = slurm.parse_test_only(output)
    if found is None:
        said = (result.stderr or result.stdout).strip().splitlines()
        return Estimate(
            error=_("Slurm would not queue it: %(said)s") % {"said": (said[-1] if said else "?")[:300]}
        )
    start = (
        found.start
        if found.start is None or found.start.tzinfo
        else found.start.replace(tzinfo=job.cluster.tz)
    )
    return Estimate(start=start, nodes=found.nodes, partition=found.partition, problems=problems)
