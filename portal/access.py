"""Who may do what: the one place permissions are decided.

Roles: admin (the management team, or a superuser: everything); subteam lead (manages its subteam's
goals, tasks, milestones and memberships); member (creates and edits tasks in its subteams). Any
signed-in user reads everything; anonymous users read nothing (see `LoginRequiredEverywhereMiddleware`).

Web views use the `get_*_for_*` helpers, which return the object or raise 404/403; API permission
classes call the `can_*` predicates. Both read the same rules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.shortcuts import get_object_or_404

from portal.models import Goal, Member, Membership, Milestone, Subteam, Task

if TYPE_CHECKING:
    from scheduler.models import Job, JobTemplate

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

    AnyUser = AbstractBaseUser | AnonymousUser


_UNSET = object()


def member_of(user: AnyUser) -> Member | None:
    """The signed-in user's Member, or None (anonymous, or an account without a profile)."""
    if not user.is_authenticated:
        return None
    cached = getattr(user, "_portal_member", _UNSET)
    if cached is _UNSET:
        cached = Member.objects.filter(user_id=user.pk).first()
        setattr(user, "_portal_member", cached)  # noqa: B010 - a per-request cache on the user object
    return cast("Member | None", cached)


def is_admin(user: AnyUser) -> bool:
    """Superusers and active members of the management subteam administer the portal."""
    if not user.is_authenticated or not user.is_active:
        return False
    if getattr(user, "is_superuser", False):
        return True
    cached: bool | None = getattr(user, "_portal_is_admin", None)
    if cached is None:
        cached = Membership.objects.filter(
            member__user_id=user.pk, subteam__is_management=True, ended__isnull=True
        ).exists()
        setattr(user, "_portal_is_admin", cached)  # noqa: B010
    return cached


def _active_roles(user: AnyUser) -> dict[int, str]:
    """subteam id -> role for the user's current memberships (cached on the user for one request)."""
    if not user.is_authenticated:
        return {}
    cached: dict[int, str] | None = getattr(user, "_portal_roles", None)
    if cached is None:
        cached = dict(
            Membership.objects.filter(member__user_id=user.pk, ended__isnull=True).values_list(
                "subteam_id", "role"
            )
        )
        setattr(user, "_portal_roles", cached)  # noqa: B010
    return cached


def forget(user: AnyUser) -> None:
    """Drop the per-request caches (after the user's memberships change)."""
    for attr in ("_portal_member", "_portal_is_admin", "_portal_roles"):
        if hasattr(user, attr):
            delattr(user, attr)


def is_lead(user: AnyUser, subteam_id: int | None) -> bool:
    return subteam_id is not None and _active_roles(user).get(subteam_id) == Membership.Role.LEAD


def is_in_subteam(user: AnyUser, subteam_id: int | None) -> bool:
    return subteam_id is not None and subteam_id in _active_roles(user)


def led_subteam_ids(user: AnyUser) -> set[int]:
    return {sid for sid, role in _active_roles(user).items() if role == Membership.Role.LEAD}


def subteam_ids(user: AnyUser) -> set[int]:
    return set(_active_roles(user))


def subteams_for(user: AnyUser, *, leading: bool = False) -> QuerySet[Subteam]:
    """The subteams a form may offer the user: all for admins, else those they are in (or lead)."""
    subteams = Subteam.objects.all()
    if is_admin(user):
        return subteams
    return subteams.filter(pk__in=led_subteam_ids(user) if leading else subteam_ids(user))


# --- predicates -----------------------------------------------------------------------------------


def can_manage_subteam(user: AnyUser, subteam_id: int | None) -> bool:
    """Leads manage their subteam (goals, milestones, memberships, deleting tasks); admins any."""
    if is_admin(user):
        return True
    return is_lead(user, subteam_id)


def can_create_task(user: AnyUser, subteam_id: int | None) -> bool:
    return is_admin(user) or is_in_subteam(user, subteam_id)


def can_edit_task(user: AnyUser, task: Task) -> bool:
    return can_create_task(user, task.subteam_id)


def can_move_task(user: AnyUser, task: Task, subteam_id: int | None) -> bool:
    """Moving a task to another subteam needs the right to edit it and to create tasks there."""
    return can_edit_task(user, task) and can_create_task(user, subteam_id)


def can_delete_task(user: AnyUser, task: Task) -> bool:
    return can_manage_subteam(user, task.subteam_id)


def can_manage_goal(user: AnyUser, subteam_id: int | None) -> bool:
    """Project-wide goals (no subteam) belong to the management team; a subteam's to its leads."""
    if subteam_id is None:
        return is_admin(user)
    return can_manage_subteam(user, subteam_id)


def can_manage_milestone(user: AnyUser, subteam_id: int | None) -> bool:
    return can_manage_goal(user, subteam_id)


def can_edit_member(user: AnyUser, member: Member) -> bool:
    """Everyone edits their own profile; admins edit anyone's."""
    if is_admin(user):
        return True
    me = member_of(user)
    return me is not None and me.pk == member.pk


def can_see_onboarding(user: AnyUser, member: Member) -> bool:
    """The onboarding checklist is for the management team and the member themself."""
    return can_edit_member(user, member)


# --- fetch-or-refuse helpers for web views ----------------------------------------------------------


def _require(allowed: bool) -> None:
    if not allowed:
        raise PermissionDenied


def get_subteam_to_manage(user: AnyUser, slug: str) -> Subteam:
    subteam = get_object_or_404(Subteam, slug=slug)
    _require(can_manage_subteam(user, subteam.pk))
    return subteam


def get_subteam_to_add_task(user: AnyUser, subteam: Subteam) -> Subteam:
    _require(can_create_task(user, subteam.pk))
    return subteam


def get_task_to_edit(user: AnyUser, pk: int) -> Task:
    task = get_object_or_404(Task.objects.select_related("subteam"), pk=pk)
    _require(can_edit_task(user, task))
    return task


def get_task_to_delete(user: AnyUser, pk: int) -> Task:
    task = get_object_or_404(Task.objects.select_related("subteam"), pk=pk)
    _require(can_delete_task(user, task))
    return task


def get_goal_to_manage(user: AnyUser, pk: int) -> Goal:
    goal = get_object_or_404(Goal.objects.select_related("subteam"), pk=pk)
    _require(can_manage_goal(user, goal.subteam_id))
    return goal


def get_milestone_to_manage(user: AnyUser, pk: int) -> Milestone:
    milestone = get_object_or_404(Milestone.objects.select_related("subteam"), pk=pk)
    _require(can_manage_milestone(user, milestone.subteam_id))
    return milestone


def get_member_to_edit(user: AnyUser, username: str) -> Member:
    member = get_object_or_404(Member.objects.select_related("user"), user__username=username)
    _require(can_edit_member(user, member))
    return member


def get_membership_to_manage(user: AnyUser, pk: int) -> Membership:
    membership = get_object_or_404(Membership.objects.select_related("subteam", "member"), pk=pk)
    _require(can_manage_subteam(user, membership.subteam_id))
    return membership


def require(allowed: bool) -> None:
    """Raise PermissionDenied unless allowed (for checks on data a form has just validated)."""
    _require(allowed)


# --- jobs (scheduler) -----------------------------------------------------------------------------------


def can_submit_job(user: AnyUser, subteam_id: int | None) -> bool:
    """Members submit jobs for their own subteams; admins for any."""
    return is_admin(user) or is_in_subteam(user, subteam_id)


def can_resubmit_job(user: AnyUser, job: Job, subteam_id: int | None = None) -> bool:
    """A copy of a job: allowed to whoever may submit for the job's subteam (and the new one, if moved)."""
    target = job.subteam_id if subteam_id is None else subteam_id
    return can_submit_job(user, job.subteam_id) and can_submit_job(user, target)


def can_cancel_job(user: AnyUser, job: Job) -> bool:
    """The owner cancels their job, a lead their subteam's, an admin any."""
    if is_admin(user) or is_lead(user, job.subteam_id):
        return True
    me = member_of(user)
    return me is not None and me.pk == job.owner_id


def can_manage_clusters(user: AnyUser) -> bool:
    return is_admin(user)


def can_save_job_template(user: AnyUser, subteam_id: int | None) -> bool:
    """Members save templates for their own subteams (the same people who may submit its jobs)."""
    return can_submit_job(user, subteam_id)


def can_delete_job_template(user: AnyUser, template: JobTemplate) -> bool:
    """Whoever saved it, the subteam's leads, admins."""
    if is_admin(user) or is_lead(user, template.subteam_id):
        return True
    me = member_of(user)
    return me is not None and me.pk == template.created_by_id


def get_job_to_cancel(user: AnyUser, pk: object) -> Job:
    from scheduler.models import Job  # the scheduler app builds on the portal, not the other way round

    job = get_object_or_404(Job.objects.select_related("subteam", "owner"), pk=pk)
    _require(can_cancel_job(user, job))
    return job


# --- GPU lending list (lending) -------------------------------------------------------------------------


def can_book_gpus(user: AnyUser, subteam_id: int | None) -> bool:
    """Members book GPUs for their own subteams; admins for any."""
    return is_admin(user) or is_in_subteam(user, subteam_id)


def can_decide_reservation(user: AnyUser) -> bool:
    """Approving and rejecting GPU bookings is the management team's."""
    return is_admin(user)


def can_change_reservation(user: AnyUser, requester_id: int, subteam_id: int) -> bool:
    """The requester, the subteam's leads and admins cancel or edit a booking."""
    if is_admin(user) or is_lead(user, subteam_id):
        return True
    me = member_of(user)
    return me is not None and me.pk == requester_id


# --- evaluation results (evals) -------------------------------------------------------------------------


def can_import_eval(user: AnyUser, subteam_id: int | None) -> bool:
    """Members import results for their own subteams; project-wide results (no subteam): admins."""
    return is_admin(user) or is_in_subteam(user, subteam_id)


def can_add_baseline(user: AnyUser, subteam_id: int | None) -> bool:
    """Baselines (reference models): a subteam's leads for it, admins for any subteam or the project."""
    return is_admin(user) or is_lead(user, subteam_id)


def may_import_evals(user: AnyUser) -> bool:
    """Whether to offer the import form at all (some subteam to import for)."""
    return is_admin(user) or bool(subteam_ids(user))


def may_add_baselines(user: AnyUser) -> bool:
    """Whether to offer the baseline form at all (admins, and leads of some subteam)."""
    return is_admin(user) or bool(led_subteam_ids(user))


# --- metrics ----------------------------------------------------------------------------------------


def can_see_metrics(user: AnyUser, job: Job) -> bool:
    """A job's training metrics are read like the job itself: by anyone signed in."""
    return bool(user.is_authenticated and user.is_active)


def can_watch_subteam_runs(user: AnyUser, subteam: Subteam) -> bool:
    """The subteam dashboard's live runs panel: anyone signed in, like the dashboard."""
    return bool(user.is_authenticated and user.is_active)
