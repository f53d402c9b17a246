"""Who may do what: the primitives every app's rules are built on, and the portal's own rules.

Roles: admin (the management team, or a superuser: everything); subteam lead (manages its subteam's
goals, tasks, milestones and memberships); member (creates and edits tasks in its subteams). Any
signed-in user reads everything; anonymous users read nothing (see `LoginRequiredEverywhereMiddleware`).

The primitives (`is_admin`, `subteams_of`, `may_act_in`, `may_lead`, `is_self`, …) answer who a user
is; each app writes the rules of its own objects with them in its `access.py` (`scheduler.access`:
jobs, clusters and templates; `lending.access`: bookings; `evals.access`: results and baselines;
`metrics.access`: training metrics). This module holds the portal's: tasks, goals, milestones, members.

Web views use the `get_*_to_*` helpers, which return the object or raise 404/403; API
permission classes call the `can_*` predicates. Both read the same rules. Services assume the caller
has checked.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.exceptions import PermissionDenied
from django.db.models import Q, QuerySet
from django.forms import BaseForm
from django.shortcuts import get_object_or_404

from portal.models import Goal, Member, Membership, Milestone, Subteam, Task

AnyUser = AbstractBaseUser | AnonymousUser


# --- what one user object has been found to be (read once per request) ----------------------------


@dataclass
class _Facts:
    member_loaded: bool = False
    member: Member | None = None
    admin: bool | None = None
    roles: dict[int, str] | None = None  # subteam id -> role, current memberships only


class _FactsPerUser:
    """`_Facts` per user object, dropped with the object (a request's user lives for the request).

    Keyed on the object's identity: model instances compare equal by primary key, so a
    `WeakKeyDictionary` would hand one request's facts to the next request's fresh user object.
    """

    def __init__(self) -> None:
        self._entries: dict[int, tuple[weakref.ref[object], _Facts]] = {}

    def __call__(self, user: object) -> _Facts:
        key = id(user)
        entry = self._entries.get(key)
        if entry is not None and entry[0]() is user:
            return entry[1]
        facts = _Facts()
        self._entries[key] = (weakref.ref(user, self._forgetter(key)), facts)
        return facts

    def _forgetter(self, key: int) -> Callable[[weakref.ref[object]], None]:
        def forget(ref: weakref.ref[object]) -> None:
            entry = self._entries.get(key)
            if entry is not None and entry[0] is ref:
                self._entries.pop(key, None)

        return forget


_facts = _FactsPerUser()


# --- primitives -------------------------------------------------------------------------------------


def member_of(user: AnyUser) -> Member | None:
    """The signed-in user's Member, or None (anonymous, or an account without a profile)."""
    if not user.is_authenticated:
        return None
    facts = _facts(user)
    if not facts.member_loaded:
        facts.member = Member.objects.filter(user_id=user.pk).first()
        facts.member_loaded = True
    return facts.member


def is_admin(user: AnyUser) -> bool:
    """Superusers and active members of the management subteam administer the portal."""
    if not user.is_authenticated or not user.is_active:
        return False
    if getattr(user, "is_superuser", False):
        return True
    facts = _facts(user)
    if facts.admin is None:
        facts.admin = Membership.objects.filter(
            member__user_id=user.pk, subteam__is_management=True, ended__isnull=True
        ).exists()
    return facts.admin


def admin_members() -> QuerySet[Member]:
    """The members `is_admin` holds for, in one query: active superusers and the management's members."""
    return (
        Member.objects.filter(user__is_active=True)
        .filter(
            Q(user__is_superuser=True)
            | Q(memberships__subteam__is_management=True, memberships__ended__isnull=True)
        )
        .distinct()
    )


def _active_roles(user: AnyUser) -> dict[int, str]:
    """subteam id -> role for the user's current memberships."""
    if not user.is_authenticated:
        return {}
    facts = _facts(user)
    if facts.roles is None:
        facts.roles = dict(
            Membership.objects.filter(member__user_id=user.pk, ended__isnull=True).values_list(
                "subteam_id", "role"
            )
        )
    return facts.roles


def is_lead(user: AnyUser, subteam_id: int | None) -> bool:
    return subteam_id is not None and _active_roles(user).get(subteam_id) == Membership.Role.LEAD


def is_in_subteam(user: AnyUser, subteam_id: int | None) -> bool:
    return subteam_id is not None and subteam_id in _active_roles(user)


def subteams_of(user: AnyUser) -> set[int]:
    """The ids of the subteams the user is in now."""
    return set(_active_roles(user))


def led_subteam_ids(user: AnyUser) -> set[int]:
    return {sid for sid, role in _active_roles(user).items() if role == Membership.Role.LEAD}


def is_self(user: AnyUser, member_id: int | None) -> bool:
    """Whether the member `member_id` is the user themself."""
    me = member_of(user)
    return me is not None and member_id is not None and me.pk == member_id


def may_act_in(user: AnyUser, subteam_id: int | None) -> bool:
    """Admins act in any subteam, members in their own (tasks, jobs, bookings, results)."""
    return is_admin(user) or is_in_subteam(user, subteam_id)


def may_lead(user: AnyUser, subteam_id: int | None) -> bool:
    """Admins lead every subteam; leads their own."""
    return is_admin(user) or is_lead(user, subteam_id)


def may_act_in_any(user: AnyUser) -> bool:
    """Whether there is some subteam the user may act in (whether to offer a form at all)."""
    return is_admin(user) or bool(subteams_of(user))


def may_lead_any(user: AnyUser) -> bool:
    """Whether there is some subteam the user leads (admins: all)."""
    return is_admin(user) or bool(led_subteam_ids(user))


def subteams_for(user: AnyUser, *, leading: bool = False) -> QuerySet[Subteam]:
    """The subteams a form may offer the user: all for admins, else those they are in (or lead)."""
    subteams = Subteam.objects.all()
    if is_admin(user):
        return subteams
    return subteams.filter(pk__in=led_subteam_ids(user) if leading else subteams_of(user))


def only_subteam_id(user: AnyUser, *, leading: bool = False) -> int | None:
    """The one subteam the user is in now, when there is exactly one (and, with `leading`, they lead it):
    what a new task, goal or job form starts with. None for everyone else."""
    ids = subteams_of(user)
    if len(ids) != 1:
        return None
    (only,) = ids
    if leading and not may_lead(user, only):
        return None
    return only


def require(allowed: bool) -> None:
    """Raise PermissionDenied unless allowed (for checks on data a form has just validated)."""
    if not allowed:
        raise PermissionDenied


def refuse_unoffered_subteam(
    form: BaseForm, data: Mapping[str, Any], *, blank_is_a_choice: bool = False
) -> None:
    """A form's subteam field offers only the subteams the user may use (`subteams_for`): another one
    posted is a refusal (403), not a typo. With `blank_is_a_choice`, an empty value ("the whole
    project") is such a choice too."""
    posted = data.get("subteam")
    chosen = posted is not None if blank_is_a_choice else bool(posted)
    if chosen and "subteam" in form.errors:
        raise PermissionDenied


def require_member(user: AnyUser) -> Member:
    """The user's Member; refused (403) for an account without a profile, which cannot own anything."""
    me = member_of(user)
    if me is None:
        raise PermissionDenied
    return me


# --- the portal's rules -----------------------------------------------------------------------------


def can_manage_subteam(user: AnyUser, subteam_id: int | None) -> bool:
    """Leads manage their subteam (goals, milestones, memberships, deleting tasks); admins any."""
    return may_lead(user, subteam_id)


def can_create_task(user: AnyUser, subteam_id: int | None) -> bool:
    return may_act_in(user, subteam_id)


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
    return is_admin(user) or is_self(user, member.pk)


def can_see_onboarding(user: AnyUser, member: Member) -> bool:
    """The onboarding checklist is for the management team and the member themself."""
    return can_edit_member(user, member)


# --- fetch-or-refuse helpers for web views ----------------------------------------------------------


def get_subteam_to_manage(user: AnyUser, slug: str) -> Subteam:
    subteam = get_object_or_404(Subteam, slug=slug)
    require(can_manage_subteam(user, subteam.pk))
    return subteam


def get_subteam_to_add_task(user: AnyUser, subteam: Subteam) -> Subteam:
    require(can_create_task(user, subteam.pk))
    return subteam


def get_task_to_edit(user: AnyUser, pk: int) -> Task:
    task = get_object_or_404(Task.objects.select_related("subteam"), pk=pk)
    require(can_edit_task(user, task))
    return task


def get_task_to_delete(user: AnyUser, pk: int) -> Task:
    task = get_object_or_404(Task.objects.select_related("subteam"), pk=pk)
    require(can_delete_task(user, task))
    return task


def get_goal_to_manage(user: AnyUser, pk: int) -> Goal:
    goal = get_object_or_404(Goal.objects.select_related("subteam"), pk=pk)
    require(can_manage_goal(user, goal.subteam_id))
    return goal


def get_milestone_to_manage(user: AnyUser, pk: int) -> Milestone:
    milestone = get_object_or_404(Milestone.objects.select_related("subteam"), pk=pk)
    require(can_manage_milestone(user, milestone.subteam_id))
    return milestone


def get_member_to_edit(user: AnyUser, username: str) -> Member:
    member = get_object_or_404(Member.objects.select_related("user"), user__username=username)
    require(can_edit_member(user, member))
    return member


def get_membership_to_manage(user: AnyUser, pk: int) -> Membership:
    membership = get_object_or_404(Membership.objects.select_related("subteam", "member"), pk=pk)
    require(can_manage_subteam(user, membership.subteam_id))
    return membership
