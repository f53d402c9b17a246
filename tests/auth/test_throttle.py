"""Password sign-in is throttled per username and address (django-axes): after 5 failures that pair is
locked out for 15 minutes, even with the right password; a success before that clears the count."""

from __future__ import annotations

from django.test import Client

from tests.personas import PASSWORD, Team

LOGIN = "/accounts/login/"


def _fail(client: Client, username: str = "member", times: int = 1) -> None:
    for _ in range(times):
        client.post(LOGIN, {"username": username, "password": "wrong"})


def test_the_sixth_attempt_is_refused_even_with_the_right_password(team: Team) -> None:
    client = Client(headers={"accept-language": "en"})
    _fail(client, times=4)
    fifth = client.post(LOGIN, {"username": "member", "password": "wrong"})
    assert fifth.status_code == 429
    sixth = client.post(LOGIN, {"username": "member", "password": PASSWORD})
    assert sixth.status_code == 429
    body = sixth.content.decode()
    assert "Too many sign-in attempts" in body and "15 minutes" in body
    assert client.get("/").status_code == 302  # not signed in


def test_the_lockout_page_speaks_japanese(team: Team) -> None:
    client = Client()
    _fail(client, times=5)
    response = client.post(LOGIN, {"username": "member", "password": PASSWORD})
    assert response.status_code == 429
    assert "15 分" in response.content.decode()


def test_a_success_clears_the_count(team: Team) -> None:
    client = Client()
    _fail(client, times=4)
    assert client.post(LOGIN, {"username": "member", "password": PASSWORD}).status_code == 302
    client.post("/accounts/logout/")
    _fail(client, times=4)
    assert client.post(LOGIN, {"username": "member", "password": PASSWORD}).status_code == 302


def test_the_lockout_is_per_username_and_address(team: Team) -> None:
    attacker = Client(REMOTE_ADDR="198.51.100.7")
    _fail(attacker, times=5)
    assert attacker.post(LOGIN, {"username": "member", "password": PASSWORD}).status_code == 429
    assert attacker.post(LOGIN, {"username": "lead", "password": PASSWORD}).status_code == 302
    elsewhere = Client(REMOTE_ADDR="203.0.113.9")
    assert elsewhere.post(LOGIN, {"username": "member", "password": PASSWORD}).status_code == 302


def test_test_helpers_still_sign_in(team: Team) -> None:
    """`force_login` and the test client's `login()` (no request to count by) work as before."""
    assert Client().login(username="member", password=PASSWORD)
    assert not Client().login(username="member", password="wrong")
    assert team.client("member").get("/").status_code == 200
