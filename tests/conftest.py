from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from django.utils import translation

from tests.personas import Team, make_team


@pytest.fixture
def team(db: None) -> Team:
    return make_team()


@pytest.fixture(autouse=True)
def english_outside_requests() -> Iterator[None]:
    """Code a test calls directly (services, commands) speaks English, so messages can be asserted
    in one language. Requests pick their own language as in production: Japanese unless the client
    asks for English (`team.client(role)` does; the Japanese UI has its own tests)."""
    with translation.override("en"):
        yield


# --- a real ASGI server (HTTP and websockets) for the browser tests of every app ----------------


@pytest.fixture
def channel_layer(settings: Any) -> Iterator[None]:
    """A fresh channel layer for each test: Redis when REDIS_URL is set (as in production, with a
    prefix of this test's own), else the in-memory layer of the embedded deployment."""
    from channels.layers import channel_layers

    url = os.environ.get("REDIS_URL")
    if url:
        settings.CHANNEL_LAYERS = {
            "default": {
                "BACKEND": "channels_redis.core.RedisChannelLayer",
                "CONFIG": {"hosts": [url], "prefix": f"test-browser-{os.getpid()}"},
            }
        }
    else:
        settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    channel_layers.backends.clear()
    yield
    channel_layers.backends.clear()


@pytest.fixture(scope="session")
def _daphne() -> Iterator[str]:
    """Daphne in a thread of this process, once per session: Twisted's reactor cannot be started
    again in the same process once it stopped."""
    from daphne.server import Server

    from config.asgi import application

    server = Server(application, endpoints=["tcp:port=0:interface=127.0.0.1"], signal_handlers=False)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    ready = threading.Event()
    for _ in range(400):
        if server.listening_addresses:
            break
        ready.wait(0.05)
    if not server.listening_addresses:
        pytest.fail("daphne did not start listening")
    host, port = server.listening_addresses[0]
    yield f"http://{host}:{port}"
    from twisted.internet import reactor

    reactor.callFromThread(reactor.stop)  # type: ignore[misc]


@pytest.fixture
def asgi_server(_daphne: str, channel_layer: None) -> str:
    """The ASGI app (HTTP and websockets) served by daphne, sharing this process's channel layer."""
    return _daphne
