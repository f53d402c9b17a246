"""The SSH user certificates the portal signs, the keys it keeps for members, and its connection pool
(no cluster needed: the certificates are read back with `cryptography`)."""

from __future__ import annotations

import base64
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.hazmat.primitives.serialization import (
    SSHCertificate,
    SSHCertificateType,
    load_ssh_public_identity,
)
from django.core.exceptions import ValidationError

from scheduler import identity, services, ssh
from scheduler.models import AccessEvent, Cluster, ClusterAccount
from tests.personas import Team


def write_key(path: Path) -> ed25519.Ed25519PrivateKey:
    key = ed25519.Ed25519PrivateKey.generate()
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        )
    )
    return key


def test_a_certificate_names_one_principal_lasts_minutes_and_grants_nothing_else(tmp_path: Path) -> None:
    ca = write_key(tmp_path / "ca")
    pkey = ssh.Certificate(tmp_path / "ca", "tk-member", lifetime=300).load()
    assert pkey.public_blob is not None
    assert pkey.public_blob.key_type == "ssh-ed25519-cert-v01@openssh.com"
    certificate = load_ssh_public_identity(
        b"ssh-ed25519-cert-v01@openssh.com " + base64.b64encode(pkey.public_blob.key_blob)
    )
    assert isinstance(certificate, SSHCertificate)
    assert certificate.type == SSHCertificateType.USER
    assert certificate.valid_principals == [b"tk-member"]
    now = time.time()
    assert certificate.valid_before - now <= 301
    assert now - certificate.valid_after <= 61
    # No permit-pty, -port-forwarding, -agent-forwarding, -X11-forwarding, -user-rc; no options.
    assert certificate.extensions == {} and certificate.critical_options == {}
    certificate.verify_cert_signature()
    assert certificate.signature_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ) == ca.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    # A fresh key pair every time: nothing to steal between connections.
    again = ssh.Certificate(tmp_path / "ca", "tk-member").load()
    assert again.get_base64() != pkey.get_base64()


@pytest.mark.parametrize("principal", ["", "a,b", "a b", "x\n", "nul\x00"])
def test_it_refuses_to_sign_for_a_principal_that_could_mean_several(tmp_path: Path, principal: str) -> None:
    write_key(tmp_path / "ca")
    with pytest.raises(ssh.CredentialError):
        ssh.Certificate(tmp_path / "ca", principal).load()


def test_a_missing_or_garbled_ca_key_is_named_never_quoted(tmp_path: Path) -> None:
    with pytest.raises(ssh.CredentialError, match="cannot read the SSH user CA key"):
        ssh.Certificate(tmp_path / "none", "tk-member").load()
    (tmp_path / "bad").write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nsecret-looking-bytes\n")
    with pytest.raises(ssh.CredentialError) as refused:
        ssh.Certificate(tmp_path / "bad", "tk-member").load()
    assert "secret-looking-bytes" not in str(refused.value)


@pytest.fixture
def lab(team: Team) -> Cluster:
    return Cluster.objects.create(
        name="lab", host="127.0.0.1", port=1, username="svc", work_dir="/runs/{user}", host_key="x"
    )


def test_the_work_directory_is_each_members_own(team: Team, lab: Cluster) -> None:
    assert lab.work_dir_for("tk-member") == "/runs/tk-member"
    with pytest.raises(ValueError):
        lab.work_dir_for("../etc")


def test_only_an_admin_given_username_runs_jobs_and_it_is_unique_per_cluster(
    team: Team, lab: Cluster
) -> None:
    with pytest.raises(identity.AccountError, match="management team"):
        identity.cluster_user_for(team.member("member"), lab)
    services.set_cluster_account(team.member("admin"), team.member("member"), lab, "tk-member")
    assert identity.cluster_user_for(team.member("member"), lab) == "tk-member"
    with pytest.raises(ValidationError):
        services.set_cluster_account(None, team.member("other"), lab, "tk-member")  # someone else's
    with pytest.raises(ValidationError):
        services.set_cluster_account(None, team.member("other"), lab, "tk other; rm")
    event = AccessEvent.objects.get(member=team.member("member"), kind=AccessEvent.Kind.ACCOUNT_SET)
    assert event.actor == team.member("admin")
    lab.auth_mode = Cluster.AuthMode.SHARED
    assert identity.cluster_user_for(team.member("other"), lab) == "svc"


def test_an_uploaded_key_is_kept_encrypted_and_a_changed_username_forgets_it(
    team: Team, lab: Cluster, tmp_path: Path, settings: Any
) -> None:
    settings.KEY_ENCRYPTION_KEY = "k1"
    lab.auth_mode = Cluster.AuthMode.MEMBER_KEYS
    lab.save()
    account = services.set_cluster_account(None, team.member("lead"), lab, "tk-lead")
    with pytest.raises(identity.AccountError, match="uploaded"):
        identity.cluster_user_for(team.member("lead"), lab)
    write_key(tmp_path / "id")
    text = (tmp_path / "id").read_text()
    services.upload_member_key(team.member("lead"), account, text)
    account.refresh_from_db()
    assert text.encode() not in bytes(account.encrypted_key)
    assert identity.decrypt_key(account.encrypted_key) == text
    credential = identity.credential_for(lab, account)
    assert isinstance(credential, ssh.StoredKey) and "PRIVATE" not in repr(credential)
    settings.KEY_ENCRYPTION_KEY = "k2"  # rotated without re-encrypting: says so, does not crash
    with pytest.raises(identity.AccountError, match="Upload it again"):
        identity.credential_for(lab, account)
    services.set_cluster_account(None, team.member("lead"), lab, "tk-lead2")
    account = ClusterAccount.objects.get(pk=account.pk)
    assert not account.has_key and bytes(account.encrypted_key) == b""
    with pytest.raises(ValidationError):
        services.upload_member_key(None, account, "not a key")
    with pytest.raises(ValidationError):
        services.upload_member_key(None, account, "x" * (services.MAX_KEY_BYTES + 1))


def test_idle_connections_are_closed_and_a_refused_login_keeps_its_own_words(tmp_path: Path) -> None:
    write_key(tmp_path / "host")
    host_key = ssh.key_line(ssh.load_private_key(tmp_path / "host"))
    pool = ssh.Pool(max_backoff=60, max_idle=10)
    make = ssh.Connection(
        host="127.0.0.1", port=1, username="u", host_key=host_key, key_path=tmp_path / "host"
    )
    held = pool.get(("c", "u"), make)
    held.last_used = time.monotonic() - 11
    assert pool.size == 1 and pool.close_idle() == 1 and pool.size == 0
    # A login that cannot even be tried (its key is missing) is remembered as that, about this user,
    # while the pool backs off: not as "host unreachable", which would end the cluster's whole visit.
    refused = ssh.Connection(
        host="127.0.0.1", port=1, username="u", host_key=host_key, key_path=tmp_path / "missing"
    )
    with pytest.raises(ssh.CredentialError) as first:
        pool.connect(("c", "u"), refused)
    with pytest.raises(ssh.CredentialError) as again:
        pool.connect(("c", "u"), refused)  # backing off: no new attempt, the same words
    assert str(again.value) == str(first.value)
    assert "No such file" in str(first.value)
