"""The portal is served as ASGI: HTTP goes through Channels' protocol router to Django."""

from __future__ import annotations

import pytest
from channels.testing import HttpCommunicator

from config.asgi import application

HOST = [(b"host", b"testserver")]


@pytest.mark.django_db(transaction=True)
async def test_the_asgi_application_serves_http() -> None:
    communicator = HttpCommunicator(application, "GET", "/healthz", headers=HOST)
    response = await communicator.get_response(timeout=30)
    assert response["status"] == 200
    assert response["body"] == b"ok"


@pytest.mark.django_db(transaction=True)
async def test_anonymous_asgi_requests_are_sent_to_sign_in() -> None:
    communicator = HttpCommunicator(application, "GET", "/", headers=HOST)
    response = await communicator.get_response(timeout=30)
    assert response["status"] == 302
    assert dict(response["headers"])[b"Location"] == b"/accounts/login/?next=/"
