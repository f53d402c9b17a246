from __future__ import annotations

from typing import Any

from django.contrib import messages
from django.db.models import Prefetch, Q, QuerySet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _

from portal import access, services
from portal.forms import MemberForm
from portal.http import HtmxHttpRequest
from portal.models import Member, Membership, Subteam, Task


def _listed_members(request: HtmxHttpRequest, query: str, slug: str | None) -> QuerySet[Member]:
    """Members matching `?q=` and `?subteam=`; admins may ask for `?onboarding=incomplete`."""
    members = Member.objects.select_related("user").prefetch_related(
        Prefetch(
            "memberships",
            queryset=Membership.objects.filter(ended__isnull=True).select_related("subteam"),
            to_attr="current",
        )
    )
    if query:
        members = members.filter(
            Q(display_name__icontains=query) | Q(user__username__icontains=query) | Q(github__icontains=query)
        )
    if slug:
        members = members.filter(memberships__subteam__slug=slug, memberships__ended__isnull=True).distinct()
    if request.GET.get("onboarding") == "incomplete" and access.is_admin(request.user):
        members = members.filter(
            Q(has_cluster_account=False)
            | Q(has_github=False)
            | Q(has_huggingface=False)
            | Q(has_wandb=False)
            | Q(has_slack=False)
        )
    return members


def member_list(request: HtmxHttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()
    slug = request.GET.get("subteam")
    context = {
        "members": _listed_members(request, query, slug),
        "subteams": Subteam.objects.all(),
        "query": query,
        "subteam_slug": slug or "",
        "show_onboarding": access.is_admin(request.user),
    }
    template = "portal/members/list.html#rows" if request.htmx else "portal/members/list.html"
    return render(request, template, context)


ACCESS_EVENTS_SHOWN = 10


def _access_events(member: Member) -> list[Any]:
    """The latest entries of the member's cluster access audit trail (newest first)."""
    return list(member.cluster_access_events.select_related("cluster", "actor")[:ACCESS_EVENTS_SHOWN])


def member_detail(request: HtmxHttpRequest, username: str) -> HttpResponse:
    member = get_object_or_404(
        Member.objects.select_related("user").prefetch_related(
            Prefetch(
                "memberships", queryset=Membership.objects.select_related("subteam").order_by("-started")
            ),
            Prefetch(
                "tasks",
                queryset=Task.objects.exclude(status=Task.Status.DONE).select_related("subteam"),
                to_attr="open_tasks",
            ),
            # The scheduler's rows about this member, by relation name (portal does not import it).
            "cluster_accounts__cluster",
            "slurm_associations__cluster",
        ),
        user__username=username,
    )
    show_onboarding = access.can_see_onboarding(request.user, member)
    context = {
        "member": member,
        "can_edit": access.can_edit_member(request.user, member),
        "show_onboarding": show_onboarding,
        "access_events": _access_events(member) if show_onboarding else [],
    }
    return render(request, "portal/members/detail.html", context)


def member_edit(request: HtmxHttpRequest, username: str) -> HttpResponse:
    member = access.get_member_to_edit(request.user, username)
    if request.method == "POST":
        form = MemberForm(request.POST, instance=Member.objects.get(pk=member.pk), user=request.user)
        if form.is_valid():
            services.update_member(access.member_of(request.user), member, **form.cleaned_data)
            messages.success(request, _("Profile saved."))
            return redirect(member)
    else:
        form = MemberForm(instance=member, user=request.user)
    return render(request, "portal/members/form.html", {"form": form, "member": member})
