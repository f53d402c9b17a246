"""DRF permission classes for the API. Every rule is a `portal.access` predicate; none is repeated here.

Object permissions cover update and delete of an existing object (checked before the payload is
validated). Creating an object, and moving one to another subteam, depend on the subteam in the
payload: the views check those with `require()` after validation.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Model
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.permissions import SAFE_METHODS, BasePermission
from rest_framework.request import Request
from rest_framework.views import APIView

from portal import access
from portal.models import Goal, Milestone, Task

DENIED = _("You do not have permission to change this in that subteam.")


def require(allowed: bool) -> None:
    """Refuse with 403 unless allowed (for checks on the subteam in a validated payload)."""
    if not allowed:
        raise exceptions.PermissionDenied(DENIED)


class _ObjectWritePermission(BasePermission):
    """Anyone the view lets in may read; writing to one object asks `can_write` / `can_delete`."""

    message = DENIED

    def has_object_permission(self, request: Request, view: APIView, obj: Any) -> bool:
        if request.method in SAFE_METHODS:
            return True
        if request.method == "DELETE":
            return self.can_delete(request, obj)
        return self.can_write(request, obj)

    def can_write(self, request: Request, obj: Any) -> bool:
        raise NotImplementedError

    def can_delete(self, request: Request, obj: Any) -> bool:
        return self.can_write(request, obj)


class TaskPermission(_ObjectWritePermission):
    """Members of a task's subteam edit it; its leads (and admins) delete it."""

    def can_write(self, request: Request, obj: Model) -> bool:
        assert isinstance(obj, Task)
        return access.can_edit_task(request.user, obj)

    def can_delete(self, request: Request, obj: Model) -> bool:
        assert isinstance(obj, Task)
        return access.can_delete_task(request.user, obj)


class GoalPermission(_ObjectWritePermission):
    """A subteam's leads manage its goals; admins manage project-wide ones."""

    def can_write(self, request: Request, obj: Model) -> bool:
        assert isinstance(obj, Goal)
        return access.can_manage_goal(request.user, obj.subteam_id)


class MilestonePermission(_ObjectWritePermission):
    """As for goals."""

    def can_write(self, request: Request, obj: Model) -> bool:
        assert isinstance(obj, Milestone)
        return access.can_manage_milestone(request.user, obj.subteam_id)
