"""Every change to people, tasks, goals and the plan goes through one function here.

Web views, API views, Slack handlers and management commands call these; none hand-roll the writes.
Permission checks happen before (in `portal.access`); these functions trust their caller on that.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from django.db import transaction
from django.db.models import Model
from django.utils import timezone
from django.utils.translation import gettext as _

from portal.models import Goal, GoalRevision, Member, Membership, Milestone, Subteam, Task


class ServiceError(Exception):
    """A request that is valid in form but not allowed by the current state (shown to the user)."""


TASK_FIELDS = (
    "subteam",
    "title",
    "description",
    "status",
    "priority",
    "start_date",
    "due_date",
    "goal",
    "learnings",
)


@transaction.atomic
def create_task(actor: Member | None, *, assignees: Iterable[Member] = (), **fields: Any) -> Task:
    unknown = set(fields) - set(TASK_FIELDS)
    if unknown:
        raise TypeError(f"unknown task fields: {sorted(unknown)}")
    task = Task(created_by=actor, **fields)
    task.full_clean()
    task.save()
    task.assignees.set(list(assignees))
    return task


@transaction.atomic
def update_task(
    actor: Member | None, task: Task, *, assignees: Iterable[Member] | None = None, **fields: Any
) -> Task:
    unknown = set(fields) - set(TASK_FIELDS)
    if unknown:
        raise TypeError(f"unknown task fields: {sorted(unknown)}")
    locked = Task.objects.select_for_update().get(pk=task.pk)
    for name, value in fields.items():
        setattr(locked, name, value)
    locked.updated_at = timezone.now()
    locked.full_clean()
    locked.save(update_fields=[*fields, "updated_at"])
    if assignees is not None:
        locked.assignees.set(list(assignees))
    return locked


def move_task(actor: Member | None, task: Task, status: str) -> Task:
    """Change a task's status. Two people moving one task at once: the row lock orders them, the
    later move wins, and the task is never left half-updated."""
    if status not in Task.Status.values:
        raise ServiceError(_("Unknown status: %(status)s") % {"status": status})
    with transaction.atomic():
        locked = Task.objects.select_for_update().get(pk=task.pk)
        locked.status = status
        locked.updated_at = timezone.now()
        locked.save(update_fields=["status", "updated_at"])
    return locked


def delete_task(actor: Member | None, task: Task) -> None:
    task.delete()


# --- goals --------------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A JSON-friendly form of a field value for the revision record."""
    if isinstance(value, Model):
        return str(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


@transaction.atomic
def create_goal(actor: Member | None, *, reason: str = "", **fields: Any) -> Goal:
    goal = Goal(created_by=actor, **fields)
    goal.full_clean()
    goal.save()
    GoalRevision.objects.create(
        goal=goal,
        author=actor,
        changes={"__created__": True, **{f: [None, _plain(getattr(goal, f))] for f in Goal.TRACKED_FIELDS}},
        reason=reason.strip(),
    )
    return goal


@transaction.atomic
def update_goal(
    actor: Member | None, goal: Goal, changes: Mapping[str, Any], *, reason: str, source: str = ""
) -> GoalRevision | None:
    """Apply changes to a goal and record them with the reason. Returns None when nothing changed."""
    unknown = set(changes) - set(Goal.TRACKED_FIELDS)
    if unknown:
        raise TypeError(f"unknown goal fields: {sorted(unknown)}")
    if not reason.strip():
        raise ServiceError(_("Say why the goal changes: the reason is kept in its history."))
    locked = Goal.objects.select_for_update().get(pk=goal.pk)
    diff = {}
    for name, new in changes.items():
        old = getattr(locked, name)
        if old != new:
            diff[name] = [_plain(old), _plain(new)]
            setattr(locked, name, new)
    if not diff:
        return None
    locked.updated_at = timezone.now()
    locked.full_clean()
    locked.save(update_fields=[*changes, "updated_at"])
    return GoalRevision.objects.create(
        goal=locked, author=actor, changes=diff, reason=reason.strip(), source=source
    )


def delete_goal(actor: Member | None, goal: Goal) -> None:
    goal.delete()


# --- milestones -----------------------------------------------------------------------------------------


def create_milestone(actor: Member | None, **fields: Any) -> Milestone:
    milestone = Milestone(**fields)
    milestone.full_clean()
    milestone.save()
    return milestone


@transaction.atomic
def update_milestone(actor: Member | None, milestone: Milestone, **fields: Any) -> Milestone:
    locked = Milestone.objects.select_for_update().get(pk=milestone.pk)
    for name, value in fields.items():
        setattr(locked, name, value)
    locked.full_clean()
    locked.save(update_fields=list(fields))
    return locked


def delete_milestone(actor: Member | None, milestone: Milestone) -> None:
    milestone.delete()


# --- people ---------------------------------------------------------------------------------------------


@transaction.atomic
def add_membership(
    actor: Member | None,
    member: Member,
    subteam: Subteam,
    role: str = Membership.Role.MEMBER,
    started: dt.date | None = None,
) -> Membership:
    if Membership.objects.filter(member=member, subteam=subteam, ended__isnull=True).exists():
        raise ServiceError(
            _("%(member)s is already in %(subteam)s.") % {"member": member, "subteam": subteam}
        )
    membership = Membership(
        member=member, subteam=subteam, role=role, started=started or timezone.localdate()
    )
    membership.full_clean()
    membership.save()
    return membership


def end_membership(actor: Member | None, membership: Membership, ended: dt.date | None = None) -> Membership:
    """End a membership, keeping the row so the member's history shows where they have been."""
    if membership.ended is not None:
        raise ServiceError(_("This membership has already ended."))
    ended = ended or timezone.localdate()
    if ended < membership.started:
        raise ServiceError(_("A membership cannot end before it started."))
    membership.ended = ended
    membership.save(update_fields=["ended"])
    return membership


def set_membership_role(actor: Member | None, membership: Membership, role: str) -> Membership:
    if role not in Membership.Role.values:
        raise ServiceError(_("Unknown role: %(role)s") % {"role": role})
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


MEMBER_FIELDS = (
    "display_name",
    "slack_user_id",
    "github",
    "huggingface",
    "wandb",
    "bio",
    "language",
    "has_github",
    "has_huggingface",
    "has_wandb",
    "has_slack",
)


def update_member(actor: Member | None, member: Member, **fields: Any) -> Member:
    unknown = set(fields) - set(MEMBER_FIELDS)
    if unknown:
        raise TypeError(f"unknown member fields: {sorted(unknown)}")
    for name, value in fields.items():
        setattr(member, name, value)
    member.full_clean(exclude=["user"])
    member.save(update_fields=list(fields))
    return member
