"""The Django admin, for the management team (see `portal.access.is_admin`).

Goals, tasks, milestones and memberships are changed here through `portal.services`, like
everywhere else: a goal's edit asks for the reason and leaves a GoalRevision; a membership is added,
given another role or ended (never deleted: its row is the member's history). Members' profiles and
subteams are configuration the admin saves itself.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group, User
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.utils.translation import gettext_lazy as _

from portal import access, services
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


class ReadOnlyAdmin(ManagementOnly):
    """A model the management team reads here and nobody changes here (services or the worker write it)."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyInline:
    """Rows shown to the management team and changed by nobody here (services or the worker write them)."""

    extra = 0
    can_delete = False
    show_change_link = False

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return access.is_admin(request.user)

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class MembershipInline(ReadOnlyInline, admin.TabularInline[Membership, Member]):
    """A member's memberships, read-only here: each opens on its own page (see MembershipAdmin)."""

    model = Membership
    fields = readonly_fields = ("subteam", "role", "started", "ended")
    show_change_link = True


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


class MembershipAdminForm(forms.ModelForm[Membership]):
    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if self.instance.pk is None and data.get("member") and data.get("subteam"):
            # "One active membership per subteam" names `ended`, which the add form leaves out, so
            # the form's own validation skips it: checked on the membership this would add.
            joining = Membership(member=data["member"], subteam=data["subteam"], started=data.get("started"))
            try:
                joining.validate_constraints()
            except ValidationError:
                names = {"member": data["member"], "subteam": data["subteam"]}
                raise forms.ValidationError(_("%(member)s is already in %(subteam)s.") % names) from None
        return data

    def clean_ended(self) -> Any:
        ended = self.cleaned_data.get("ended")
        if ended is not None and ended < self.instance.started:
            raise forms.ValidationError(_("A membership cannot end before it started."))
        return ended


@admin.register(Membership, site=admin_site)
class MembershipAdmin(ManagementOnly, admin.ModelAdmin[Membership]):
    """Added with a role and a start, then given another role or ended (`portal.services`)."""

    form = MembershipAdminForm
    list_display = ["member", "subteam", "role", "started", "ended"]
    list_filter = ["subteam", "role"]

    def get_fields(self, request: HttpRequest, obj: Membership | None = None) -> tuple[str, ...]:
        fields = ("member", "subteam", "role", "started")
        return fields if obj is None else (*fields, "ended")  # a new membership has not ended

    def get_readonly_fields(self, request: HttpRequest, obj: Membership | None = None) -> tuple[str, ...]:
        if obj is None:
            return ()
        return ("member", "subteam", "started", *(("role", "ended") if obj.ended is not None else ()))

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # ending a membership keeps the member's history; deleting would lose it

    def save_model(
        self, request: HttpRequest, obj: Membership, form: forms.ModelForm[Membership], change: bool
    ) -> None:
        actor = access.member_of(request.user)
        if not change:
            added = services.add_membership(
                actor, obj.member, obj.subteam, role=obj.role, started=obj.started
            )
            obj.pk, obj._state.adding = added.pk, False
            return
        stored = Membership.objects.get(pk=obj.pk)
        if "role" in form.changed_data:
            stored = services.set_membership_role(actor, stored, obj.role)
        if "ended" in form.changed_data and obj.ended is not None:
            services.end_membership(actor, stored, obj.ended)


class GoalRevisionInline(ReadOnlyInline, admin.TabularInline[GoalRevision, Goal]):
    """A goal's history: written only by `portal.services`, never here."""

    model = GoalRevision
    readonly_fields = ["author", "created_at", "changes", "reason", "source"]


class GoalAdminForm(forms.ModelForm[Goal]):
    """The goal's fields and, for a change, why (kept in its history, as on the goal's page)."""

    reason = forms.CharField(
        label=_("Why this change?"),
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Kept in the goal's history so the team can see why it changed."),
    )

    class Meta:
        model = Goal
        fields = [*Goal.TRACKED_FIELDS, "reason"]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk is None:
            self.fields["reason"].required = False
            self.fields["reason"].label = _("Why this goal? (optional)")


@admin.register(Goal, site=admin_site)
class GoalAdmin(ManagementOnly, admin.ModelAdmin[Goal]):
    """Created, changed and deleted through `portal.services`: every change leaves a revision."""

    form = GoalAdminForm
    fields = [*Goal.TRACKED_FIELDS, "reason"]
    list_display = ["title", "subteam", "status", "due_date"]
    list_filter = ["status", "subteam"]
    inlines = [GoalRevisionInline]

    def save_model(self, request: HttpRequest, obj: Goal, form: forms.ModelForm[Goal], change: bool) -> None:
        actor = access.member_of(request.user)
        data = {name: form.cleaned_data[name] for name in Goal.TRACKED_FIELDS}
        reason = form.cleaned_data["reason"]
        if change:
            services.update_goal(actor, obj, data, reason=reason)
            return
        created = services.create_goal(actor, reason=reason, **data)
        obj.pk, obj._state.adding = created.pk, False

    def delete_model(self, request: HttpRequest, obj: Goal) -> None:
        services.delete_goal(access.member_of(request.user), obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Goal]) -> None:
        for goal in queryset:
            self.delete_model(request, goal)


@admin.register(Task, site=admin_site)
class TaskAdmin(ManagementOnly, admin.ModelAdmin[Task]):
    """Created, changed and deleted through `portal.services`, assignees included."""

    fields = [*services.TASK_FIELDS, "assignees"]
    list_display = ["title", "subteam", "status", "priority", "due_date"]
    list_filter = ["status", "subteam", "priority"]
    search_fields = ["title"]
    filter_horizontal = ["assignees"]

    def save_model(self, request: HttpRequest, obj: Task, form: forms.ModelForm[Task], change: bool) -> None:
        actor = access.member_of(request.user)
        data = {name: form.cleaned_data[name] for name in services.TASK_FIELDS}
        assignees = form.cleaned_data["assignees"]
        if change:
            services.update_task(actor, obj, assignees=assignees, **data)
            return
        created = services.create_task(actor, assignees=assignees, **data)
        obj.pk, obj._state.adding = created.pk, False

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Nothing left to save: the service set the assignees (the only related rows)."""

    def delete_model(self, request: HttpRequest, obj: Task) -> None:
        services.delete_task(access.member_of(request.user), obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Task]) -> None:
        for task in queryset:
            self.delete_model(request, task)


MILESTONE_FIELDS = ("date", "title", "subteam", "done", "description")


@admin.register(Milestone, site=admin_site)
class MilestoneAdmin(ManagementOnly, admin.ModelAdmin[Milestone]):
    """Created, changed and deleted through `portal.services`."""

    fields = MILESTONE_FIELDS
    list_display = ["date", "title", "subteam", "done"]
    list_filter = ["done", "subteam"]

    def save_model(
        self, request: HttpRequest, obj: Milestone, form: forms.ModelForm[Milestone], change: bool
    ) -> None:
        actor = access.member_of(request.user)
        data = {name: form.cleaned_data[name] for name in MILESTONE_FIELDS}
        if change:
            services.update_milestone(actor, obj, **data)
            return
        created = services.create_milestone(actor, **data)
        obj.pk, obj._state.adding = created.pk, False

    def delete_model(self, request: HttpRequest, obj: Milestone) -> None:
        services.delete_milestone(access.member_of(request.user), obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Milestone]) -> None:
        for milestone in queryset:
            self.delete_model(request, milestone)


admin_site.register(User, UserAdmin)
admin_site.register(Group, GroupAdmin)
