"""Sign in with Slack in a real browser: the button on the sign-in page, the provider's page (a local
OpenID Connect provider on 127.0.0.1), and back in the portal as the member whose Slack ID it is."""

from __future__ import annotations

from typing import Any

import pytest

from portal.models import Member
from tests.auth.conftest import SlackProvider, slack_provider, slack_signin  # noqa: F401
from tests.personas import Team

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def csp_violations(page: Any) -> list[str]:
    """Messages the browser logs when the Content-Security-Policy blocks something, from now on."""
    seen: list[str] = []
    page.on("console", lambda m: seen.append(m.text) if "Content Security Policy" in m.text else None)
    return seen


def test_the_slack_button_signs_a_member_in(
    live_server: Any,
    page: Any,
    team: Team,
    slack_signin: SlackProvider,  # noqa: F811 - the fixture imported above
) -> None:
    Member.objects.filter(pk=team.member("member").pk).update(slack_user_id="U0MEMBER")
    slack_signin.user("U0MEMBER", name="Member on Slack")
    blocked = csp_violations(page)
    base = live_server.url

    page.goto(f"{base}/accounts/login/?next=/tasks/")
    page.click("button[data-provider=slack]")
    page.wait_for_url(f"{slack_signin.url}/oauth2/authorize?**")  # the provider's consent page
    page.fill("input[name=sub]", "U0MEMBER")
    page.click("button[type=submit]:has-text('Authorize')")

    page.wait_for_url(f"{base}/tasks/")
    assert page.locator(".userbox .me").inner_text() == "Member"
    assert blocked == []


def test_an_unknown_slack_user_sees_whom_to_ask(
    live_server: Any,
    page: Any,
    team: Team,
    slack_signin: SlackProvider,  # noqa: F811 - the fixture imported above
) -> None:
    slack_signin.user("U0NEWBIE")
    base = live_server.url
    page.goto(f"{base}/accounts/login/")
    page.click("button[data-provider=slack]")
    page.wait_for_url(f"{slack_signin.url}/oauth2/authorize?**")
    page.fill("input[name=sub]", "U0NEWBIE")
    page.click("button[type=submit]:has-text('Authorize')")

    refused = page.locator("#signin-refused")
    refused.wait_for()
    assert "management team" in refused.inner_text() and "U0NEWBIE" in refused.inner_text()
    page.goto(f"{base}/")
    page.wait_for_url(f"{base}/accounts/login/?next=/")
