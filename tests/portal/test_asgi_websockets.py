"""Websockets through config.asgi: unknown or malformed routes close cleanly (4404), and a handshake
gets through only from the portal's own origin (scheme, host and port) or a trusted one."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from config.asgi import SameOriginValidator, application
from config.routing import NOT_FOUND
from tests.personas import Team

pytestmark = pytest.mark.django_db(transaction=True)


def session_cookie(team: Team) -> bytes:
    client = Client()
    client.force_login(team.users["member"])
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


async def handshake(
    path: str, *, host: str = "testserver", origin: str | None = "http://testserver", cookie: bytes = b""
) -> tuple[bool, int | None]:
    headers = [(b"host", host.encode())]
    if origin is not None:
        headers.append((b"origin", origin.encode()))
    if cookie:
        headers.append((b"cookie", cookie))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    connected, code = await communicator.connect(timeout=10)
    await communicator.disconnect()
    return connected, code


@pytest.mark.parametrize(
    "path",
    [
        "/ws/jobs/not-a-uuid/",
        "/ws/jobs/00000000-0000-0000-0000-00000000000/",  # one digit short
        "/ws/jobs/",
        "/ws/subteams/a%20b/",
        "/ws/nothing/here/",
        "/",
        "/ws/jobs/00000000-0000-0000-0000-000000000000/extra/",
    ],
)
async def test_unknown_and_malformed_routes_close_with_4404(team: Team, path: str) -> None:
    cookie = await sync_to_async(session_cookie)(team)
    assert await handshake(path, cookie=cookie) == (False, NOT_FOUND)


async def test_the_routes_still_reach_their_consumers(team: Team) -> None:
    cookie = await sync_to_async(session_cookie)(team)
    connected, _code = await handshake(f"/ws/subteams/{team.sft.slug}/", cookie=cookie)
    assert connected


@pytest.mark.parametrize(
    ("host", "origin", "allowed"),
    [
        ("127.0.0.1:8000", "http://127.0.0.1:8000", True),
        ("127.0.0.1:8000", "http://127.0.0.1:9999", False),  # another port: another site
        ("127.0.0.1:8000", "http://127.0.0.1", False),
        ("127.0.0.1:8000", "https://127.0.0.1:8000", False),  # another scheme
        ("127.0.0.1", "http://127.0.0.1:80", True),  # the default port, said or not
        ("127.0.0.1:8000", "http://localhost:8000", False),  # another host, even if allowed
        ("evil.example:8000", "http://evil.example:8000", False),  # a Host not in ALLOWED_HOSTS
        ("127.0.0.1:8000", None, False),  # no Origin
        ("127.0.0.1:8000", "null", False),
        ("127.0.0.1:8000", "http://127.0.0.1:99999", False),  # not a port
        ("127.0.0.1:8000", "http://[::1", False),  # not a URL
    ],
)
async def test_the_origin_must_be_the_sites_own(
    team: Team, host: str, origin: str | None, allowed: bool
) -> None:
    cookie = await sync_to_async(session_cookie)(team)
    connected, _code = await handshake(
        f"/ws/subteams/{team.sft.slug}/", host=host, origin=origin, cookie=cookie
    )
    assert connected is allowed


def scope(host: str, origin: str, scheme: str = "ws") -> dict[str, object]:
    return {
        "type": "websocket",
        "scheme": scheme,
        "headers": [(b"host", host.encode()), (b"origin", origin.encode())],
    }


def test_wss_is_compared_with_https(settings: object) -> None:
    settings.ALLOWED_HOSTS = ["portal.example.org"]  # type: ignore[attr-defined]
    assert SameOriginValidator.allowed(scope("portal.example.org", "https://portal.example.org", "wss"))
    assert not SameOriginValidator.allowed(scope("portal.example.org", "http://portal.example.org", "wss"))
    assert not SameOriginValidator.allowed(scope("portal.example.org", "https://portal.example.org", "ws"))


def test_trusted_origins_are_let_through_with_their_port(settings: object) -> None:
    """Behind a TLS proxy the server sees ws://; CSRF_TRUSTED_ORIGINS names the browser's origin."""
    settings.ALLOWED_HOSTS = ["portal.example.org"]  # type: ignore[attr-defined]
    settings.CSRF_TRUSTED_ORIGINS = ["https://portal.example.org", "https://*.tanuki.example"]  # type: ignore[attr-defined]
    assert SameOriginValidator.allowed(scope("portal.example.org", "https://portal.example.org"))
    assert SameOriginValidator.allowed(scope("portal.example.org", "https://portal.example.org:443"))
    assert not SameOriginValidator.allowed(scope("portal.example.org", "https://portal.example.org:8443"))
    assert SameOriginValidator.allowed(scope("portal.example.org", "https://a.tanuki.example"))
    assert not SameOriginValidator.allowed(scope("portal.example.org", "http://a.tanuki.example"))
    assert not SameOriginValidator.allowed(scope("portal.example.org", "https://tanuki.example.evil"))
