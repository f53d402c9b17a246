"""The Django admin, for the management team (see `portal.access.is_admin`)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _

from portal import access
from portal.models import Goal, GoalRevision, Member, Membership, Milestone, Subteam, Task


class PortalAdminSite(admin.AdminSite):
    site_header = _("Tanuki Portal administration")
    site_title = _("Tanuki Portal")
    index_title = _("Management")

    def has_permission(self, request: HttpRequest) -> bool:
        return access.is_admin(request.user)

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """Everyone signs in on the portal's own page; the admin has no second login form."""
        if request.user.is_authenticated:
            raise PermissionDenied  # signed in, but not in the management team
        return redirect_to_login(request.GET.get("next", "/admin/"))


admin_site = PortalAdminSite(name="admin")


class ManagementOnly:
    """Members of the management team may do everything here; nobody else gets in."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return access.is_admin(request.user)

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return access.is_admin(request.user)

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return access.is_admin(request.user)

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return access.is_admin(request.user)

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return access.is_admin(request.user)


class MembershipInline(admin.TabularInline[Membership, Member]):
    model = Membership
    extra = 0
    autocomplete_fields = ["subteam"]


@admin.register(Member, site=admin_site)
class MemberAdmin(ManagementOnly, admin.ModelAdmin[Member]):
    list_display = ["display_name", "user", "cluster_account", "slack_user_id", "onboarding"]
    list_filter = ["has_cluster_account", "has_github", "has_huggingface", "has_wandb", "has_slack"]
    search_fields = ["display_name", "user__username", "github", "cluster_account"]
    inlines = [MembershipInline]

    @admin.display(description=_("onboarding"))
    def onboarding(self, member: Member) -> str:
        return f"{member.onboarding_done}/{len(Member.ONBOARDING_FIELDS)}"


@admin.register(Subteam, site=admin_site)
class SubteamAdmin(ManagementOnly, admin.ModelAdmin[Subteam]):
    list_display = ["name", "slug", "slack_channel", "is_management"]
    prepopulated_fields = {"slug": ["name"]}
    search_fields = ["name", "slug"]


@admin.register(Membership, site=admin_site)
class MembershipAdmin(ManagementOnly, admin.ModelAdmin[Membership]):
    list_display = ["member", "subteam", "role", "started", "ended"]
    list_filter = ["subteam", "role"]


class GoalRevisionInline(admin.TabularInline[GoalRevision, Goal]):
    model = GoalRevision
    extra = 0
    readonly_fields = ["author", "created_at", "changes", "reason", "source"]
    can_delete = False


@admin.register(Goal, site=admin_site)
class GoalAdmin(ManagementOnly, admin.ModelAdmin[Goal]):
    list_display = ["title", "subteam", "status", "due_date"]
    list_filter = ["status", "subteam"]
    inlines = [GoalRevisionInline]


@admin.register(Task, site=admin_site)
class TaskAdmin(ManagementOnly, admin.ModelAdmin[Task]):
    list_display = ["title", "subteam", "status", "priority", "due_date"]
    list_filter = ["status", "subteam", "priority"]
    search_fields = ["title"]
    filter_horizontal = ["assignees"]


@admin.register(Milestone, site=admin_site)
class MilestoneAdmin(ManagementOnly, admin.ModelAdmin[Milestone]):
    list_display = ["date", "title", "subteam", "done"]
    list_filter = ["done", "subteam"]


admin_site.register(User, UserAdmin)
admin_site.register(Group, GroupAdmin)
