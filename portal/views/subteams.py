from __future__ import annotations

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from portal import access, services
from portal.forms import MembershipForm
from portal.health import BLOCKED_TASKS_FLAG
from portal.http import HtmxHttpRequest
from portal.models import Goal, Membership, Milestone, Subteam
from portal.views.overview import subteam_summaries
from portal.views.tasks import board_context


def subteam_list(request: HtmxHttpRequest) -> HttpResponse:
    subteams = list(Subteam.objects.all())
    context = {"summaries": subteam_summaries(subteams), "blocked_flag": BLOCKED_TASKS_FLAG}
    return render(request, "portal/subteams/list.html", context)


def subteam_detail(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    subteam = get_object_or_404(Subteam, slug=slug)
    memberships = list(Membership.objects.filter(subteam=subteam).select_related("member__user"))
    can_manage = access.can_manage_subteam(request.user, subteam.pk)
    context = {
        "subteam": subteam,
        "goals": Goal.objects.filter(subteam=subteam)
        .exclude(status=Goal.Status.DROPPED)
        .select_related("subteam"),
        "dropped_goals": Goal.objects.filter(subteam=subteam, status=Goal.Status.DROPPED),
        "current": [m for m in memberships if m.is_active],
        "past": [m for m in memberships if not m.is_active],
        "milestones": Milestone.objects.filter(subteam=subteam).select_related("subteam"),
        "can_manage": can_manage,
        "membership_form": MembershipForm() if can_manage else None,
        "roles": Membership.Role.choices,
        **board_context(request, subteam),
    }
    return render(request, "portal/subteams/detail.html", context)


@require_POST
def membership_add(request: HtmxHttpRequest, slug: str) -> HttpResponse:
    subteam = access.get_subteam_to_manage(request.user, slug)
    form = MembershipForm(request.POST)
    if form.is_valid():
        try:
            services.add_membership(
                access.member_of(request.user),
                form.cleaned_data["member"],
                subteam,
                role=form.cleaned_data["role"],
                started=form.cleaned_data["started"],
            )
            messages.success(
                request,
                _("%(member)s joined %(subteam)s.")
                % {"member": form.cleaned_data["member"], "subteam": subteam},
            )
        except services.ServiceError as error:
            messages.error(request, str(error))
    else:
        messages.error(request, _("Choose a member and a role."))
    return redirect(subteam)


@require_POST
def membership_end(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    membership = access.get_membership_to_manage(request.user, pk)
    try:
        services.end_membership(access.member_of(request.user), membership)
        messages.success(
            request,
            _("%(member)s left %(subteam)s; the history is kept.")
            % {"member": membership.member, "subteam": membership.subteam},
        )
    except services.ServiceError as error:
        messages.error(request, str(error))
    return redirect(membership.subteam)


@require_POST
def membership_role(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    membership = access.get_membership_to_manage(request.user, pk)
    try:
        services.set_membership_role(access.member_of(request.user), membership, request.POST.get("role", ""))
    except services.ServiceError as error:
        messages.error(request, str(error))
    return redirect(membership.subteam)
