from __future__ import annotations

import pytest

from tests.personas import Team, make_team


@pytest.fixture
def team(db: None) -> Team:
    return make_team()
