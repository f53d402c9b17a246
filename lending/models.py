"""GPU bookings on a cluster (the lending list), their history, subteam quotas and Slurm accounts.

An approved booking becomes a Slurm reservation of whole nodes (see lending/sync.py); derived state
(`held_gpus`, `overlaps`, `is_live`) lives here, every write goes through `lending.services`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from django.db import models
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from portal.models import Member, Subteam
from scheduler.models import Cluster, whole_nodes


class Reservation(models.Model):
    class State(models.TextChoices):
        REQUESTED = "requested", _("Requested")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")
        CANCELLED = "cancelled", _("Cancelled")
        ACTIVE = "active", _("Active")
        FINISHED = "finished", _("Finished")

    class Sync(models.TextChoices):
        SYNCED = "synced", _("In sync")
        CREATE = "create", _("Needs create")
        UPDATE = "update", _("Needs update")
        DELETE = "delete", _("Needs delete")

    requester = models.ForeignKey(
        Member, on_delete=models.PROTECT, related_name="reservations", verbose_name=_("requested by")
    )
    subteam = models.ForeignKey(
        Subteam, on_delete=models.PROTECT, related_name="reservations", verbose_name=_("subteam")
    )
    cluster = models.ForeignKey(
        Cluster, on_delete=models.CASCADE, related_name="reservations", verbose_name=_("cluster")
    )
    gpus = models.PositiveIntegerField(_("GPUs"), null=True, blank=True)
    gpu_type = models.CharField(_("GPU type"), max_length=32, blank=True)
    nodes = models.JSONField(_("nodes"), default=list, blank=True)
    gpus_per_node = models.PositiveIntegerField(_("GPUs per node"), default=8)
    start = models.DateTimeField(_("start"), db_index=True)
    end = models.DateTimeField(_("end"), db_index=True)
    purpose = models.CharField(_("purpose"), max_length=200)
    state = models.CharField(
        _("state"), max_length=12, choices=State.choices, default=State.REQUESTED, db_index=True
    )
    approver = models.ForeignKey(
        Member,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("decided by"),
    )
    decision_note = models.TextField(_("decision note"), blank=True)
    auto_approved = models.BooleanField(_("approved within quota"), default=False)
    slurm_name = models.CharField(_("Slurm reservation"), max_length=64, blank=True)
    slurm_nodes = models.CharField(_("reserved nodes"), max_length=500, blank=True)
    on_cluster = models.BooleanField(_("exists on the cluster"), default=False)
    sync_state = models.CharField(
        _("sync"), max_length=8, choices=Sync.choices, default=Sync.SYNCED, db_index=True
    )
    sync_error = models.TextField(_("last sync error"), blank=True)
    sync_attempted_at = models.DateTimeField(null=True, blank=True)
    # Failed attempts in a row and when the next one may run (2, 4, 8 … 60 minutes apart): a booking
    # Slurm keeps refusing is retried ever more slowly, with the count shown, never forever at once.
    sync_attempts = models.PositiveIntegerField(_("failed sync attempts"), default=0)
    sync_retry_at = models.DateTimeField(_("next sync attempt"), null=True, blank=True)
    # Set while Slurm holds no reservation matching the booking (refused, or fewer nodes than booked);
    # the reason is `sync_error`. Cleared (with an "enforced" event) when an attempt succeeds.
    not_enforced_since = models.DateTimeField(_("not enforced since"), null=True, blank=True)
    idle_flagged_at = models.DateTimeField(_("flagged idle"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        ordering = ["start", "pk"]
        verbose_name = _("GPU booking")
        verbose_name_plural = _("GPU bookings")
        indexes = [models.Index(fields=["cluster", "state", "start", "end"], name="lending_window")]
        constraints = [
            models.CheckConstraint(condition=models.Q(end__gt=models.F("start")), name="end_after_start")
        ]

    BOOKED_STATES = (State.APPROVED, State.ACTIVE)
    OPEN_STATES = (State.REQUESTED, State.APPROVED, State.ACTIVE)

    def __str__(self) -> str:
        return f"{self.subteam} {self.what} {self.start:%Y-%m-%d %H:%M}"

    def get_absolute_url(self) -> str:
        return reverse("lending:detail", args=[self.pk])

    def new_slurm_name(self) -> str:
        """`tanuki-<id>-<6 hex>`: the id for people, the suffix so that another portal (a demo, a test
        database that starts its ids at 1 again) never reuses the name of a reservation left on the cluster."""
        return f"tanuki-{self.pk}-{secrets.token_hex(3)}"

    @property
    def node_count(self) -> int:
        """Whole nodes held on the cluster: Slurm 22.05 reserves nodes, not single GPUs."""
        if self.nodes:
            return len(self.nodes)
        return whole_nodes(self.gpus or 0, self.gpus_per_node)

    @property
    def held_gpus(self) -> int:
        return self.node_count * self.gpus_per_node

    @property
    def what(self) -> str:
        if self.nodes:
            return ",".join(self.nodes)
        kind = f" {self.gpu_type}" if self.gpu_type else ""
        return f"{self.gpus}{kind} GPU"

    @property
    def hours(self) -> float:
        return (self.end - self.start).total_seconds() / 3600

    @property
    def gpu_hours_booked(self) -> float:
        return self.held_gpus * self.hours

    @property
    def is_booked(self) -> bool:
        return self.state in self.BOOKED_STATES

    @property
    def is_open(self) -> bool:
        return self.state in self.OPEN_STATES

    @property
    def is_not_enforced(self) -> bool:
        """Booked, but Slurm holds no reservation that matches it (see `sync_error` for why)."""
        return self.not_enforced_since is not None and self.is_booked

    def overlaps(self, start: dt.datetime, end: dt.datetime) -> bool:
        return self.start < end and start < self.end


class KeptReservation(models.Model):
    """A Slurm reservation a booking has moved away from but that still had jobs in it. Slurm refuses
    to delete a reservation in use, and shortening it would stop its running jobs (Slurm ends a job at
    its reservation's end). So the old reservation stays as it was, and the worker deletes it once its
    jobs have ended (`lending.sync`); Slurm removes it by itself at `ends_at` at the latest."""

    reservation = models.ForeignKey(
        Reservation, on_delete=models.CASCADE, related_name="kept", verbose_name=_("GPU booking")
    )
    name = models.CharField(_("Slurm reservation"), max_length=64)
    nodes = models.CharField(_("reserved nodes"), max_length=500, blank=True)
    ends_at = models.DateTimeField(_("ends"))
    kept_since = models.DateTimeField(_("kept since"), default=timezone.now)
    # Deletes tried while jobs were still in it, the next one, and Slurm's last answer.
    attempts = models.PositiveIntegerField(_("delete attempts"), default=0)
    retry_at = models.DateTimeField(_("next delete attempt"), db_index=True)
    last_error = models.TextField(_("last delete error"), blank=True)

    class Meta:
        ordering = ["kept_since", "pk"]
        verbose_name = _("kept Slurm reservation")
        verbose_name_plural = _("kept Slurm reservations")

    def __str__(self) -> str:
        return self.name


class ReservationEvent(models.Model):
    class Kind(models.TextChoices):
        """Every event a booking's history records (`lending.services._event` refuses any other): the
        code is what the API and the Slack outbox read, the label what the pages show (in the context
        "booking event": what happened, translated apart from the state a booking is in)."""

        REQUESTED = "requested", pgettext_lazy("booking event", "Requested")
        APPROVED = "approved", pgettext_lazy("booking event", "Approved")
        REJECTED = "rejected", pgettext_lazy("booking event", "Rejected")
        CANCELLED = "cancelled", pgettext_lazy("booking event", "Cancelled")
        CHANGED = "changed", pgettext_lazy("booking event", "Window changed")
        STARTING = "starting", pgettext_lazy("booking event", "Started")
        IDLE = "idle", pgettext_lazy("booking event", "Idle: no job of the subteam ran")
        IN_USE = "in_use", pgettext_lazy("booking event", "In use again")
        FINISHED = "finished", pgettext_lazy("booking event", "Finished")
        NOT_ENFORCED = "not_enforced", pgettext_lazy("booking event", "Not enforced by Slurm")
        ENFORCED = "enforced", pgettext_lazy("booking event", "Enforced by Slurm again")
        SLURM_CREATE = "slurm_create", pgettext_lazy("booking event", "Slurm reservation created")
        SLURM_UPDATE = "slurm_update", pgettext_lazy("booking event", "Slurm reservation updated")
        SLURM_RECREATE = (
            "slurm_recreate",
            pgettext_lazy("booking event", "Slurm reservation made anew under a new name"),
        )
        SLURM_DELETE = "slurm_delete", pgettext_lazy("booking event", "Slurm reservation deleted")
        SLURM_DELETE_KEPT = (
            "slurm_delete_kept",
            pgettext_lazy("booking event", "Previous Slurm reservation deleted"),
        )

    reservation = models.ForeignKey(Reservation, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(Member, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    at = models.DateTimeField(_("when"), default=timezone.now)
    kind = models.CharField(_("what"), max_length=20)
    changes = models.JSONField(_("changes"), default=dict, blank=True)
    note = models.TextField(_("note"), blank=True)

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.reservation_id} {self.kind} {self.at:%Y-%m-%d %H:%M}"

    @property
    def label(self) -> str:
        """The event in the reader's language (the code itself for a row older than its label)."""
        if self.kind in self.Kind.values:
            return str(self.Kind(self.kind).label)
        return self.kind


class SubteamQuota(models.Model):
    """Requests within a subteam's quota are approved without waiting for the management team."""

    subteam = models.OneToOneField(Subteam, on_delete=models.CASCADE, related_name="gpu_quota")
    max_gpus = models.PositiveIntegerField(_("max GPUs at once"), null=True, blank=True)
    max_gpu_hours_per_week = models.PositiveIntegerField(_("max GPU-hours per week"), null=True, blank=True)

    class Meta:
        verbose_name = _("GPU quota")
        verbose_name_plural = _("GPU quotas")

    def __str__(self) -> str:
        return f"{self.subteam}: {self.max_gpus} GPUs, {self.max_gpu_hours_per_week} GPU-h/week"


class CalendarFeed(models.Model):
    """The key of one calendar feed URL (a member's own bookings, or a subteam's). Only the token's
    SHA-256 is kept: the URL is shown once, when it is made, and making a new one ends the old at once."""

    class Kind(models.TextChoices):
        MEMBER = "member", _("member")
        SUBTEAM = "subteam", _("subteam")

    member = models.OneToOneField(
        Member, on_delete=models.CASCADE, null=True, blank=True, related_name="calendar_feed"
    )
    subteam = models.OneToOneField(
        Subteam, on_delete=models.CASCADE, null=True, blank=True, related_name="calendar_feed"
    )
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(_("made"), default=timezone.now)
    created_by = models.ForeignKey(
        Member, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", verbose_name=_("made by")
    )

    class Meta:
        verbose_name = _("calendar feed")
        verbose_name_plural = _("calendar feeds")
        constraints = [
            models.CheckConstraint(
                condition=models.Q(member__isnull=False, subteam__isnull=True)
                | models.Q(member__isnull=True, subteam__isnull=False),
                name="calendar_feed_one_owner",
            )
        ]

    def __str__(self) -> str:
        return f"{self.kind}:{self.member_id or self.subteam_id}"

    @property
    def kind(self) -> str:
        return self.Kind.MEMBER if self.member_id else self.Kind.SUBTEAM

    @staticmethod
    def new_token() -> str:
        return secrets.token_urlsafe(32)

    @staticmethod
    def hash(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()
