"""The lending list: bookings with filters, the booking form with a live availability preview, a
booking's page (approve, reject, cancel), the calendar, and iCalendar feeds for calendar apps.

Every write is a `lending.services` call and every permission a `portal.access` predicate.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from typing import Any

from django.contrib import messages
from django.core import signing
from django.core.exceptions import ValidationError
from django.db.models import Prefetch, QuerySet
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_POST

from lending import services
from lending.forms import DecisionForm, ReservationForm, WindowForm
from lending.models import Reservation, ReservationEvent
from portal import access
from portal.http import HtmxHttpRequest
from portal.models import Member, Subteam
from scheduler.models import Cluster

CALENDAR_DAYS = 14
PREVIEW_MAX_HOURS = 14 * 24


def rows() -> QuerySet[Reservation]:
    return Reservation.objects.select_related("subteam", "requester__user", "cluster", "approver")


def _member(request: HtmxHttpRequest) -> Member:
    me = access.member_of(request.user)
    access.require(me is not None)  # bookings belong to a member
    assert me is not None
    return me


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
    elif chosen["state"] == "open":
        bookings = bookings.filter(state__in=Reservation.OPEN_STATES)
    else:
        chosen["state"] = ""
    if chosen["mine"]:
        me = access.member_of(request.user)
        bookings = bookings.filter(requester=me) if me is not None else bookings.none()
    return bookings, chosen


def feed_token(kind: str, key: str) -> str:
    """An unguessable token for a calendar feed URL (calendar apps cannot sign in)."""
    return signing.Signer(salt="lending.ics").signature(f"{kind}:{key}")


def feed_url(request: HtmxHttpRequest, kind: str, key: str) -> str:
    path = reverse("lending-ics", args=[kind, key, feed_token(kind, key)])
    return request.build_absolute_uri(path)


@require_GET
def reservation_list(request: HtmxHttpRequest) -> HttpResponse:
    bookings, chosen = _filtered(request)
    listed = list(bookings.order_by("-start")[:200])
    per = services.usage(listed)
    for r in listed:
        r.usage = per[r.pk]  # type: ignore[attr-defined]
    me = access.member_of(request.user)
    feeds = []
    if me is not None:
        feeds.append((_("My bookings"), feed_url(request, "member", me.username)))
        for subteam in Subteam.objects.filter(pk__in=access.subteam_ids(request.user)):
            feeds.append((subteam.name, feed_url(request, "subteam", subteam.slug)))
    context = {
        "bookings": listed,
        "chosen": chosen,
        "clusters": Cluster.objects.all(),
        "subteams": Subteam.objects.all(),
        "states": Reservation.State.choices,
        "held_states": services.HELD_STATES,
        "by_subteam": services.usage_by_subteam(listed),
        "feeds": feeds,
        "can_book": access.is_admin(request.user) or bool(access.subteam_ids(request.user)),
    }
    return render(request, "lending/list.html", context)


# --- the form and its preview ---------------------------------------------------------------------------


def _initial(request: HtmxHttpRequest) -> dict[str, Any]:
    start = timezone.localtime().replace(minute=0, second=0, microsecond=0) + dt.timedelta(hours=1)
    initial: dict[str, Any] = {"start": start, "end": start + dt.timedelta(hours=4), "gpus": 8}
    clusters = list(Cluster.objects.filter(is_active=True).values_list("pk", flat=True)[:2])
    if len(clusters) == 1:
        initial["cluster"] = clusters[0]
    subteams = list(access.subteams_for(request.user).values_list("pk", flat=True)[:2])
    if len(subteams) == 1:
        initial["subteam"] = subteams[0]
    return initial


def _refused_subteam(form: ReservationForm, data: Any) -> None:
    """The subteam field offers only the user's subteams: another one is a refusal, not a typo."""
    if "subteam" in form.errors and data.get("subteam"):
        access.require(False)


def reservation_create(request: HtmxHttpRequest) -> HttpResponse:
    if not (access.is_admin(request.user) or access.subteam_ids(request.user)):
        access.require(False)
    if request.method == "POST":
        form = ReservationForm(request.POST, user=request.user)
        if form.is_valid():
            data = form.cleaned_data
            access.require(access.can_book_gpus(request.user, data["subteam"].pk))
            try:
                reservation = services.request_reservation(
                    _member(request),
                    subteam=data["subteam"],
                    cluster=data["cluster"],
                    start=data["start"],
                    end=data["end"],
                    purpose=data["purpose"],
                    gpus=data["gpus"],
                    gpu_type=data["gpu_type"],
                    nodes=data["nodes"],
                )
            except ValidationError as error:
                _errors_to_form(form, error)
            else:
                if reservation.state == Reservation.State.APPROVED:
                    messages.success(request, _("Booked: approved within your subteam's quota."))
                else:
                    messages.success(request, _("Requested: the management team will decide."))
                return redirect(reservation)
        else:
            _refused_subteam(form, request.POST)
    else:
        form = ReservationForm(user=request.user, initial=_initial(request))
    return render(request, "lending/form.html", {"form": form, **_preview_context(form)})


def _preview_context(form: ReservationForm) -> dict[str, Any]:
    """Free GPUs per hour over the chosen window and, in words, where the request does not fit."""
    data = form.cleaned_data if form.is_bound and hasattr(form, "cleaned_data") else {}
    cluster, start, end = data.get("cluster"), data.get("start"), data.get("end")
    if cluster is None or start is None or end is None or end <= start:
        return {"slots": [], "conflicts": []}
    end = min(end, start + dt.timedelta(hours=PREVIEW_MAX_HOURS))
    slots = services.availability(cluster, start, end)
    cap = services.capacity(cluster)
    nodes = data.get("nodes") or []
    if nodes:
        need = sum(cap.nodes.get(name, 0) for name in nodes)
    else:
        gpus = data.get("gpus") or 0
        gpn = cap.gpus_per_node
        need = -(-gpus // gpn) * gpn
    # The same rule as the service: bookings must fit the partition; drained nodes only warn
    # (they may be back by then, and the inventory knows only their state now).
    room = [dataclasses.replace(slot, free_gpus=slot.total_gpus - slot.booked_gpus) for slot in slots]
    for slot, fit in zip(slots, room, strict=True):
        slot.short = fit.free_gpus < need  # type: ignore[attr-defined]
        slot.free_percent = round(100 * slot.free_gpus / slot.total_gpus) if slot.total_gpus else 0  # type: ignore[attr-defined]
    return {
        "slots": slots,
        "conflicts": services.describe_conflicts(room, need) if need else [],
        "drained_short": bool(need) and any(slot.free_gpus < need for slot in slots),
        "need": need,
        "unavailable": cap.unavailable,
    }


@require_GET
def reservation_preview(request: HtmxHttpRequest) -> HttpResponse:
    form = ReservationForm(request.GET, user=request.user)
    form.is_valid()  # partial data is fine: the preview shows what it can
    return render(request, "lending/_preview.html", _preview_context(form))


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
    reservation.usage = services.usage([reservation])[reservation.pk]  # type: ignore[attr-defined]
    context = {
        "r": reservation,
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
    access.require(access.can_decide_reservation(request.user))
    reservation = get_object_or_404(rows(), pk=pk)
    form = DecisionForm(request.POST)
    note = form.cleaned_data["note"] if form.is_valid() else ""
    try:
        if action == "approve":
            services.approve(_member(request), reservation, note)
            messages.success(request, _("Approved: the reservation is being made on the cluster."))
        else:
            services.reject(_member(request), reservation, note)
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
    reservation = get_object_or_404(rows(), pk=pk)
    access.require(
        access.can_change_reservation(request.user, reservation.requester_id, reservation.subteam_id)
    )
    try:
        services.cancel(_member(request), reservation)
        messages.success(request, _("Cancelled."))
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
    return redirect(reservation)


@require_POST
def reservation_move(request: HtmxHttpRequest, pk: int) -> HttpResponse:
    """A new window for an open booking (requester, subteam lead, admin); same rules as a new one."""
    reservation = get_object_or_404(rows(), pk=pk)
    access.require(
        access.can_change_reservation(request.user, reservation.requester_id, reservation.subteam_id)
    )
    form = WindowForm(request.POST)
    if not form.is_valid():
        for problems in form.errors.values():
            for message in problems:
                messages.error(request, str(message))
        return redirect(reservation)
    try:
        services.change_window(
            _member(request), reservation, start=form.cleaned_data["start"], end=form.cleaned_data["end"]
        )
        messages.success(request, _("The booking's window changed."))
    except ValidationError as error:
        for message in error.messages:
            messages.error(request, message)
    return redirect(reservation)


# --- calendar -------------------------------------------------------------------------------------------

_HOSTLIST = re.compile(r"([^,\[]+)(?:\[([^\]]+)\])?")


def expand_hostlist(text: str) -> list[str]:
    """`node[1-2,4],gpu7` -> ['node1', 'node2', 'node4', 'gpu7'] (Slurm's compact node lists)."""
    names: list[str] = []
    for match in _HOSTLIST.finditer(text.strip()):
        prefix, ranges = match.group(1).strip(","), match.group(2)
        if not prefix:
            continue
        if not ranges:
            names.append(prefix)
            continue
        for part in ranges.split(","):
            low, _sep, high = part.partition("-")
            width = len(low)
            for i in range(int(low), int(high or low) + 1):
                names.append(f"{prefix}{i:0{width}d}")
    return names


def _bar(r: Reservation, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    span = (end - start).total_seconds()
    left = max(0.0, (r.start - start).total_seconds()) / span
    right = min(span, (r.end - start).total_seconds()) / span
    return {"r": r, "left": round(100 * left, 3), "width": round(100 * max(right - left, 0.004), 3)}


@require_GET
def calendar(request: HtmxHttpRequest) -> HttpResponse:
    clusters = list(Cluster.objects.all())
    chosen = request.GET.get("cluster", "")
    cluster = next((c for c in clusters if str(c.pk) == chosen), clusters[0] if clusters else None)
    try:
        first_day = dt.date.fromisoformat(request.GET.get("start", ""))
    except ValueError:
        today = timezone.localdate()
        first_day = today - dt.timedelta(days=today.weekday())
    start = timezone.make_aware(dt.datetime.combine(first_day, dt.time()))
    end = start + dt.timedelta(days=CALENDAR_DAYS)
    days = [first_day + dt.timedelta(days=i) for i in range(CALENDAR_DAYS)]
    context: dict[str, Any] = {
        "clusters": clusters,
        "cluster": cluster,
        "days": days,
        "previous": (first_day - dt.timedelta(days=7)).isoformat(),
        "next": (first_day + dt.timedelta(days=7)).isoformat(),
        "today_left": None,
    }
    if cluster is not None:
        cap = services.capacity(cluster)
        bookings = list(
            rows()
            .filter(cluster=cluster, state__in=[*Reservation.OPEN_STATES, Reservation.State.FINISHED])
            .filter(start__lt=end, end__gt=start)
            .order_by("start")
        )
        by_node: dict[str, list[dict[str, Any]]] = {name: [] for name in cap.nodes}
        unplaced: list[dict[str, Any]] = []
        for r in bookings:
            placed = list(r.nodes) or expand_hostlist(r.slurm_nodes)
            targets = [name for name in placed if name in by_node]
            if not targets:
                unplaced.append(_bar(r, start, end))
            for name in targets:
                by_node[name].append(_bar(r, start, end))
        context["node_rows"] = [
            {"name": name, "gpus": gpus, "out": cap.unavailable.get(name), "bars": by_node[name]}
            for name, gpus in cap.nodes.items()
        ]
        context["unplaced"] = _lanes(unplaced)
        # Free GPUs in 6-hour blocks (the least free within each block).
        blocks = []
        slots = services.availability(cluster, start, end)
        for i in range(0, len(slots), 6):
            chunk = slots[i : i + 6]
            free = min(s.free_gpus for s in chunk)
            total = chunk[0].total_gpus
            blocks.append({"start": chunk[0].start, "free": free, "level": _level(free, total)})
        context["blocks"] = blocks
        now = timezone.now()
        if start <= now < end:
            context["today_left"] = round(
                100 * (now - start).total_seconds() / (end - start).total_seconds(), 3
            )
    return render(request, "lending/calendar.html", context)


def _lanes(bars: list[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    """Bars packed into as few rows as possible without overlapping (bars arrive sorted by start)."""
    lanes: list[list[dict[str, Any]]] = []
    for bar in bars:
        for lane in lanes:
            if lane[-1]["r"].end <= bar["r"].start:
                lane.append(bar)
                break
        else:
            lanes.append([bar])
    return lanes


def _level(free: int, total: int) -> int:
    """0 (none free) … 4 (all free), for the heat strip's colour."""
    if total <= 0 or free <= 0:
        return 0
    return min(4, 1 + (3 * free) // total)


# --- iCalendar feeds -------------------------------------------------------------------------------------


def ics_feed(request: HtmxHttpRequest, kind: str, key: str, token: str) -> HttpResponse:
    """A subteam's or a member's bookings as an .ics feed; the URL's signed token is the only key."""
    import icalendar

    if kind not in ("subteam", "member") or not constant_time_compare(token, feed_token(kind, key)):
        raise Http404
    bookings = rows().filter(state__in=[*Reservation.OPEN_STATES, Reservation.State.FINISHED])
    if kind == "subteam":
        owner = get_object_or_404(Subteam, slug=key)
        bookings = bookings.filter(subteam=owner)
        title = _("GPU bookings: %(name)s") % {"name": owner.name}
    else:
        member = get_object_or_404(Member.objects.select_related("user"), user__username=key)
        bookings = bookings.filter(requester=member)
        title = _("GPU bookings: %(name)s") % {"name": member.display_name}
    cal = icalendar.Calendar()
    cal.add("prodid", "-//Tanuki Portal//GPU lending list//EN")
    cal.add("version", "2.0")
    cal.add("x-wr-calname", title)
    for r in bookings.order_by("start")[:1000]:
        event = icalendar.Event()
        event.add("uid", f"reservation-{r.pk}@tanuki-portal")
        event.add("dtstamp", r.created_at)
        event.add("dtstart", r.start)
        event.add("dtend", r.end)
        event.add("summary", f"{r.what} · {r.subteam.name}: {r.purpose}")
        event.add("description", f"{r.get_state_display()} · {r.cluster.name} · {r.requester.display_name}")
        event.add("status", "TENTATIVE" if r.state == Reservation.State.REQUESTED else "CONFIRMED")
        event.add("url", request.build_absolute_uri(r.get_absolute_url()))
        cal.add_component(event)
    response = HttpResponse(cal.to_ical(), content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = f'inline; filename="gpus-{kind}-{key}.ics"'
    return response
