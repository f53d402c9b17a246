"""The README's way to get an API token works on a fresh machine: its exact command, run as a newcomer
would after `make demo` (the demo's environment, no SECRET_KEY of their own), prints a token."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path
from urllib.parse import quote

import pytest
from django.contrib.auth import get_user_model
from django.db import connection
from rest_framework.authtoken.models import Token

ROOT = Path(__file__).resolve().parents[2]


def _readme_command() -> list[str]:
    found = re.search(r"`(make token USER=\w+)`", (ROOT / "README.md").read_text())
    assert found, "the README names `make token USER=…`"
    return shlex.split(found.group(1))


def _database_url() -> str:
    """This test's own database (a temporary SQLite file, or PostgreSQL's test database in CI)."""
    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    password = f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else ""
    return f"postgres://{quote(db['USER'])}{password}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.mark.django_db(transaction=True)
def test_the_readmes_token_command_prints_a_token() -> None:
    command = _readme_command()
    username = command[-1].removeprefix("USER=")
    get_user_model().objects.create_user(username=username, password="x")
    env = {
        key: value
        for key, value in os.environ.items()
        if key
        not in ("DJANGO_SETTINGS_MODULE", "SECRET_KEY", "DEBUG", "ALLOWED_HOSTS", "MAKEFLAGS", "MAKELEVEL")
    }
    env["DATABASE_URL"] = _database_url()
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    printed = re.search(rf"Generated token ([0-9a-f]{{40}}) for user {username}", done.stdout)
    assert printed, done.stdout + done.stderr
    assert Token.objects.get(user__username=username).key == printed.group(1)


def test_make_token_asks_for_the_user() -> None:
    env = {k: v for k, v in os.environ.items() if k != "USER"}
    done = subprocess.run(["make", "token"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "make token USER=<username>" in done.stderr
