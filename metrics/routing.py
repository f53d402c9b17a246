"""Websocket routes of the metrics app (mounted by config/routing.py)."""

from django.urls import path

from metrics import consumers

websocket_urlpatterns = [
    path("ws/jobs/<uuid:job_id>/", consumers.JobUpdatesConsumer.as_asgi()),
    path("ws/subteams/<slug:slug>/", consumers.SubteamUpdatesConsumer.as_asgi()),
]
