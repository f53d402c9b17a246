"""Web pages of the reports app, included by config/urls.py (namespace `reports`)."""

from django.urls import path, register_converter

from reports import views
from reports.weeks import WeekConverter

register_converter(WeekConverter, "week")

urlpatterns = [
    path("reports/", views.archive, name="archive"),
    path("reports/agenda/", views.agenda_view, name="agenda"),
    path("reports/agenda/<week:week>/", views.agenda_view, name="agenda-week"),
    path("reports/teams/<slug:slug>/", views.subteam_archive, name="subteam"),
    path("reports/teams/<slug:slug>/<week:week>/", views.report, name="report"),
    path("reports/teams/<slug:slug>/<week:week>/draft/", views.draft, name="draft"),
    path("reports/teams/<slug:slug>/<week:week>/edit/", views.edit, name="edit"),
    path("reports/teams/<slug:slug>/<week:week>/publish/", views.publish, name="publish"),
]
