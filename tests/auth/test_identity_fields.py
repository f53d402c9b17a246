"""A Slack user ID or GitHub login signs in as its member (portal.signin), so only the management team
sets them: a member's own profile form neither offers nor accepts them."""

from __future__ import annotations

from portal.models import Member
from tests.personas import Team


def profile(**fields: str) -> dict[str, str]:
    return {"display_name": "Member", "bio": "", "language": "ja", "huggingface": "", "wandb": "", **fields}


def test_a_member_cannot_set_their_own_sign_in_identities(team: Team) -> None:
    client = team.client("member")
    page = client.get("/members/member/edit/").content.decode()
    assert 'name="slack_user_id"' not in page and 'name="github"' not in page
    response = client.post("/members/member/edit/", profile(slack_user_id="UVICTIM", github="victim"))
    assert response.status_code == 302
    member = Member.objects.get(user__username="member")
    assert (member.slack_user_id, member.github) == ("", "")


def test_an_admin_sets_them(team: Team) -> None:
    client = team.client("admin")
    assert 'name="slack_user_id"' in client.get("/members/member/edit/").content.decode()
    response = client.post("/members/member/edit/", profile(slack_user_id="U0MEMBER", github="member-gh"))
    assert response.status_code == 302
    member = Member.objects.get(user__username="member")
    assert (member.slack_user_id, member.github) == ("U0MEMBER", "member-gh")
