"""What the scheduler's "why is my job waiting" says about bookings (settings.JOB_RESERVATION_LABEL)."""

from __future__ import annotations

from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from lending.models import Reservation


def describe_reservation(cluster_id: int, slurm_name: str) -> tuple[str, str] | None:
    """(label, link) of the booking a Slurm reservation enforces: "booking #12 (8 GPUs, until 14:20)"."""
    # The booking's current reservation, or one it moved away from that is kept while jobs run in it.
    booking = (
        Reservation.objects.filter(cluster_id=cluster_id)
        .filter(Q(slurm_name=slurm_name) | Q(kept__name=slurm_name))
        .only("id", "gpus", "gpus_per_node", "nodes", "end")
        .first()
    )
    if booking is None:
        return None
    values = {
        "id": booking.pk,
        "gpus": booking.gpus or booking.node_count * booking.gpus_per_node,
        "end": timezone.localtime(booking.end).strftime("%m-%d %H:%M"),
    }
    return _("booking #%(id)d (%(gpus)d GPUs, until %(end)s)") % values, booking.get_absolute_url()
