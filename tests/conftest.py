from __future__ import annotations

from collections.abc import Iterator

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
