"""Websocket routes. The live dashboards add theirs here."""

from typing import Any

websocket_urlpatterns: list[Any] = []
