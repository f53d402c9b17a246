"""ASGI entry point: HTTP through Django, websockets through Channels."""

import os
from typing import Any

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django_asgi_app = get_asgi_application()

from urllib.parse import urlsplit  # noqa: E402

from channels.auth import AuthMiddlewareStack  # noqa: E402 - needs Django set up first
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import WebsocketDenier  # noqa: E402
from django.conf import settings  # noqa: E402
from django.http.request import split_domain_port, validate_host  # noqa: E402
from django.utils.http import is_same_domain  # noqa: E402

from config.env import env_bool  # noqa: E402
from config.routing import websocket_urlpatterns  # noqa: E402

DEFAULT_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin, the port filled in when left out; None when it is not one."""
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme.lower())
    except ValueError:
        return None
    if not parts.hostname or port is None:
        return None
    return parts.scheme.lower(), parts.hostname.lower(), port


class SameOriginValidator:
    """A websocket handshake gets through only from the portal's own pages, as Django's CSRF check
    decides for a POST:

    1. the Host header is one of ALLOWED_HOSTS (with DEBUG and none set: localhost);
    2. the Origin header has the scheme, host and port of the request itself (Host, and ws → http,
       wss → https), or is one of CSRF_TRUSTED_ORIGINS (`https://*.example.org` too).

    A missing Origin is refused (browsers always send one). Refused handshakes get a 403."""

    def __init__(self, application: Any) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if scope["type"] == "websocket" and not self.allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)

    @staticmethod
    def allowed(scope: dict[str, Any]) -> bool:
        headers = {name.lower(): value for name, value in scope.get("headers", [])}
        host = headers.get(b"host", b"").decode("latin1")
        origin = headers.get(b"origin", b"").decode("latin1")
        allowed_hosts = settings.ALLOWED_HOSTS
        if settings.DEBUG and not allowed_hosts:
            allowed_hosts = [".localhost", "127.0.0.1", "[::1]"]
        domain, _port = split_domain_port(host)
        if not origin or not domain or not validate_host(domain, allowed_hosts):
            return False
        scheme = "https" if scope.get("scheme") in ("wss", "https") else "http"
        found = _origin(origin)
        if found is None:
            return False
        if found == _origin(f"{scheme}://{host}"):
            return True
        asked = urlsplit(origin)
        for trusted in settings.CSRF_TRUSTED_ORIGINS:
            if "*" in trusted:  # https://*.example.org: its subdomains, as Django's CSRF check reads it
                parts = urlsplit(trusted)
                pattern = parts.netloc[parts.netloc.index("*") + 1 :]
                if asked.scheme == parts.scheme and is_same_domain(asked.netloc, pattern):
                    return True
            elif found == _origin(trusted):
                return True
        return False


application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": SameOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)

if env_bool("SCHEDULER_EMBEDDED", default=False):
    # The embedded deployment runs the scheduler loop in the server process (see scheduler/embedded.py).
    from scheduler import embedded

    embedded.start()
