"""Quotas are set here by the management team (subteams' Slurm accounts are the scheduler's); bookings are read-only
(every change to a booking goes through `lending.services`, from the lending pages or the API)."""

from __future__ import annotations

from django.contrib import admin

from lending.models import Reservation, SubteamQuota
from portal.admin import ManagementOnly, ReadOnlyAdmin, admin_site


@admin.register(SubteamQuota, site=admin_site)
class SubteamQuotaAdmin(ManagementOnly, admin.ModelAdmin[SubteamQuota]):
    list_display = ["subteam", "max_gpus", "max_gpu_hours_per_week"]


@admin.register(Reservation, site=admin_site)
class ReservationAdmin(ReadOnlyAdmin, admin.ModelAdmin[Reservation]):
    list_display = [
        "pk",
        "subteam",
        "requester",
        "cluster",
        "start",
        "end",
        "state",
        "sync_state",
        "not_enforced_since",
        "sync_attempts",
        "slurm_name",
    ]
    list_filter = ["state", "sync_state", "cluster", "subteam"]
    list_select_related = ["subteam", "requester", "cluster"]
