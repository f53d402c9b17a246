from __future__ import annotations

from django.contrib import messages
from django.db.models import Count, Prefetch
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST

from portal import access, services
from portal.forms import GoalForm
from portal.http import HtmxHttpRequest
from portal.models import Goal, GoalRevision, Subteam, Task


def goal_list(request: HtmxHttpRequest) -> HttpResponse:
    goals = Goal.objects.select_related("subteam").annotate(task_count=Count("tasks"))
    status = request.GET.get("status")
    if status in Goal.Status.values:
        goals = goals.filter(status=status)
    slug = request.GET.get("subteam")
    if slug:
        goals = goals.filter(subteam__slug=slug)
    project = [g for g in goals if g.subteam_id is None]
    by_subteam: dict[Subteam, list[Goal]] = {}
    for goal in goals:
        if goal.subteam is not None:
            by_subteam.setdefault(goal.subteam, []).append(goal)
    context = {
        "project_goals": project,
        "groups": sorted(by_subteam.items(), key=lambda item: item[0].name),
        "statuses": Goal.Status.choices,
        "status": status,
        "can_create": access.may_lead_any(request.user),
    }
    return render(request, "portal/goals/list.html", context)


def goal_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    goal = get_object_or_404(
        Goal.objects.select_related("subteam", "created_by").prefetch_related(
            Prefetch("revisions", queryset=GoalRevision.objects.select_related("author")),
            Prefetch("tasks", queryset=Task.objects.select_related("subteam").prefetch_related("assignees")),
        ),
        pk=pk,
    )
    context = {"goal": goal, "can_manage": access.can_manage_goal(request.user, goal.subteam_id)}
    return render(request, "portal/goals/detail.html", context)


def goal_create(request: HtmxHttpRequest) -> HttpResponse:
    access.require(access.may_lead_any(request.user))
    if request.method == "POST":
        form = GoalForm(request.POST, user=request.user, creating=True)
        if form.is_valid():
            data = dict(form.cleaned_data)
            reason = data.pop("reason", "")
            goal = services.create_goal(access.member_of(request.user), reason=reason, **data)
            messages.success(request, _("Goal created."))
            return redirect(goal)
        access.refuse_unoffered_subteam(form, request.POST, blank_is_a_choice=True)
    else:
        slug = request.GET.get("subteam")
        initial = {"subteam": Subteam.objects.filter(slug=slug).first()} if slug else {}
        form = GoalForm(user=request.user, creating=True, initial=initial)
    return render(request, "portal/goals/form.html", {"form": form, "goal": None})


def goal_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    goal = access.get_goal_to_manage(request.user, pk)
    if request.method == "POST":
        form = GoalForm(request.POST, instance=Goal.objects.get(pk=goal.pk), user=request.user)
        if form.is_valid():
            data = dict(form.cleaned_data)
            reason = data.pop("reason")
            revision = services.update_goal(access.member_of(request.user), goal, data, reason=reason)
            if revision is None:
                messages.info(request, _("Nothing changed."))
            else:
                messages.success(request, _("Goal updated; the change and its reason are in the history."))
            return redirect(goal)
        access.refuse_unoffered_subteam(form, request.POST)
    else:
        form = GoalForm(instance=goal, user=request.user)
    return render(request, "portal/goals/form.html", {"form": form, "goal": goal})


@require_POST
def goal_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    goal = access.get_goal_to_manage(request.user, pk)
    services.delete_goal(access.member_of(request.user), goal)
    messages.success(request, _("Goal deleted."))
    return redirect("goals")
