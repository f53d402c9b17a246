"""Members' cluster accounts on the web: the member page's panel, uploading a key (kept encrypted, never
shown again), an admin's "test login", the cluster page's auth mode (and its unsafe shared mode), and
who a job runs as.

No real cluster: the fake one of test_web at 127.0.0.1 port 1, and no SSH user CA configured, so a
login test fails before any connection is tried.
"""

from __future__ import annotations

from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.db import connection
from django.shortcuts import resolve_url
from django.test.utils import CaptureQueriesContext

from portal.models import Member
from scheduler import services
from scheduler.models import AccessEvent, Association, Cluster, ClusterAccount
from tests.personas import Team, grant_cluster_accounts
from tests.scheduler.test_web import make_fake_cluster, submit


def body(response: Any) -> str:
    return str(response.content.decode())


def make_key() -> str:
    """A fresh unencrypted ed25519 key in the OpenSSH format, as `ssh-keygen -t ed25519 -N ''` writes it."""
    key = Ed25519PrivateKey.generate()
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
    ).decode()


def key_body(text: str) -> str:
    """The secret part of a key file: its longest base64 line (what must never appear anywhere)."""
    return max(text.splitlines(), key=len)


@pytest.fixture
def cluster(team: Team) -> Cluster:
    cluster = make_fake_cluster()
    grant_cluster_accounts(team, cluster)
    return cluster


@pytest.fixture
def keys_cluster(cluster: Cluster, settings: Any) -> Cluster:
    settings.KEY_ENCRYPTION_KEY = "test-secret"
    cluster.auth_mode = Cluster.AuthMode.MEMBER_KEYS
    cluster.save(update_fields=["auth_mode"])
    return cluster


@pytest.fixture(autouse=True)
def no_user_ca(settings: Any) -> None:
    settings.SSH_USER_CA_KEY = ""


def account_of(team: Team, role: str, cluster: Cluster) -> ClusterAccount:
    return ClusterAccount.objects.get(member=team.member(role), cluster=cluster)


# --- the member page ---------------------------------------------------------------------------------


def test_member_page_shows_own_account_and_association_state_and_error(team: Team, cluster: Cluster) -> None:
    ClusterAccount.objects.filter(member=team.member("member")).update(
        last_error="Permission denied (publickey)"
    )
    Association.objects.update_or_create(
        cluster=cluster,
        username="tk-member",
        account="sft",
        defaults={
            "member": team.member("member"),
            "state": Association.State.FAILED,
            "last_error": "sacctmgr: user tk-member unknown",
        },
    )
    page = body(team.client("member").get("/members/member/"))
    assert 'id="cluster-accounts"' in page
    assert "<code>tk-member</code>" in page
    assert "not yet logged in" in page
    assert "Permission denied (publickey)" in page
    assert "Failed, retrying" in page
    assert "sacctmgr: user tk-member unknown" in page
    assert 'id="no-cluster-account"' not in page


def test_member_page_shows_when_the_account_was_logged_in_to(team: Team, cluster: Cluster) -> None:
    ClusterAccount.objects.filter(member=team.member("member")).update(verified_at="2025-03-01T12:00:00Z")
    page = body(team.client("member").get("/members/member/"))
    assert "logged in 2025-03-01" in page
    assert "not yet logged in" not in page


def test_member_page_without_account_says_who_sets_it(team: Team) -> None:
    page = body(team.client("member").get("/members/member/"))
    assert 'id="no-cluster-account"' in page
    assert "the management team sets it (ask in #management)" in page


def test_member_page_shows_the_old_free_text_account_only_without_accounts(team: Team) -> None:
    legacy = Member.objects.filter(pk=team.member("member").pk)
    legacy.update(cluster_account="legacy-name")
    assert "legacy-name" in body(team.client("member").get("/members/member/"))
    services.set_cluster_account(None, team.member("member"), make_fake_cluster(), "tk-new")
    legacy.update(cluster_account="legacy-name")
    page = body(team.client("member").get("/members/member/"))
    assert "legacy-name" not in page
    assert "<code>tk-new</code>" in page


def test_access_events_are_shown_to_the_member_and_admins_only(team: Team, cluster: Cluster) -> None:
    for role in ("member", "admin"):
        page = body(team.client(role).get("/members/member/"))
        assert 'id="access-events"' in page
        assert "Cluster account set" in page
    for role in ("other", "lead"):
        page = body(team.client(role).get("/members/member/"))
        assert 'id="access-events"' not in page
        assert "Cluster account set" not in page


def test_member_page_shows_the_key_fingerprint_and_upload_link_for_uploaded_keys(
    team: Team, keys_cluster: Cluster
) -> None:
    account = services.upload_member_key(None, account_of(team, "member", keys_cluster), make_key())
    page = body(team.client("member").get("/members/member/"))
    assert account.key_fingerprint in page
    assert f'href="/clusters/accounts/{account.pk}/key/"' in page
    other_view = body(team.client("other").get("/members/member/"))
    assert f'href="/clusters/accounts/{account.pk}/key/"' not in other_view


def test_member_page_runs_the_same_queries_for_one_or_many_accounts(team: Team) -> None:
    client = team.client("admin")
    url = "/members/member/"

    def add_cluster(i: int) -> None:
        cluster = Cluster.objects.create(name=f"c{i}", host="127.0.0.1", username="tanuki", work_dir="/w")
        services.set_cluster_account(None, team.member("member"), cluster, f"tk-member-{i}")
        Association.objects.create(
            cluster=cluster, member=team.member("member"), username=f"tk-member-{i}", account="sft"
        )

    add_cluster(0)
    client.get(url)
    with CaptureQueriesContext(connection) as one:
        assert client.get(url).status_code == 200
    for i in range(1, 6):
        add_cluster(i)
    with CaptureQueriesContext(connection) as many:
        assert client.get(url).status_code == 200
    assert len(one) == len(many), "\n".join(q["sql"][:160] for q in many.captured_queries)


# --- uploading a key -----------------------------------------------------------------------------------


def test_member_uploads_own_key_kept_encrypted_and_never_shown(team: Team, keys_cluster: Cluster) -> None:
    account = account_of(team, "member", keys_cluster)
    url = f"/clusters/accounts/{account.pk}/key/"
    text = make_key()
    client = team.client("member")
    response = client.post(url, {"private_key": text})
    assert response.status_code == 302
    assert response["Location"] == url
    account.refresh_from_db()
    assert account.key_fingerprint.startswith("SHA256:")
    stored = bytes(account.encrypted_key)
    assert stored
    assert key_body(text).encode() not in stored
    assert b"OPENSSH PRIVATE KEY" not in stored
    page = body(client.get(url))
    assert account.key_fingerprint in page
    assert key_body(text) not in page
    assert AccessEvent.objects.filter(
        member=team.member("member"), kind=AccessEvent.Kind.KEY_UPLOADED
    ).exists()


def test_key_form_is_not_autocompleted(team: Team, keys_cluster: Cluster) -> None:
    account = account_of(team, "member", keys_cluster)
    page = body(team.client("member").get(f"/clusters/accounts/{account.pk}/key/"))
    assert 'name="private_key"' in page
    assert 'autocomplete="off"' in page


def test_admin_may_upload_a_members_key(team: Team, keys_cluster: Cluster) -> None:
    account = account_of(team, "member", keys_cluster)
    response = team.client("admin").post(f"/clusters/accounts/{account.pk}/key/", {"private_key": make_key()})
    assert response.status_code == 302
    account.refresh_from_db()
    assert account.has_key


@pytest.mark.parametrize("role", ["other", "lead"])
def test_key_upload_refused_for_another_member(team: Team, keys_cluster: Cluster, role: str) -> None:
    account = account_of(team, "member", keys_cluster)
    url = f"/clusters/accounts/{account.pk}/key/"
    client = team.client(role)
    assert client.get(url).status_code == 403
    assert client.post(url, {"private_key": make_key()}).status_code == 403
    account.refresh_from_db()
    assert not account.has_key


def test_key_upload_sends_anonymous_to_sign_in(team: Team, keys_cluster: Cluster, settings: Any) -> None:
    account = account_of(team, "member", keys_cluster)
    response = team.client("anon").post(f"/clusters/accounts/{account.pk}/key/", {"private_key": make_key()})
    assert response.status_code == 302
    assert response["Location"].startswith(resolve_url(settings.LOGIN_URL))
    account.refresh_from_db()
    assert not account.has_key


def test_key_upload_is_not_offered_on_a_certificate_cluster(team: Team, cluster: Cluster) -> None:
    account = account_of(team, "member", cluster)
    response = team.client("member").post(
        f"/clusters/accounts/{account.pk}/key/", {"private_key": make_key()}
    )
    assert response.status_code == 404
    account.refresh_from_db()
    assert not account.has_key


def test_a_bad_key_is_refused_without_echoing_it(team: Team, keys_cluster: Cluster) -> None:
    account = account_of(team, "member", keys_cluster)
    secret = "hunter2-not-a-key-but-secret"
    response = team.client("member").post(f"/clusters/accounts/{account.pk}/key/", {"private_key": secret})
    assert response.status_code == 200
    page = body(response)
    assert "Not an unencrypted OpenSSH private key" in page
    assert secret not in page
    account.refresh_from_db()
    assert not account.has_key


def test_a_passphrase_protected_key_is_refused_without_echoing_it(team: Team, keys_cluster: Cluster) -> None:
    account = account_of(team, "member", keys_cluster)
    text = (
        Ed25519PrivateKey.generate()
        .private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.BestAvailableEncryption(b"passphrase"),
        )
        .decode()
    )
    response = team.client("member").post(f"/clusters/accounts/{account.pk}/key/", {"private_key": text})
    assert response.status_code == 200
    assert key_body(text) not in body(response)
    account.refresh_from_db()
    assert not account.has_key


# --- the cluster page and "test login" ----------------------------------------------------------------


def test_shared_cluster_page_warns_that_it_is_unsafe(team: Team, cluster: Cluster) -> None:
    cluster.auth_mode = Cluster.AuthMode.SHARED
    cluster.save(update_fields=["auth_mode"])
    page = body(team.client("member").get(f"/clusters/{cluster.pk}/"))
    assert 'id="unsafe-shared"' in page
    assert "every job runs as the one service account tanuki" in page
    assert "can cancel others" in page


def test_certificate_cluster_page_says_the_ca_is_not_usable(team: Team, cluster: Cluster) -> None:
    page = body(team.client("admin").get(f"/clusters/{cluster.pk}/"))
    assert 'id="unsafe-shared"' not in page
    assert 'id="ca-problem"' in page
    assert "SSH_USER_CA_KEY" in page
    assert "Slurm Operator, not an Administrator" in page


def test_cluster_page_lists_accounts_for_admins_only(team: Team, cluster: Cluster) -> None:
    ClusterAccount.objects.filter(username="tk-other").update(last_error="no such user")
    admin_page = body(team.client("admin").get(f"/clusters/{cluster.pk}/"))
    assert 'id="cluster-accounts"' in admin_page
    assert 'data-account="tk-other"' in admin_page
    assert "no such user" in admin_page
    assert "Test login" in admin_page
    member_page = body(team.client("member").get(f"/clusters/{cluster.pk}/"))
    assert 'id="cluster-accounts"' not in member_page
    assert "Test login" not in member_page


def test_cluster_page_lists_failed_associations_for_admins(team: Team, cluster: Cluster) -> None:
    Association.objects.update_or_create(
        cluster=cluster,
        username="tk-lead",
        account="sft",
        defaults={"member": team.member("lead"), "state": Association.State.FAILED, "last_error": "boom"},
    )
    page = body(team.client("admin").get(f"/clusters/{cluster.pk}/"))
    assert 'id="failed-associations"' in page
    assert "boom" in page


@pytest.mark.parametrize("role", ["member", "lead", "other"])
def test_test_login_is_refused_for_non_admins(team: Team, cluster: Cluster, role: str) -> None:
    account = account_of(team, "member", cluster)
    response = team.client(role).post(f"/clusters/accounts/{account.pk}/test-login/")
    assert response.status_code == 403
    assert not AccessEvent.objects.filter(kind=AccessEvent.Kind.LOGIN_FAILED).exists()


def test_test_login_shows_why_it_failed(team: Team, cluster: Cluster) -> None:
    account = account_of(team, "member", cluster)
    response = team.client("admin").post(f"/clusters/accounts/{account.pk}/test-login/", follow=True)
    assert response.redirect_chain[-1][0] == f"/clusters/{cluster.pk}/"
    page = body(response)
    assert "Logging in to fake as tk-member failed" in page
    account.refresh_from_db()
    assert "SSH_USER_CA_KEY" in account.last_error


# --- a job's page --------------------------------------------------------------------------------------


def test_job_page_says_who_the_job_runs_as(team: Team, cluster: Cluster) -> None:
    job = submit(team, cluster)
    page = body(team.client("member").get(f"/jobs/{job.pk}/"))
    assert 'id="runs-as"' in page
    assert "runs as <code>tk-member</code>" in page
