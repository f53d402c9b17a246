from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.db.models import Prefetch, QuerySet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_POST
from django_htmx.http import reswap, retarget

from portal import access, services
from portal.forms import MoveTaskForm, QuickTaskForm, TaskForm
from portal.http import HtmxHttpRequest
from portal.models import Member, Subteam, Task


@dataclass(frozen=True)
class TaskCard:
    """A task on the board, and whether the viewer may move and edit it there."""

    task: Task
    editable: bool


def board_tasks(subteam: Subteam | None = None, assignee: Member | None = None) -> QuerySet[Task]:
    tasks = Task.objects.select_related("subteam", "goal").prefetch_related(
        Prefetch("assignees", queryset=Member.objects.order_by("display_name"))
    )
    if subteam is not None:
        tasks = tasks.filter(subteam=subteam)
    if assignee is not None:
        tasks = tasks.filter(assignees=assignee)
    return tasks


def board_context(request: HtmxHttpRequest, subteam: Subteam | None = None) -> dict[str, Any]:
    """The board's columns for a subteam (or everyone), honouring ?assignee=me."""
    assignee = None
    if request.GET.get("assignee") == "me":
        assignee = access.member_of(request.user)
    tasks = list(board_tasks(subteam, assignee))
    user = request.user
    columns = []
    for status, label in Task.Status.choices:
        cards = [TaskCard(t, access.can_edit_task(user, t)) for t in tasks if t.status == status]
        columns.append({"status": status, "label": label, "tasks": cards})
    can_add = access.may_act_in_any(user) if subteam is None else access.can_create_task(user, subteam.pk)
    quick_form = None
    if can_add:
        quick_form = QuickTaskForm(user=user, initial={"subteam": subteam, "status": Task.Status.TODO})
    return {
        "columns": columns,
        "board_subteam": subteam,
        "quick_form": quick_form,
        "statuses": Task.Status.choices,
        "board_query": request.GET.urlencode(),
        "mine": assignee is not None,
    }


def _board_url(request: HtmxHttpRequest, subteam: Subteam | None) -> str:
    nxt = request.POST.get("next") or request.GET.get("next")
    if nxt and nxt.startswith("/") and not nxt.startswith("//"):
        return nxt
    if subteam is not None:
        return f"/tasks/?subteam={subteam.slug}"
    return "/tasks/"


def _board_response(request: HtmxHttpRequest, subteam: Subteam | None) -> HttpResponse:
    """After a change: the fresh board for htmx, a redirect for plain forms."""
    if request.htmx:
        response = render(request, "portal/tasks/board.html#board", board_context(request, subteam))
        return reswap(retarget(response, "#board"), "outerHTML")
    return redirect(_board_url(request, subteam))


def _board_scope(request: HtmxHttpRequest) -> Subteam | None:
    """Which board the request came from (?subteam=slug on the board, or the hidden field)."""
    slug = request.GET.get("subteam") or request.POST.get("board")
    return get_object_or_404(Subteam, slug=slug) if slug else None


def board(request: HtmxHttpRequest) -> HttpResponse:
    subteam = _board_scope(request)
    context = board_context(request, subteam)
    context["subteams"] = Subteam.objects.all()
    template = "portal/tasks/board.html#board" if request.htmx else "portal/tasks/board.html"
    return render(request, template, context)


def task_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    task = get_object_or_404(
        Task.objects.select_related("subteam", "goal", "created_by").prefetch_related("assignees"), pk=pk
    )
    context = {
        "task": task,
        "can_edit": access.can_edit_task(request.user, task),
        "can_delete": access.can_delete_task(request.user, task),
        "statuses": Task.Status.choices,
    }
    return render(request, "portal/tasks/detail.html", context)


def _create(request: HtmxHttpRequest, form: TaskForm | QuickTaskForm) -> Task | None:
    """Create the posted task; None when the form has problems (shown on it)."""
    if not form.is_valid():
        access.refuse_unoffered_subteam(form, request.POST)
        return None
    data = dict(form.cleaned_data)
    access.require(access.can_create_task(request.user, data["subteam"].pk))
    me = access.member_of(request.user)
    # The quick form has no assignee field: a task added there is the creator's until handed on.
    assignees = data.pop("assignees", [me] if me is not None else [])
    return services.create_task(me, assignees=assignees, **data)


def _blank_task_form(request: HtmxHttpRequest, scope: Subteam | None) -> HttpResponse:
    if scope is not None:
        access.require(access.can_create_task(request.user, scope.pk))
    else:
        access.require(access.may_act_in_any(request.user))
    initial = {"subteam": scope, "status": request.GET.get("status", Task.Status.TODO)}
    form = TaskForm(user=request.user, initial=initial)
    return render(request, "portal/tasks/form.html", {"form": form, "task": None})


def _board_with_quick_form(
    request: HtmxHttpRequest, scope: Subteam | None, form: QuickTaskForm
) -> HttpResponse:
    """The board again, its quick form showing what was wrong."""
    context = board_context(request, scope)
    context["quick_form"] = form
    response = render(request, "portal/tasks/board.html#board", context)
    return reswap(retarget(response, "#board"), "outerHTML")


def task_create(request: HtmxHttpRequest) -> HttpResponse:
    """Full form on GET (and on a plain POST with errors); the board's quick form posts here too."""
    scope = _board_scope(request)
    if request.method != "POST":
        return _blank_task_form(request, scope)
    if request.POST.get("quick") == "1":
        quick = QuickTaskForm(request.POST, user=request.user)
        if _create(request, quick) is not None:
            return _board_response(request, scope)
        if request.htmx:
            return _board_with_quick_form(request, scope, quick)
        return render(request, "portal/tasks/form.html", {"form": quick, "task": None})
    form = TaskForm(request.POST, user=request.user)
    task = _create(request, form)
    if task is None:
        return render(request, "portal/tasks/form.html", {"form": form, "task": None})
    messages.success(request, _("Task created."))
    return redirect(task)


def task_edit(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    task = access.get_task_to_edit(request.user, pk)
    inline = bool(request.htmx) and request.GET.get("inline", request.POST.get("inline")) == "1"
    if request.method == "POST":
        form = TaskForm(request.POST, instance=Task.objects.get(pk=task.pk), user=request.user)
        if form.is_valid():
            data = dict(form.cleaned_data)
            access.require(access.can_move_task(request.user, task, data["subteam"].pk))
            assignees = data.pop("assignees", [])
            services.update_task(access.member_of(request.user), task, assignees=assignees, **data)
            if inline:
                return _board_response(request, _board_scope(request))
            messages.success(request, _("Task saved."))
            return redirect(task)
        access.refuse_unoffered_subteam(form, request.POST)
    else:
        form = TaskForm(instance=task, user=request.user)
    if inline:
        board = request.GET.get("board") or request.POST.get("board") or ""
        return render(request, "portal/tasks/_edit_card.html", {"form": form, "task": task, "board": board})
    return render(request, "portal/tasks/form.html", {"form": form, "task": task})


@require_POST
def task_move(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    task = access.get_task_to_edit(request.user, pk)
    form = MoveTaskForm(request.POST)
    if not form.is_valid():
        return HttpResponse(_("Unknown status."), status=400)
    services.move_task(access.member_of(request.user), task, form.cleaned_data["status"])
    if request.POST.get("from") == "detail" and not request.htmx:
        return redirect(task)
    return _board_response(request, _board_scope(request))


@require_POST
def task_delete(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    task = access.get_task_to_delete(request.user, pk)
    subteam = task.subteam
    services.delete_task(access.member_of(request.user), task)
    messages.success(request, _("Task deleted."))
    if request.htmx:
        return _board_response(request, _board_scope(request))
    return redirect(f"/tasks/?subteam={subteam.slug}")
