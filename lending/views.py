"""The lending list: bookings with filters, the booking form with a live availability preview, a
booking's page (approve, reject, cancel), the calendar, and iCalendar feeds for calendar apps.

Every write is a `lending.services` call and every permission a `lending.access` predicate.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.db.models import Prefetch, QuerySet
from django.http import Http404, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_GET, require_POST

from lending import access, calendars, services
from lending.forms import BulkDecisionForm, DecisionForm, ReservationForm, WindowForm
from lending.models import Reservation, ReservationEvent
from portal.access import (
    member_of,
    refuse_unoffered_subteam,
    require,
    require_member,
    subteams_for,
)
from portal.http import HtmxHttpRequest
from portal.models import Subteam
from scheduler.models import Cluster

AWAITING = "awaiting"  # the list's filter: requested bookings an admin can still decide on
CALENDAR_DAYS = 14
PREVIEW_MAX_HOURS = 14 * 24


@dataclasses.dataclass(frozen=True)
class BookingRow:
    """A booking in the list, with its booked and used GPU-hours."""

    reservation: Reservation
    usage: services.Usage


@dataclasses.dataclass(frozen=True)
class PreviewCell:
    """An hour of the preview; `short` when the request would not fit in it."""

    slot: services.Slot
    short: bool


def rows() -> QuerySet[Reservation]:
    return Reservation.objects.select_related("subteam", "requester__user", "cluster", "approver")


def _errors_to_form(form: ReservationForm, error: ValidationError) -> None:
    if hasattr(error, "error_dict"):
        for name, problems in error.message_dict.items():
            form.add_error(name if name in form.fields else None, problems)
    else:
        form.add_error(None, error.messages)


# --- list -----------------------------------------------------------------------------------------------


def _filtered(request: HtmxHttpRequest) -> tuple[QuerySet[Reservation], dict[str, str]]:
    bookings = rows()
    chosen = {key: request.GET.get(key, "").strip() for key in ("cluster", "subteam", "state", "mine")}
    if chosen["cluster"].isdigit():
        bookings = bookings.filter(cluster_id=int(chosen["cluster"]))
    else:
        chosen["cluster"] = ""
    if chosen["subteam"]:
        bookings = bookings.filter(subteam__slug=chosen["subteam"])
    if chosen["state"] in Reservation.State.values:
        bookings = bookings.filter(state=chosen["state"])
    elif chosen["state"] == AWAITING:
        bookings = bookings.filter(pk__in=services.awaiting_approval().values("pk"))
    elif chosen["state"] == "open":
        bookings = bookings.filter(state__in=Reservation.OPEN_STATES)
    else:
        chosen["state"] = ""
    if chosen["mine"]:
        me = member_of(request.user)
        bookings = bookings.filter(requester=me) if me is not None else bookings.none()
    return bookings, chosen


@require_GET
def reservation_list(request: HtmxHttpRequest) -> HttpResponse:
    bookings, chosen = _filtered(request)
    listed = list(bookings.order_by("-start")[:200])
    per = services.usage(listed)
    can_decide = access.can_decide_reservation(request.user)
    context = {
        # The tick boxes and the decision form, where there is a request to decide on.
        "can_decide": can_decide and any(r.state == Reservation.State.REQUESTED for r in listed),
        # Read by the nav's badge too (`lending_nav`), so the page counts once.
        "awaiting_count": services.awaiting_approval().count() if can_decide else 0,
        "query": _list_query(chosen),
        "bookings": [BookingRow(r, per[r.pk]) for r in listed],
        "chosen": chosen,
        "clusters": Cluster.objects.all(),
        "subteams": Subteam.objects.all(),
        "states": Reservation.State.choices,
        "held_states": services.HELD_STATES,
        "by_subteam": services.usage_by_subteam(listed),
        "can_book": access.may_book_gpus(request.user),
    }
    return render(request, "lending/list.html", context)


def _list_query(chosen: dict[str, str]) -> str:
    return urlencode({key: value for key, value in chosen.items() if value})


def _ids(values: list[str]) -> list[int]:
    return [int(value) for value in values if value.isdigit()]


def _report_decisions(request: HtmxHttpRequest, decisions: list[Any], approve_them: bool) -> None:
    """One success message for what was decided, one error per booking that was not (and why)."""
    done = sum(1 for d in decisions if not d.problem)
    if done:
        text = (
            ngettext("Approved %(n)d booking.", "Approved %(n)d bookings.", done)
            if approve_them
            else ngettext("Rejected %(n)d booking.", "Rejected %(n)d bookings.", done)
        )
        messages.success(request, text % {"n": done})
    for d in decisions:
        if d.problem:
            messages.error(
                request,
                _("Not decided: %(what)s, '%(purpose)s' (%(subteam)s): %(problem)s")
                % {
                    "what": d.reservation.what,
                    "purpose": d.reservation.purpose,
                    "subteam": d.reservation.subteam.name,
                    "problem": d.problem,
                },
            )


@require_POST
def reservation_decide_many(request: HtmxHttpRequest) -> HttpResponse:
    """Approve or reject the bookings ticked in the list (admins), each through the service with all
    its checks; back to the list as it was filtered, with what came of each."""
    reservations = access.get_reservations_to_decide(request.user, _ids(request.POST.getlist("booking")))
    form = BulkDecisionForm(request.POST)
    kept = QueryDict(request.POST.get("query", ""))
    back = reverse("lending:list")
    query = _list_query({key: kept.get(key, "") for key in ("cluster", "subteam", "state", "mine")})
    if query:
        back += "?" + query
    if not form.is_valid() or not reservations:
        messages.error(request, _("Tick the bookings to decide on, then approve or reject them."))
        return redirect(back)
    approve_them = form.cleaned_data["action"] == "approve"
    try:
        decisions = services.decide_each(
            require_member(request.user),
            reservations,
            approve_them=approve_them,
            note=form.cleaned_data["note"],
        )
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
        return redirect(back)
    _report_decisions(request, decisions, approve_them)
    return redirect(back)


# --- the form and its preview ---------------------------------------------------------------------------


PREFILLED = ("cluster", "subteam", "gpus", "gpu_type", "nodes", "start", "end", "purpose")


def _initial(request: HtmxHttpRequest) -> dict[str, Any]:
    """The next full hour for four hours, 8 GPUs, the only cluster and subteam when there is one; what
    the query string says over that (the preview's "use this window" link keeps what was typed)."""
    start = timezone.localtime().replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    initial: dict[str, Any] = {"start": start, "end": start + dt.timedelta(hours=4), "gpus": 8}
    clusters = list(Cluster.objects.filter(is_active=True).values_list("pk", flat=True)[:2])
    if len(clusters) == 1:
        initial["cluster"] = clusters[0]
    subteams = list(subteams_for(request.user).values_list("pk", flat=True)[:2])
    if len(subteams) == 1:
        initial["subteam"] = subteams[0]
    initial.update({name: request.GET[name] for name in PREFILLED if request.GET.get(name)})
    return initial


def _book(request: HtmxHttpRequest, form: ReservationForm) -> Reservation | None:
    """Request the posted booking; None, with the problems on the form, when it is not made."""
    if not form.is_valid():
        refuse_unoffered_subteam(form, request.POST)
        return None
    require(access.can_book_gpus(request.user, form.cleaned_data["subteam"].pk))
    try:
        return services.request_reservation(require_member(request.user), **form.cleaned_data)
    except ValidationError as error:
        _errors_to_form(form, error)
        return None


def reservation_create(request: HtmxHttpRequest) -> HttpResponse:
    require(access.may_book_gpus(request.user))
    if request.method != "POST":
        form = ReservationForm(user=request.user, initial=_initial(request))
        # The preview of what the form shows, at once (the page works without htmx too).
        shown = ReservationForm({name: form[name].value() for name in form.fields}, user=request.user)
        shown.is_valid()
        return render(request, "lending/form.html", {"form": form, **_preview_context(shown)})
    form = ReservationForm(request.POST, user=request.user)
    reservation = _book(request, form)
    if reservation is None:
        return render(request, "lending/form.html", {"form": form, **_preview_context(form)})
    if reservation.state == Reservation.State.APPROVED:
        messages.success(request, _("Booked: approved within your subteam's quota."))
    else:
        messages.success(request, _("Requested: the management team will decide."))
    return redirect(reservation)


@dataclasses.dataclass(frozen=True)
class Tick:
    """An hour label under the preview's strip: at `left` percent of its width."""

    left: float
    at: dt.datetime
    with_date: bool


TICK_STEPS = (1, 2, 3, 6, 12, 24, 48, 72, 168)  # hours between labels: at most MAX_TICKS of them
MAX_TICKS = 8  # "18:00" fits about 8 times across the form's side panel


def _ticks(slots: list[services.Slot]) -> list[Tick]:
    """Labels for the strip: the first hour with its date, then every `step` local hours (each local
    midnight with its date), `step` chosen so that at most MAX_TICKS fit."""
    if not slots:
        return []
    count = len(slots)
    step = next((s for s in TICK_STEPS if count / s <= MAX_TICKS), TICK_STEPS[-1])
    ticks = [Tick(0.0, slots[0].start, True)]
    for i, slot in enumerate(slots[1:], start=1):
        local = timezone.localtime(slot.start)
        hours = local.toordinal() * 24 + local.hour  # steps of whole days fall on local midnights
        if hours % step or i < 0.75 * step or i > 0.9 * count:  # too close to the first label or the edge
            continue
        ticks.append(Tick(round(100 * i / count, 2), slot.start, local.hour == 0))
    return ticks


def _suggestion_url(form: ReservationForm, start: dt.datetime, end: dt.datetime) -> str:
    """The form again, with what was typed and the suggested window."""
    params = {name: str(form.data.get(name) or "") for name in PREFILLED}
    params |= {
        name: timezone.localtime(value).strftime("%Y-%m-%dT%H:%M")
        for name, value in (("start", start), ("end", end))
    }
    return reverse("lending:create") + "?" + urlencode({k: v for k, v in params.items() if v})


def _preview_context(form: ReservationForm) -> dict[str, Any]:
    """Free GPUs per hour over the chosen window and, in words, where the request does not fit; the
    window's own error when it ends before it starts; where it does not fit, the next window of the
    same length where it does (or that the cluster has fewer GPUs than asked in all)."""
    data = form.cleaned_data if form.is_bound and hasattr(form, "cleaned_data") else {}
    window_errors = (
        [str(e) for name in ("start", "end") for e in form.errors.get(name, [])] if form.is_bound else []
    )
    if form.is_bound and form.data.get("start") and form.data.get("end") and window_errors:
        return {"slots": [], "conflicts": [], "window_errors": window_errors}
    cluster, start, asked_end = data.get("cluster"), data.get("start"), data.get("end")
    if cluster is None or start is None or asked_end is None or asked_end <= start:
        return {"slots": [], "conflicts": []}
    end = min(asked_end, start + dt.timedelta(hours=PREVIEW_MAX_HOURS))
    slots = services.availability(cluster, start, end)
    cap = services.capacity(cluster)
    nodes = data.get("nodes") or []
    if nodes:
        need = sum(cap.nodes.get(name, 0) for name in nodes)
    else:
        gpus = data.get("gpus") or 0
        need = cap.held_gpus(gpus)
    # The same rule as the service: bookings must fit the partition; drained nodes only warn
    # (they may be back by then, and the inventory knows only their state now).
    room = [dataclasses.replace(slot, free_gpus=slot.total_gpus - slot.booked_gpus) for slot in slots]
    context: dict[str, Any] = {
        "slots": slots,
        "cells": [PreviewCell(slot, fit.free_gpus < need) for slot, fit in zip(slots, room, strict=True)],
        "ticks": _ticks(slots),
        "conflicts": [],
        "drained_short": bool(need) and any(slot.free_gpus < need for slot in slots),
        "need": need,
        "unavailable": cap.unavailable,
    }
    if need > cap.total_gpus:
        context["too_many"] = _("The cluster has only %(total)d GPUs in partition %(partition)s.") % {
            "total": cap.total_gpus,
            "partition": cluster.default_partition,
        }
        return context
    context["conflicts"] = services.describe_conflicts(room, need) if need else []
    if context["conflicts"]:
        found = services.next_free_window(cluster, start, asked_end, need, nodes=nodes)
        if found is not None:
            context["suggestion"] = {
                "start": found[0],
                "end": found[1],
                "url": _suggestion_url(form, *found),
            }
        else:
            context["no_suggestion_days"] = services.SEARCH_DAYS
    return context


@require_GET
def reservation_preview(request: HtmxHttpRequest) -> HttpResponse:
    form = ReservationForm(request.GET, user=request.user)
    form.is_valid()  # partial data is fine: the preview shows what it can
    return render(request, "lending/_preview.html", {**_preview_context(form), "oob": True})


# --- one booking ----------------------------------------------------------------------------------------


def _booking(pk: int) -> Reservation:
    return get_object_or_404(
        rows().prefetch_related(
            Prefetch("events", queryset=ReservationEvent.objects.select_related("actor__user"))
        ),
        pk=pk,
    )


@require_GET
def reservation_detail(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    reservation = _booking(pk)
    context = {
        "r": reservation,
        "usage": services.usage([reservation])[reservation.pk],
        "can_decide": access.can_decide_reservation(request.user)
        and reservation.state == Reservation.State.REQUESTED,
        "can_cancel": reservation.is_open
        and access.can_change_reservation(request.user, reservation.requester_id, reservation.subteam_id),
        "decision_form": DecisionForm(),
        "window_form": WindowForm(
            initial={
                "start": timezone.localtime(reservation.start),
                "end": timezone.localtime(reservation.end),
            }
        ),
        "accounts": services.accounts_for(reservation.subteam_id, reservation.cluster),
    }
    return render(request, "lending/detail.html", context)


def _decide(request: HtmxHttpRequest, pk: int, action: str) -> HttpResponse:
    require(access.can_decide_reservation(request.user))
    reservation = get_object_or_404(rows(), pk=pk)
    form = DecisionForm(request.POST)
    note = form.cleaned_data["note"] if form.is_valid() else ""
    try:
        if action == "approve":
            services.approve(require_member(request.user), reservation, note)
            messages.success(request, _("Approved: the reservation is being made on the cluster."))
        else:
            services.reject(require_member(request.user), reservation, note)
            messages.success(request, _("Rejected."))
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
    return redirect(reservation)


@require_POST
def reservation_approve(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _decide(request, pk, "approve")


@require_POST
def reservation_reject(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    return _decide(request, pk, "reject")


@require_POST
def reservation_cancel(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    reservation = access.get_reservation_to_change(request.user, pk)
    try:
        services.cancel(require_member(request.user), reservation)
        messages.success(request, _("Cancelled."))
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
    return redirect(reservation)


@require_POST
def reservation_move(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """A new window for an open booking (requester, subteam lead, admin); same rules as a new one."""
    reservation = access.get_reservation_to_change(request.user, pk)
    form = WindowForm(request.POST)
    if not form.is_valid():
        for problems in form.errors.values():
            for message in problems:
                messages.error(request, str(message))
        return redirect(reservation)
    try:
        services.change_window(
            require_member(request.user),
            reservation,
            start=form.cleaned_data["start"],
            end=form.cleaned_data["end"],
        )
        messages.success(request, _("The booking's window changed."))
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
    return redirect(reservation)


# --- calendar -------------------------------------------------------------------------------------------


def _first_day(request: HtmxHttpRequest) -> dt.date:
    """`?start=` (an ISO date), else this week's Monday."""
    try:
        return dt.date.fromisoformat(request.GET.get("start", ""))
    except ValueError:
        today = timezone.localdate()
        return today - dt.timedelta(days=today.weekday())


@require_GET
def calendar(request: HtmxHttpRequest) -> HttpResponse:
    clusters = list(Cluster.objects.all())
    chosen = request.GET.get("cluster", "")
    cluster = next((c for c in clusters if str(c.pk) == chosen), clusters[0] if clusters else None)
    first_day = _first_day(request)
    start = timezone.make_aware(dt.datetime.combine(first_day, dt.time()))
    end = start + dt.timedelta(days=CALENDAR_DAYS)
    context: dict[str, Any] = {
        "clusters": clusters,
        "cluster": cluster,
        "days": [first_day + dt.timedelta(days=i) for i in range(CALENDAR_DAYS)],
        "previous": (first_day - dt.timedelta(days=7)).isoformat(),
        "next": (first_day + dt.timedelta(days=7)).isoformat(),
        "today_left": None,
    }
    if cluster is not None:
        context.update(calendars.grid(cluster, rows(), start, end))
    return render(request, "lending/calendar.html", context)


# --- iCalendar feeds -------------------------------------------------------------------------------------


@require_POST
def feed_reset(request: HtmxHttpRequest, kind: str, key: str) -> HttpResponse:
    """A new link for a calendar feed (the old one stops working at once), shown once on the page the
    form was on: the member's own page or the lending list."""
    owner = access.get_feed_owner_to_reset(request.user, kind, key)
    token = services.reset_calendar_feed(member_of(request.user), owner)
    url = request.build_absolute_uri(reverse("lending-ics", args=[kind, key, token]))
    request.session[calendars.NEW_FEED_SESSION_KEY] = {"kind": kind, "key": key, "url": url}
    back = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(back, {request.get_host()}, require_https=request.is_secure()):
        back = reverse("lending:list")
    return redirect(f"{back}#feeds")


def ics_feed(request: HtmxHttpRequest, kind: str, key: str, token: str) -> HttpResponse:
    """A subteam's or a member's bookings as an .ics feed; the URL's token (its feed's current one) is
    the only key: a reset one, or any other, is a 404."""
    owner = calendars.feed_owner(kind, key, token)
    if owner is None:
        raise Http404
    bookings = rows().filter(state__in=calendars.SHOWN_STATES)
    if isinstance(owner, Subteam):
        bookings = bookings.filter(subteam=owner)
        title = _("GPU bookings: %(name)s") % {"name": owner.name}
    else:
        bookings = bookings.filter(requester=owner)
        title = _("GPU bookings: %(name)s") % {"name": owner.display_name}
    body = calendars.ics(bookings.order_by("start")[:1000], title, request.build_absolute_uri)
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = f'inline; filename="gpus-{kind}-{key}.ics"'
    return response
