"""Quotas are set here by the management team (subteams' Slurm accounts are the scheduler's); bookings are read-only
(every change to a booking goes through `lending.services`, from the lending pages or the API)."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from lending.models import Reservation, SubteamQuota
from portal.admin import ManagementOnly, admin_site


@admin.register(SubteamQuota, site=admin_site)
class SubteamQuotaAdmin(ManagementOnly, admin.ModelAdmin[SubteamQuota]):
    list_display = ["subteam", "max_gpus", "max_gpu_hours_per_week"]


@admin.register(Reservation, site=admin_site)
class ReservationAdmin(ManagementOnly, admin.ModelAdmin[Reservation]):
    list_display = [
        "pk",
        "subteam",
        "requester",
        "cluster",
        "start",
        "end",
        "state",
        "sync_state",
        "slurm_name",
    ]
    list_filter = ["state", "sync_state", "cluster", "subteam"]
    list_select_related = ["subteam", "requester", "cluster"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
