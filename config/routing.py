"""Websocket routes of every app, mounted by config/asgi.py."""

from typing import Any

from metrics.routing import websocket_urlpatterns as metrics_ws

websocket_urlpatterns: list[Any] = [*metrics_ws]
