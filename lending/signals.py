"""`reservation_changed`: sent after the commit that changed a booking (the Slack app listens).

sender=Reservation, reservation=<Reservation>, event="requested" | "approved" | "rejected" |
"cancelled" | "starting" | "idle" | "finished".
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from django.db import transaction
from django.dispatch import Signal

if TYPE_CHECKING:
    from lending.models import Reservation

log = logging.getLogger(__name__)

reservation_changed = Signal()

EVENTS = ("requested", "approved", "rejected", "cancelled", "starting", "idle", "finished")


def announce(reservation: Reservation, event: str) -> None:
    """Send `reservation_changed` once the surrounding transaction commits (never inside it)."""
    assert event in EVENTS, event

    def send() -> None:
        for receiver, response in reservation_changed.send_robust(
            sender=type(reservation), reservation=reservation, event=event
        ):
            if isinstance(response, Exception):
                log.error("reservation_changed receiver %s failed: %r", receiver, response)

    transaction.on_commit(send)
