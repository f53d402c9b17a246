"""Who may book GPUs, decide on a booking, cancel or move one, and reset a calendar feed's link.

Built on portal's primitives (`portal.access`); the web views and the API check these before they
call `lending.services`, which assume the caller may.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.http import Http404
from django.shortcuts import get_object_or_404

from lending.models import CalendarFeed, Reservation
from portal.access import AnyUser, is_admin, is_self, may_act_in, may_act_in_any, may_lead, require
from portal.models import Member, Subteam


def can_book_gpus(user: AnyUser, subteam_id: int | None) -> bool:
    """Members book GPUs for their own subteams; admins for any."""
    return may_act_in(user, subteam_id)


def may_book_gpus(user: AnyUser) -> bool:
    """Whether to offer the booking form at all (some subteam to book for)."""
    return may_act_in_any(user)


def can_decide_reservation(user: AnyUser) -> bool:
    """Approving and rejecting GPU bookings is the management team's."""
    return is_admin(user)


def can_change_reservation(user: AnyUser, requester_id: int, subteam_id: int) -> bool:
    """The requester, the subteam's leads and admins cancel or edit a booking."""
    return may_lead(user, subteam_id) or is_self(user, requester_id)


def get_reservation_to_change(user: AnyUser, pk: int) -> Reservation:
    """The booking to cancel or move (404 when there is none, 403 when the user may not)."""
    reservation = get_object_or_404(Reservation.objects.select_related("subteam", "cluster"), pk=pk)
    require(can_change_reservation(user, reservation.requester_id, reservation.subteam_id))
    return reservation


def get_reservations_to_decide(user: AnyUser, pks: Iterable[int]) -> list[Reservation]:
    """The bookings an admin approves or rejects together, earliest first (403 for anyone else, before
    anything is read; ids of no booking are left out)."""
    require(can_decide_reservation(user))
    return list(Reservation.objects.filter(pk__in=list(pks)).select_related("cluster", "subteam"))


def can_reset_feed(user: AnyUser, owner: Member | Subteam) -> bool:
    """A member's calendar feed link is reset by the member (admins too, to end a leaked one); a
    subteam's by its leads and admins."""
    if isinstance(owner, Subteam):
        return may_lead(user, owner.pk)
    return is_self(user, owner.pk) or is_admin(user)


def get_feed_owner_to_reset(user: AnyUser, kind: str, key: str) -> Member | Subteam:
    """The member (by username) or subteam (by slug) whose feed link to reset (404 when there is none,
    403 when the user may not)."""
    owner: Member | Subteam
    if kind == CalendarFeed.Kind.MEMBER:
        owner = get_object_or_404(Member, user__username=key)
    elif kind == CalendarFeed.Kind.SUBTEAM:
        owner = get_object_or_404(Subteam, slug=key)
    else:
        raise Http404
    require(can_reset_feed(user, owner))
    return owner
