"""Websocket routes of every app, mounted by config/asgi.py; any other path is closed with 4404."""

from typing import Any, cast

from django.urls import re_path

from metrics.routing import websocket_urlpatterns as metrics_ws

NOT_FOUND = 4404  # the websocket close code for "no such route" (4000-4999: the application's own)


async def route_not_found(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """A path no app serves (`/ws/jobs/not-a-uuid/`): the handshake is refused with 4404, instead of the
    router's "No route found" exception (a 500 in the server's log)."""
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close", "code": NOT_FOUND})


# Channels' routes take ASGI applications; django-stubs types re_path's target as a view.
websocket_urlpatterns: list[Any] = [*metrics_ws, re_path(r"", cast(Any, route_not_found))]
