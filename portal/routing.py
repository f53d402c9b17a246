"""Websocket routes. The live dashboards add theirs here."""

from typing import Any

websocket_urlpatterns: list[Any] = []

from metrics.routing import websocket_urlpatterns as metrics_ws  # noqa: E402

websocket_urlpatterns += metrics_ws
