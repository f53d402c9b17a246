"""Response headers: the Content-Security-Policy on pages (no inline scripts, nothing from elsewhere)
and long-lived caching of static files under hashed names (production and the demo)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client

from tests.personas import Team

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE_DIRS = [ROOT / "templates", *ROOT.glob("*/templates")]


def _policy(response: Any) -> dict[str, list[str]]:
    header = response["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in header.split(";") if part.strip()}


def test_pages_carry_a_content_security_policy(team: Team) -> None:
    for response in (Client().get("/accounts/login/"), team.client("member").get("/")):
        policy = _policy(response)
        assert policy["default-src"] == ["'self'"]
        assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"]
        assert "'unsafe-inline'" not in policy["style-src"]
        assert policy["style-src-attr"] == ["'unsafe-inline'"]  # data-sized bars: style="width: 40%"
        assert policy["frame-ancestors"] == ["'none'"] and policy["object-src"] == ["'none'"]
        assert policy["form-action"] == ["'self'"]  # no sign-in provider configured here


def test_a_nonce_is_added_only_when_a_page_uses_one(team: Team) -> None:
    policy = _policy(team.client("member").get("/"))
    assert not any(source.startswith("'nonce-") for source in policy["script-src"])


def test_templates_have_no_inline_scripts_or_event_handlers() -> None:
    """What the policy would block: a <script> with code in it (unless it carries the request's nonce)
    and on…= attributes. Inline style attributes are allowed (style-src-attr)."""
    inline_script = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*\bnonce=)(?![^>]*application/json)[^>]*>")
    handler = re.compile(r"<[a-z][^>]*\s(on[a-z]+)\s*=", re.IGNORECASE)
    found = []
    for folder in TEMPLATE_DIRS:
        for path in folder.rglob("*.html"):
            text = path.read_text()
            for pattern in (inline_script, handler):
                found += [f"{path.relative_to(ROOT)}: {m.group(0)[:60]}" for m in pattern.finditer(text)]
    assert not found, found


@pytest.fixture
def collected(settings: Any, tmp_path: Path) -> Path:
    """Static files as `make demo` serves them: collected under hashed names (DEBUG on, as in the demo)."""
    settings.DEBUG = True
    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "config.storage.HashedStaticFilesStorage"},
    }
    settings.WHITENOISE_USE_FINDERS = False
    settings.WHITENOISE_AUTOREFRESH = False
    call_command("collectstatic", interactive=False, verbosity=0)
    return tmp_path


def test_static_files_have_hashed_names_and_a_years_cache(db: None, collected: Path) -> None:
    page = Client().get("/accounts/login/").content.decode()
    css = re.search(r'href="(/static/css/portal\.[0-9a-f]{12}\.css)"', page)
    assert css, "the page links the hashed stylesheet"
    response = Client().get(css.group(1))
    assert response.status_code == 200
    assert response["Cache-Control"] == "max-age=315360000, public, immutable"
    assert (collected / css.group(1).removeprefix("/static/")).exists()
    plain = Client().get("/static/css/portal.css")
    assert plain.status_code == 200 and "immutable" not in plain["Cache-Control"]
