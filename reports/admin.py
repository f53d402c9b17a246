"""Weekly reports in the admin: read only (leads write them on their pages, through the services)."""

from __future__ import annotations

from django.contrib import admin

from portal.admin import ReadOnlyAdmin, ReadOnlyInline, admin_site
from reports.models import ReportEvent, WeeklyReport


class ReportEventInline(ReadOnlyInline, admin.TabularInline[ReportEvent, WeeklyReport]):
    model = ReportEvent
    fields = readonly_fields = ("at", "kind", "actor", "body", "issues")


@admin.register(WeeklyReport, site=admin_site)
class WeeklyReportAdmin(ReadOnlyAdmin, admin.ModelAdmin[WeeklyReport]):
    list_display = ["subteam", "week", "state", "published_at", "published_by", "updated_at"]
    list_filter = ["state", "subteam"]
    list_select_related = ["subteam", "published_by"]
    date_hierarchy = "week"
    inlines = [ReportEventInline]
